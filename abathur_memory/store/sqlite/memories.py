"""Memories on SQLite: versions of (namespace, key) and their audit rows.

The put path is the measured fast path (bench/service.py): the newest versions of a whole
batch are read in one query, the new versions are written with one ``executemany`` and
their audit rows with another, all in one ``BEGIN IMMEDIATE`` transaction on the writer.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from abathur_memory.core import values
from abathur_memory.core.browse import NamespaceCount
from abathur_memory.core.principal import Principal
from abathur_memory.core.put_rule import decide_put
from abathur_memory.core.records import (
    ExpiredMemory,
    MemoryEntry,
    MemoryLink,
    PreparedPut,
    PutResult,
)
from abathur_memory.errors import Conflict, NotFound
from abathur_memory.store.sqlite import audit_rows, browse, links, rows, timestamps
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.driver import Connection
from abathur_memory.store.sqlite.queries import MEMORY_GET_LATEST, MEMORY_LIST_PAGE
from abathur_memory.store.sqlite.readable import holds_sql, readable_sql

# The links that can end a version's validity (memory/memories.py, closed).
_SUPERSEDES = (
    "SELECT * FROM memory_links WHERE to_namespace = ? AND to_key = ?"
    " AND link_type = 'supersedes' AND removed_at IS NULL AND holds_until IS NOT NULL"
    " ORDER BY id"
)

_LATEST_ANY = (
    "SELECT id, version, value, memory_type, metadata, is_deleted, created_by, created_at,"
    " updated_at, valid_from, valid_to FROM memory_entries WHERE namespace = ? AND key = ?"
    " ORDER BY version DESC LIMIT 1"
)
# CROSS JOIN pins the order: one index lookup per wanted key. Left to the planner, statistics
# of a tiny memory_entries made it scan the table once per key (issue 13).
_LATEST_MANY = """
SELECT m.id, m.version, m.value, m.memory_type, m.metadata, m.is_deleted, m.created_by,
       m.created_at, m.updated_at, m.valid_from, m.valid_to, m.namespace, m.key
FROM json_each(?) AS wanted
CROSS JOIN memory_entries AS m
  ON m.namespace = wanted.value ->> 0 AND m.key = wanted.value ->> 1
 AND m.version = (SELECT MAX(v.version) FROM memory_entries AS v
                  WHERE v.namespace = wanted.value ->> 0 AND v.key = wanted.value ->> 1)
"""
# The version of each key a listing shows: the live one, or the one live at a past time
# (the newest created by then, unless the key was deleted by then: as_of() below).
_LIVE = (
    "m.is_deleted = 0 AND m.version = (SELECT MAX(v.version) FROM memory_entries AS v"
    " WHERE v.namespace = m.namespace AND v.key = m.key)"
)
_LIVE_THEN = (
    "m.version = (SELECT MAX(v.version) FROM memory_entries AS v"
    " WHERE v.namespace = m.namespace AND v.key = m.key AND v.created_at <= ?)"
    " AND NOT (m.is_deleted AND m.updated_at <= ?)"
)
# No RETURNING on the hot path: it costs ~40 us per row here (docs/benchmarks.md).
_INSERT = (
    "INSERT INTO memory_entries (namespace, key, value, memory_type, version, metadata,"
    " created_by, updated_by, created_at, updated_at, valid_from, valid_to)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_EXPIRED_EPISODIC = """
SELECT m.id, m.namespace, m.key, m.version FROM memory_entries AS m
WHERE m.memory_type = 'episodic' AND m.is_deleted = 0 AND m.updated_at < :cutoff
  AND m.version = (SELECT MAX(v.version) FROM memory_entries AS v
                   WHERE v.namespace = m.namespace AND v.key = m.key)
ORDER BY m.updated_at
LIMIT :limit
"""


@dataclass(frozen=True)
class _Latest:
    """The newest version of a key, as a put needs it."""

    id: int
    version: int
    value: str
    memory_type: str
    metadata: str
    is_deleted: bool
    updated_at: str
    valid_from: str | None = None
    valid_to: str | None = None

    @classmethod
    def of(cls, row: Any) -> _Latest:
        return cls(
            row[0], row[1], row[2], row[3], row[4] or "{}", bool(row[5]), row[8], row[9], row[10]
        )

    def same_as(self, put: PreparedPut, metadata_text: str) -> bool:
        return (
            self.memory_type == put.memory_type
            and values.same_json(self.value, put.value_text)
            and values.same_json(self.metadata, metadata_text)
            and (self.valid_from, self.valid_to) == _validity(put)
        )


@dataclass(frozen=True)
class _View:
    """Which version of each key a listing shows, and which of them it keeps: the live one
    (or the one live at ``as_of``, as memory_get's as_of reads it), kept when it holds at
    ``valid_at`` (else at ``as_of``, else now) unless ``include_superseded``."""

    include_superseded: bool = False
    as_of: datetime | None = None
    valid_at: datetime | None = None

    def current(self) -> tuple[str, builtins.list[Any]]:
        if self.as_of is None:
            return _LIVE, []
        known = timestamps.to_db(self.as_of)
        return _LIVE_THEN, [known, known]

    def holds(self) -> tuple[str, builtins.list[Any]]:
        if self.include_superseded:
            return "1", []
        return holds_sql(self.valid_at, self.as_of)


def _validity(put: PreparedPut) -> tuple[str | None, str | None]:
    """A put's validity in the stored format."""
    return (
        None if put.valid_from is None else timestamps.to_db(put.valid_from),
        None if put.valid_to is None else timestamps.to_db(put.valid_to),
    )


def _latest_many(
    conn: Connection, addresses: builtins.list[tuple[str, str]]
) -> dict[tuple[str, str], _Latest]:
    """The newest version (live or deleted) of each (namespace, key), in one query."""
    wanted = list(dict.fromkeys(addresses))
    if len(wanted) == 1:  # a single put: the plain indexed lookup costs half of json_each
        row = conn.execute(_LATEST_ANY, wanted[0]).fetchone()
        return {} if row is None else {wanted[0]: _Latest.of(row)}
    found: dict[tuple[str, str], _Latest] = {}
    for start in range(0, len(wanted), 5000):
        batch = json.dumps(wanted[start : start + 5000], ensure_ascii=False)
        for row in conn.execute(_LATEST_MANY, (batch,)):
            found[(row[11], row[12])] = _Latest.of(row)
    return found


def _next_entry_id(conn: Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'memory_entries'").fetchone()
    return (row[0] if row else 0) + 1


def _insert_versions(
    conn: Connection, new_rows: builtins.list[tuple[Any, ...]], first_id: int
) -> None:
    """Insert new versions with one statement.

    memory_entries is AUTOINCREMENT and the writer holds the write lock, so the rows get
    consecutive ids from the next sequence value; that is checked, not assumed (a mismatch
    raises and the transaction rolls back).
    """
    if not new_rows:
        return
    conn.executemany(_INSERT, new_rows)
    last = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'memory_entries'").fetchone()
    if last is None or last[0] != first_id + len(new_rows) - 1:  # pragma: no cover - invariant
        raise RuntimeError("memory_entries ids were not consecutive; nothing was written")


class SqliteMemoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes ---------------------------------------------------------------------------

    async def put_many(self, puts: Sequence[PreparedPut], actor: str) -> list[PutResult]:
        return await self.db.write(_put_all, puts, actor)

    async def delete(
        self, namespace: str, key: str, expected_version: int | None, actor: str
    ) -> MemoryEntry:
        def soft_delete(conn: Connection) -> MemoryEntry:
            live = conn.execute(MEMORY_GET_LATEST, {"namespace": namespace, "key": key}).fetchone()
            if live is None:
                raise NotFound(f"no live memory {namespace}/{key} to delete")
            if expected_version is not None and expected_version != live["version"]:
                raise Conflict(
                    f"{namespace}/{key} is at version {live['version']}, not {expected_version}"
                )
            now = timestamps.now_db()
            conn.execute(
                "UPDATE memory_entries SET is_deleted = 1, updated_at = ?, updated_by = ?"
                " WHERE namespace = ? AND key = ? AND is_deleted = 0",
                (now, actor, namespace, key),
            )
            audit_rows.record_memory(
                conn,
                operation="delete",
                namespace=namespace,
                entry_id=live["id"],
                actor=actor,
                action="memory_delete",
                data={"key": key, "version": live["version"]},
            )
            row = conn.execute(
                "SELECT * FROM memory_entries WHERE id = ?", (live["id"],)
            ).fetchone()
            return rows.memory(row)

        return await self.db.write(soft_delete)

    async def restore(self, namespace: str, key: str, actor: str) -> PutResult:
        def undelete(conn: Connection) -> PutResult:
            latest = conn.execute(_LATEST_ANY, (namespace, key)).fetchone()
            if latest is None:
                raise NotFound(f"no memory {namespace}/{key} has ever existed")
            if not latest["is_deleted"]:
                raise Conflict(
                    f"{namespace}/{key} is not deleted (live version {latest['version']})"
                )
            version = latest["version"] + 1
            now = timestamps.now_db()
            entry_id = conn.execute(
                _INSERT,
                (
                    namespace,
                    key,
                    latest["value"],
                    latest["memory_type"],
                    version,
                    latest["metadata"] or "{}",
                    actor,
                    actor,
                    now,
                    now,
                    latest["valid_from"],
                    latest["valid_to"],
                ),
            ).lastrowid
            audit_rows.record_memory(
                conn,
                operation="create",
                namespace=namespace,
                entry_id=entry_id,
                actor=actor,
                action="memory_restore",
                data={"key": key, "version": version, "restored_from": latest["version"]},
            )
            iso = timestamps.to_iso(now) or ""
            return PutResult(namespace, key, version, latest["memory_type"], True, False, iso)

        return await self.db.write(undelete)

    async def namespaces(
        self, principal: Principal, prefix: str | None, after: str, limit: int
    ) -> builtins.list[NamespaceCount]:
        return await self.db.read(browse.namespaces, principal, prefix, after, limit)

    async def expire_episodic(
        self, cutoff: datetime, actor: str, limit: int
    ) -> list[ExpiredMemory]:
        def expire(conn: Connection) -> list[ExpiredMemory]:
            found = conn.execute(
                _EXPIRED_EPISODIC, {"cutoff": timestamps.to_db(cutoff), "limit": limit}
            ).fetchall()
            now = timestamps.now_db()
            for row in found:
                conn.execute(
                    "UPDATE memory_entries SET is_deleted = 1, updated_at = ?, updated_by = ?"
                    " WHERE namespace = ? AND key = ? AND is_deleted = 0",
                    (now, actor, row["namespace"], row["key"]),
                )
                audit_rows.record_memory(
                    conn,
                    operation="delete",
                    namespace=row["namespace"],
                    entry_id=row["id"],
                    actor=actor,
                    action="memory_expire",
                    data={
                        "key": row["key"],
                        "version": row["version"],
                        "reason": "episodic_ttl_days",
                    },
                )
            return [ExpiredMemory(r["namespace"], r["key"], r["version"]) for r in found]

        return await self.db.write(expire)

    # -- reads ----------------------------------------------------------------------------

    async def latest(self, namespace: str, key: str) -> MemoryEntry | None:
        row = await self.db.fetchone(MEMORY_GET_LATEST, {"namespace": namespace, "key": key})
        return None if row is None else rows.memory(row)

    async def latest_with_supersedes(
        self, namespace: str, key: str
    ) -> tuple[MemoryEntry | None, builtins.list[MemoryLink]]:
        def read(conn: Connection) -> tuple[MemoryEntry | None, builtins.list[MemoryLink]]:
            row = conn.execute(MEMORY_GET_LATEST, {"namespace": namespace, "key": key}).fetchone()
            if row is None:
                return None, []
            found = conn.execute(_SUPERSEDES, (namespace, key)).fetchall()
            return rows.memory(row), [links.link_of(r) for r in found]

        return await self.db.read(read)

    async def version(self, namespace: str, key: str, version: int) -> MemoryEntry | None:
        row = await self.db.fetchone(
            "SELECT * FROM memory_entries WHERE namespace = ? AND key = ? AND version = ?",
            (namespace, key, version),
        )
        return None if row is None else rows.memory(row)

    async def as_of(self, namespace: str, key: str, at: datetime) -> MemoryEntry | None:
        stamp = timestamps.to_db(at)
        row = await self.db.fetchone(
            "SELECT * FROM memory_entries WHERE namespace = ? AND key = ? AND created_at <= ?"
            " ORDER BY version DESC LIMIT 1",
            (namespace, key, stamp),
        )
        if row is None or (row["is_deleted"] and row["updated_at"] <= stamp):
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
            f"SELECT {rows.listed_memory_columns(cut)} FROM memory_entries AS m"
            " WHERE m.namespace = ? AND m.key = ? AND m.version > ? ORDER BY m.version LIMIT ?",
            (namespace, key, after_version, -1 if limit is None else limit),
        )
        return [rows.memory(r, rows.NO_CUT if cut is None else cut) for r in found]

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
        limited = rows.NO_CUT if cut is None else cut
        if as_of is not None or valid_at is not None:
            # MEMORY_LIST_PAGE's range, the cursor moved to its start so the index seeks there
            where = (
                "m.namespace >= ? AND m.namespace < ?"
                " AND (m.namespace = ? OR substr(m.namespace, 1, ?) = ?)"
            )
            where_params = [prefix, prefix + ";", prefix, len(prefix) + 1, prefix + ":"]
            view = _View(include_superseded, as_of, valid_at)
            start = max(after, (prefix, ""))
            return await self._list(where, where_params, memory_type, start, limit, cut, view)
        params = {
            "include_superseded": int(include_superseded),
            "prefix": prefix,
            "memory_type": memory_type,
            "after_namespace": after[0],
            "after_key": after[1],
            "limit": limit,
            "cut": limited,
        }
        found = await self.db.fetchall(MEMORY_LIST_PAGE, params)
        return [rows.memory(r, limited) for r in found]

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
        (namespace, key), as ``view`` sees them."""
        current, current_params = view.current()
        holds, holds_params = view.holds()
        sql = (
            f"SELECT {rows.listed_memory_columns(cut)} FROM memory_entries AS m"
            " WHERE (m.namespace, m.key) > (?, ?) AND (? IS NULL OR m.memory_type = ?)"
            f" AND {current} AND {where} AND {holds} ORDER BY m.namespace, m.key LIMIT ?"
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
        return [rows.memory(r, rows.NO_CUT if cut is None else cut) for r in found]

    async def expired_episodic(self, cutoff: datetime, limit: int | None) -> list[ExpiredMemory]:
        found = await self.db.fetchall(
            _EXPIRED_EPISODIC,
            {"cutoff": timestamps.to_db(cutoff), "limit": -1 if limit is None else limit},
        )
        return [ExpiredMemory(r["namespace"], r["key"], r["version"]) for r in found]


def _never(_metadata: str) -> bool:
    return False


def _put_all(conn: Connection, puts: Sequence[PreparedPut], actor: str) -> list[PutResult]:
    """Decide each put against the latest version (earlier puts of the batch included),
    then write the new versions and their audit rows, each with one statement."""
    now = timestamps.now_db()
    now_iso = timestamps.to_iso(now) or ""
    latest = _latest_many(conn, [(p.namespace, p.key) for p in puts])
    next_id = _next_entry_id(conn)
    first_id = next_id
    results: list[PutResult] = []
    new_rows: list[tuple[Any, ...]] = []
    audit: list[tuple[str, str, int, str]] = []
    for put in puts:
        address = (put.namespace, put.key)
        before = latest.get(address)
        live = before if before is not None and not before.is_deleted else None
        decision = decide_put(
            put,
            before.version if before is not None else None,
            live.metadata if live is not None else None,
            partial(live.same_as, put) if live is not None else _never,
        )
        if live is not None and decision.unchanged:
            iso = timestamps.to_iso(live.updated_at) or ""
            results.append(
                PutResult(put.namespace, put.key, live.version, live.memory_type, False, True, iso)
            )
            continue
        version, metadata_text = decision.version, decision.metadata_text
        valid_from, valid_to = _validity(put)
        latest[address] = _Latest(
            next_id,
            version,
            put.value_text,
            put.memory_type,
            metadata_text,
            False,
            now,
            valid_from,
            valid_to,
        )
        results.append(
            PutResult(put.namespace, put.key, version, put.memory_type, True, False, now_iso)
        )
        new_rows.append(
            (
                put.namespace,
                put.key,
                put.value_text,
                put.memory_type,
                version,
                metadata_text,
                actor,
                actor,
                now,
                now,
                valid_from,
                valid_to,
            )
        )
        audit.append(
            (
                decision.action,
                put.namespace,
                next_id,
                '{"key":' + json.dumps(put.key) + ',"version":' + str(version) + "}",
            )
        )
        next_id += 1
    _insert_versions(conn, new_rows, first_id)
    audit_rows.record_memory_many(conn, action="memory_put", actor=actor, rows=audit)
    return results
