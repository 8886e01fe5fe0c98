"""The command line surface: help, version, init, doctor and its failure modes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli_helpers import run_cli

from abathur_memory import __version__
from abathur_memory.store.sqlite import driver


def test_help_lists_the_commands(capsys):
    result = run_cli(capsys, "--help")
    assert result.code == 0
    for command in ("init", "doctor", "backup", "restore"):
        assert command in result.out


def test_version(capsys):
    result = run_cli(capsys, "--version")
    assert result.code == 0
    assert __version__ in result.out


def test_python_dash_m_works():
    proc = subprocess.run(
        [sys.executable, "-m", "abathur_memory", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert __version__ in proc.stdout


def test_unknown_command_is_a_usage_error(capsys):
    result = run_cli(capsys, "frobnicate")
    assert result.code == 2
    assert "No such command" in result.err


def test_init_creates_then_reports_up_to_date(capsys, db_path):
    first = run_cli(capsys, "init", "--db", str(db_path))
    assert first.code == 0 and "created" in first.out
    second = run_cli(capsys, "init", "--db", str(db_path))
    assert second.code == 0 and "up to date" in second.out


def test_db_comes_from_the_environment(capsys, db_path, monkeypatch):
    monkeypatch.setenv("ABATHUR_DB", str(db_path))
    result = run_cli(capsys, "init")
    assert result.code == 0
    assert db_path.exists()


def test_doctor_json_on_a_new_database_is_all_ok(capsys, db_path):
    assert run_cli(capsys, "init", "--db", str(db_path)).code == 0
    result = run_cli(capsys, "doctor", "--json", "--db", str(db_path))
    assert result.code == 0, result.out
    report = result.json()
    assert report["ok"] is True
    names = [c["name"] for c in report["checks"]]
    for expected in (
        "sqlite version",
        "extensions",
        "schema version",
        "tables",
        "indexes",
        "pragmas",
        "integrity_check",
        "foreign_key_check",
        "json constraints",
        "plan: memory get-latest",
        "plan: namespace listing",
        "plan: active sessions",
        "plan: document by path",
        "plan: pending documents",
        "seed data",
        "size",
    ):
        assert expected in names
    assert all(set(c) == {"name", "ok", "warning", "detail"} for c in report["checks"])
    assert not any(c["warning"] for c in report["checks"])


def test_doctor_table_output(capsys, db_path):
    assert run_cli(capsys, "init", "--db", str(db_path)).code == 0
    result = run_cli(capsys, "doctor", "--db", str(db_path))
    assert result.code == 0
    assert "all checks passed" in result.out


def _broken(db_path: Path, statement: str) -> None:
    conn = driver.connect(db_path)
    try:
        conn.execute(statement)
    finally:
        conn.close()


def test_doctor_fails_with_exit_1_when_an_index_is_missing(capsys, db_path):
    run_cli(capsys, "init", "--db", str(db_path))
    _broken(db_path, "DROP INDEX idx_memory_namespace_key_version")
    result = run_cli(capsys, "doctor", "--json", "--db", str(db_path))
    assert result.code == 1
    report = result.json()
    assert report["ok"] is False
    failed = {c["name"]: c["detail"] for c in report["checks"] if not c["ok"]}
    assert "idx_memory_namespace_key_version" in failed["indexes"]
    # The get-latest plan no longer uses the intended index either.
    assert "plan: memory get-latest" in failed


def test_doctor_reports_foreign_key_violations(capsys, db_path):
    run_cli(capsys, "init", "--db", str(db_path))
    conn = driver.connect(db_path)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute(
        "INSERT INTO tasks (id, prompt, status, input_data, submitted_at, last_updated_at,"
        " session_id) VALUES ('t', 'p', 'pending', '{}', 'x', 'x', 'ghost')"
    )
    conn.close()
    report = run_cli(capsys, "doctor", "--json", "--db", str(db_path)).json()
    failed = {c["name"]: c["detail"] for c in report["checks"] if not c["ok"]}
    assert failed == {"foreign_key_check": "1 violations in tasks"}


def test_doctor_reports_a_pending_schema_upgrade(capsys, db_path):
    run_cli(capsys, "init", "--db", str(db_path))
    _broken(db_path, "DELETE FROM schema_migrations WHERE version = 3")
    report = run_cli(capsys, "doctor", "--json", "--db", str(db_path)).json()
    failed = {c["name"]: c["detail"] for c in report["checks"] if not c["ok"]}
    assert "init" in failed["schema version"]
    assert run_cli(capsys, "init", "--db", str(db_path)).code == 0
    assert run_cli(capsys, "doctor", "--json", "--db", str(db_path)).json()["ok"] is True


def test_doctor_on_a_missing_directory_is_one_line(capsys, tmp_path):
    result = run_cli(capsys, "doctor", "--db", str(tmp_path / "nowhere" / "x.db"))
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert result.err.startswith("error: no database at")
    assert "Traceback" not in result.err


def test_doctor_on_a_file_that_is_not_a_database_is_one_line(capsys, tmp_path):
    path = tmp_path / "readme.db"
    path.write_text("# not sqlite\n" * 100)
    result = run_cli(capsys, "doctor", "--json", "--db", str(path))
    assert result.code == 1
    assert result.err == f"error: cannot open {path}: it is not a SQLite database\n"
    assert path.read_text().startswith("# not sqlite")


def test_doctor_on_a_directory_is_one_line(capsys, tmp_path):
    result = run_cli(capsys, "doctor", "--db", str(tmp_path))
    assert result.code == 2
    assert f"File '{tmp_path}' is a directory" in result.err
    assert "Traceback" not in result.err
