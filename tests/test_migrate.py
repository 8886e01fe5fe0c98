"""`abathur-memory migrate`: a real indexed database (the Rust book from ../shared/data when
it is there, else the repository's own markdown copied 36 times with notes on the queries'
topics; plus memories with their
history, sessions with events, tasks, checkpoints and tokens) copied into PostgreSQL and
back, validated, served with the same answers; resumed after an interruption; a copy that does not
validate is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from backends import sync_sql
from cli_helpers import run_cli
from mcp_helpers import call, connected

from abathur_memory.config import Settings, load_settings
from abathur_memory.errors import InvalidInput, Unavailable
from abathur_memory.ops import migration
from abathur_memory.store.postgres.copy_endpoint import PostgresEndpoint
from abathur_memory.store.sqlite import driver
from abathur_memory.store.sqlite.copy_endpoint import SqliteEndpoint

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
RUST_BOOK = REPO.parent / "shared" / "data" / "markdown" / "rust-book"
QUERIES = (
    "how do I borrow a value mutably",
    "trait objects and dynamic dispatch",
    "cargo workspace dependencies",
    "error handling with the question mark operator",
)


def _settings(db: str | Path) -> Settings:
    return load_settings(db=str(db), user="alice", embedder="fake", maintenance_interval_hours=0)


# What the generated corpus says on each query's topic: every word of the query, so that
# PostgreSQL's keyword search (all terms must match) finds as many sections as SQLite's.
_TOPICS = {
    QUERIES[0]: "To borrow a value mutably, take `&mut value`: one mutable borrow at a time.",
    QUERIES[1]: "Trait objects (`dyn Trait`) use dynamic dispatch through a vtable.",
    QUERIES[2]: "A cargo workspace shares one lock file; its members list their dependencies.",
    QUERIES[3]: "Error handling with the question mark operator returns the error early.",
}


def _topic_notes(copy: int) -> str:
    """Sections on the queries' topics, of a length that differs from copy to copy (so
    no two copies rank as a tie)."""
    parts = [f"# Rust notes {copy}\n"]
    for n, (query, text) in enumerate(_TOPICS.items()):
        filler = " ".join(f"Remark {copy}.{n}.{k} on the same subject." for k in range(copy % 7))
        parts.append(f"## {query.capitalize()} ({copy})\n\n{text} {filler}\n")
    return "\n".join(parts)


def _corpus(kind: str, tmp_path: Path) -> Path:
    """The Rust book (478 files) from the evaluation data, or a corpus of the same order
    made from the repository's own docs and notes on the queries' topics, which runs
    everywhere (a bare clone has no ../shared)."""
    if kind == "rust-book":
        if not RUST_BOOK.is_dir():
            pytest.skip(f"the evaluation data is not here ({RUST_BOOK})")
        return RUST_BOOK
    sources = sorted(
        [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "examples").rglob("*.md")]
    )
    root = tmp_path / "corpus"
    for copy in range(36):
        for source in sources:
            target = root / f"c{copy:02d}" / source.relative_to(REPO)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source.read_text() + f"\n\n## Copy {copy}\n\nCopy number {copy}.\n")
        (root / f"c{copy:02d}" / "rust-notes.md").write_text(_topic_notes(copy))
    return root


async def _fill(db: Path, corpus: Path) -> dict[str, str]:
    """The source: the corpus indexed, and every kind of row the memory side writes."""
    from acting import open_acting

    async with open_acting(_settings(db)) as services:
        runtime = services.runtime
        await runtime.documents.add_root(corpus)
        report = await runtime.documents.index()
        assert report.work is not None and report.work.documents_done > 400
        for n in range(3):
            await services.memories.put("user:alice:notes", "plan", {"step": n, "text": "ship"})
        await services.memories.put("user:alice:notes", "gone", "temporary")
        await services.memories.delete("user:alice:notes", "gone")
        session = await services.sessions.create(state={"mood": "calm"})
        await services.sessions.set_status(session.id, "active")
        await services.sessions.append(session.id, "message", "user", "hello", state_delta={"n": 1})
        parent = await services.tasks.create("parent task")
        child = await services.tasks.create("child task", parent_task_id=parent.id)
        await services.checkpoints.save(parent.id, 0, {"progress": 0.5})
        await runtime.tokens.create("ci", runtime.principal)
        await runtime.memory_indexer.catch_up()  # memory vectors exist, and are carried
        return {"session": session.id, "parent": parent.id, "child": child.id}


async def _answers(db: str | Path, ids: dict[str, str]) -> dict[str, object]:
    """What a server on the database answers to the same calls (search keys hold a ':')."""
    out: dict[str, object] = {}
    async with connected(db) as client:
        for query in QUERIES:
            for mode in ("keyword", "hybrid"):
                found = await call(client, "document_search", query=query, mode=mode, k=5)
                out[f"{mode}:{query}"] = [(h["path"], h["heading"]) for h in found["results"]]
        memory = await call(client, "memory_get", namespace="user:alice:notes", key="plan")
        out["memory"] = (memory["value"], memory["version"])
        history = await call(client, "memory_history", namespace="user:alice:notes", key="plan")
        out["history"] = [v["value"] for v in history["versions"]]
        session = await call(client, "session_get", session_id=ids["session"])
        out["session"] = (session["state"], [e["content"] for e in session["events"]])
        child = await call(client, "task_get", task_id=ids["child"])
        out["child"] = child["parent_task_id"]
    return out


@pytest.mark.parametrize("corpus", ["generated", "rust-book"])
async def test_an_indexed_database_goes_to_postgresql_and_back_with_the_same_answers(
    tmp_path, pg_url, capsys, corpus
):
    async def cli(*args):  # the commands run their own event loop: off this one
        return await asyncio.to_thread(run_cli, capsys, *args)

    source = tmp_path / "source.db"
    ids = await _fill(source, _corpus(corpus, tmp_path))
    before = await _answers(source, ids)

    dry = await cli("migrate", "--db", str(source), "--to", pg_url, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json()["dry_run"] is True
    with sync_sql(pg_url) as conn:  # a dry run writes nothing: not even the tables
        assert conn.scalar("SELECT to_regclass('memory_entries')") is None

    copied = await cli("migrate", "--db", str(source), "--to", pg_url, "--json")
    assert copied.code == 0, copied.err
    report = copied.json()
    assert report["ok"] and report["state"] == "complete"
    tables = {t["table"]: t for t in report["tables"]}
    assert all(t["ok"] for t in tables.values())
    assert tables["chunks_s1"]["source_rows"] > 1000  # nothing re-embedded: the vectors came
    assert tables["memory_vectors_s1"]["target_rows"] > 0
    assert tables["memory_entries"]["target_rows"] == 3 + 3 + 1  # seeds, three versions, one
    assert tables["session_events"]["target_rows"] == 1
    assert tables["api_tokens"]["target_rows"] == 1
    on_postgres = await _answers(pg_url, ids)
    # What was stored reads back the same. Searches rank with each backend's own keyword
    # scoring (BM25 on SQLite, ts_rank_cd on PostgreSQL), so only their hits are compared
    # here: every query finds sections; the way back below must reproduce them exactly.
    searches = [key for key in before if ":" in key]
    assert {k: v for k, v in on_postgres.items() if k not in searches} == {
        k: v for k, v in before.items() if k not in searches
    }
    assert all(isinstance(hits := on_postgres[key], list) and len(hits) == 5 for key in searches)
    assert (await cli("doctor", "--db", pg_url)).code == 0

    back = tmp_path / "back.db"
    returned = await cli("migrate", "--db", pg_url, "--to", str(back), "--json")
    assert returned.code == 0 and returned.json()["state"] == "complete", returned.err
    assert await _answers(back, ids) == before
    assert (await cli("doctor", "--db", str(back))).code == 0


def _small_source(tmp_path: Path) -> Path:
    import asyncio

    from acting import open_acting

    source = tmp_path / "small.db"

    async def fill() -> None:
        async with open_acting(_settings(source)) as services:
            for n in range(25):
                await services.memories.put("user:alice:bulk", f"k{n}", {"n": n})

    asyncio.run(fill())
    return source


def test_an_interrupted_copy_is_refused_then_resumed(tmp_path, pg_url, monkeypatch, capsys):
    source = _small_source(tmp_path)
    real_write = PostgresEndpoint.write
    calls = {"n": 0}

    def dies_midway(self, table, rows, progress):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the copy
        real_write(self, table, rows, progress)

    monkeypatch.setattr(PostgresEndpoint, "write", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        migration.copy(str(source), pg_url, _settings(source), batch_rows=4)
    monkeypatch.setattr(PostgresEndpoint, "write", real_write)
    served = run_cli(capsys, "status", "--db", pg_url)
    assert served.code == 1 and "unfinished copy" in served.err
    doctor = run_cli(capsys, "doctor", "--json", "--db", pg_url)
    checks = {c["name"]: c for c in doctor.json()["checks"]}
    assert doctor.code == 1 and not checks["copy state"]["ok"]
    with sync_sql(pg_url) as conn:
        copied_before = conn.scalar("SELECT count(*) FROM memory_entries")
    assert 0 < copied_before < 28
    report = migration.copy(str(source), pg_url, _settings(source), batch_rows=4)
    assert report.resumed and report.state == "complete"
    assert report.copied_rows < sum(t.source_rows for t in report.tables)  # not started over
    assert {t.table: t.target_rows for t in report.tables}["memory_entries"] == 28
    assert run_cli(capsys, "status", "--db", pg_url).code == 0


def test_a_copy_that_does_not_validate_leaves_the_target_unusable(tmp_path, pg_url, monkeypatch):
    source = _small_source(tmp_path)
    real_finish = PostgresEndpoint.finish

    def tampered(self, progress=None):
        real_finish(self, progress)
        self.conn.execute("UPDATE memory_entries SET value = '\"changed\"' WHERE key = 'k7'")

    monkeypatch.setattr(PostgresEndpoint, "finish", tampered)
    report = migration.copy(str(source), pg_url, _settings(source))
    assert not report.ok and report.state.startswith("failed: memory_entries")
    with pytest.raises(Unavailable, match="unfinished copy made by `abathur-memory migrate`"):
        import asyncio

        from abathur_memory.runtime import open_runtime

        async def serve() -> None:
            async with open_runtime(_settings(pg_url)):
                pass

        asyncio.run(serve())


def test_a_target_with_data_is_refused_and_left_alone(tmp_path, capsys):
    source = _small_source(tmp_path)
    (tmp_path / "other").mkdir()
    other = _small_source(tmp_path / "other")
    with pytest.raises(InvalidInput, match="already holds memories"):
        migration.copy(str(source), str(other), _settings(source))
    with sync_sql(other) as conn:
        assert conn.scalar("SELECT count(*) FROM memory_entries") == 28
    same = run_cli(capsys, "migrate", "--db", str(source), "--to", str(source))
    assert same.code == 1 and "the same database" in same.err
    missing = run_cli(capsys, "migrate", "--db", str(tmp_path / "nope.db"), "--to", "x.db")
    assert missing.code == 1 and "no database at" in missing.err


def test_sqlite_endpoint_refuses_an_old_schema(tmp_path):
    import layouts

    old = tmp_path / "old.db"
    layouts.build_legacy(old)
    with pytest.raises(InvalidInput, match="older schema"):
        SqliteEndpoint(old, target=False)


def test_two_copies_into_one_postgresql_target_one_waits_its_turn(tmp_path, pg_url, capsys):
    """A second `migrate` into a target that a first one is filling stops with one line
    before it writes; the first finishes and validates."""
    import subprocess
    import sys
    import threading

    source = _small_source(tmp_path)
    copying, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def paused(phase: str, done: int, total: int) -> None:
        copying.set()  # the first copy holds the target, mid-way
        assert release.wait(120)

    def first() -> None:
        try:
            outcome["report"] = migration.copy(
                str(source), pg_url, _settings(source), progress=paused, batch_rows=4
            )
        except BaseException as exc:
            outcome["error"] = exc

    runner = threading.Thread(target=first)
    runner.start()
    try:
        assert copying.wait(60)
        command = ["migrate", "--db", str(source), "--to", pg_url, "--json"]
        second = subprocess.run(
            [sys.executable, "-m", "abathur_memory", *command],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 1, second.stdout + second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: another `abathur-memory migrate`")
        assert "is copying into" in lines[0] and "Traceback" not in second.stderr
        with pytest.raises(Unavailable, match="another `abathur-memory migrate` is copying"):
            migration.copy(str(source), pg_url, _settings(source))
    finally:
        release.set()
        runner.join(120)
    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"]
    assert isinstance(report, migration.MigrationReport)
    assert report.ok and not report.resumed and report.state == "complete"
    assert {t.table: t.target_rows for t in report.tables}["memory_entries"] == 28
    assert run_cli(capsys, "doctor", "--db", pg_url).code == 0
    again = run_cli(capsys, "migrate", "--db", str(source), "--to", pg_url)
    assert again.code == 1 and "already a complete, validated copy" in again.err


def test_vector_indexes_are_built_with_no_time_limit_and_say_so(tmp_path, pg_url, monkeypatch):
    """A large HNSW build outlasts the copy's statement timeout (about 600 s for a million
    vectors here): it runs without one, with more build memory, and the progress names each
    index it builds."""
    import asyncio

    import psycopg
    from acting import open_acting

    source = tmp_path / "vectors.db"

    async def fill() -> None:
        async with open_acting(_settings(source)) as services:
            for n in range(30):
                await services.memories.put("user:alice:notes", f"k{n}", f"note number {n}")
            await services.runtime.memory_indexer.catch_up()

    asyncio.run(fill())
    in_effect: list[tuple[str, str]] = []
    execute = psycopg.Connection.execute

    def watching(self, query, *args, **kwargs):  # the settings each HNSW build ran under
        text = query if isinstance(query, str | bytes) else b""
        if b"USING hnsw" in (text.encode() if isinstance(text, str) else text):
            timeout = execute(self, "SHOW statement_timeout").fetchone()
            memory = execute(self, "SHOW maintenance_work_mem").fetchone()
            assert timeout is not None and memory is not None
            in_effect.append((timeout[0], memory[0]))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", watching)
    heard: list[str] = []
    report = migration.copy(
        str(source),
        pg_url,
        _settings(source),
        progress=lambda phase, done, total: heard.append(phase),
    )
    assert report.ok
    assert "building the vector index of memory_vectors_s1 (no time limit)" in heard
    assert in_effect and all(setting == ("0", "512MB") for setting in in_effect), in_effect
    with sync_sql(pg_url) as conn:
        assert conn.scalar("SELECT to_regclass('memory_vectors_s1_embedding')") is not None


def test_the_hnsw_build_gets_memory_for_its_graph_and_never_less_than_the_servers():
    """A graph that outgrows maintenance_work_mem is built on disk, many times slower (1M
    vectors of 384 dimensions under 512 MB: 477,590 loaded after 28 minutes): the build's
    memory is sized from the rows, between 512 MB and 4 GB, and never lowers the server's."""
    from abathur_memory.store.postgres.copy_endpoint import hnsw_build_memory_mb

    assert hnsw_build_memory_mb(1000, 384, 64) == 512  # small: the floor
    million = hnsw_build_memory_mb(1_000_000, 384, 64)
    assert 2048 < million < 4096  # vectors 1.5 GB, neighbours and overhead beside them
    assert hnsw_build_memory_mb(10_000_000, 384, 64) == 4096  # the ceiling
    assert hnsw_build_memory_mb(1000, 384, 8192) == 8192  # the server's own, if larger
    assert hnsw_build_memory_mb(1_000_000, 384, 64, ceiling_mb=1024) == 1024  # the setting
    assert hnsw_build_memory_mb(1000, 384, 64, ceiling_mb=128) == 128  # below the floor too


def test_a_task_without_dependencies_from_the_first_layout_copies(tmp_path, pg_url):
    """The first SQLite layout let a task's dependencies be NULL (meaning none); PostgreSQL's
    column is NOT NULL: the copy carries it as [] and validates."""
    source = _small_source(tmp_path)
    conn = driver.connect(source)
    conn.execute(
        "INSERT INTO tasks (id, prompt, agent_type, status, input_data, created_by,"
        " submitted_at, last_updated_at) VALUES ('10000000-0000-4000-8000-000000000001',"
        " 'old task', 'general', 'pending', '{}', 'user:alice',"
        " strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now'))"
    )
    assert conn.execute("SELECT dependencies FROM tasks").fetchone()[0] is None
    conn.close()
    report = migration.copy(str(source), pg_url, _settings(source))
    assert report.ok, report.state
    with sync_sql(pg_url) as pg:
        assert pg.scalar("SELECT dependencies::text FROM tasks") == "[]"
