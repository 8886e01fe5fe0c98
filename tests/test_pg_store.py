"""The PostgreSQL store on a real server (tests/pg_server.py): every method of the storage
interface, its errors, its migrations, and its guarantees under concurrency (connections,
tasks and OS processes racing on one database)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pg_server
import pytest

from abathur_memory.config import Settings, load_settings
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import (
    Denial,
    NewEvent,
    NewTask,
    PreparedPut,
    SessionChange,
    TaskChange,
)
from abathur_memory.errors import Conflict, InvalidInput, NotFound, Unavailable
from abathur_memory.store.postgres.migrate import load_migrations
from abathur_memory.store.postgres.store import PostgresStore

pytestmark = pytest.mark.anyio

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
NS = "user:alice:prefs"
ALICE = "user:alice"
EVERY_MIGRATION = [m.version for m in load_migrations()]


def settings(url: str, **overrides: Any) -> Settings:
    options = {
        "user": "alice",
        "embedder": "fake",
        "write_retries": 1,
        "pg_pool_min": 1,
        "pg_pool_max": 4,
        "maintenance_interval_hours": 0,
        **overrides,
    }
    return load_settings(db=url, **options)


@pytest.fixture
async def store(pg_url):
    opened = await PostgresStore.open(pg_url, settings(pg_url), create=True)
    assert await opened.migrate() == EVERY_MIGRATION
    try:
        yield opened
    finally:
        await opened.close()


def put(key, value, *, ns=NS, memory_type="semantic", metadata=None, expected=None):
    text = None if metadata is None else json.dumps(metadata)
    return PreparedPut(ns, key, json.dumps(value), memory_type, text, expected)


async def count(store, sql, *params):
    row = await store.database.fetchone(sql, params)
    return row[0]


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


# -- opening and migrating ----------------------------------------------------------------


async def test_migrate_creates_the_schema_once(store, pg_url):
    assert store.kind == "postgres" and store.location == pg_url
    assert await store.migrate() == []  # a second time: nothing to do
    assert await count(store, "SELECT count(*) FROM schema_migrations") == len(EVERY_MIGRATION)
    seeded = await store.memories.latest("app:abathur:config", "memory_lifecycle_policies")
    assert seeded.value["episodic_ttl_days"] == 90 and seeded.created_by == "system"
    assert ISO.match(seeded.created_at)


async def test_concurrent_migrations_apply_once(pg_url):
    first = await PostgresStore.open(pg_url, settings(pg_url))
    second = await PostgresStore.open(pg_url, settings(pg_url))
    try:
        results = await asyncio.gather(first.migrate(), second.migrate())
        # each migration is applied once, by whichever got its lock first
        assert sorted(results[0] + results[1]) == EVERY_MIGRATION
        assert await count(first, "SELECT count(*) FROM schema_migrations") == len(EVERY_MIGRATION)
        assert await count(first, "SELECT count(*) FROM memory_entries") == 3  # seeds once
    finally:
        await first.close()
        await second.close()


async def test_open_without_create_needs_an_initialised_database(pg_url):
    with pytest.raises(NotFound, match="abathur-memory init"):
        await PostgresStore.open(pg_url, settings(pg_url), create=False)
    opened = await PostgresStore.open(pg_url, settings(pg_url), create=True)
    await opened.migrate()
    await opened.close()
    again = await PostgresStore.open(pg_url, settings(pg_url), create=False)
    await again.close()


async def test_unreachable_server_is_unavailable_without_the_password():
    url = "postgresql://alice:s3cret@127.0.0.1:1/abathur?connect_timeout=2"
    with pytest.raises(Unavailable) as raised:
        await PostgresStore.open(url, settings(url))
    assert "s3cret" not in str(raised.value) and "alice:***@127.0.0.1:1" in str(raised.value)


async def test_a_malformed_url_is_invalid_input():
    with pytest.raises(InvalidInput, match="not valid"):
        await PostgresStore.open("postgresql://[::1", settings("postgresql://x/y"))


async def test_a_missing_database_or_schema_is_not_found(pg_url):
    parts = urlsplit(pg_url)
    missing_db = urlunsplit(parts._replace(path="/no_such_database"))
    with pytest.raises(NotFound, match="does not exist"):
        await PostgresStore.open(missing_db, settings(missing_db))
    missing_schema = with_query(pg_url, options="-c search_path=no_such_schema")
    with pytest.raises(NotFound, match="search_path"):
        await PostgresStore.open(missing_schema, settings(missing_schema))


async def test_a_newer_schema_is_refused(store):
    await store.database.fetchone(
        "INSERT INTO schema_migrations VALUES (999, 'x', 'x') RETURNING 1"
    )
    with pytest.raises(Unavailable, match="newer than this abathur-memory"):
        await store.migrate()


async def test_the_vector_extension_needs_a_privilege_this_user_lacks(pg_admin_uri):
    import psycopg
    from psycopg import sql

    name = f"novec_{uuid.uuid4().hex[:8]}"
    role = sql.Identifier(name)
    with psycopg.connect(pg_admin_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))  # no vector
    url = urlunsplit(urlsplit(pg_admin_uri)._replace(netloc=f"{name}@", path=f"/{name}"))
    try:
        opened = await PostgresStore.open(url, settings(url))
        try:
            with pytest.raises(Unavailable, match="CREATE EXTENSION vector"):
                await opened.migrate()
        finally:
            await opened.close()
    finally:
        pg_server.drop_database(pg_admin_uri, name)
        with psycopg.connect(pg_admin_uri, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(role))


async def test_a_missing_vector_extension_is_created(pg_admin_uri):
    name = f"vec_{uuid.uuid4().hex[:8]}"
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg_admin_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))  # no vector
    url = urlunsplit(urlsplit(pg_admin_uri)._replace(path=f"/{name}"))
    try:
        opened = await PostgresStore.open(url, settings(url))
        try:
            assert await opened.migrate() == EVERY_MIGRATION
            # the pool's connections were replaced: they know pgvector's types now
            row = await opened.database.fetchone("SELECT '[1, 2]'::vector")
            assert row is not None
            assert row[0].to_list() == [1.0, 2.0]  # a pgvector Vector, not text
        finally:
            await opened.close()
    finally:
        pg_server.drop_database(pg_admin_uri, name)


async def test_timeouts_and_a_closed_store_are_unavailable(pg_url):
    opened = await PostgresStore.open(
        pg_url, settings(pg_url, pg_statement_timeout_ms=300, pg_lock_timeout_ms=50)
    )
    await opened.migrate()
    holder = await PostgresStore.open(pg_url, settings(pg_url))
    try:
        with pytest.raises(Unavailable, match="statement_timeout"):
            await opened.database.fetchone("SELECT pg_sleep(1)")

        async def hold(conn):  # another writer keeps the key's lock
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(current_schema() || %s), hashtext(%s))",
                    (NS, "k"),
                )
                with pytest.raises(Unavailable, match=r"busy .* 2 times, while writing memories"):
                    await opened.memories.put_many([put("k", 1)], ALICE)

        await holder.database.run(hold)
        assert (await opened.memories.put_many([put("k", 1)], ALICE))[0].version == 1
    finally:
        await holder.close()
        await opened.close()
    await opened.close()  # twice is fine
    with pytest.raises(Unavailable, match="closed"):
        await opened.memories.latest(NS, "k")


# -- memories -----------------------------------------------------------------------------


async def test_versions_reads_and_unchanged_puts(store):
    m = store.memories
    [first] = await m.put_many([put("k", {"b": [1, 2], "a": 1}, metadata={"m": 1})], ALICE)
    assert (first.version, first.created, first.unchanged) == (1, True, False)
    assert ISO.match(first.updated_at)
    [same] = await m.put_many([put("k", {"a": 1, "b": [1, 2]})], ALICE)  # other key order
    assert (same.version, same.created, same.unchanged) == (1, False, True)
    assert same.updated_at == first.updated_at
    await m.put_many([put("k", {"a": 2})], ALICE)
    latest = await m.latest(NS, "k")
    assert (latest.version, latest.value, latest.metadata) == (2, {"a": 2}, {"m": 1})  # kept
    assert (await m.version(NS, "k", 1)).value == {"b": [1, 2], "a": 1}
    assert await m.version(NS, "k", 9) is None
    assert [e.version for e in await m.history(NS, "k")] == [1, 2]
    # 1, 1.0 and true are different values; so is a changed type or metadata.
    assert [r.version for r in await m.put_many([put("n", 1)], ALICE)] == [1]
    assert [r.version for r in await m.put_many([put("n", 1.0)], ALICE)] == [2]
    assert [r.version for r in await m.put_many([put("n", True)], ALICE)] == [3]
    assert (await m.put_many([put("n", True, memory_type="episodic")], ALICE))[0].version == 4
    assert (await m.put_many([put("n", True, memory_type="episodic", metadata={})], ALICE))[
        0
    ].unchanged
    assert await count(store, "SELECT count(*) FROM audit WHERE memory_namespace = %s", NS) == 6


async def test_any_json_value_round_trips(store):
    for i, value in enumerate(["text", 42, 3.5, True, None, [1, {"a": [2]}], {"ü": "ñ"}, 2**70]):
        await store.memories.put_many([put(f"k{i}", value)], ALICE)
        assert (await store.memories.latest(NS, f"k{i}")).value == value


async def test_compare_and_set(store):
    m = store.memories
    with pytest.raises(Conflict, match="does not exist"):
        await m.put_many([put("k", 1, expected=3)], ALICE)
    assert (await m.put_many([put("k", 1, expected=0)], ALICE))[0].version == 1
    with pytest.raises(Conflict, match="at version 1, not 0"):
        await m.put_many([put("k", 2, expected=0)], ALICE)
    assert (await m.put_many([put("k", 2, expected=1)], ALICE))[0].version == 2
    assert await count(store, "SELECT count(*) FROM memory_entries WHERE namespace = %s", NS) == 2


async def test_a_batch_is_all_or_nothing(store):
    m = store.memories
    await m.put_many([put("a", 1)], ALICE)
    rows_before = await count(store, "SELECT count(*) FROM memory_entries")
    audit_before = await store.audit.count()
    with pytest.raises(Conflict, match=f"{NS}/b does not exist"):
        await m.put_many([put("a", 2), put("b", 1, expected=1), put("c", 1)], ALICE)
    # a key twice: several statements in one transaction, rolled back together
    with pytest.raises(Conflict, match="at version 2, not 5"):
        await m.put_many([put("a", 2), put("c", 1), put("a", 3, expected=5)], ALICE)
    assert await count(store, "SELECT count(*) FROM memory_entries") == rows_before
    assert await store.audit.count() == audit_before
    done = await m.put_many([put("a", 2), put("a", 3, expected=2), put("c", 1), put("a", 3)], ALICE)
    assert [(r.key, r.version, r.unchanged) for r in done] == [
        ("a", 2, False),
        ("a", 3, False),
        ("c", 1, False),
        ("a", 3, True),
    ]
    assert len({r.updated_at for r in done}) == 1  # one time for the batch
    assert [e.value for e in await m.history(NS, "a")] == [1, 2, 3]


async def test_large_batches_take_the_writers_lock(store):
    puts = [put(f"k{i}", {"i": i}, ns=f"user:alice:n{i % 7}") for i in range(500)]
    results = await store.memories.put_many(puts, ALICE)
    assert [r.version for r in results] == [1] * 500
    again = await store.memories.put_many(puts, ALICE)
    assert all(r.unchanged for r in again)
    assert await count(store, "SELECT count(*) FROM audit WHERE action_type = 'memory_put'") == 500


async def test_a_batch_too_large_for_one_statement_is_split(store, monkeypatch):
    from abathur_memory.store.postgres import puts

    monkeypatch.setattr(puts, "BATCH_TEXT_MAX", 10)  # one statement per put
    with pytest.raises(Conflict):
        await store.memories.put_many([put("a", 1), put("b", 2), put("a", 9, expected=7)], ALICE)
    assert await store.memories.latest(NS, "a") is None  # rolled back together
    done = await store.memories.put_many([put(f"k{i}", "x" * i) for i in range(5)], ALICE)
    assert [r.version for r in done] == [1] * 5 and len({r.updated_at for r in done}) == 1


async def test_delete_restore_and_as_of(store):
    m = store.memories
    [v1] = await m.put_many([put("k", "one")], ALICE)
    await asyncio.sleep(0.005)
    await m.put_many([put("k", "two")], ALICE)
    with pytest.raises(Conflict, match="at version 2, not 1"):
        await m.delete(NS, "k", 1, ALICE)
    deleted = await m.delete(NS, "k", 2, ALICE)
    assert (deleted.version, deleted.is_deleted, deleted.value) == (2, True, "two")
    assert await m.latest(NS, "k") is None
    with pytest.raises(NotFound):
        await m.delete(NS, "k", None, ALICE)
    assert [e.is_deleted for e in await m.history(NS, "k")] == [True, True]
    at_v1 = datetime.fromisoformat(v1.updated_at.replace("Z", "+00:00"))
    assert (await m.as_of(NS, "k", at_v1)).value == "one"
    assert await m.as_of(NS, "k", at_v1 - timedelta(seconds=1)) is None
    assert await m.as_of(NS, "k", datetime.now(UTC) + timedelta(seconds=5)) is None  # deleted
    restored = await m.restore(NS, "k", ALICE)
    assert (restored.version, restored.created) == (3, True)
    assert (await m.latest(NS, "k")).value == "two"
    with pytest.raises(Conflict, match="not deleted"):
        await m.restore(NS, "k", ALICE)
    with pytest.raises(NotFound):
        await m.restore(NS, "never", ALICE)
    actions = await store.database.fetchall(
        "SELECT action_type, memory_operation_type, action_data FROM audit"
        " WHERE memory_namespace = %s ORDER BY id",
        (NS,),
    )
    assert [(a[0], a[1]) for a in actions] == [
        ("memory_put", "create"),
        ("memory_put", "update"),
        ("memory_delete", "delete"),
        ("memory_restore", "create"),
    ]
    assert actions[-1][2] == {"key": "k", "version": 3, "restored_from": 2}


async def test_listing_by_prefix_and_by_what_is_readable(store):
    m = store.memories
    for ns in ("user:alice", "user:alice:a", "user:alice2:x", "user:bob:x", "temp:t"):
        await m.put_many([put("k1", ns, ns=ns), put("k2", ns, ns=ns)], ALICE)
    await m.put_many([put("e", 1, ns="user:alice:a", memory_type="episodic")], ALICE)
    await m.delete("user:alice:a", "k2", None, ALICE)
    listed = await m.list_prefix("user:alice", None, ("", ""), 10)
    assert [(e.namespace, e.key) for e in listed] == [
        ("user:alice", "k1"),
        ("user:alice", "k2"),
        ("user:alice:a", "e"),
        ("user:alice:a", "k1"),
    ]
    page = await m.list_prefix("user:alice", None, ("user:alice", "k2"), 1)
    assert [(e.namespace, e.key) for e in page] == [("user:alice:a", "e")]
    assert [e.key for e in await m.list_prefix("user:alice", "episodic", ("", ""), 10)] == ["e"]
    assert {e.namespace for e in await m.list_prefix("temp", None, ("", ""), 10)} == {"temp:t"}
    await store.sessions.create("s1", "abathur", "alice", None, "{}", "{}")
    await m.put_many([put("k", 1, ns="session:s1:notes"), put("k", 1, ns="session:s2")], ALICE)
    readable = await m.list_readable(Principal("alice"), None, ("", ""), 100)
    seen = [(e.namespace, e.key) for e in readable]
    assert seen == sorted(seen)
    assert {ns for ns, _ in seen} == {
        "app:abathur:agent_instructions",
        "app:abathur:config",
        "app:abathur:defaults",
        "session:s1:notes",
        "temp:t",
        "user:alice",
        "user:alice:a",
    }
    admin = await m.list_readable(Principal("root", admin=True), None, ("", ""), 100)
    assert {"user:bob:x", "session:s2"} <= {e.namespace for e in admin}


async def test_episodic_memories_expire(store):
    m = store.memories
    await m.put_many(
        [
            put("old", 1, memory_type="episodic"),
            put("sem", 1),
            put("gone", 1, memory_type="episodic"),
        ],
        ALICE,
    )
    await m.delete(NS, "gone", None, ALICE)
    future = datetime.now(UTC) + timedelta(days=1)
    assert await m.expired_episodic(datetime.now(UTC) - timedelta(days=1), None) == []
    [found] = await m.expired_episodic(future, None)
    assert (found.namespace, found.key, found.version) == (NS, "old", 1)
    assert [e.key for e in await m.expire_episodic(future, "system:lifecycle", 10)] == ["old"]
    assert await m.latest(NS, "old") is None
    assert await m.expire_episodic(future, "system:lifecycle", 10) == []
    reason = await store.database.fetchone(
        "SELECT action_data, actor FROM audit WHERE action_type = 'memory_expire'"
    )
    assert reason == (
        {"key": "old", "version": 1, "reason": "episodic_ttl_days"},
        "system:lifecycle",
    )


async def test_values_postgresql_cannot_hold_are_invalid_input(store):
    with pytest.raises(InvalidInput):
        await store.memories.put_many([put("k", "nul \u0000 inside")], ALICE)
    new_task = NewTask("t", "nul \x00", "general", 5, "{}", 3, 60, ALICE, None, [], None)
    with pytest.raises(InvalidInput):
        await store.tasks.create(new_task)


# -- concurrency ------------------------------------------------------------------------


async def test_two_connections_racing_compare_and_set_one_wins(store, pg_url):
    other = await PostgresStore.open(pg_url, settings(pg_url))
    try:
        await store.memories.put_many([put("c", 0)], ALICE)
        for version in range(1, 21):
            outcomes = await asyncio.gather(
                store.memories.put_many([put("c", f"a{version}", expected=version)], ALICE),
                other.memories.put_many([put("c", f"b{version}", expected=version)], ALICE),
                return_exceptions=True,
            )
            won = [o for o in outcomes if not isinstance(o, BaseException)]
            lost = [o for o in outcomes if isinstance(o, BaseException)]
            assert len(won) == 1 and won[0][0].version == version + 1
            assert len(lost) == 1 and isinstance(lost[0], Conflict)
        assert [e.version for e in await store.memories.history(NS, "c")] == list(range(1, 22))
    finally:
        await other.close()


async def test_concurrent_plain_puts_to_one_key_all_land(pg_url):
    opened = await PostgresStore.open(pg_url, settings(pg_url, pg_pool_max=8))
    await opened.migrate()
    try:
        results = await asyncio.gather(
            *(opened.memories.put_many([put("k", i)], ALICE) for i in range(16))
        )
        assert sorted(r[0].version for r in results) == list(range(1, 17))
    finally:
        await opened.close()


async def test_two_claimers_never_get_the_same_task(store, pg_url):
    other = await PostgresStore.open(pg_url, settings(pg_url))
    created = set()
    for i in range(60):
        task = await store.tasks.create(
            NewTask(f"t{i}", "p", "general", i % 3, "{}", 3, 60, ALICE, None, [], None)
        )
        created.add(task.id)

    async def drain(claimer, name):
        got = []
        while (task := await claimer.tasks.claim(None, ALICE, name)) is not None:
            assert task.claimed_by == name and task.status == "running"
            got.append(task.id)
        return got

    try:
        first, second = await asyncio.gather(drain(store, "a"), drain(other, "b"))
    finally:
        await other.close()
    assert not set(first) & set(second)
    assert set(first) | set(second) == created and len(first) + len(second) == 60


async def test_concurrent_appends_get_distinct_sequence_numbers(store):
    await store.sessions.create("s", "abathur", "alice", None, "{}", "{}")
    appended = await asyncio.gather(
        *(
            store.sessions.append(
                "s",
                NewEvent("note", "me", json.dumps(i), json.dumps({f"k{i}": i})),
                lambda s: None,
                10**6,
            )
            for i in range(20)
        )
    )
    assert sorted(event.seq for event, _ in appended) == list(range(1, 21))
    final = await store.sessions.get("s", 0, 0)
    assert final.last_seq == 20 and len(final.state) == 20  # every delta merged


def _cas_worker(args: tuple[str, int, int]) -> list[int]:
    """Increment a counter with compare-and-set until ``rounds`` increments succeeded."""
    url, worker, rounds = args

    async def work() -> list[int]:
        opened = await PostgresStore.open(url, settings(url, pg_pool_max=2))
        won: list[int] = []
        try:
            while len(won) < rounds:
                current = await opened.memories.latest("user:alice:shared", "counter")
                version, count = (0, 0) if current is None else (current.version, current.value)
                try:
                    [result] = await opened.memories.put_many(
                        [put("counter", count + 1, ns="user:alice:shared", expected=version)],
                        f"worker:{worker}",
                    )
                except Conflict:
                    continue
                won.append(result.version)
        finally:
            await opened.close()
        return won

    return asyncio.run(work())


@pytest.mark.slow
async def test_eight_processes_compare_and_set_without_lost_updates(store, pg_url):
    rounds, workers = 10, 8
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        results = await asyncio.to_thread(
            pool.map, _cas_worker, [(pg_url, w, rounds) for w in range(workers)]
        )
    versions = sorted(v for won in results for v in won)
    assert versions == list(range(1, rounds * workers + 1))  # every version issued once
    history = await store.memories.history("user:alice:shared", "counter")
    assert [h.value for h in history] == list(range(1, rounds * workers + 1))  # none lost


# -- sessions -----------------------------------------------------------------------------


async def test_sessions_create_append_change(store):
    s = store.sessions
    created = await s.create("s1", "abathur", "alice", "web", '{"a": {"b": 1}}', '{"m": 1}')
    assert (created.status, created.last_seq, created.state) == ("created", 0, {"a": {"b": 1}})
    assert created.last_update_time == created.created_at and ISO.match(created.created_at)
    with pytest.raises(Conflict, match="already exists"):
        await s.create("s1", "abathur", "alice", None, "{}", "{}")
    assert await s.owner("s1") == ("alice", "abathur") and await s.owner("nope") is None
    event, after = await s.append(
        "s1", NewEvent("msg", "me", '"hi"', '{"a": {"b": null, "c": 2}}'), lambda cur: None, 10**6
    )
    assert (event.seq, event.content, event.state_delta) == (1, "hi", {"a": {"b": None, "c": 2}})
    assert (after.status, after.last_seq, after.state) == ("active", 1, {"a": {"c": 2}})
    for i in range(2, 6):
        await s.append("s1", NewEvent("msg", "me", str(i), None), lambda cur: None, 10**6)

    def refuse(current):
        raise Conflict(f"at seq {current.last_seq}")

    with pytest.raises(Conflict, match="at seq 5"):
        await s.append("s1", NewEvent("msg", "me", "0", None), refuse, 10**6)
    with pytest.raises(InvalidInput, match="limit"):
        await s.append(
            "s1", NewEvent("msg", "me", "0", '{"big": "xxxxxxxxxx"}'), lambda c: None, 20
        )
    whole = await s.get("s1", -1, 2)
    assert [e.seq for e in whole.events] == [4, 5] and whole.last_seq == 5
    assert [e.seq for e in (await s.get("s1", 1, 2)).events] == [2, 3]
    assert (await s.get("s1", 0, 0)).events == []
    assert await s.get("nope", 0, 10) is None
    assert [e.seq for e in await s.events("s1", 2, 4, 10)] == [2, 3, 4]
    assert [e.seq for e in await s.events("s1", 4, None, 10)] == [4, 5]
    assert ISO.match(whole.events[0].created_at)

    untouched = await s.change("s1", lambda cur: None)
    assert untouched == await s.change("s1", lambda cur: None)
    merged = await s.change("s1", lambda cur: SessionChange(state_text='{"d": 1}'))
    assert merged.state == {"a": {"c": 2}, "d": 1}
    replaced = await s.change("s1", lambda cur: SessionChange(state_text='{"e": 1}', merge=False))
    assert replaced.state == {"e": 1}
    with pytest.raises(InvalidInput):
        await s.change(
            "s1", lambda cur: SessionChange(state_text='{"f": "yyyy"}', max_state_bytes=5)
        )
    ended = await s.change(
        "s1", lambda c: SessionChange(status="terminated", stamp="terminated_at")
    )
    assert ended.status == "terminated" and ISO.match(ended.terminated_at)
    with pytest.raises(NotFound):
        await s.change("nope", lambda cur: None)
    with pytest.raises(NotFound):
        await s.append("nope", NewEvent("m", "me", "1", None), lambda cur: None, 10)


async def test_sessions_page_newest_first_with_cursors(store):
    s = store.sessions
    for i in range(7):
        await s.create(f"s{i}", "abathur", "alice" if i % 2 == 0 else "bob", None, "{}", "{}")
    seen, before = [], ("", "")
    while True:
        page, before = await s.page(
            user_id=None, app_name="abathur", status=None, project_id=None, before=before, limit=3
        )
        seen += [x.id for x in page]
        if before is None:
            break
        assert (
            re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$", before[0]) and before[1].isdigit()
        )
    assert seen == [f"s{i}" for i in reversed(range(7))]
    alice, _ = await s.page(
        user_id="alice", app_name=None, status="created", project_id=None, before=("", ""), limit=9
    )
    assert [x.id for x in alice] == ["s6", "s4", "s2", "s0"]
    with pytest.raises(InvalidInput, match="cursor"):
        await s.page(
            user_id=None, app_name=None, status=None, project_id=None, before=("x", "y"), limit=1
        )


async def test_terminated_sessions_are_archived(store):
    s = store.sessions
    for i in range(3):
        await s.create(f"s{i}", "abathur", "alice", None, "{}", "{}")
    for i in (0, 2):
        await s.change(f"s{i}", lambda c: SessionChange(status="terminated", stamp="terminated_at"))
    future = datetime.now(UTC) + timedelta(days=1)
    assert await s.terminated_before(datetime.now(UTC) - timedelta(days=1), None) == []
    assert await s.terminated_before(future, None) == ["s0", "s2"]
    assert await s.archive_terminated(future, 1) == ["s0"]
    assert await s.archive_terminated(future, 10) == ["s2"]
    assert (await s.get("s2", 0, 0)).status == "archived"


# -- tasks and checkpoints ----------------------------------------------------------------


def new_task(task_id, priority=5, agent_type="general", deps=(), owner=ALICE, session=None):
    return NewTask(
        task_id, "do it", agent_type, priority, '{"x": 1}', 2, 60, owner, None, list(deps), session
    )


async def test_tasks_create_change_and_claim(store):
    t = store.tasks
    first = await t.create(new_task("a", priority=1))
    assert (first.status, first.input, first.dependencies, first.retry_count) == (
        "pending",
        {"x": 1},
        [],
        0,
    )
    assert first.submitted_at == first.last_updated_at and ISO.match(first.submitted_at)
    await t.create(new_task("b", priority=9, deps=["a"]))
    await t.create(new_task("c", priority=5, agent_type="coder"))
    await t.create(new_task("d", priority=5, owner="user:bob"))
    assert await t.owners(["a", "d", "zz"]) == {"a": ALICE, "d": "user:bob"}
    assert await t.owners([]) == {}
    assert await t.get("zz") is None
    claimed = await t.claim(None, ALICE, "me")  # b waits for a; c is the most urgent ready
    assert (claimed.id, claimed.status, claimed.claimed_by) == ("c", "running", "me")
    assert ISO.match(claimed.started_at)
    assert await t.claim("coder", ALICE, "me") is None
    assert (await t.claim("general", ALICE, "me")).id == "a"
    assert await t.claim(None, ALICE, "me") is None
    done = await t.change(
        "a", lambda cur: TaskChange(status="completed", result_text='{"ok": true}', completed=True)
    )
    assert (done.status, done.result) == ("completed", {"ok": True}) and done.completed_at
    assert (await t.claim(None, ALICE, "me")).id == "b"  # its dependency completed
    assert (await t.claim(None, None, "admin")).id == "d"  # no owner filter: everyone's
    beat = await t.change("c", lambda cur: None)
    assert beat.status == "running" and beat.last_updated_at >= claimed.last_updated_at
    back = await t.change("c", lambda cur: TaskChange(status="pending", requeued=True))
    assert (back.retry_count, back.claimed_by, back.started_at) == (1, None, None)
    with pytest.raises(NotFound):
        await t.change("zz", lambda cur: None)


async def test_timed_out_tasks_are_requeued_then_failed(store):
    t = store.tasks
    await t.create(new_task("a"))
    for _ in range(3):  # max_retries is 2
        assert (await t.claim(None, ALICE, "me")).id == "a"
        await store.database.fetchone(
            "UPDATE tasks SET last_updated_at = last_updated_at - interval '2 minutes'"
            " WHERE id = 'a' RETURNING 1"
        )
    assert await t.claim(None, ALICE, "me") is None  # two retries used: failed
    failed = await t.get("a")
    assert (failed.status, failed.retry_count) == ("failed", 3)
    assert failed.error == "timed out: no update for 60 s"


async def test_tasks_page_newest_first(store):
    await store.sessions.create("s", "abathur", "alice", None, "{}", "{}")
    for i in range(5):
        await store.tasks.create(new_task(f"t{i}", session="s" if i % 2 else None))
    seen, before = [], ("", "")
    while True:
        page, before = await store.tasks.page(
            owner=ALICE, status=None, agent_type=None, session_id=None, before=before, limit=2
        )
        seen += [x.id for x in page]
        if before is None:
            break
    assert seen == ["t4", "t3", "t2", "t1", "t0"]
    linked, _ = await store.tasks.page(
        owner=None, status="pending", agent_type="general", session_id="s", before=("", ""), limit=9
    )
    assert [x.id for x in linked] == ["t3", "t1"]


async def test_checkpoints(store):
    await store.sessions.create("s", "abathur", "alice", None, "{}", "{}")
    await store.tasks.create(new_task("a", session="s"))
    c = store.checkpoints
    first = await c.save("a", 0, '{"step": 0}', None)
    assert (first.state, first.session_id) == ({"step": 0}, "s") and ISO.match(first.created_at)
    await c.save("a", 2, "[2]", None)
    again = await c.save("a", 0, "null", None)
    assert again.state is None
    assert await c.iterations("a") == [0, 2]
    assert (await c.load("a", None)).iteration == 2
    assert (await c.load("a", 0)).state is None
    assert await c.load("a", 1) is None
    with pytest.raises(NotFound):
        await c.save("zz", 0, "1", None)


# -- tokens and audit ---------------------------------------------------------------------


async def test_tokens(store):
    tokens = store.tokens
    alice = Principal("alice", project="web")
    made = await tokens.create("tok_1", "laptop", "a" * 64, alice)
    assert (made.user, made.app, made.project, made.admin, made.revoked_at) == (
        "alice",
        "abathur",
        "web",
        False,
        None,
    )
    with pytest.raises(Conflict, match="live token named 'laptop'"):
        await tokens.create("tok_2", "laptop", "b" * 64, alice)
    await tokens.create("tok_3", "ci", "c" * 64, Principal("bot", admin=True))
    assert (await tokens.by_hash("c" * 64)).principal.admin
    assert [x.id for x in await tokens.all(False)] == ["tok_1", "tok_3"]
    revoked = await tokens.revoke("laptop")
    assert revoked.id == "tok_1" and ISO.match(revoked.revoked_at)
    assert await tokens.revoke("laptop") is None
    assert await tokens.by_hash("a" * 64) is None
    await tokens.create("tok_4", "laptop", "d" * 64, alice)  # the name is free again
    assert [x.id for x in await tokens.all(True)] == ["tok_1", "tok_3", "tok_4"]


async def test_denials_are_written_and_folded(store):
    read = Denial(ALICE, "memory_denied", "read", "user:bob:x/k", "private", "user:bob:x", "k")
    other = Denial(ALICE, "task_denied", "read", "t1", "not yours")
    before = await store.audit.count()
    ids = await store.audit.write_denials({read: 2, other: 1}, {})
    assert set(ids) == {read, other} and await store.audit.count() == before + 2
    again = await store.audit.write_denials({read: 3}, {read: ids[read]})
    assert again == {read: ids[read]} and await store.audit.count() == before + 2
    row = await store.database.fetchone(
        "SELECT action_data, result, memory_namespace FROM audit WHERE id = %s", (ids[read],)
    )
    assert row == (
        {"attempted": "read", "target": "user:bob:x/k", "rule": "private", "count": 5, "key": "k"},
        "denied",
        "user:bob:x",
    )
    gone = await store.audit.write_denials({other: 1}, {other: 10**9})  # that row is not there
    assert gone[other] != 10**9 and await store.audit.count() == before + 3


# -- the services over PostgreSQL ----------------------------------------------------------


async def test_the_memory_side_services_run_on_postgresql(store, pg_url):
    """The memory-side services over an open PostgreSQL store, as build_runtime builds
    them (no background workers)."""
    from abathur_memory.embedders.fake import FakeEmbedder
    from abathur_memory.errors import Forbidden
    from abathur_memory.runtime import build_runtime

    runtime = await build_runtime(settings(pg_url), store, embedder=FakeEmbedder())
    memories, sessions = runtime.memories, runtime.sessions
    tasks, checkpoints = runtime.tasks, runtime.checkpoints
    alice, bob = Principal("alice", project="web"), Principal("bob")

    await memories.put(alice, NS, "theme", {"mode": "dark"}, metadata={"from": "chat"})
    assert (await memories.get(alice, NS, "theme")).metadata == {"from": "chat"}
    page = await memories.list(alice, limit=2)
    assert page.next_cursor is not None
    second = await memories.list(alice, limit=2, cursor=page.next_cursor)
    assert second.entries[0].namespace > page.entries[-1].namespace or (
        second.entries[0].key > page.entries[-1].key
    )
    with pytest.raises(Forbidden):
        await memories.get(bob, NS, "theme")
    session = await sessions.create(alice, state={"n": 0})
    await sessions.append(alice, session.id, "note", "me", "hi", state_delta={"n": 1})
    assert (await sessions.get(alice, session.id)).state == {"n": 1}
    with pytest.raises(NotFound):
        await sessions.get(bob, session.id)
    await memories.put(alice, f"session:{session.id}", "k", 1)
    task = await tasks.create(alice, "work", session_id=session.id)
    claimed = await tasks.claim(alice)
    assert claimed is not None and claimed.id == task.id
    await checkpoints.save(alice, task.id, 1, {"at": 1})
    assert (await checkpoints.load(alice, task.id)).state == {"at": 1}
    assert (await tasks.update(alice, task.id, status="completed", result=[1])).result == [1]
    listed = await tasks.list(alice)
    assert [t.id for t in listed.tasks] == [task.id]
    made = await runtime.tokens.create("laptop", alice)
    verified = await runtime.tokens.verify(made.secret)
    assert verified is not None and verified.user == "alice"
    report = await runtime.lifecycle.run(dry_run=True)
    assert report.policy["episodic_ttl_days"] == 90
    await runtime.recorder.close()  # flushes the queued denials (bob's read, bob's session)
    denied = await store.database.fetchall(
        "SELECT action_type FROM audit WHERE result = 'denied' ORDER BY id"
    )
    assert [d[0] for d in denied] == ["memory_denied", "session_denied"]
