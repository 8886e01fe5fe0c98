"""Memories: versions, compare-and-set, soft delete, restore, as_of, listing, audit."""

from __future__ import annotations

import asyncio

import pytest
from backends import json_value

from abathur_memory.errors import Conflict, Forbidden, InvalidInput, NotFound
from abathur_memory.memory.memories import PutRequest

pytestmark = pytest.mark.anyio

NS = "user:alice:prefs"


async def _audit(raw, namespace=NS):
    rows = await raw.fetchall(
        "SELECT action_type, memory_operation_type, memory_entry_id, actor, result, action_data"
        " FROM audit WHERE memory_namespace = ? ORDER BY id",
        (namespace,),
    )
    return [dict(r) for r in rows]


async def _rows(raw, namespace=NS):
    return (
        await raw.fetchone("SELECT count(*) FROM memory_entries WHERE namespace = ?", (namespace,))
    )[0]


async def test_put_creates_versions_and_get_returns_the_latest(services):
    m = services.memories
    first = await m.put(NS, "theme", {"mode": "light"})
    assert (first.version, first.created, first.unchanged) == (1, True, False)
    second = await m.put(NS, "theme", {"mode": "dark"}, metadata={"source": "chat"})
    assert second.version == 2
    latest = await m.get(NS, "theme")
    assert latest.value == {"mode": "dark"}
    assert latest.metadata == {"source": "chat"}
    assert latest.created_by == "user:alice"
    assert (await m.get(NS, "theme", version=1)).value == {"mode": "light"}


async def test_any_json_value_round_trips(services):
    for i, value in enumerate(["text", 42, 3.5, True, None, [1, {"a": [2]}], {"ü": "ñ"}]):
        await services.memories.put(NS, f"k{i}", value)
        assert (await services.memories.get(NS, f"k{i}")).value == value


async def test_an_identical_put_creates_no_new_version(services, raw):
    m = services.memories
    await m.put(NS, "k", {"a": 1, "b": [1, 2]}, metadata={"m": 1})
    again = await m.put(NS, "k", {"b": [1, 2], "a": 1})  # same value, other key order
    assert (again.version, again.created, again.unchanged) == (1, False, True)
    assert await _rows(raw) == 1
    # Type and value are compared exactly: 1 is not true, 1 is not 1.0.
    assert (await m.put(NS, "n", 1)).version == 1
    assert (await m.put(NS, "n", True)).version == 2
    assert (await m.put(NS, "n", 1.0)).version == 3
    # A different memory_type or metadata is a new version.
    assert (await m.put(NS, "k", {"a": 1, "b": [1, 2]}, memory_type="episodic")).created


async def test_compare_and_set(services, raw):
    m = services.memories
    await m.put(NS, "k", "v1", expected_version=0)
    with pytest.raises(Conflict, match="is at version 1, not 0"):
        await m.put(NS, "k", "again", expected_version=0)
    await m.put(NS, "k", "v2", expected_version=1)
    with pytest.raises(Conflict, match="is at version 2, not 1"):
        await m.put(NS, "k", "stale", expected_version=1)
    with pytest.raises(Conflict, match="does not exist"):
        await m.put(NS, "other", "x", expected_version=3)
    assert (await m.get(NS, "k")).value == "v2"
    assert await _rows(raw) == 2


async def test_delete_is_soft_and_numbering_continues(services, raw):
    m = services.memories
    await m.put(NS, "k", "v1")
    await m.put(NS, "k", "v2")
    deleted = await m.delete(NS, "k")
    assert deleted.version == 2 and deleted.is_deleted
    with pytest.raises(NotFound):
        await m.get(NS, "k")
    history = await m.history(NS, "k")
    assert [(e.version, e.value, e.is_deleted) for e in history] == [
        (1, "v1", True),
        (2, "v2", True),
    ]
    with pytest.raises(NotFound, match="no live memory"):
        await m.delete(NS, "k")
    again = await m.put(NS, "k", "v3")
    assert again.version == 3
    assert (await m.get(NS, "k")).value == "v3"


async def test_restore_brings_back_the_last_value_as_a_new_version(services):
    m = services.memories
    await m.put(NS, "k", {"x": 1}, memory_type="procedural", metadata={"t": 1})
    await m.delete(NS, "k")
    restored = await m.restore(NS, "k")
    assert restored.version == 2
    back = await m.get(NS, "k")
    assert (back.value, back.memory_type, restored.memory_type) == (
        {"x": 1},
        "procedural",
        "procedural",
    )
    assert back.metadata == {"t": 1}
    with pytest.raises(Conflict, match="not deleted"):
        await m.restore(NS, "k")
    with pytest.raises(NotFound):
        await m.restore(NS, "never")


async def test_as_of_reads_the_past(services, raw):
    m = services.memories
    await m.put(NS, "k", "old")
    await asyncio.sleep(0.01)
    middle = await raw.now_iso()
    await asyncio.sleep(0.01)
    await m.put(NS, "k", "new")
    await asyncio.sleep(0.01)
    before_delete = await raw.now_iso()
    await asyncio.sleep(0.01)
    await m.delete(NS, "k")
    assert (await m.get(NS, "k", as_of=middle)).value == "old"
    assert (await m.get(NS, "k", as_of=before_delete)).value == "new"
    with pytest.raises(NotFound, match="at "):
        await m.get(NS, "k", as_of="2999-01-01T00:00:00Z")
    with pytest.raises(NotFound):
        await m.get(NS, "k", as_of="2000-01-01T00:00:00+02:00")
    with pytest.raises(InvalidInput, match="ISO 8601"):
        await m.get(NS, "k", as_of="yesterday")
    with pytest.raises(InvalidInput, match="not both"):
        await m.get(NS, "k", version=1, as_of=middle)


async def test_every_change_is_audited_in_its_transaction(services, raw):
    m = services.memories
    await m.put(NS, "k", "v1")
    await m.put(NS, "k", "v2")
    await m.put(NS, "k", "v2")  # unchanged: no audit row
    await m.delete(NS, "k")
    await m.restore(NS, "k")
    rows = await _audit(raw)
    assert [(r["action_type"], r["memory_operation_type"]) for r in rows] == [
        ("memory_put", "create"),
        ("memory_put", "update"),
        ("memory_delete", "delete"),
        ("memory_restore", "create"),
    ]
    assert {r["actor"] for r in rows} == {"user:alice"}
    assert all(r["memory_entry_id"] for r in rows)
    assert json_value(rows[1]["action_data"]) == {"key": "k", "version": 2}


async def test_listing_uses_colon_boundaries_and_pages(services):
    m = services.memories
    await m.put("user:alice", "root", 0)
    for i in range(7):
        await m.put("user:alice:notes", f"n{i}", i, memory_type="episodic" if i % 2 else "semantic")
    await m.put("user:alice:notes:deep", "d", "deep")
    await m.put("user:alice:notes", "n0", "updated")  # latest version only
    await m.delete("user:alice:notes", "n6")  # deleted keys are not listed
    admin = await _admin_put(services, "user:alice2", "x", "other user")
    assert admin

    page = await m.list("user:alice", limit=3)
    keys = [(e.namespace, e.key) for e in page.entries]
    assert keys == [("user:alice", "root"), ("user:alice:notes", "n0"), ("user:alice:notes", "n1")]
    assert page.entries[1].value == "updated" and page.entries[1].version == 2
    collected = list(keys)
    while page.next_cursor:
        page = await m.list("user:alice", limit=3, cursor=page.next_cursor)
        collected += [(e.namespace, e.key) for e in page.entries]
    assert collected == [
        ("user:alice", "root"),
        *[("user:alice:notes", f"n{i}") for i in range(6)],
        ("user:alice:notes:deep", "d"),
    ]
    episodic = await m.list("user:alice:notes", memory_type="episodic")
    assert [e.key for e in episodic.entries] == ["n1", "n3", "n5"]


async def _admin_put(services, namespace, key, value):
    from abathur_memory.core.principal import Principal

    admin = Principal(user="root", admin=True)
    return await services.runtime.memories.put(admin, namespace, key, value)


async def test_percent_and_underscore_in_prefixes_are_literal(services):
    m = services.memories
    await m.put("user:alice:100%", "k", 1)
    await m.put("user:alice:100x", "k", 2)
    await m.put("user:alice:a_b", "k", 3)
    await m.put("user:alice:axb", "k", 4)
    assert [e.value for e in (await m.list("user:alice:100%")).entries] == [1]
    assert [e.value for e in (await m.list("user:alice:a_b")).entries] == [3]


async def test_batched_puts_are_one_transaction(services, raw):
    m = services.memories
    requests = [PutRequest(NS, f"k{i}", i) for i in range(50)]
    results = await m.put_many(requests)
    assert [r.version for r in results] == [1] * 50
    bad = [PutRequest(NS, "good", 1), PutRequest(NS, "k0", 99, expected_version=5)]
    with pytest.raises(Conflict):
        await m.put_many(bad)
    with pytest.raises(NotFound):
        await m.get(NS, "good")  # rolled back with the failing one
    assert await _rows(raw) == 50


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m: m.put("", "k", 1), InvalidInput, "non-empty"),
        (lambda m: m.put("users:alice", "k", 1), InvalidInput, "must start with one of"),
        (lambda m: m.put("user", "k", 1), InvalidInput, "needs an id"),
        (lambda m: m.put("user:alice::x", "k", 1), InvalidInput, "empty segment"),
        (lambda m: m.put("user:al ice", "k", 1), InvalidInput, "spaces"),
        (lambda m: m.put(NS, "", 1), InvalidInput, "key must be a non-empty"),
        (lambda m: m.put(NS, "k\n", 1), InvalidInput, "control characters"),
        (lambda m: m.put(NS, "k" * 300, 1), InvalidInput, "longer than 256"),
        (lambda m: m.put(NS, "k", 1, memory_type="emotional"), InvalidInput, "memory_type"),
        (lambda m: m.put(NS, "k", float("nan")), InvalidInput, "NaN"),
        (lambda m: m.put(NS, "k", {1, 2}), InvalidInput, "not JSON"),
        (lambda m: m.put(NS, "k", "x" * 70_000), InvalidInput, "limit is 65,536 bytes"),
        (lambda m: m.put(NS, "k", 1, metadata=[1]), InvalidInput, "metadata must be a JSON object"),
        (lambda m: m.put(NS, "k", 1, expected_version=-1), InvalidInput, "expected_version"),
        (lambda m: m.get(NS, "k", version=0), InvalidInput, "version must be"),
        (lambda m: m.list("user:alice", limit=0), InvalidInput, "limit"),
        (lambda m: m.list("user:alice", cursor="garbage!"), InvalidInput, "cursor"),
        (lambda m: m.list("user:alice", memory_type="x"), InvalidInput, "memory_type"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(services, raw, call, error, message):
    before = (await raw.fetchone("SELECT count(*) FROM memory_entries"))[0]
    audit_before = (await raw.fetchone("SELECT count(*) FROM audit"))[0]
    with pytest.raises(error, match=message):
        await call(services.memories)
    assert (await raw.fetchone("SELECT count(*) FROM memory_entries"))[0] == before
    assert (await raw.fetchone("SELECT count(*) FROM audit"))[0] == audit_before


@pytest.mark.parametrize(
    ("namespace", "allowed_read", "allowed_write"),
    [
        ("user:alice:x", True, True),
        ("user:bob:x", False, False),
        ("project:website:x", True, True),
        ("project:other:x", False, False),
        ("temp:scratch", True, True),
        ("app:abathur:config", True, False),
        ("app:otherapp:config", False, False),
    ],
)
async def test_namespace_policy(services, raw, namespace, allowed_read, allowed_write):
    m = services.memories
    if allowed_write:
        await m.put(namespace, "k", 1)
    else:
        with pytest.raises(Forbidden, match="denied"):
            await m.put(namespace, "k", 1)
        await services.recorder.flush()  # denials are audited off the caller's path
        denied = await _audit(raw, namespace)
        assert denied[-1]["result"] == "denied"
        assert json_value(denied[-1]["action_data"])["attempted"] == "write"
    if allowed_read:
        await m.list(namespace)
    else:
        with pytest.raises(Forbidden):
            await m.get(namespace, "k")
        with pytest.raises(Forbidden):
            await m.list(namespace)


async def test_seeded_app_memories_are_readable_not_writable(services):
    policy = await services.memories.get("app:abathur:config", "memory_lifecycle_policies")
    assert policy.value["episodic_ttl_days"] == 90
    with pytest.raises(Forbidden, match="read-only"):
        await services.memories.put("app:abathur:config", "memory_lifecycle_policies", {})
    with pytest.raises(Forbidden):
        await services.memories.delete("app:abathur:config", "memory_lifecycle_policies")


async def test_session_namespaces_belong_to_the_session_owner(services, as_principal, raw):
    mine = await services.sessions.create()
    bob = as_principal(user="bob")
    bobs = await bob.sessions.create()
    await services.memories.put(f"session:{mine.id}:scratch", "k", 1)
    with pytest.raises(Forbidden, match="owner"):
        await services.memories.put(f"session:{bobs.id}:scratch", "k", 1)
    with pytest.raises(Forbidden):
        await services.memories.get(f"session:{bobs.id}:scratch", "k")
    with pytest.raises(Forbidden):
        await services.memories.put("session:no-such-session", "k", 1)
    with pytest.raises(Forbidden, match="admin"):
        await services.memories.list("session")
    assert (await bob.memories.put(f"session:{bobs.id}:scratch", "k", 2)).created


async def test_admin_may_do_anything(as_principal):
    root = as_principal(user="root", admin=True)
    await root.memories.put("user:bob:x", "k", 1)
    await root.memories.put("app:abathur:config", "extra", 1)
    assert (await root.memories.list("user")).entries
