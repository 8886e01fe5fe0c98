"""Versioned, namespaced memories.

Every put appends version n+1 (one transaction, audited); reading gives the latest live
version, a given version, or the version live at a past time. Delete is soft: all versions
are flagged, history stays readable, and a later put (or restore) continues the numbering.
A put whose value, type and metadata equal the live version's creates nothing new.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from abathur_memory.core import cursors, values
from abathur_memory.errors import Conflict, InvalidInput, NotFound
from abathur_memory.memory import audit
from abathur_memory.memory.access import AccessGuard, readable_sql
from abathur_memory.memory.namespaces import SCOPES, Access, clean, parse, validate_prefix
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite import queries as hot_queries
from abathur_memory.store.sqlite.database import Database

T = TypeVar("T")

MEMORY_TYPES = ("semantic", "episodic", "procedural")
MAX_LIST_LIMIT = 1000
MAX_BATCH = 10_000

_LATEST_ANY = (
    "SELECT id, version, value, memory_type, metadata, is_deleted, created_by, created_at,"
    " updated_at FROM memory_entries WHERE namespace = ? AND key = ?"
    " ORDER BY version DESC LIMIT 1"
)
_LATEST_MANY = """
SELECT m.id, m.version, m.value, m.memory_type, m.metadata, m.is_deleted, m.created_by,
       m.created_at, m.updated_at, m.namespace, m.key
FROM json_each(?) AS wanted
JOIN memory_entries AS m
  ON m.namespace = wanted.value ->> 0 AND m.key = wanted.value ->> 1
 AND m.version = (SELECT MAX(v.version) FROM memory_entries AS v
                  WHERE v.namespace = wanted.value ->> 0 AND v.key = wanted.value ->> 1)
"""
# No RETURNING on the hot path: it costs ~40 us per row here (docs/benchmarks.md).
_INSERT = (
    "INSERT INTO memory_entries (namespace, key, value, memory_type, version, metadata,"
    " created_by, updated_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class MemoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    namespace: str
    key: str
    version: int
    value: values.JsonAny
    memory_type: str
    metadata: dict[str, Any]
    is_deleted: bool
    created_by: str | None
    updated_by: str | None
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: driver.Row) -> MemoryEntry:
        # Rows come from our own schema (CHECKed): construct without re-validating.
        return cls.model_construct(
            id=row["id"],
            namespace=row["namespace"],
            key=row["key"],
            version=row["version"],
            value=json.loads(row["value"]),
            memory_type=row["memory_type"],
            metadata=json.loads(row["metadata"] or "{}"),
            is_deleted=bool(row["is_deleted"]),
            created_by=row["created_by"],
            updated_by=row["updated_by"],
            created_at=timestamps.to_iso(row["created_at"]) or "",
            updated_at=timestamps.to_iso(row["updated_at"]) or "",
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "key": self.key,
            "version": self.version,
            "value": self.value,
            "memory_type": self.memory_type,
            "metadata": self.metadata,
            "is_deleted": self.is_deleted,
            "created_by": self.created_by,
            "updated_by": self.updated_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class _Latest:
    """The newest version of a key, as a put needs it."""

    id: int
    version: int
    value: str
    memory_type: str
    metadata: str
    is_deleted: bool
    created_by: str | None
    created_at: str
    updated_at: str

    @classmethod
    def fetch_many(
        cls, conn: driver.Connection, addresses: list[tuple[str, str]]
    ) -> dict[tuple[str, str], _Latest]:
        """The newest version (live or deleted) of each (namespace, key), in one query."""
        wanted = list(dict.fromkeys(addresses))
        if len(wanted) == 1:  # a single put: the plain indexed lookup costs half of json_each
            latest = cls.fetch(conn, *wanted[0])
            return {} if latest is None else {wanted[0]: latest}
        found: dict[tuple[str, str], _Latest] = {}
        for start in range(0, len(wanted), 5000):
            batch = json.dumps(wanted[start : start + 5000], ensure_ascii=False)
            for row in conn.execute(_LATEST_MANY, (batch,)):
                found[(row[9], row[10])] = cls(
                    row[0],
                    row[1],
                    row[2],
                    row[3],
                    row[4] or "{}",
                    bool(row[5]),
                    row[6],
                    row[7],
                    row[8],
                )
        return found

    @classmethod
    def fetch(cls, conn: driver.Connection, namespace: str, key: str) -> _Latest | None:
        row = conn.execute(_LATEST_ANY, (namespace, key)).fetchone()
        if row is None:
            return None
        return cls(
            row[0], row[1], row[2], row[3], row[4] or "{}", bool(row[5]), row[6], row[7], row[8]
        )

    def same_as(self, memory_type: str, value_text: str, metadata_text: str) -> bool:
        return (
            self.memory_type == memory_type
            and values.same_json(self.value, value_text)
            and values.same_json(self.metadata, metadata_text)
        )

    def entry(self, namespace: str, key: str) -> MemoryEntry:
        return MemoryEntry.model_construct(
            id=self.id,
            namespace=namespace,
            key=key,
            version=self.version,
            value=json.loads(self.value),
            memory_type=self.memory_type,
            metadata=json.loads(self.metadata),
            is_deleted=self.is_deleted,
            created_by=self.created_by,
            updated_by=self.created_by,
            created_at=timestamps.to_iso(self.created_at) or "",
            updated_at=timestamps.to_iso(self.updated_at) or "",
        )


def _next_entry_id(conn: driver.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'memory_entries'").fetchone()
    return (row[0] if row else 0) + 1


def _insert_versions(conn: driver.Connection, rows: list[tuple[Any, ...]], first_id: int) -> None:
    """Insert new versions with one statement.

    memory_entries is AUTOINCREMENT and the writer holds the write lock, so the rows get
    consecutive ids from the next sequence value; that is checked, not assumed (a mismatch
    raises and the transaction rolls back).
    """
    if not rows:
        return
    conn.executemany(_INSERT, rows)
    last = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'memory_entries'").fetchone()
    if last is None or last[0] != first_id + len(rows) - 1:  # pragma: no cover - invariant
        raise RuntimeError("memory_entries ids were not consecutive; nothing was written")


def _check_expected(req: PutRequest, live: _Latest | None) -> None:
    if req.expected_version is None:
        return
    current = live.version if live is not None else 0
    if req.expected_version != current:
        raise Conflict(
            f"{req.namespace}/{req.key} is at version {current}, not {req.expected_version}: "
            "re-read it and retry"
            if current
            else f"{req.namespace}/{req.key} does not exist (expected version "
            f"{req.expected_version})"
        )


@dataclass(frozen=True)
class PutResult:
    """What a put did. Cheap to build (batches return thousands); ``entry`` is made on use."""

    version_row: _Latest
    namespace: str
    key: str
    created: bool  # a new version was written
    unchanged: bool  # the value equalled the live version: nothing was written

    @property
    def version(self) -> int:
        return self.version_row.version

    @property
    def memory_type(self) -> str:
        return self.version_row.memory_type

    @property
    def updated_at(self) -> str:
        return timestamps.to_iso(self.version_row.updated_at) or ""

    @property
    def entry(self) -> MemoryEntry:
        return self.version_row.entry(self.namespace, self.key)


@dataclass(frozen=True)
class PutRequest:
    namespace: str
    key: str
    value: Any
    memory_type: str = "semantic"
    metadata: dict[str, Any] | None = None
    expected_version: int | None = None


@dataclass
class MemoryPage:
    entries: list[MemoryEntry] = field(default_factory=list)
    next_cursor: str | None = None


@dataclass(frozen=True)
class _Prepared:
    request: PutRequest
    segments: list[str]
    value_text: str
    metadata_text: str | None


@dataclass(frozen=True)
class _Denied:
    namespace: str
    key: str | None
    rule: str


class MemoryService:
    def __init__(
        self,
        db: Database,
        guard: AccessGuard,
        *,
        max_value_bytes: int = values.DEFAULT_MAX_VALUE_BYTES,
    ) -> None:
        self.db = db
        self.guard = guard
        self.max_value_bytes = max_value_bytes
        # Called after every committed change (the memory indexer wakes up on it).
        self.on_change: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for listener in self.on_change:
            listener()

    # -- writes ---------------------------------------------------------------------------

    async def put(
        self,
        namespace: str,
        key: str,
        value: Any,
        memory_type: str = "semantic",
        metadata: dict[str, Any] | None = None,
        expected_version: int | None = None,
    ) -> PutResult:
        """Store ``value`` as the next version of (namespace, key)."""
        request = PutRequest(namespace, key, value, memory_type, metadata, expected_version)
        return (await self.put_many([request]))[0]

    async def put_many(self, requests: Sequence[PutRequest]) -> list[PutResult]:
        """Several puts in one transaction: all are applied, or none (first error wins)."""
        if not requests:
            return []
        if len(requests) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} puts per batch, got {len(requests)}")
        prepared = [self._prepare(r) for r in requests]
        for item in prepared:
            if not self.guard.needs_lookup(item.segments):
                rule = self.guard.denial(item.segments, Access.WRITE)
                if rule is not None:
                    await self.guard.refuse(item.request.namespace, "write", rule, item.request.key)
        outcome = await self.db.write(self._put_all, prepared)
        if isinstance(outcome, _Denied):
            await self.guard.refuse(outcome.namespace, "write", outcome.rule, outcome.key)
        if any(result.created for result in outcome):
            self._changed()
        return outcome

    def _prepare(self, request: PutRequest) -> _Prepared:
        namespace = clean(request.namespace)
        key = values.check_identifier(request.key, what="key")
        if namespace != request.namespace or key != request.key:
            request = replace(request, namespace=namespace, key=key)
        segments = parse(namespace)
        if request.memory_type not in MEMORY_TYPES:
            raise InvalidInput(
                f"memory_type must be one of {', '.join(MEMORY_TYPES)}, not {request.memory_type!r}"
            )
        if request.expected_version is not None and (
            not isinstance(request.expected_version, int)
            or isinstance(request.expected_version, bool)
            or request.expected_version < 0
        ):
            raise InvalidInput(
                "expected_version must be an integer >= 0 (0: the key must not exist)"
            )
        value_text = values.encode_json(request.value, what="value", max_bytes=self.max_value_bytes)
        metadata_text = (
            None
            if request.metadata is None
            else values.encode_object(request.metadata, what="metadata")
        )
        return _Prepared(request, segments, value_text, metadata_text)

    def _put_all(
        self, conn: driver.Connection, prepared: list[_Prepared]
    ) -> list[PutResult] | _Denied:
        """Decide each put against the latest version (earlier puts of the batch included),
        then write the new versions and their audit rows, each with one statement."""
        for item in prepared:
            if self.guard.needs_lookup(item.segments):
                rule = self.guard.denial_in(conn, item.segments, Access.WRITE)
                if rule is not None:
                    return _Denied(item.request.namespace, item.request.key, rule)
        now = timestamps.now_db()
        actor = self.guard.actor
        latest = _Latest.fetch_many(conn, [(p.request.namespace, p.request.key) for p in prepared])
        next_id = _next_entry_id(conn)
        first_id = next_id
        results: list[PutResult] = []
        new_rows: list[tuple[Any, ...]] = []
        audit_rows: list[tuple[str, str, int, str]] = []
        for item in prepared:
            req = item.request
            address = (req.namespace, req.key)
            before = latest.get(address)
            live = before if before is not None and not before.is_deleted else None
            _check_expected(req, live)
            metadata_text = item.metadata_text
            if metadata_text is None:  # not given: keep the live version's metadata
                metadata_text = live.metadata if live is not None else "{}"
            if live is not None and live.same_as(req.memory_type, item.value_text, metadata_text):
                results.append(PutResult(live, req.namespace, req.key, False, True))
                continue
            version = before.version + 1 if before is not None else 1
            after = _Latest(
                next_id,
                version,
                item.value_text,
                req.memory_type,
                metadata_text,
                False,
                actor,
                now,
                now,
            )
            latest[address] = after
            results.append(PutResult(after, req.namespace, req.key, True, False))
            new_rows.append(
                (
                    req.namespace,
                    req.key,
                    item.value_text,
                    req.memory_type,
                    version,
                    metadata_text,
                    actor,
                    actor,
                    now,
                    now,
                )
            )
            audit_rows.append(
                (
                    "update" if live else "create",
                    req.namespace,
                    next_id,
                    '{"key":' + json.dumps(req.key) + ',"version":' + str(version) + "}",
                )
            )
            next_id += 1
        _insert_versions(conn, new_rows, first_id)
        audit.record_memory_many(conn, action="memory_put", actor=actor, rows=audit_rows)
        return results

    async def delete(
        self, namespace: str, key: str, expected_version: int | None = None
    ) -> MemoryEntry:
        """Soft-delete every version of (namespace, key); returns the version that was live."""
        namespace, key = clean(namespace), values.check_identifier(key, what="key")

        def soft_delete(conn: driver.Connection) -> MemoryEntry:
            live = conn.execute(
                hot_queries.MEMORY_GET_LATEST, {"namespace": namespace, "key": key}
            ).fetchone()
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
                (now, self.guard.actor, namespace, key),
            )
            audit.record_memory(
                conn,
                operation="delete",
                namespace=namespace,
                entry_id=live["id"],
                actor=self.guard.actor,
                action="memory_delete",
                data={"key": key, "version": live["version"]},
            )
            row = conn.execute(
                "SELECT * FROM memory_entries WHERE id = ?", (live["id"],)
            ).fetchone()
            return MemoryEntry.from_row(row)

        return await self._write_key(namespace, key, "delete", soft_delete)

    async def restore(self, namespace: str, key: str) -> PutResult:
        """Bring back a deleted key: its last value becomes a new version."""
        namespace, key = clean(namespace), values.check_identifier(key, what="key")

        def undelete(conn: driver.Connection) -> PutResult:
            latest = conn.execute(_LATEST_ANY, (namespace, key)).fetchone()
            if latest is None:
                raise NotFound(f"no memory {namespace}/{key} has ever existed")
            if not latest["is_deleted"]:
                raise Conflict(
                    f"{namespace}/{key} is not deleted (live version {latest['version']})"
                )
            version = latest["version"] + 1
            actor, now = self.guard.actor, timestamps.now_db()
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
                ),
            ).lastrowid
            audit.record_memory(
                conn,
                operation="create",
                namespace=namespace,
                entry_id=entry_id,
                actor=actor,
                action="memory_restore",
                data={"key": key, "version": version, "restored_from": latest["version"]},
            )
            restored = _Latest.fetch(conn, namespace, key)
            return PutResult(restored, namespace, key, True, False)  # type: ignore[arg-type]

        return await self._write_key(namespace, key, "restore", undelete)

    # -- reads ----------------------------------------------------------------------------

    async def get(
        self,
        namespace: str,
        key: str,
        version: int | None = None,
        as_of: str | None = None,
    ) -> MemoryEntry:
        """The latest live version, a given ``version``, or the version live at ``as_of``."""
        namespace = clean(namespace)
        key = values.check_identifier(key, what="key")
        segments = parse(namespace)
        if version is not None and as_of is not None:
            raise InvalidInput("give version or as_of, not both")
        if version is not None:
            values.check_integer(version, what="version", low=1)
        at = timestamps.parse_user_time(as_of) if as_of is not None else None
        if version is not None:
            sql = "SELECT * FROM memory_entries WHERE namespace = ? AND key = ? AND version = ?"
            params: tuple[Any, ...] | dict[str, Any] = (namespace, key, version)
        elif at is not None:
            sql = (
                "SELECT * FROM memory_entries WHERE namespace = ? AND key = ? AND created_at <= ?"
                " ORDER BY version DESC LIMIT 1"
            )
            params = (namespace, key, at)
        else:
            sql, params = hot_queries.MEMORY_GET_LATEST, {"namespace": namespace, "key": key}
        row = await self._read_one(segments, namespace, key, "read", sql, params)
        if row is None or (at is not None and row["is_deleted"] and row["updated_at"] <= at):
            when = f" at {as_of}" if as_of is not None else ""
            which = f" version {version}" if version is not None else ""
            raise NotFound(f"no memory {namespace}/{key}{which}{when}")
        return MemoryEntry.from_row(row)

    async def history(self, namespace: str, key: str) -> list[MemoryEntry]:
        """Every version, oldest first, deleted ones included (flagged)."""
        namespace = clean(namespace)
        key = values.check_identifier(key, what="key")
        segments = parse(namespace)
        rows = await self._read(
            segments,
            namespace,
            key,
            "read history",
            "SELECT * FROM memory_entries WHERE namespace = ? AND key = ? ORDER BY version",
            (namespace, key),
        )
        if not rows:
            raise NotFound(f"no memory {namespace}/{key} has ever existed")
        return [MemoryEntry.from_row(r) for r in rows]

    async def list(
        self,
        prefix: str | None,
        memory_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> MemoryPage:
        """Latest live entries under ``prefix`` (on ':' boundaries), by namespace then key;
        with no prefix, everything the principal may read."""
        if memory_type is not None and memory_type not in MEMORY_TYPES:
            raise InvalidInput(f"memory_type must be one of {', '.join(MEMORY_TYPES)}")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        after_namespace, after_key = cursors.decode(cursor, start=("", ""))
        if prefix is None:
            rows = await self.db.fetchall(
                *self._readable_page(memory_type, after_namespace, after_key, limit + 1)
            )
        else:
            if prefix not in SCOPES:
                prefix = clean(prefix)
            segments = validate_prefix(prefix)
            params = {
                "prefix": prefix,
                "memory_type": memory_type,
                "after_namespace": after_namespace,
                "after_key": after_key,
                "limit": limit + 1,
            }
            rows = await self._read(
                segments, prefix, None, "list", hot_queries.MEMORY_LIST_PAGE, params
            )
        page = MemoryPage([MemoryEntry.from_row(r) for r in rows[:limit]])
        if len(rows) > limit:
            last = page.entries[-1]
            page.next_cursor = cursors.encode(last.namespace, last.key)
        return page

    def _readable_page(
        self, memory_type: str | None, after_namespace: str, after_key: str, limit: int
    ) -> tuple[str, builtins.list[Any]]:
        where, params = readable_sql(self.guard.policy.principal, None, "m.namespace")
        sql = (
            "SELECT m.* FROM memory_entries AS m"
            " WHERE (m.namespace, m.key) > (?, ?) AND m.is_deleted = 0"
            " AND (? IS NULL OR m.memory_type = ?)"
            " AND m.version = (SELECT MAX(v.version) FROM memory_entries AS v"
            "                  WHERE v.namespace = m.namespace AND v.key = m.key)"
            f" AND {where} ORDER BY m.namespace, m.key LIMIT ?"
        )
        return sql, [after_namespace, after_key, memory_type, memory_type, *params, limit]

    # -- plumbing -------------------------------------------------------------------------

    async def _write_key(
        self, namespace: str, key: str, attempted: str, body: Callable[[driver.Connection], T]
    ) -> T:
        """Run ``body`` in a write transaction once the policy allows writing the key."""
        namespace = clean(namespace)
        key = values.check_identifier(key, what="key")
        segments = parse(namespace)
        await self._check_write(segments, namespace, key)

        def guarded(conn: driver.Connection) -> T | _Denied:
            if self.guard.needs_lookup(segments):
                rule = self.guard.denial_in(conn, segments, Access.WRITE)
                if rule is not None:
                    return _Denied(namespace, key, rule)
            return body(conn)

        outcome = await self.db.write(guarded)
        if isinstance(outcome, _Denied):
            await self.guard.refuse(namespace, attempted, outcome.rule, key)
        self._changed()
        return outcome

    async def _check_write(
        self, segments: builtins.list[str], namespace: str, key: str | None
    ) -> None:
        if not self.guard.needs_lookup(segments):
            rule = self.guard.denial(segments, Access.WRITE)
            if rule is not None:
                await self.guard.refuse(namespace, "write", rule, key)

    async def _read(
        self,
        segments: builtins.list[str],
        namespace: str,
        key: str | None,
        attempted: str,
        sql: str,
        params: Any,
    ) -> builtins.list[driver.Row]:
        """Policy-checked read: one thread hop (the ownership lookup rides along)."""
        if not self.guard.needs_lookup(segments):
            rule = self.guard.denial(segments, Access.READ)
            if rule is not None:
                await self.guard.refuse(namespace, attempted, rule, key)
            return await self.db.fetchall(sql, params)

        def checked(conn: driver.Connection) -> list[driver.Row] | _Denied:
            rule = self.guard.denial_in(conn, segments, Access.READ)
            if rule is not None:
                return _Denied(namespace, key, rule)
            return conn.execute(sql, params).fetchall()

        outcome = await self.db.read(checked)
        if isinstance(outcome, _Denied):
            await self.guard.refuse(namespace, attempted, outcome.rule, key)
        return outcome

    async def _read_one(
        self,
        segments: builtins.list[str],
        namespace: str,
        key: str | None,
        attempted: str,
        sql: str,
        params: Any,
    ) -> driver.Row | None:
        if not self.guard.needs_lookup(segments):
            rule = self.guard.denial(segments, Access.READ)
            if rule is not None:
                await self.guard.refuse(namespace, attempted, rule, key)
            return await self.db.fetchone(sql, params)
        rows = await self._read(segments, namespace, key, attempted, sql, params)
        return rows[0] if rows else None
