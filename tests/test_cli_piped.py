"""What the README promises about output (issue 13 item 20), checked with stdout piped:
tables are tab-separated under a header line, nothing is drawn, wrapped or truncated (a
path longer than 80 columns comes out whole on one line), and every error is one
``error:`` line on stderr.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import Result, run_cli

from abathur_memory.store.sqlite import backup as backups

pytestmark = pytest.mark.slow

DRAWN = re.compile("[\u2500-\u259f]")  # box drawing and block elements
LONG = "a-folder-whose-name-alone-runs-well-past-the-eighty-columns-of-a-piped-console"


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abathur_memory", *args],
        capture_output=True,  # stdout is a pipe, as in `abathur-memory ... | less`
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _plain(result: subprocess.CompletedProcess[str], *whole: str) -> list[str]:
    """stdout's lines, checked: nothing drawn, and each of ``whole`` within one line."""
    assert result.returncode == 0, result.stderr
    assert not DRAWN.search(result.stdout), result.stdout
    lines = result.stdout.splitlines()
    for text in whole:
        assert any(text in line for line in lines), (text, result.stdout)
    return lines


def _tsv(lines: list[str], header: str) -> list[list[str]]:
    assert lines[0] == header, lines
    rows = [line.split("\t") for line in lines[1:] if "\t" in line]
    assert rows and all(len(row) == len(header.split("\t")) for row in rows), lines
    return rows


def test_every_command_piped_prints_plain_whole_lines(tmp_path):
    env = {**os.environ, "ABATHUR_EMBEDDER": "fake", "ABATHUR_USER": "alice", "COLUMNS": "80"}
    env.pop("ABATHUR_DB", None)
    folder = tmp_path / LONG
    docs = folder / "docs"
    docs.mkdir(parents=True)
    name = "a-document-whose-file-name-is-itself-rather-long-for-a-console.md"
    sentence = (
        "Lighthouse keepers log every passing ship, and this sentence is long enough "
        "that a console of eighty columns would have to wrap it somewhere."
    )
    (docs / name).write_text(f"# Lighthouses\n\n{sentence}\n")
    db = folder / "memory.db"

    _plain(_run("init", "--db", str(db), env=env), str(db))
    _plain(_run("index", str(docs), "--db", str(db), env=env))
    found = _plain(_run("search", "lighthouse keepers", "--db", str(db), env=env), f"docs/{name}")
    assert any(sentence in line for line in found), found  # the snippet is not hard-wrapped

    rows = _tsv(
        _plain(_run("status", "--db", str(db), env=env), str(docs)),
        "root\tpath\tdocuments\tsynced\tpending\tstale\tfailed\tlast scan",
    )
    assert rows[0][1] == str(docs)
    rows = _tsv(
        _plain(_run("roots", "--db", str(db), env=env), str(docs)),
        "root\tpath\towner\tvisibility\texcludes",
    )
    assert rows[0][1] == str(docs)

    checks = _tsv(_plain(_run("doctor", "--db", str(db), env=env)), "ok\tcheck\tdetail")
    assert {row[1] for row in checks} >= {"schema version", "integrity_check", "tables"}
    assert all(row[0] in ("✓", "!") for row in checks), checks

    copy = folder / "copy.db"
    migrated = _plain(_run("migrate", "--db", str(db), "--to", str(copy), env=env), str(copy))
    tables = _tsv(migrated[: len(migrated) - 1], "table\trows\tcopied\tchecksum\tok")
    assert {row[0] for row in tables} >= {"memory_entries", "document_index"}

    backup = folder / "backups"
    backed = _plain(_run("backup", str(backup), "--db", str(db), env=env), str(db), str(backup))
    made = Path(backed[0].split(" to ")[1].split(" (")[0])
    _plain(_run("restore", str(made), "--db", str(copy), env=env), str(copy), str(made))
    _plain(_run("maintain", "--db", str(db), env=env))

    _plain(_run("tokens", "create", "ci", "--db", str(db), env=env))
    tokens = _tsv(
        _plain(_run("tokens", "list", "--db", str(db), env=env)),
        "id\tname\tuser\tapp\tproject\tadmin\tcreated\trevoked",
    )
    assert tokens[0][1] == "ci"


def _one_error_line(result: Result, *, starts: str) -> str:
    assert result.code == 1, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith(starts), lines[0]
    return lines[0]


def test_a_multi_line_error_is_said_in_one_line(capsys, tmp_path, monkeypatch):
    db = tmp_path / "memory.db"
    assert run_cli(capsys, "init", "--db", str(db)).code == 0
    backup = tmp_path / "copy.db"
    assert run_cli(capsys, "backup", str(backup), "--db", str(db)).code == 0
    integrity = "integrity_check failed: *** in database main ***\nPage 4: btreeInitPage() returns error code 11\nPage 9: never used"  # noqa: E501
    monkeypatch.setattr(backups, "verify_database", lambda path, **_: integrity)
    line = _one_error_line(
        run_cli(capsys, "restore", str(backup), "--db", str(db)), starts="error: refusing"
    )
    assert "*** in database main ***; Page 4: btreeInitPage()" in line


def test_an_unexpected_failure_is_one_line_not_a_traceback(capsys, tmp_path, monkeypatch):
    db = tmp_path / "memory.db"
    assert run_cli(capsys, "init", "--db", str(db)).code == 0

    def broken(*args, **kwargs):
        raise RuntimeError("the library failed\nDETAIL: on a second line")

    monkeypatch.setattr(backups, "backup", broken)
    line = _one_error_line(
        run_cli(capsys, "backup", str(tmp_path / "b.db"), "--db", str(db)), starts="error: "
    )
    assert line == "error: RuntimeError: the library failed; DETAIL: on a second line"


def test_a_postgresql_failure_is_one_line(capsys):
    result = run_cli(capsys, "status", "--db", "postgresql://nobody@127.0.0.1:1/nothing")
    _one_error_line(result, starts="error: cannot connect to PostgreSQL")
