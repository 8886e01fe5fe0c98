"""Puts on PostgreSQL: the locks every memory write holds, and put_many.

Every write to a key holds that key's transaction-level advisory lock, and takes it before
the statement that reads the latest version: in READ COMMITTED that statement then sees
whatever the previous writer committed, so compare-and-set decides on the true latest
version and no update is lost (the unique (namespace, key, version) constraint backs this
up). Writers first take the schema's writers' lock in shared mode; a batch of more than
``KEY_LOCKS_MAX`` keys takes it in exclusive mode instead of one lock per key, which keeps
the server's lock table small (it is shared by all sessions).

A put is decided and written in SQL, one statement per batch (the batch is one JSON
parameter): read the latest versions, compare, insert the new versions and their audit rows,
return the outcome; with the locks before it, one network round trip (connection.py,
``pipelined``). A batch that names a key more than once runs one statement per occurrence,
in a transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from abathur_memory.core.put_rule import check_expected
from abathur_memory.core.records import PreparedPut, PutResult
from abathur_memory.store.postgres import rows
from abathur_memory.store.postgres.connection import Conn, Database, Queued
from abathur_memory.store.postgres.times import SQL_NOW, at_ms

KEY_LOCKS_MAX = 64
BATCH_TEXT_MAX = 16 * 1024 * 1024  # characters: far below jsonb's 256 MB, however they encode
# Lock keys are per schema: stores in other schemas of the database never wait for these.
_WRITERS = "hashtextextended('abathur-memory memory writers ' || current_schema(), 0)"
# The statements below cost more to plan (about a millisecond) than to run: for the rest of
# the transaction, prepared statements use their cached generic plan instead of PostgreSQL
# weighing a new custom plan for each call's values.
_GENERIC = "set_config('plan_cache_mode', 'force_generic_plan', true)"
_SHARED = f"SELECT {_GENERIC}, pg_advisory_xact_lock_shared({_WRITERS})"
_EXCLUSIVE = f"SELECT {_GENERIC}, pg_advisory_xact_lock({_WRITERS})"
# One key (the usual put): both locks in one statement, the writers' lock first.
_ONE_KEY = f"{_SHARED}, pg_advisory_xact_lock(hashtext(current_schema() || %s), hashtext(%s))"
# Sorted, so two writers of overlapping keys queue instead of deadlocking.
_KEY_LOCKS = """
SELECT pg_advisory_xact_lock(k.ns, k.key)
FROM (SELECT DISTINCT hashtext(current_schema() || (a->>0)) AS ns, hashtext(a->>1) AS key
      FROM jsonb_array_elements(%s::jsonb) AS a) AS k
ORDER BY k.ns, k.key
"""

# One statement per round of a batch (each key at most once). The batch is one JSON array of
# [position, namespace, key, type, value, metadata, expected version], the value and the
# metadata as their JSON text (a string, so no text can change the array's shape; null:
# not given). psycopg adapts one text parameter in microseconds; seven arrays would cost
# it microseconds per element. ``all_or_nothing``: write nothing when any compare-and-set
# fails (a lone round commits whatever it wrote). ``now``: the time of the batch's first
# statement, for the others.
_PUT_ROUND = f"""
WITH clock AS (
    SELECT COALESCE(%(now)s::timestamptz, {SQL_NOW}) AS now
), wanted AS (
    SELECT (a->>0)::int AS ord, a->>1 AS namespace, a->>2 AS key, a->>3 AS memory_type,
           (a->>4)::jsonb AS value, (a->>5)::jsonb AS metadata_given,
           (a->>6)::bigint AS expected, (a->>7)::timestamptz AS valid_from,
           (a->>8)::timestamptz AS valid_to
    FROM jsonb_array_elements(%(batch)s::jsonb) AS a
), latest AS (
    SELECT w.*, m.version AS latest_version,
           COALESCE(CASE WHEN NOT m.is_deleted THEN m.version END, 0) AS live_version,
           m.value AS old_value, m.memory_type AS old_type, m.metadata AS old_metadata,
           m.updated_at AS old_updated_at, m.valid_from AS old_valid_from,
           m.valid_to AS old_valid_to
    FROM wanted AS w
    LEFT JOIN LATERAL (
        SELECT e.version, e.is_deleted, e.value, e.memory_type, e.metadata, e.updated_at,
               e.valid_from, e.valid_to
        FROM memory_entries AS e
        WHERE e.namespace = w.namespace AND e.key = w.key
        ORDER BY e.version DESC LIMIT 1
    ) AS m ON true
), judged AS (
    SELECT l.*, n.metadata,
           l.expected IS NOT NULL AND l.expected <> l.live_version AS conflict,
           -- jsonb's text is key-order free and keeps 1 and 1.0 apart, as SQLite's compare
           l.live_version > 0 AND l.old_type = l.memory_type
               AND l.old_value::text = l.value::text
               AND l.old_metadata::text = n.metadata::text
               AND l.old_valid_from IS NOT DISTINCT FROM l.valid_from
               AND l.old_valid_to IS NOT DISTINCT FROM l.valid_to AS unchanged
    FROM latest AS l
    CROSS JOIN LATERAL (
        SELECT COALESCE(l.metadata_given, CASE WHEN l.live_version > 0 THEN l.old_metadata END,
                        '{{}}'::jsonb) AS metadata
    ) AS n
), inserted AS (
    INSERT INTO memory_entries (namespace, key, value, memory_type, version, metadata,
                                created_by, updated_by, created_at, updated_at, valid_from,
                                valid_to)
    SELECT j.namespace, j.key, j.value, j.memory_type, COALESCE(j.latest_version, 0) + 1,
           j.metadata, %(actor)s, %(actor)s, clock.now, clock.now, j.valid_from, j.valid_to
    FROM judged AS j CROSS JOIN clock
    WHERE NOT j.unchanged AND NOT j.conflict
      AND NOT (%(all_or_nothing)s AND EXISTS (SELECT 1 FROM judged AS c WHERE c.conflict))
    ORDER BY j.ord
    RETURNING id, namespace, key, version, updated_at
), audited AS (
    INSERT INTO audit (action_type, action_data, result, memory_operation_type,
                       memory_namespace, memory_entry_id, actor)
    SELECT 'memory_put', jsonb_build_object('key', i.key, 'version', i.version), 'ok',
           CASE WHEN j.live_version > 0 THEN 'update' ELSE 'create' END, i.namespace, i.id,
           %(actor)s
    FROM inserted AS i JOIN judged AS j ON j.namespace = i.namespace AND j.key = i.key
    ORDER BY i.id
)
SELECT j.ord, j.live_version, j.conflict, j.unchanged, j.old_type, j.old_updated_at,
       i.version, i.updated_at, (SELECT now FROM clock)
FROM judged AS j LEFT JOIN inserted AS i ON i.namespace = j.namespace AND i.key = j.key
ORDER BY j.ord
"""


async def put_many(db: Database, puts: Sequence[PreparedPut], actor: str) -> list[PutResult]:
    """All puts in one transaction (see the module docstring)."""
    if not puts:
        return []
    statements = _statements(puts)
    addresses = [(p.namespace, p.key) for p in puts]
    if len(statements) == 1:

        async def queue(conn: Conn) -> Queued:
            await lock_keys(conn, addresses)
            return await conn.execute(_PUT_ROUND, _round_params(puts, statements[0], actor, True))

        return _results(puts, await db.pipelined(queue, what="writing memories"))

    async def each_round(conn: Conn) -> list[PutResult]:
        await lock_keys(conn, addresses)
        found: list[rows.Row] = []
        now = None  # one time for the whole batch, as a single statement has
        for positions in statements:
            params = _round_params(puts, positions, actor, False, now)
            found += await (await conn.execute(_PUT_ROUND, params)).fetchall()
            now = found[-1][-1]
        return _results(puts, found)  # a Conflict rolls every statement back

    return await db.transaction(each_round, what="writing memories")


async def lock_keys(conn: Conn, addresses: Sequence[tuple[str, str]]) -> None:
    """Queue the locks a write of these (namespace, key) holds until it ends (see above)."""
    wanted = list(dict.fromkeys(addresses))
    if len(wanted) > KEY_LOCKS_MAX:
        await conn.execute(_EXCLUSIVE)
    elif len(wanted) == 1:
        await conn.execute(_ONE_KEY, wanted[0])
    else:
        await conn.execute(_SHARED)
        await conn.execute(_KEY_LOCKS, (json.dumps(wanted, ensure_ascii=False),))


def _statements(puts: Sequence[PreparedPut]) -> list[list[int]]:
    """Positions of ``puts`` in statements: the n-th put of every key goes in round n, so no
    statement names a key twice and each sees the rounds before it; a round larger than
    ``BATCH_TEXT_MAX`` characters of values is split (PostgreSQL caps a jsonb value)."""
    seen: dict[tuple[str, str], int] = {}
    rounds: list[list[int]] = []
    for position, put in enumerate(puts):
        n = seen.get((put.namespace, put.key), 0)
        seen[(put.namespace, put.key)] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(position)
    statements: list[list[int]] = []
    for positions in rounds:
        chunk: list[int] = []
        size = 0
        for position in positions:
            length = len(puts[position].value_text) + len(puts[position].metadata_text or "")
            if chunk and size + length > BATCH_TEXT_MAX:
                statements.append(chunk)
                chunk, size = [], 0
            chunk.append(position)
            size += length
        statements.append(chunk)
    return statements


def _batch(puts: Sequence[PreparedPut], positions: list[int]) -> str:
    """The JSON array ``_PUT_ROUND`` reads."""
    return json.dumps(
        [
            [
                position,
                puts[position].namespace,
                puts[position].key,
                puts[position].memory_type,
                puts[position].value_text,
                puts[position].metadata_text,
                puts[position].expected_version,
                _iso(puts[position].valid_from),
                _iso(puts[position].valid_to),
            ]
            for position in positions
        ],
        ensure_ascii=False,
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else at_ms(moment).isoformat()


def _round_params(
    puts: Sequence[PreparedPut],
    positions: list[int],
    actor: str,
    all_or_nothing: bool,
    now: str | None = None,
) -> dict[str, object]:
    return {
        "batch": _batch(puts, positions),
        "actor": actor,
        "all_or_nothing": all_or_nothing,
        "now": now,
    }


def _results(puts: Sequence[PreparedPut], found: Sequence[rows.Row]) -> list[PutResult]:
    """PutResults in batch order from ``_PUT_ROUND``'s rows; Conflict for the first failed
    compare-and-set."""
    by_position = sorted(found, key=lambda r: r[0])
    for position, live_version, conflict, *_ in by_position:
        if conflict:
            check_expected(puts[position], live_version)
    results = []
    for position, live_version, _, unchanged, old_type, old_at, version, at, _ in by_position:
        put = puts[position]
        if unchanged:  # the live version stands
            result = PutResult(put.namespace, put.key, live_version, old_type, False, True, old_at)
        else:
            result = PutResult(put.namespace, put.key, version, put.memory_type, True, False, at)
        results.append(result)
    return results
