"""Export and import of abathur-memory's own JSONL: a round trip answers every read the
same (on SQLite, on PostgreSQL, and from SQLite into PostgreSQL), importing twice writes
nothing, a bad or cut file writes nothing, what the principal may not write is refused
and listed, and what disagrees with the database is a conflict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from acting import Acting
from backends import Raw
from conftest import settings_for
from transfer_helpers import (
    ADMIN,
    ALICE,
    export_text,
    fill,
    reads,
    records,
    search_answers,
    write_corpus,
)

from abathur_memory.core.principal import Principal
from abathur_memory.core.transfer import Held
from abathur_memory.errors import Conflict, Forbidden
from abathur_memory.runtime import Runtime, open_runtime
from abathur_memory.transfer.report import ImportReport

pytestmark = pytest.mark.anyio

TABLES = ("memory_entries", "sessions", "session_events", "tasks", "checkpoints", "audit")


async def _counts(runtime: Runtime) -> dict[str, int]:
    raw = Raw(runtime.store)
    return {t: (await raw.fetchone(f"SELECT count(*) FROM {t}"))[0] for t in TABLES}


async def _import(
    runtime: Runtime, path: Path, principal: Principal = ADMIN, **options: Any
) -> ImportReport:
    return await runtime.transfer.import_path(principal, path, **options)


async def _write(tmp_path: Path, text: str, name: str = "export.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def test_round_trip_answers_every_read_the_same(runtime, target_url, tmp_path):
    ids = await fill(runtime)
    before = await reads(runtime, ids)
    path = await _write(tmp_path, await export_text(runtime, with_history=True))
    async with open_runtime(settings_for(target_url)) as target:
        report = await _import(target, path)
        assert report.ok, report.files[0].problems
        assert report.files[0].written and report.files[0].verified
        assert report.files[0].footer_checked
        assert await reads(target, ids) == before
        again = await export_text(target, with_history=True)
    # What the target exports is what the source exported, record for record (the seed
    # memories, which each database writes itself, aside).
    mine = [r for r in records(path.read_text()) if r.get("created_by") != "system"]
    theirs = [r for r in records(again) if r.get("created_by") != "system"]
    assert mine[1:-1] == theirs[1:-1]


async def test_round_trip_from_sqlite_into_postgresql(tmp_path, pg_url):
    source = tmp_path / "source.db"
    async with open_runtime(settings_for(source)) as runtime:
        ids = await fill(runtime)
        before = await reads(runtime, ids)
        path = await _write(tmp_path, await export_text(runtime, with_history=True))
    async with open_runtime(settings_for(pg_url)) as target:
        report = await _import(target, path)
        assert report.ok and report.files[0].verified
        assert await reads(target, ids) == before


async def test_importing_twice_writes_nothing(runtime, target_url, tmp_path):
    await fill(runtime)
    path = await _write(tmp_path, await export_text(runtime, with_history=True))
    async with open_runtime(settings_for(target_url)) as target:
        await _import(target, path)
        counts = await _counts(target)
        second = await _import(target, path)
        assert await _counts(target) == counts  # not even an audit row
        kinds = second.files[0].kinds
        assert all(k.new == 0 and k.changed == 0 for k in kinds.values())
        assert kinds["memory"].present == kinds["memory"].records > 10
        assert kinds["event"].present == 6


async def test_an_import_is_audited_as_the_importer(runtime, target_url, tmp_path):
    await fill(runtime)
    path = await _write(tmp_path, await export_text(runtime, with_history=True))
    async with open_runtime(settings_for(target_url)) as target:
        raw = Raw(target.store)
        await _import(target, path)
        rows = await raw.fetchall(
            "SELECT memory_operation_type, actor, count(*) FROM audit"
            " WHERE action_type = 'memory_import' GROUP BY memory_operation_type, actor"
            " ORDER BY memory_operation_type"
        )
        assert {(r[0], r[1]) for r in rows} == {("create", "user:root"), ("update", "user:root")}
        versions = await raw.fetchone(
            "SELECT count(*) FROM memory_entries WHERE created_by IS DISTINCT FROM 'system'"
        )
        assert sum(r[2] for r in rows) == versions[0]  # one row per imported version
        summary = await raw.fetchall("SELECT actor FROM audit WHERE action_type = 'import'")
        assert [r[0] for r in summary] == ["user:root"]
        # The originals' actors stay on the versions themselves.
        history = await Acting(target, ADMIN).memories.history("user:alice:notes", "plan")
        assert {v.created_by for v in history} == {"user:alice"}


async def test_imported_memories_are_searchable(runtime, target_url, tmp_path):
    await fill(runtime)
    path = await _write(tmp_path, await export_text(runtime, with_history=True))
    async with open_runtime(settings_for(target_url)) as target:
        await _import(target, path)
        await target.memory_indexer.catch_up()
        found = await Acting(target, ALICE).memories.search("hiking", mode="keyword")
        assert [(r.namespace, r.key) for r in found.results] == [("user:alice:notes", "diary")]
        gone = await Acting(target, ALICE).memories.search("temporary", mode="keyword")
        assert gone.results == []  # deleted at the source, deleted here


async def test_a_bad_line_writes_nothing_and_is_named(runtime, tmp_path):
    source = tmp_path / "source.db"
    async with open_runtime(settings_for(source)) as origin:
        await fill(origin)
        lines = (await export_text(origin, with_history=True)).splitlines()
    bad = json.loads(lines[5])
    bad["version"] = "one"
    lines[5] = json.dumps(bad)
    lines[7] = "{not json"
    path = await _write(tmp_path, "\n".join(lines) + "\n")
    counts = await _counts(runtime)
    report = await _import(runtime, path)
    problems = report.files[0].problems
    assert not report.ok and not report.files[0].written
    assert any(p.startswith(f"{path}:8: bad: not JSON") for p in problems), problems
    assert any(p.startswith(f"{path}:6: bad: memory") for p in problems), problems
    assert await _counts(runtime) == counts
    skipped = await _import(runtime, path, skip_bad=True)
    assert skipped.files[0].written and skipped.files[0].problem_count == len(problems)
    assert (await _counts(runtime))["sessions"] == counts["sessions"] + 4


async def test_a_file_cut_short_or_edited_writes_nothing(runtime, tmp_path):
    source = tmp_path / "source.db"
    async with open_runtime(settings_for(source)) as origin:
        await fill(origin)
        text = await export_text(origin, with_history=True)
    counts = await _counts(runtime)
    cut = await _write(tmp_path, "\n".join(text.splitlines()[:-1]) + "\n", "cut.jsonl")
    report = await _import(runtime, cut)
    assert "ends without its footer line" in report.files[0].problems[-1]
    edited = await _write(tmp_path, text.replace("went hiking", "went sailing"), "edited.jsonl")
    report = await _import(runtime, edited)
    assert "the memory records do not match the footer" in report.files[0].problems[-1]
    assert not report.files[0].footer_checked
    assert await _counts(runtime) == counts


async def test_what_the_principal_may_not_write_is_refused_and_listed(runtime, tmp_path):
    source = tmp_path / "source.db"
    async with open_runtime(settings_for(source)) as origin:
        ids = await fill(origin)
        text = await export_text(origin, with_history=True)
    path = await _write(tmp_path, text)
    counts = await _counts(runtime)
    denials = await Raw(runtime.store).fetchone("SELECT count(*) FROM audit")
    report = await _import(runtime, path, principal=ALICE)
    problems = "\n".join(report.files[0].problems)
    assert not report.ok and not report.files[0].written
    assert "user:bob:notes: 1 records refused: other users' namespaces are private" in problems
    assert "app:abathur:config: 1 records refused: app namespaces are read-only" in problems
    assert f"session {ids['bob_session']} belongs to user bob" in problems
    assert f"task {ids['bob_task']} belongs to user:bob" in problems
    # The seed memories are the same here: nothing to write, so nothing refused.
    assert "app:abathur:defaults" not in problems
    await runtime.recorder.flush()
    assert await _counts(runtime) == {**counts, "audit": counts["audit"] + 4}
    assert (await Raw(runtime.store).fetchone("SELECT count(*) FROM audit"))[0] > denials[0]
    # --skip-bad writes the rest; --namespace-map brings bob's notes into alice's.
    mapped = await _import(
        runtime, path, principal=ALICE, skip_bad=True, namespace_map=["user:bob=user:alice:bob"]
    )
    assert mapped.files[0].written and mapped.files[0].verified
    alice = Acting(runtime, ALICE)
    assert (await alice.memories.get("user:alice:bob:notes", "secret")).value == "bob's own"
    assert (await alice.memories.get("user:alice:notes", "plan")).version == 3
    with pytest.raises(Forbidden):
        await alice.memories.get("user:bob:notes", "secret")


async def test_later_exports_add_what_is_new_and_deletions_spread(runtime, target_url, tmp_path):
    alice = Acting(runtime, ALICE)
    await alice.memories.put("user:alice:notes", "plan", "v1")
    session = await alice.sessions.create()
    await alice.sessions.append(session.id, "message", "user", "one")
    first = await _write(tmp_path, await export_text(runtime, with_history=True), "first.jsonl")
    await alice.memories.put("user:alice:notes", "plan", "v2")
    await alice.memories.delete("user:alice:notes", "plan")
    await alice.sessions.append(session.id, "message", "user", "two", state_delta={"k": 2})
    second = await _write(tmp_path, await export_text(runtime, with_history=True), "second.jsonl")
    async with open_runtime(settings_for(target_url)) as target:
        await _import(target, first)
        report = await _import(target, second)
        kinds = report.files[0].kinds
        assert (kinds["memory"].new, kinds["memory"].changed) == (1, 1)  # v2, v1 deleted
        assert (kinds["event"].new, kinds["event"].present, kinds["session"].changed) == (1, 1, 1)
        mine = Acting(target, ALICE)
        history = await mine.memories.history("user:alice:notes", "plan")
        assert [(v.value, v.is_deleted) for v in history] == [("v1", True), ("v2", True)]
        got = await mine.sessions.get(session.id, events_after=0)
        assert [e.content for e in got.events] == ["one", "two"] and got.state == {"k": 2}
        # The older file again: the database knows better, nothing changes.
        older = await _import(target, first)
        assert all(k.new == k.changed == 0 for k in older.files[0].kinds.values())


async def test_a_different_version_is_a_conflict(runtime, target_url, tmp_path):
    await Acting(runtime, ALICE).memories.put("user:alice:notes", "plan", "theirs")
    path = await _write(tmp_path, await export_text(runtime, with_history=True))
    async with open_runtime(settings_for(target_url)) as target:
        await Acting(target, ALICE).memories.put("user:alice:notes", "plan", "mine")
        await Acting(target, ALICE).memories.put("user:alice:notes", "other", "kept")
        counts = await _counts(target)
        report = await _import(target, path)
        assert not report.ok
        assert report.files[0].kinds["memory"].conflict == 1
        assert (
            "user:alice:notes/plan version 1 differs from the database's"
            in (report.files[0].problems[0])
        )
        assert await _counts(target) == counts


async def test_a_change_made_while_importing_is_never_overwritten(
    runtime, target_url, tmp_path, monkeypatch
):
    await Acting(runtime, ALICE).memories.put("user:alice:notes", "plan", "theirs")
    path = await _write(tmp_path, await export_text(runtime, with_history=True))
    async with open_runtime(settings_for(target_url)) as target:
        await Acting(target, ALICE).memories.put("user:alice:notes", "plan", "mine")
        counts = await _counts(target)

        async def before_the_put(wanted):  # what the database held when the import looked
            return Held()

        monkeypatch.setattr(target.store.transfer, "held", before_the_put)
        with pytest.raises(Conflict, match="the database changed while importing"):
            await _import(target, path)
        assert await _counts(target) == counts
        mine = await Acting(target, ALICE).memories.get("user:alice:notes", "plan")
        assert mine.value == "mine"


async def test_a_dry_run_reports_and_writes_nothing(runtime, target_url, tmp_path):
    await fill(runtime)
    path = await _write(tmp_path, await export_text(runtime, with_history=True))
    async with open_runtime(settings_for(target_url)) as target:
        counts = await _counts(target)
        report = await _import(target, path, dry_run=True)
        assert report.ok and not report.files[0].written
        assert report.files[0].kinds["session"].new == 4
        assert await _counts(target) == counts


async def test_export_follows_the_read_rules(runtime, tmp_path):
    ids = await fill(runtime)
    mine = records(await export_text(runtime, ALICE, with_history=True))
    namespaces = {r["namespace"] for r in mine if r["kind"] == "memory"}
    assert "user:bob:notes" not in namespaces and "user:alice:notes" in namespaces
    assert f"session:{ids['session']}:facts" in namespaces
    assert ids["bob_session"] not in {r.get("id") for r in mine if r["kind"] == "session"}
    assert ids["bob_task"] not in {r.get("id") for r in mine if r["kind"] == "task"}
    latest = records(await export_text(runtime, ALICE, prefixes=["user:alice:notes"]))
    assert {r["kind"] for r in latest} == {"header", "memory", "footer"}
    plan = [r for r in latest if r.get("key") == "plan"]
    assert [r["version"] for r in plan] == [3]  # the latest version only
    assert not [r for r in latest if r.get("key") == "gone"]  # deleted: not without history
    with pytest.raises(Forbidden):
        await export_text(runtime, ALICE, prefixes=["user:bob"])


async def test_the_header_and_footer_describe_the_file(runtime):
    await fill(runtime)
    lines = records(await export_text(runtime, with_history=True))
    header, footer = lines[0], lines[-1]
    assert header["format"] == "abathur-memory" and header["version"] == 1
    assert header["with_history"] is True and header["source"] == runtime.store.kind
    kinds = {r["kind"] for r in lines[1:-1]}
    assert footer["counts"] == {k: sum(r["kind"] == k for r in lines) for k in kinds}
    assert set(footer["checksums"]) == kinds


async def test_a_newer_format_is_not_imported(runtime, tmp_path):
    text = await export_text(runtime, with_history=True)
    newer = await _write(tmp_path, text.replace('"version":1,', '"version":2,', 1), "v2.jsonl")
    report = await _import(runtime, newer)
    assert (
        "format version 2: this abathur-memory reads version 1 (upgrade"
        in (report.files[0].problems[0])
    )


async def test_documents_come_back_by_indexing_the_folder(runtime, target_url, tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    await runtime.documents.add_root(corpus)
    await runtime.documents.index()
    before = await search_answers(runtime)
    path = await _write(tmp_path, await export_text(runtime))
    assert [r["name"] for r in records(path.read_text()) if r["kind"] == "root"] == ["corpus"]
    async with open_runtime(settings_for(target_url)) as target:
        report = await _import(target, path)
        assert report.files[0].roots == ["corpus"]
        await target.documents.index()
        assert await search_answers(target) == before
