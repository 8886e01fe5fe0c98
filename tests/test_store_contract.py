"""Both storage backends answer the same calls with the same records.

Each scenario runs against a fresh SQLite file and a fresh PostgreSQL schema and records
everything the store returns (records, cursor positions, the typed errors and their
messages). The two transcripts must be equal once what legitimately differs is blanked:
times (checked for their shape first) and numeric row ids.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from abathur_memory.config import load_settings
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import (
    Denial,
    NewEvent,
    NewLink,
    NewTask,
    PreparedPut,
    SessionChange,
    TaskChange,
)
from abathur_memory.errors import AbathurError, Conflict
from abathur_memory.store.postgres.store import PostgresStore
from abathur_memory.store.sqlite.store import SqliteStore

pytestmark = pytest.mark.anyio

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
STORED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")  # a cursor's time
NS = "user:alice:n"
ALICE = "user:alice"
Scenario = Callable[[Any, list[Any]], Awaitable[None]]


@pytest.fixture
async def stores(tmp_path, pg_url):
    """A fresh, migrated store of each backend."""
    sqlite = await SqliteStore.open(tmp_path / "x.db")
    postgres = await PostgresStore.open(pg_url, load_settings(db=pg_url, user="alice"))
    try:
        for store in (sqlite, postgres):
            await store.migrate()
        yield sqlite, postgres
    finally:
        await sqlite.close()
        await postgres.close()


def put(key, value, *, ns=NS, memory_type="semantic", metadata=None, expected=None):
    text = None if metadata is None else json.dumps(metadata)
    return PreparedPut(ns, key, json.dumps(value), memory_type, text, expected)


async def record(out: list[Any], call: Awaitable[Any]) -> Any:
    """Append what ``call`` returns, or the typed error it raises, to the transcript."""
    try:
        result = await call
    except AbathurError as exc:
        out.append((type(exc).__name__, str(exc)))
        return None
    out.append(result)
    return result


def plain(value: Any) -> Any:
    """A transcript entry as comparable data: times, numeric ids and cursor rows blanked."""
    if isinstance(value, BaseModel):
        return plain(value.model_dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {
            k: "<id>" if k == "id" and isinstance(v, int) else plain(v) for k, v in value.items()
        }
    if isinstance(value, tuple) and len(value) == 2 and STORED.match(str(value[0])):
        return ["<time>", "<row>"]  # a cursor position (row numbers may skip on PostgreSQL)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str) and (ISO.match(value) or STORED.match(value)):
        return "<time>"
    return value


def _no(session: Any) -> None:
    """An append check that lets everything through."""


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


# -- scenarios ----------------------------------------------------------------------------


async def memories(store, out):
    m = store.memories
    await record(out, m.put_many([put("k", {"b": 1, "a": [1, 2]}, metadata={"m": 1})], ALICE))
    await record(out, m.put_many([put("k", {"a": [1, 2], "b": 1})], ALICE))  # unchanged
    for value in (1, 1.0, True, None, "1", [1], {"x": None}):
        await record(out, m.put_many([put("v", value)], ALICE))
    await record(out, m.put_many([put("k", 2, expected=5)], ALICE))
    await record(out, m.put_many([put("new", 2, expected=1)], ALICE))
    await record(out, m.put_many([put("a", 1), put("b", 1, expected=3), put("c", 1)], ALICE))
    batch = [put("a", 1), put("a", 2, expected=1), put("b", 1, memory_type="episodic")]
    await record(out, m.put_many([*batch, put("a", 2)], ALICE))
    first = await record(out, m.latest(NS, "k"))
    await record(out, m.version(NS, "k", 1))
    await record(out, m.version(NS, "k", 7))
    await record(out, m.history(NS, "v"))
    await record(out, m.as_of(NS, "k", at(first.created_at)))
    await record(out, m.as_of(NS, "k", at(first.created_at) - timedelta(seconds=1)))
    for ns in ("user:alice", "user:alice2", "user:alice:n:deep", "temp:x", "user:bob:y"):
        await record(out, m.put_many([put("z", ns, ns=ns)], ALICE))
    await record(out, m.delete(NS, "v", 3, ALICE))
    await record(out, m.delete(NS, "v", None, ALICE))
    await record(out, m.delete(NS, "v", None, ALICE))
    await record(out, m.latest(NS, "v"))
    await record(out, m.as_of(NS, "v", datetime.now(UTC) + timedelta(seconds=5)))
    await record(out, m.restore(NS, "v", ALICE))
    await record(out, m.restore(NS, "v", ALICE))
    await record(out, m.restore(NS, "nothing", ALICE))
    after = ("", "")
    while page := await record(out, m.list_prefix("user:alice", None, after, 3)):
        after = (page[-1].namespace, page[-1].key)
    await record(out, m.list_prefix("user", "episodic", ("", ""), 10))
    await record(out, m.list_prefix("temp", None, ("", ""), 10))
    await store.sessions.create("s1", "abathur", "alice", None, "{}", "{}")
    await record(
        out, m.put_many([put("k", 1, ns="session:s1"), put("k", 1, ns="session:s2")], ALICE)
    )
    for who in (Principal("alice", project="p"), Principal("bob"), Principal("x", admin=True)):
        await record(out, m.list_readable(who, None, ("", ""), 100))
    await record(out, m.list_readable(Principal("alice"), "semantic", ("temp:x", "z"), 2))
    future = datetime.now(UTC) + timedelta(days=1)
    await record(out, m.expired_episodic(future, None))
    await record(out, m.expire_episodic(future, "system:lifecycle", 10))
    await record(out, m.expired_episodic(future, None))
    out.append(await store.audit.count())


async def sessions(store, out):
    s = store.sessions
    await record(out, s.create("s1", "abathur", "alice", "p", '{"a": {"b": 1}}', '{"m": 1}'))
    await record(out, s.create("s1", "abathur", "alice", None, "{}", "{}"))
    await record(out, s.owner("s1"))
    await record(out, s.owner("nope"))
    delta = NewEvent("msg", "me", '{"text": "hi"}', '{"a": {"b": null, "c": [1]}, "d": 1}')
    await record(out, s.append("s1", delta, lambda cur: None, 10**6))
    for i in range(4):
        await record(out, s.append("s1", NewEvent("n", "me", str(i), None), lambda c: None, 100))

    def refuse(current):
        raise Conflict(f"session is at seq {current.last_seq}")

    await record(out, s.append("s1", NewEvent("n", "me", "0", None), refuse, 100))
    await record(out, s.append("s1", NewEvent("n", "me", "0", '{"big": "xxxxxxxx"}'), _no, 30))
    await record(out, s.append("nope", NewEvent("n", "me", "0", None), _no, 30))
    for after, limit in ((-1, 2), (0, 3), (4, 10), (0, 0)):
        await record(out, s.get("s1", after, limit))
    await record(out, s.get("nope", 0, 1))
    await record(out, s.events("s1", 2, 3, 10))
    await record(out, s.events("s1", 3, None, 1))
    await record(out, s.change("s1", lambda cur: None))
    await record(out, s.change("s1", lambda cur: SessionChange(state_text='{"e": {"f": 1}}')))
    await record(out, s.change("s1", lambda cur: SessionChange(state_text='{"g": 1}', merge=False)))
    big = SessionChange(state_text='{"h": "yyyyyyyy"}', max_state_bytes=5)
    await record(out, s.change("s1", lambda cur: big))
    await record(out, s.change("nope", lambda cur: None))
    for i in range(2, 7):
        await s.create(f"s{i}", "abathur", "bob" if i % 2 else "alice", None, "{}", "{}")
    stop = SessionChange(status="terminated", stamp="terminated_at")
    for sid in ("s2", "s4"):
        await record(out, s.change(sid, lambda cur: stop))
    before: tuple[str, str] | None = ("", "")
    while before is not None:
        page, before = await s.page(
            user_id=None, app_name="abathur", status=None, project_id=None, before=before, limit=2
        )
        out.append((page, before))
    for filters in (
        {"user_id": "alice", "app_name": None, "status": None, "project_id": None},
        {"user_id": None, "app_name": None, "status": "terminated", "project_id": None},
        {"user_id": None, "app_name": None, "status": None, "project_id": "p"},
    ):
        out.append(await s.page(**filters, before=("", ""), limit=10))
    future = datetime.now(UTC) + timedelta(days=1)
    await record(out, s.terminated_before(future, None))
    await record(out, s.archive_terminated(future, 1))
    await record(out, s.archive_terminated(future, 5))
    await record(out, s.get("s4", 0, 0))


async def tasks(store, out):
    t = store.tasks
    await store.sessions.create("s", "abathur", "alice", None, "{}", "{}")
    specs = [("a", 1, "general", []), ("b", 9, "general", ["a"]), ("c", 5, "coder", [])]
    specs += [("d", 5, "general", []), ("e", 5, "general", ["zz"])]
    for task_id, priority, agent, deps in specs:
        new = NewTask(
            task_id,
            f"do {task_id}",
            agent,
            priority,
            '{"i": 1}',
            1,
            60,
            ALICE,
            None,
            deps,
            "s" if task_id == "d" else None,
        )
        await record(out, t.create(new))
    await record(
        out, t.create(NewTask("f", "p", "general", 5, "{}", 1, 60, "user:bob", "a", [], None))
    )
    await record(out, t.owners(["a", "f", "zz"]))
    await record(out, t.get("b"))
    await record(out, t.get("zz"))
    for claimer, owner in (("coder", ALICE), (None, ALICE), (None, ALICE), (None, ALICE)):
        await record(out, t.claim(claimer, owner, "me"))
    done = TaskChange(status="completed", result_text='{"ok": [1, 2]}', completed=True)
    await record(out, t.change("a", lambda cur: done))
    await record(out, t.claim(None, ALICE, "me"))
    await record(out, t.claim(None, None, "admin"))
    await record(out, t.claim(None, None, "admin"))
    await record(out, t.change("c", lambda cur: None))
    await record(out, t.change("c", lambda cur: TaskChange(status="pending", requeued=True)))
    failed = TaskChange(status="failed", error="boom", completed=True)
    await record(out, t.change("d", lambda cur: failed))
    await record(out, t.change("zz", lambda cur: None))
    before: tuple[str, str] | None = ("", "")
    while before is not None:
        page, before = await t.page(
            owner=ALICE, status=None, agent_type=None, session_id=None, before=before, limit=2
        )
        out.append((page, before))
    out.append(
        await t.page(
            owner=None,
            status="pending",
            agent_type=None,
            session_id=None,
            before=("", ""),
            limit=10,
        )
    )
    out.append(
        await t.page(
            owner=None, status=None, agent_type="general", session_id="s", before=("", ""), limit=10
        )
    )
    c = store.checkpoints
    await record(out, c.save("d", 0, '{"step": 0}', None))
    await record(out, c.save("d", 3, "[3]", None))
    await record(out, c.save("d", 0, "null", None))
    await record(out, c.save("zz", 0, "1", None))
    await record(out, c.iterations("d"))
    await record(out, c.load("d", None))
    await record(out, c.load("d", 0))
    await record(out, c.load("d", 1))


async def tokens_and_audit(store, out):
    tokens = store.tokens
    alice = Principal("alice", project="p")
    await record(out, tokens.create("tok_1", "laptop", "a" * 64, alice))
    await record(out, tokens.create("tok_2", "laptop", "b" * 64, alice))
    await record(out, tokens.create("tok_3", "ci", "c" * 64, Principal("bot", admin=True)))
    await record(out, tokens.by_hash("c" * 64))
    await record(out, tokens.revoke("laptop"))
    await record(out, tokens.revoke("tok_1"))
    await record(out, tokens.by_hash("a" * 64))
    await record(out, tokens.create("tok_4", "laptop", "d" * 64, alice))
    await record(out, tokens.all(False))
    await record(out, tokens.all(True))
    read = Denial(ALICE, "memory_denied", "read", "user:bob:x/k", "private", "user:bob:x", "k")
    other = Denial(ALICE, "task_denied", "read", "t1", "not yours")
    ids = await store.audit.write_denials({read: 2, other: 1}, {})
    out.append(sorted(d.action for d in ids))
    again = await store.audit.write_denials({read: 1, other: 1}, {read: ids[read]})
    out.append((again[read] == ids[read], again[other] != ids[other]))
    out.append(await store.audit.count())


async def latest_with_supersedes(store, out):
    """memory_get's read: the latest live version with the active supersedes links to it."""
    m, links = store.memories, store.links
    for key in ("old", "new", "newer", "other"):
        await m.put_many([put(key, key)], ALICE)
    first, _ = await links.add(NewLink("supersedes", NS, "new", NS, "old"), ALICE)
    await links.add(NewLink("supersedes", NS, "newer", NS, "old"), ALICE)
    await links.add(NewLink("related", NS, "other", NS, "old"), ALICE)
    await links.add(NewLink("supersedes", NS, "old", NS, "other"), ALICE)  # from old: not its end
    await links.remove(first.id, ALICE)
    await m.put_many([put("old", "again")], ALICE)
    entry, found = await record(out, m.latest_with_supersedes(NS, "old"))
    assert entry.version == 2 and [(f.from_key, f.link_type) for f in found] == [
        ("newer", "supersedes")
    ]
    await record(out, m.latest_with_supersedes(NS, "new"))
    await m.delete(NS, "newer", None, ALICE)
    assert await record(out, m.latest_with_supersedes(NS, "newer")) == (None, [])
    assert await record(out, m.latest_with_supersedes(NS, "missing")) == (None, [])


SCENARIOS: list[Scenario] = [memories, sessions, tasks, tokens_and_audit, latest_with_supersedes]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_both_backends_return_the_same_records(scenario, stores):
    transcripts = []
    for store in stores:
        out: list[Any] = []
        await scenario(store, out)
        transcripts.append(plain(out))
    sqlite, postgres = transcripts
    assert len(sqlite) == len(postgres)
    for i, (on_sqlite, on_postgres) in enumerate(zip(sqlite, postgres, strict=True)):
        assert on_postgres == on_sqlite, f"entry {i} of {scenario.__name__} differs"
