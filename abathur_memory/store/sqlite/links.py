"""Links between memories on SQLite: written with their audit row in one transaction,
removed by stamping ``removed_at`` (nothing is deleted)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from abathur_memory.core.records import MemoryEntry, MemoryLink, NewLink
from abathur_memory.errors import NotFound
from abathur_memory.store.sqlite import audit_rows, rows, timestamps
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.driver import Connection, Row
from abathur_memory.store.sqlite.readable import STILL_HOLDS

_LIVE = (
    "SELECT id, version, valid_from FROM memory_entries WHERE namespace = ? AND key = ?"
    " AND is_deleted = 0 ORDER BY version DESC LIMIT 1"
)
_SAME = (
    "SELECT * FROM memory_links WHERE removed_at IS NULL AND link_type = ?"
    " AND from_namespace = ? AND from_key = ? AND to_namespace = ? AND to_key = ?"
)
_INSERT = (
    "INSERT INTO memory_links (link_type, from_namespace, from_key, from_version,"
    " to_namespace, to_key, to_version, holds_until, reason, metadata, run_id, created_by,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_OF = (
    "SELECT * FROM memory_links WHERE (from_namespace = ? AND from_key = ?)"
    " UNION SELECT * FROM memory_links WHERE (to_namespace = ? AND to_key = ?) ORDER BY id"
)

# The other sides of the active contradicts links of the wanted memories, those that still
# hold (a contradiction one side of which is superseded is resolved).
_CONTRADICTING = """
WITH wanted AS (SELECT value ->> 0 AS ns, value ->> 1 AS key FROM json_each(?)),
ends AS (
    SELECT w.ns AS hit_ns, w.key AS hit_key, l.to_namespace AS ns, l.to_key AS key
    FROM wanted AS w CROSS JOIN memory_links AS l
      ON l.from_namespace = w.ns AND l.from_key = w.key
    WHERE l.link_type = 'contradicts' AND l.removed_at IS NULL
    UNION
    SELECT w.ns, w.key, l.from_namespace, l.from_key
    FROM wanted AS w CROSS JOIN memory_links AS l
      ON l.to_namespace = w.ns AND l.to_key = w.key
    WHERE l.link_type = 'contradicts' AND l.removed_at IS NULL
)
SELECT e.hit_ns, e.hit_key, {columns}
FROM ends AS e CROSS JOIN memory_entries AS m
  ON m.namespace = e.ns AND m.key = e.key AND m.is_deleted = 0
 AND m.version = (SELECT MAX(v.version) FROM memory_entries AS v
                  WHERE v.namespace = m.namespace AND v.key = m.key)
WHERE {still_holds}
ORDER BY e.hit_ns, e.hit_key, m.namespace, m.key
"""


_CLOSING = (
    "SELECT l.* FROM json_each(?) AS w JOIN memory_links AS l"
    " ON l.to_namespace = w.value ->> 0 AND l.to_key = w.value ->> 1"
    " WHERE l.link_type = 'supersedes' AND l.holds_until IS NOT NULL ORDER BY l.id"
)


def link_of(row: Row) -> MemoryLink:
    return MemoryLink.model_construct(
        id=row["id"],
        link_type=row["link_type"],
        from_namespace=row["from_namespace"],
        from_key=row["from_key"],
        from_version=row["from_version"],
        to_namespace=row["to_namespace"],
        to_key=row["to_key"],
        to_version=row["to_version"],
        to_session=row["to_session"],
        seq_start=row["seq_start"],
        seq_end=row["seq_end"],
        holds_until=timestamps.to_iso(row["holds_until"]),
        reason=row["reason"],
        metadata=json.loads(row["metadata"] or "{}"),
        run_id=row["run_id"],
        created_by=row["created_by"],
        created_at=timestamps.to_iso(row["created_at"]) or "",
        removed_at=timestamps.to_iso(row["removed_at"]),
        removed_by=row["removed_by"],
    )


def add_link(conn: Connection, link: NewLink, actor: str) -> tuple[MemoryLink, bool]:
    """Write ``link`` between the live versions of its ends (NotFound when one has none);
    an equal active link is returned as it is. Returns (link, created)."""
    source = conn.execute(_LIVE, (link.from_namespace, link.from_key)).fetchone()
    target = conn.execute(_LIVE, (link.to_namespace, link.to_key)).fetchone()
    for row, namespace, key in (
        (source, link.from_namespace, link.from_key),
        (target, link.to_namespace, link.to_key),
    ):
        if row is None:
            raise NotFound(f"no live memory {namespace}/{key} to link")
    same = conn.execute(
        _SAME,
        (link.link_type, link.from_namespace, link.from_key, link.to_namespace, link.to_key),
    ).fetchone()
    if same is not None:
        return link_of(same), False
    now = timestamps.now_db()
    holds_until = None
    if link.link_type == "supersedes":  # the older fact held until the newer one began
        holds_until = source["valid_from"] or now
    link_id = conn.execute(
        _INSERT,
        (
            link.link_type,
            link.from_namespace,
            link.from_key,
            source["version"],
            link.to_namespace,
            link.to_key,
            target["version"],
            holds_until,
            link.reason,
            link.metadata_text,
            link.run_id,
            actor,
            now,
        ),
    ).lastrowid
    _audit(
        conn,
        "memory_link",
        link.from_namespace,
        source["id"],
        actor,
        link.run_id,
        link_id,
        {
            "key": link.from_key,
            "link_type": link.link_type,
            "to": f"{link.to_namespace}/{link.to_key}",
        },
    )
    row = conn.execute("SELECT * FROM memory_links WHERE id = ?", (link_id,)).fetchone()
    return link_of(row), True


def remove_link(conn: Connection, link_id: int, actor: str, run_id: str | None) -> MemoryLink:
    row = conn.execute(
        "SELECT * FROM memory_links WHERE id = ? AND removed_at IS NULL", (link_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no active link {link_id}")
    conn.execute(
        "UPDATE memory_links SET removed_at = ?, removed_by = ?, removed_run_id = ? WHERE id = ?",
        (timestamps.now_db(), actor, run_id, link_id),
    )
    _audit(
        conn,
        "memory_unlink",
        row["from_namespace"],
        None,
        actor,
        run_id,
        link_id,
        {
            "key": row["from_key"],
            "link_type": row["link_type"],
            "to": f"{row['to_namespace']}/{row['to_key']}",
        },
    )
    return link_of(conn.execute("SELECT * FROM memory_links WHERE id = ?", (link_id,)).fetchone())


def _audit(
    conn: Connection,
    action: str,
    namespace: str,
    entry_id: int | None,
    actor: str,
    run_id: str | None,
    link_id: int,
    data: dict[str, Any],
) -> None:
    audit_rows.record_memory(
        conn,
        operation="consolidate" if run_id else "link",  # a link is no memory write: NULL
        namespace=namespace,
        entry_id=entry_id,
        actor=actor,
        action=action,
        data={**data, "link_id": link_id, **({"run_id": run_id} if run_id else {})},
    )


def add_session_link(
    conn: Connection,
    namespace: str,
    key: str,
    session_id: str,
    seq_start: int,
    seq_end: int,
    actor: str,
) -> tuple[MemoryLink, bool]:
    """A derived_from link from a memory's live version to events of a session; an equal
    active link is returned as it is."""
    source = conn.execute(_LIVE, (namespace, key)).fetchone()
    if source is None:
        raise NotFound(f"no live memory {namespace}/{key} to link")
    same = conn.execute(
        "SELECT * FROM memory_links WHERE removed_at IS NULL AND link_type = 'derived_from'"
        " AND from_namespace = ? AND from_key = ? AND to_session = ? AND seq_start = ?"
        " AND seq_end = ?",
        (namespace, key, session_id, seq_start, seq_end),
    ).fetchone()
    if same is not None:
        return link_of(same), False
    link_id = conn.execute(
        "INSERT INTO memory_links (link_type, from_namespace, from_key, from_version,"
        " to_session, seq_start, seq_end, reason, created_by, created_at)"
        " VALUES ('derived_from', ?, ?, ?, ?, ?, ?, 'promoted from a session', ?, ?)",
        (
            namespace,
            key,
            source["version"],
            session_id,
            seq_start,
            seq_end,
            actor,
            timestamps.now_db(),
        ),
    ).lastrowid
    audit_rows.record_memory(
        conn,
        operation="publish",
        namespace=namespace,
        entry_id=source["id"],
        actor=actor,
        action="session_promote",
        data={
            "key": key,
            "session_id": session_id,
            "seq": [seq_start, seq_end],
            "link_id": link_id,
        },
    )
    row = conn.execute("SELECT * FROM memory_links WHERE id = ?", (link_id,)).fetchone()
    return link_of(row), True


class SqliteLinkStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, link: NewLink, actor: str) -> tuple[MemoryLink, bool]:
        return await self.db.write(add_link, link, actor)

    async def remove(self, link_id: int, actor: str, run_id: str | None = None) -> MemoryLink:
        return await self.db.write(remove_link, link_id, actor, run_id)

    async def add_session_link(
        self,
        namespace: str,
        key: str,
        session_id: str,
        seq_start: int,
        seq_end: int,
        actor: str,
    ) -> tuple[MemoryLink, bool]:
        return await self.db.write(
            add_session_link, namespace, key, session_id, seq_start, seq_end, actor
        )

    async def get(self, link_id: int) -> MemoryLink | None:
        row = await self.db.fetchone("SELECT * FROM memory_links WHERE id = ?", (link_id,))
        return None if row is None else link_of(row)

    async def of(self, namespace: str, key: str) -> list[MemoryLink]:
        found = await self.db.fetchall(_OF, (namespace, key, namespace, key))
        return [link_of(r) for r in found]

    async def closing(self, addresses: Sequence[tuple[str, str]]) -> list[MemoryLink]:
        if not addresses:
            return []
        found = await self.db.fetchall(
            _CLOSING, (json.dumps([list(a) for a in addresses], ensure_ascii=False),)
        )
        return [link_of(r) for r in found]

    async def contradicting(
        self, addresses: list[tuple[str, str]], cut: int | None
    ) -> list[tuple[tuple[str, str], MemoryEntry]]:
        if not addresses:
            return []
        limit = rows.NO_CUT if cut is None else cut
        sql = _CONTRADICTING.format(
            columns=rows.listed_memory_columns(limit), still_holds=STILL_HOLDS
        )
        found = await self.db.fetchall(sql, (json.dumps(addresses, ensure_ascii=False),))
        return [((r["hit_ns"], r["hit_key"]), rows.memory(r, limit)) for r in found]
