"""Memories on PostgreSQL: versions of (namespace, key) and their audit rows.

Puts, and the locks every write to a key holds, are in puts.py; deletes, restores and
expiry take the same locks, then decide and write with one statement.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from abathur_memory.core.browse import NamespaceCount
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import (
    ExpiredMemory,
    MemoryEntry,
    MemoryLink,
    PreparedPut,
    PutResult,
)
from abathur_memory.errors import Conflict, NotFound
from abathur_memory.store.postgres import browse, rows
from abathur_memory.store.postgres.connection import Conn, Database, Queued
from abathur_memory.store.postgres.links import LINK, link_of
from abathur_memory.store.postgres.puts import lock_keys, put_many
from abathur_memory.store.postgres.readable import (
    STILL_HOLDS,
    holds_sql,
    readable_sql,
)
from abathur_memory.store.postgres.times import SQL_NOW, at_ms

_LATEST_LIVE = f"""
SELECT {rows.MEMORY} FROM memory_entries
WHERE namespace = %s AND key = %s AND NOT is_deleted
ORDER BY version DESC LIMIT 1
"""

# memory_get's read, one statement: the latest live version and, when there is one, the
# links that can end its validity, one row per link (none: one row with the link's columns
# NULL). Such links to one key are few, so repeating the entry costs less than the other
# shapes measured for issue 18: about 10 µs over the bare latest-version SELECT, where a
# UNION ALL of entry and link rows cost 30 µs and a second statement a round trip.
_MEMORY_COLUMNS = len(rows.MEMORY.split(","))
_LATEST_WITH_SUPERSEDES = f"""
SELECT m.*, l.* FROM (
    SELECT {rows.MEMORY} FROM memory_entries
    WHERE namespace = %(namespace)s AND key = %(key)s AND NOT is_deleted
    ORDER BY version DESC LIMIT 1
) AS m LEFT JOIN (
    SELECT {LINK} FROM memory_links
    WHERE to_namespace = %(namespace)s AND to_key = %(key)s AND link_type = 'supersedes'
      AND removed_at IS NULL AND holds_until IS NOT NULL
) AS l ON true
ORDER BY l.id
"""

_DELETE = f"""
WITH live AS (
    SELECT id, version FROM memory_entries
    WHERE namespace = %(namespace)s AND key = %(key)s AND NOT is_deleted
    ORDER BY version DESC LIMIT 1
), allowed AS (
    SELECT * FROM live WHERE %(expected)s::bigint IS NULL OR version = %(expected)s
), deleted AS (
    UPDATE memory_entries SET is_deleted = true, updated_at = {SQL_NOW}, updated_by = %(actor)s
    WHERE namespace = %(namespace)s AND key = %(key)s AND NOT is_deleted
      AND EXISTS (SELECT 1 FROM allowed)
    RETURNING {rows.MEMORY}
), audited AS (
    INSERT INTO audit (action_type, action_data, result, memory_operation_type,
                       memory_namespace, memory_entry_id, actor)
    SELECT 'memory_delete', jsonb_build_object('key', %(key)s::text, 'version', a.version),
           'ok', 'delete', %(namespace)s, a.id, %(actor)s
    FROM allowed AS a
)
SELECT live.version, {rows.columns(rows.MEMORY, "d")}
FROM live LEFT JOIN deleted AS d ON d.id = live.id
"""

_RESTORE = f"""
WITH latest AS (
    SELECT version, is_deleted, value, memory_type, metadata, valid_from, valid_to
    FROM memory_entries WHERE namespace = %(namespace)s AND key = %(key)s
    ORDER BY version DESC LIMIT 1
), restored AS (
    INSERT INTO memory_entries (namespace, key, value, memory_type, version, metadata,
                                created_by, updated_by, created_at, updated_at, valid_from,
                                valid_to)
    SELECT %(namespace)s, %(key)s, value, memory_type, version + 1, metadata,
           %(actor)s, %(actor)s, {SQL_NOW}, {SQL_NOW}, valid_from, valid_to
    FROM latest WHERE is_deleted
    RETURNING id, version, memory_type, updated_at
), audited AS (
    INSERT INTO audit (action_type, action_data, result, memory_operation_type,
                       memory_namespace, memory_entry_id, actor)
    SELECT 'memory_restore',
           jsonb_build_object('key', %(key)s::text, 'version', r.version,
                              'restored_from', r.version - 1),
           'ok', 'create', %(namespace)s, r.id, %(actor)s
    FROM restored AS r
)
SELECT l.version, l.is_deleted, r.version, r.memory_type, r.updated_at
FROM latest AS l LEFT JOIN restored AS r ON true
"""

# The latest version of each key is live, episodic and older than the cutoff.
_EXPIRED = """
SELECT m.id, m.namespace, m.key, m.version FROM memory_entries AS m
WHERE m.memory_type = 'episodic' AND NOT m.is_deleted AND m.updated_at < %(cutoff)s
  AND m.version = (SELECT max(v.version) FROM memory_entries AS v
                   WHERE v.namespace = m.namespace AND v.key = m.key)
ORDER BY m.updated_at, m.id
LIMIT %(limit)s
"""

# The candidates again, now under their key locks: only those still expired are deleted.
_EXPIRE = f"""
WITH candidates AS (
    SELECT * FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS c(id, ord)
), still AS (
    SELECT m.id, m.namespace, m.key, m.version, c.ord FROM candidates AS c
    JOIN memory_entries AS m ON m.id = c.id
    WHERE m.memory_type = 'episodic' AND NOT m.is_deleted AND m.updated_at < %(cutoff)s
      AND m.version = (SELECT max(v.version) FROM memory_entries AS v
                       WHERE v.namespace = m.namespace AND v.key = m.key)
), expired AS (
    UPDATE memory_entries AS e
    SET is_deleted = true, updated_at = {SQL_NOW}, updated_by = %(actor)s
    FROM still AS s
    WHERE e.namespace = s.namespace AND e.key = s.key AND NOT e.is_deleted
    RETURNING e.id
), audited AS (
    INSERT INTO audit (action_type, action_data, result, memory_operation_type,
                       memory_namespace, memory_entry_id, actor)
    SELECT 'memory_expire',
           jsonb_build_object('key', s.key, 'version', s.version, 'reason', 'episodic_ttl_days'),
           'ok', 'delete', s.namespace, s.id, %(actor)s
    FROM still AS s ORDER BY s.ord
)
SELECT namespace, key, version FROM still ORDER BY ord
"""

# {columns}: rows.listed(...) for the page's cut of long values.
_LIST_PAGE = """
SELECT {columns} FROM memory_entries AS m
WHERE m.namespace >= %(prefix)s AND m.namespace < %(prefix)s || ';'
  AND (m.namespace = %(prefix)s
       OR substr(m.namespace, 1, length(%(prefix)s) + 1) = %(prefix)s || ':')
  AND (m.namespace, m.key) > (%(after_namespace)s, %(after_key)s)
  AND NOT m.is_deleted
  AND (%(memory_type)s::text IS NULL OR m.memory_type = %(memory_type)s)
  AND m.version = (SELECT max(v.version) FROM memory_entries AS v
                   WHERE v.namespace = m.namespace AND v.key = m.key)
  AND (%(include_superseded)s OR ({still_holds}))
ORDER BY m.namespace, m.key
LIMIT %(limit)s
"""


# The version of each key a listing shows (SQLite's _LIVE and _LIVE_THEN).
_LIVE = (
    "NOT m.is_deleted AND m.version = (SELECT max(v.version) FROM memory_entries AS v"
    " WHERE v.namespace = m.namespace AND v.key = m.key)"
)
_LIVE_THEN = (
    "m.version = (SELECT max(v.version) FROM memory_entries AS v"
    " WHERE v.namespace = m.namespace AND v.key = m.key AND v.created_at <= %s)"
    " AND NOT (m.is_deleted AND m.updated_at <= %s)"
)


@dataclass(frozen=True)
class _View:
    """Which version of each key a listing shows and which it keeps (SQLite's _View)."""

    include_superseded: bool = False
    as_of: datetime | None = None
    valid_at: datetime | None = None

    def current(self) -> tuple[str, builtins.list[Any]]:
        if self.as_of is None:
            return _LIVE, []
        known = at_ms(self.as_of)
        return _LIVE_THEN, [known, known]

    def holds(self) -> tuple[str, builtins.list[Any]]:
        if self.include_superseded:
            return "true", []
        return holds_sql(self.valid_at, self.as_of)


class PostgresMemoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes ---------------------------------------------------------------------------

    async def put_many(self, puts: Sequence[PreparedPut], actor: str) -> list[PutResult]:
        results = await put_many(self.db, puts, actor)
        self.db.statistics.wrote(len(results), "memory_entries", "audit")
        return results

    async def delete(
        self, namespace: str, key: str, expected_version: int | None, actor: str
    ) -> MemoryEntry:
        params = {"namespace": namespace, "key": key, "expected": expected_version, "actor": actor}

        async def queue(conn: Conn) -> Queued:
            await lock_keys(conn, [(namespace, key)])
            return await conn.execute(_DELETE, params)

        found = await self.db.pipelined(queue, what="deleting a memory")
        if not found:
            raise NotFound(f"no live memory {namespace}/{key} to delete")
        live_version, *entry = found[0]
        if entry[0] is None:
            raise Conflict(
                f"{namespace}/{key} is at version {live_version}, not {expected_version}"
            )
        return rows.memory(entry)

    async def restore(self, namespace: str, key: str, actor: str) -> PutResult:
        params = {"namespace": namespace, "key": key, "actor": actor}

        async def queue(conn: Conn) -> Queued:
            await lock_keys(conn, [(namespace, key)])
            return await conn.execute(_RESTORE, params)

        found = await self.db.pipelined(queue, what="restoring a memory")
        if not found:
            raise NotFound(f"no memory {namespace}/{key} has ever existed")
        latest_version, is_deleted, version, memory_type, updated_at = found[0]
        if not is_deleted:
            raise Conflict(f"{namespace}/{key} is not deleted (live version {latest_version})")
        return PutResult(namespace, key, version, memory_type, True, False, updated_at)

    async def expire_episodic(
        self, cutoff: datetime, actor: str, limit: int
    ) -> list[ExpiredMemory]:
        cutoff = at_ms(cutoff)

        async def queue(conn: Conn) -> Queued:
            candidates = await (
                await conn.execute(_EXPIRED, {"cutoff": cutoff, "limit": limit})
            ).fetchall()
            if not candidates:
                return []
            await lock_keys(conn, [(r[1], r[2]) for r in candidates])
            params = {"ids": [r[0] for r in candidates], "cutoff": cutoff, "actor": actor}
            return await conn.execute(_EXPIRE, params)

        found = await self.db.pipelined(queue, what="expiring episodic memories")
        return [ExpiredMemory(r[0], r[1], r[2]) for r in found]

    # -- reads ----------------------------------------------------------------------------

    async def latest(self, namespace: str, key: str) -> MemoryEntry | None:
        row = await self.db.fetchone(_LATEST_LIVE, (namespace, key))
        return None if row is None else rows.memory(row)

    async def latest_with_supersedes(
        self, namespace: str, key: str
    ) -> tuple[MemoryEntry | None, list[MemoryLink]]:
        found = await self.db.fetchall(
            _LATEST_WITH_SUPERSEDES, {"namespace": namespace, "key": key}
        )
        if not found:
            return None, []
        links = [link_of(r[_MEMORY_COLUMNS:]) for r in found if r[_MEMORY_COLUMNS] is not None]
        return rows.memory(found[0]), links

    async def version(self, namespace: str, key: str, version: int) -> MemoryEntry | None:
        row = await self.db.fetchone(
            f"SELECT {rows.MEMORY} FROM memory_entries"
            " WHERE namespace = %s AND key = %s AND version = %s",
            (namespace, key, version),
        )
        return None if row is None else rows.memory(row)

    async def as_of(self, namespace: str, key: str, at: datetime) -> MemoryEntry | None:
        row = await self.db.fetchone(
            f"SELECT {rows.MEMORY}, is_deleted AND updated_at <= %(at)s FROM memory_entries"
            " WHERE namespace = %(namespace)s AND key = %(key)s AND created_at <= %(at)s"
            " ORDER BY version DESC LIMIT 1",
            {"namespace": namespace, "key": key, "at": at_ms(at)},
        )
        if row is None or row[-1]:  # none yet, or deleted by then
            return None
        return rows.memory(row)

    async def history(
        self,
        namespace: str,
        key: str,
        *,
        after_version: int = 0,
        limit: int | None = None,
        cut: int | None = None,
    ) -> list[MemoryEntry]:
        found = await self.db.fetchall(
            f"SELECT {_listed(cut)} FROM memory_entries AS m"
            " WHERE m.namespace = %s AND m.key = %s AND m.version > %s"
            " ORDER BY m.version LIMIT %s",
            (namespace, key, after_version, limit),
        )
        return [rows.memory(r, _limit(cut)) for r in found]

    async def list_prefix(
        self,
        prefix: str,
        memory_type: str | None,
        after: tuple[str, str],
        limit: int,
        *,
        cut: int | None = None,
        include_superseded: bool = False,
        as_of: datetime | None = None,
        valid_at: datetime | None = None,
    ) -> list[MemoryEntry]:
        if as_of is not None or valid_at is not None:
            # _LIST_PAGE's range, the cursor moved to its start so the index seeks there
            where = (
                "m.namespace >= %s AND m.namespace < %s"
                " AND (m.namespace = %s OR substr(m.namespace, 1, %s) = %s)"
            )
            where_params = [prefix, prefix + ";", prefix, len(prefix) + 1, prefix + ":"]
            view = _View(include_superseded, as_of, valid_at)
            start = max(after, (prefix, ""))
            return await self._list(where, where_params, memory_type, start, limit, cut, view)
        params = {
            "include_superseded": include_superseded,
            "prefix": prefix,
            "memory_type": memory_type,
            "after_namespace": after[0],
            "after_key": after[1],
            "limit": limit,
        }
        found = await self.db.fetchall(
            _LIST_PAGE.format(columns=_listed(cut), still_holds=STILL_HOLDS), params
        )
        return [rows.memory(r, _limit(cut)) for r in found]

    async def list_readable(
        self,
        principal: Principal,
        memory_type: str | None,
        after: tuple[str, str],
        limit: int,
        *,
        cut: int | None = None,
        include_superseded: bool = False,
        as_of: datetime | None = None,
        valid_at: datetime | None = None,
    ) -> list[MemoryEntry]:
        where, params = readable_sql(principal, None, "m.namespace")
        view = _View(include_superseded, as_of, valid_at)
        return await self._list(where, params, memory_type, after, limit, cut, view)

    async def _list(
        self,
        where: str,
        params: builtins.list[Any],
        memory_type: str | None,
        after: tuple[str, str],
        limit: int,
        cut: int | None,
        view: _View,
    ) -> list[MemoryEntry]:
        """A page of the memories in ``where`` (a condition on ``m.namespace``), by
        (namespace, key), as ``view`` sees them (SQLite's _list)."""
        current, current_params = view.current()
        holds, holds_params = view.holds()
        sql = (
            f"SELECT {_listed(cut)} FROM memory_entries AS m"
            " WHERE (m.namespace, m.key) > (%s, %s) AND (%s::text IS NULL OR m.memory_type = %s)"
            f" AND {current} AND {where} AND {holds} ORDER BY m.namespace, m.key LIMIT %s"
        )
        found = await self.db.fetchall(
            sql,
            [
                after[0],
                after[1],
                memory_type,
                memory_type,
                *current_params,
                *params,
                *holds_params,
                limit,
            ],
        )
        return [rows.memory(r, _limit(cut)) for r in found]

    async def expired_episodic(
        self, cutoff: datetime, limit: int | None
    ) -> builtins.list[ExpiredMemory]:
        found = await self.db.fetchall(_EXPIRED, {"cutoff": at_ms(cutoff), "limit": limit})
        return [ExpiredMemory(r[1], r[2], r[3]) for r in found]

    async def namespaces(
        self, principal: Principal, prefix: str | None, after: str, limit: int
    ) -> builtins.list[NamespaceCount]:
        return await browse.namespaces(self.db, principal, prefix, after, limit)


def _listed(cut: int | None) -> str:
    """The memory columns of a listing, the value cut to ``cut`` bytes (core/replies.py)."""
    return rows.listed(rows.MEMORY, ("value",), cut, "m")


def _limit(cut: int | None) -> int:
    return rows.NO_CUT if cut is None else cut
