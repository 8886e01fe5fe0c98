"""doctor passes healthy databases, reports damaged ones without crashing, checks read-only
files without writing, never creates a database, and --repair / maintain fix what it finds."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import layouts
import pytest
from acting import Acting, open_acting
from cli_helpers import run_cli
from conftest import settings_for
from indexing_helpers import write_tree

from abathur_memory.store.sqlite import driver, salvage

ROOT = Path(__file__).resolve().parent.parent


def _services(db_path: Path, work: Callable[[Acting], Awaitable[None]]) -> None:
    """Run ``work(services)`` on the database and close it (PRAGMA optimize runs on close)."""

    async def run():
        settings = settings_for(db_path, max_value_bytes=1 << 20)
        async with open_acting(settings) as services:
            await work(services)

    asyncio.run(run())


def _doctor(
    capsys: pytest.CaptureFixture[str], db_path: Path
) -> tuple[int, dict[str, dict[str, Any]]]:
    result = run_cli(capsys, "doctor", "--json", "--db", str(db_path))
    assert "Traceback" not in result.err
    report = result.json()
    return result.code, {c["name"]: c for c in report["checks"]}


def _failed(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: c["detail"] for name, c in checks.items() if not c["ok"]}


def _fresh_with_one_session(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    db_path = tmp_path / "one-session.db"

    async def work(services):
        await services.sessions.create()

    _services(db_path, work)
    return db_path


def _after_the_example(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    db_path = tmp_path / "example.db"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "agent_memory.py"), "--db", str(db_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ABATHUR_EMBEDDER": "fake"},
    )
    assert proc.returncode == 0, proc.stderr
    return db_path


def _after_indexing_twelve_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("ABATHUR_EMBEDDER", "fake")
    db_path = tmp_path / "indexed.db"
    files = {f"notes/n{i}.md": f"# Note {i}\n\nThe {i}th thought on sailing.\n" for i in range(12)}
    root = write_tree(tmp_path / "docs", files)
    assert run_cli(capsys, "index", str(root), "--db", str(db_path)).code == 0
    return db_path


def _after_a_restore(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    source = _fresh_with_one_session(capsys, tmp_path, monkeypatch)
    backup = tmp_path / "copy.db"
    assert run_cli(capsys, "backup", str(backup), "--db", str(source)).code == 0
    restored = tmp_path / "restored.db"
    assert run_cli(capsys, "restore", str(backup), "--db", str(restored)).code == 0
    return restored


def _upgraded_from_the_oldest_layout(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    db_path = layouts.build_legacy(tmp_path / "legacy.db")
    assert run_cli(capsys, "init", "--db", str(db_path)).code == 0
    return db_path


@pytest.mark.parametrize(
    "make",
    [
        _fresh_with_one_session,
        _after_the_example,
        _after_indexing_twelve_files,
        _after_a_restore,
        _upgraded_from_the_oldest_layout,
    ],
)
def test_doctor_passes_healthy_databases(capsys, tmp_path, monkeypatch, make):
    db_path = make(capsys, tmp_path, monkeypatch)
    code, checks = _doctor(capsys, db_path)
    assert code == 0, _failed(checks)


def test_doctor_never_creates_a_database(capsys, tmp_path):
    missing = tmp_path / "typo.db"
    result = run_cli(capsys, "doctor", "--db", str(missing))
    assert result.code == 1
    assert result.err.startswith(f"error: no database at {missing}")
    assert not missing.exists()


def test_stale_statistics_are_a_warning_that_maintain_refreshes(capsys, tmp_path):
    db_path = tmp_path / "grown.db"

    async def one(services):
        await services.sessions.create()  # status 'created': the active-sessions index is empty

    _services(db_path, one)
    conn = driver.connect(db_path)
    conn.execute("ANALYZE")  # what PRAGMA optimize records for tiny tables
    conn.execute("BEGIN")
    for n in range(5000):
        conn.execute(
            "INSERT INTO sessions (id, app_name, user_id, status) VALUES (?, 'a', 'u', ?)",
            (f"s{n}", "terminated" if n % 50 else "active"),
        )
    conn.execute("COMMIT")
    conn.close()
    # The statistics now steer SQLite to scan 5,001 sessions: a slow query, not damage.
    code, checks = _doctor(capsys, db_path)
    assert code == 0, _failed(checks)
    plan = checks["plan: active sessions"]
    assert plan["warning"] and "SCAN sessions" in plan["detail"]
    assert "statistics describe 1 rows of sessions, which has 5001" in plan["detail"]
    assert "maintain" in plan["detail"]
    maintained = run_cli(capsys, "maintain", "--json", "--db", str(db_path))
    assert maintained.code == 0, maintained.err
    steps = {s["name"]: s for s in maintained.json()["database"]}
    assert set(steps) == {"statistics", "free space", "wal"}
    # The lifecycle step opens the database first, which drops the 1-row statistics, and
    # PRAGMA optimize at its close records them at the real size; or the statistics step
    # runs ANALYZE itself. Either way the statistics step ran and the plan is right after.
    assert steps["statistics"]["done"], steps["statistics"]
    assert "ANALYZE" in steps["statistics"]["detail"] or "optimize" in steps["statistics"]["detail"]
    code, checks = _doctor(capsys, db_path)
    assert code == 0
    assert not checks["plan: active sessions"]["warning"], checks["plan: active sessions"]
    assert "SCAN" not in checks["plan: active sessions"]["detail"]


def test_repair_refreshes_stale_statistics_too(capsys, tmp_path):
    db_path = tmp_path / "grown.db"

    async def one(services):
        await services.sessions.create()

    _services(db_path, one)
    conn = driver.connect(db_path)
    conn.execute("ANALYZE")
    conn.executemany(
        "INSERT INTO sessions (id, app_name, user_id, status) VALUES (?, 'a', 'u', ?)",
        [(f"s{n}", "active" if n % 100 == 0 else "terminated") for n in range(3000)],
    )
    conn.close()
    assert _doctor(capsys, db_path)[1]["plan: active sessions"]["warning"]
    repaired = run_cli(capsys, "doctor", "--repair", "--db", str(db_path))
    assert repaired.code == 0
    assert "refreshed the statistics of" in repaired.err
    assert not _doctor(capsys, db_path)[1]["plan: active sessions"]["warning"]


def test_maintain_reclaims_free_space_and_checkpoints(capsys, tmp_path):
    db_path = tmp_path / "shrunk.db"
    assert run_cli(capsys, "init", "--db", str(db_path)).code == 0
    conn = driver.connect(db_path)
    conn.execute("CREATE TABLE filler (x BLOB)")
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
        " INSERT INTO filler SELECT randomblob(4000) FROM n"
    )
    conn.execute("DROP TABLE filler")
    conn.close()
    code, checks = _doctor(capsys, db_path)
    assert code == 0 and checks["size"]["warning"], checks["size"]
    dry = run_cli(capsys, "maintain", "--dry-run", "--json", "--db", str(db_path)).json()
    assert "would VACUUM" in {s["name"]: s for s in dry["database"]}["free space"]["detail"]
    done = run_cli(capsys, "maintain", "--json", "--db", str(db_path)).json()
    steps = {s["name"]: s for s in done["database"]}
    assert steps["free space"]["done"] and "reclaimed" in steps["free space"]["detail"]
    assert steps["wal"]["done"]
    assert not _doctor(capsys, db_path)[1]["size"]["warning"]


def _damage_a_page(db_path: Path, table: str) -> None:
    """Overwrite one leaf page of ``table`` with garbage (the file keeps its length)."""
    conn = driver.connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = [
        r[0]
        for r in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
            (table,),
        )
    ]
    conn.close()
    assert pages, f"{table} has no leaf page"
    page = pages[len(pages) // 2]
    with db_path.open("r+b") as fh:
        fh.seek((page - 1) * page_size)
        fh.write(bytes((n * 37 + 11) % 256 for n in range(page_size)))


@pytest.fixture
def indexed_with_memories(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    monkeypatch.setenv("ABATHUR_EMBEDDER", "fake")
    db_path = tmp_path / "data.db"
    files = {
        f"book/ch{i:02d}.md": f"# Chapter {i}\n\n" + f"Paragraph about topic {i}. " * 40 + "\n"
        for i in range(30)
    }
    root = write_tree(tmp_path / "docs", files)
    assert run_cli(capsys, "index", str(root), "--db", str(db_path)).code == 0

    async def memories(services):
        for n in range(300):
            await services.memories.put("user:alice:notes", f"k{n}", {"text": f"note {n}" * 20})

    _services(db_path, memories)
    return db_path, root


def test_doctor_reports_a_damaged_page_without_crashing(capsys, indexed_with_memories):
    db_path, _ = indexed_with_memories
    _damage_a_page(db_path, "chunks_s1")
    code, checks = _doctor(capsys, db_path)
    assert code == 1
    assert "integrity_check" in _failed(checks)
    assert "--recover" in checks["integrity_check"]["detail"]
    assert "index consistency" in checks  # reported (failed), not a crash


def test_recover_makes_a_file_that_passes_doctor_and_reindexes(capsys, indexed_with_memories):
    db_path, _ = indexed_with_memories
    _damage_a_page(db_path, "memory_entries")
    out = db_path.parent / "recovered.db"
    result = run_cli(capsys, "doctor", "--recover", str(out), "--json", "--db", str(db_path))
    assert result.code == 0, result.err
    report = result.json()
    assert report["reindex"] == 30
    assert 0 < report["tables"]["memory_entries"]["copied"] < 303
    code, checks = _doctor(capsys, out)
    assert code == 0, _failed(checks)
    assert run_cli(capsys, "doctor", "--repair", "--db", str(out)).code == 0
    indexed = run_cli(capsys, "index", "--json", "--db", str(out))
    assert indexed.code == 0, indexed.err
    assert indexed.json()["work"]["documents_done"] == 30
    found = run_cli(capsys, "search", "topic 7", "--json", "--db", str(out))
    assert found.code == 0 and found.json()["results"][0]["path"] == "docs/book/ch07.md"
    assert _doctor(capsys, out)[0] == 0


def test_a_recovery_that_does_not_verify_leaves_nothing(capsys, indexed_with_memories, monkeypatch):
    db_path, _ = indexed_with_memories
    monkeypatch.setattr(salvage, "_verify", lambda output: "simulated damage")
    out = db_path.parent / "bad.db"
    result = run_cli(capsys, "doctor", "--recover", str(out), "--db", str(db_path))
    assert result.code == 1
    assert result.err.startswith("error: the salvaged file did not verify (simulated damage)")
    assert not out.exists()
    assert not Path(f"{out}-wal").exists()


def test_doctor_on_a_read_only_copy_says_nothing_false(capsys, indexed_with_memories, monkeypatch):
    db_path, _ = indexed_with_memories
    conn = driver.connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    # Root ignores file modes: make the file read-only the way the doctor sees it.
    monkeypatch.setattr(driver, "writable", lambda path: False)
    code, checks = _doctor(capsys, db_path)
    assert code == 0, _failed(checks)
    assert "could not run" not in checks["json constraints"]["detail"]
    assert "damaged" not in checks["index consistency"]["detail"]
    assert "read-only" in checks["index consistency"]["detail"]
    repair = run_cli(capsys, "doctor", "--repair", "--db", str(db_path))
    assert repair.code == 1 and repair.err.startswith("error: ")
    assert "read-only" in repair.err


def test_an_interrupted_full_index_is_reported_as_unfinished(capsys, tmp_path, monkeypatch):
    from abathur_memory.documents import worker

    db_path = _after_indexing_twelve_files(capsys, tmp_path, monkeypatch)
    original = worker.IndexWorker._process
    calls = {"n": 0}

    async def stop_after_one_batch(self, space, claimed, state):
        calls["n"] += 1
        if calls["n"] > 1:
            raise KeyboardInterrupt
        return await original(self, space, claimed, state)

    monkeypatch.setattr(worker.IndexWorker, "_process", stop_after_one_batch)
    monkeypatch.setattr(worker.IndexWorker, "__init__", _small_batches(worker.IndexWorker.__init__))
    interrupted = run_cli(capsys, "index", "--full", "--db", str(db_path))
    assert interrupted.code == 130
    monkeypatch.undo()
    code, checks = _doctor(capsys, db_path)
    assert code == 0, _failed(checks)
    detail = checks["index consistency"]["detail"]
    assert "waiting to be re-indexed" in detail and checks["index consistency"]["warning"]
    monkeypatch.setenv("ABATHUR_EMBEDDER", "fake")
    assert run_cli(capsys, "index", "--db", str(db_path)).code == 0
    code, checks = _doctor(capsys, db_path)
    assert code == 0 and not checks["index consistency"]["warning"]


def _small_batches(init):
    def wrapped(self, *args, **kwargs):
        kwargs["batch_documents"] = 4
        init(self, *args, **kwargs)

    return wrapped


def _record_future_migration(db_url: str) -> int:
    """Record a migration one past the latest, as a newer abathur-memory would; returns
    the latest this one knows."""
    sql = "INSERT INTO schema_migrations (version, name, checksum) VALUES ({0}, 'future', 'x')"
    if db_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as pg:
            row = pg.execute("SELECT max(version) FROM schema_migrations").fetchone()
            assert row is not None
            pg.execute(sql.format("%s"), (row[0] + 1,))
            return int(row[0])
    conn = driver.connect(db_url)
    latest = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    conn.execute(sql.format("?"), (latest + 1,))
    conn.close()
    return int(latest)


def test_doctor_fails_a_database_of_a_newer_schema_as_every_command_refuses_it(capsys, db_url):
    assert run_cli(capsys, "init", "--db", db_url).code == 0
    latest = _record_future_migration(db_url)
    code, checks = _doctor(capsys, db_url)
    assert code != 0
    schema = checks["schema version"]
    assert not schema["ok"]
    assert schema["detail"] == (
        f"this database was written by a newer abathur-memory (schema {latest + 1}; "
        f"this one knows {latest}): upgrade abathur-memory"
    )
    repaired = run_cli(capsys, "doctor", "--repair", "--db", db_url)
    assert repaired.code != 0
    assert repaired.err.strip().splitlines() == [repaired.err.strip()]
    assert "newer than this abathur-memory" in repaired.err and "Traceback" not in repaired.err


def test_postgres_doctor_sets_the_vector_indexes_beside_shared_buffers(capsys, pg_url):
    """The vector indexes of the database's schema against shared_buffers: a warning (not a
    failure) when they outgrow it, since every vector search then reads index pages."""
    from abathur_memory.store.postgres.doctor import vector_memory

    assert run_cli(capsys, "init", "--db", pg_url).code == 0
    code, checks = _doctor(capsys, pg_url)
    memory = checks["vector index memory"]
    assert code == 0 and memory["ok"] and not memory["warning"]
    assert re.fullmatch(r"HNSW indexes [\d,]+ MB, shared_buffers [\d,]+ MB", memory["detail"])
    big = vector_memory(3 * 2**30, 128 * 2**20)
    assert big.ok and big.warning and "raise shared_buffers" in big.detail
    assert big.detail.startswith("HNSW indexes 3,072 MB, shared_buffers 128 MB")
    assert not vector_memory(2**30, 4 * 2**30).warning
