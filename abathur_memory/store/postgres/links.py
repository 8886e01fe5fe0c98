"""Links between memories on PostgreSQL (SQLite's links.py): written with their audit row in
one transaction under the key locks of both ends, removed by stamping ``removed_at``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from abathur_memory.core.records import MemoryEntry, MemoryLink, NewLink
from abathur_memory.errors import NotFound
from abathur_memory.store.postgres import rows
from abathur_memory.store.postgres.connection import Conn, Database
from abathur_memory.store.postgres.puts import lock_keys
from abathur_memory.store.postgres.readable import STILL_HOLDS
from abathur_memory.store.postgres.times import SQL_NOW

LINK = (
    "id, link_type, from_namespace, from_key, from_version, to_namespace, to_key, to_version,"
    " to_session, seq_start, seq_end, holds_until, reason, metadata, run_id, created_by,"
    " created_at, removed_at, removed_by"
)
_LIVE = (
    "SELECT id, version, valid_from FROM memory_entries WHERE namespace = %s AND key = %s"
    " AND NOT is_deleted ORDER BY version DESC LIMIT 1"
)
_SAME = (
    f"SELECT {LINK} FROM memory_links WHERE removed_at IS NULL AND link_type = %s"
    " AND from_namespace = %s AND from_key = %s AND to_namespace = %s AND to_key = %s"
)
_INSERT = f"""
INSERT INTO memory_links (link_type, from_namespace, from_key, from_version, to_namespace,
                          to_key, to_version, holds_until, reason, metadata, run_id, created_by)
VALUES (%(type)s, %(from_ns)s, %(from_key)s, %(from_version)s, %(to_ns)s, %(to_key)s,
        %(to_version)s,
        CASE WHEN %(type)s = 'supersedes' THEN coalesce(%(valid_from)s, {SQL_NOW}) END,
        %(reason)s, %(metadata)s::jsonb, %(run_id)s, %(actor)s)
RETURNING {LINK}
"""
_AUDIT = """
INSERT INTO audit (action_type, action_data, result, memory_operation_type, memory_namespace,
                   memory_entry_id, actor)
VALUES (%s, %s::jsonb, 'ok', %s, %s, %s, %s)
"""
_OF = (
    f"SELECT {LINK} FROM memory_links WHERE from_namespace = %s AND from_key = %s"
    f" UNION SELECT {LINK} FROM memory_links WHERE to_namespace = %s AND to_key = %s ORDER BY id"
)

# SQLite's _CONTRADICTING (store/sqlite/links.py).
_CONTRADICTING = """
WITH wanted AS (
    SELECT a->>0 AS ns, a->>1 AS key FROM jsonb_array_elements(%s::jsonb) AS a
), ends AS (
    SELECT w.ns AS hit_ns, w.key AS hit_key, l.to_namespace AS ns, l.to_key AS key
    FROM wanted AS w JOIN memory_links AS l
      ON l.from_namespace = w.ns AND l.from_key = w.key
    WHERE l.link_type = 'contradicts' AND l.removed_at IS NULL
    UNION
    SELECT w.ns, w.key, l.from_namespace, l.from_key
    FROM wanted AS w JOIN memory_links AS l
      ON l.to_namespace = w.ns AND l.to_key = w.key
    WHERE l.link_type = 'contradicts' AND l.removed_at IS NULL
)
SELECT e.hit_ns, e.hit_key, {columns}
FROM ends AS e JOIN memory_entries AS m
  ON m.namespace = e.ns AND m.key = e.key AND NOT m.is_deleted
 AND m.version = (SELECT max(v.version) FROM memory_entries AS v
                  WHERE v.namespace = m.namespace AND v.key = m.key)
WHERE {still_holds}
ORDER BY e.hit_ns, e.hit_key, m.namespace, m.key
"""


_CLOSING = (
    f"SELECT {', '.join('l.' + c.strip() for c in LINK.split(','))}"
    " FROM unnest(%s::text[], %s::text[]) AS w(namespace, key) JOIN memory_links AS l"
    " ON l.to_namespace = w.namespace AND l.to_key = w.key"
    " WHERE l.link_type = 'supersedes' AND l.holds_until IS NOT NULL ORDER BY l.id"
)


def link_of(row: Sequence[Any]) -> MemoryLink:
    names = [n.strip() for n in LINK.split(",")]
    return MemoryLink.model_construct(**dict(zip(names, row, strict=True)))


async def _audit(
    conn: Conn,
    action: str,
    namespace: str,
    entry_id: int | None,
    actor: str,
    run_id: str | None,
    data: dict[str, Any],
) -> None:
    if run_id:
        data = {**data, "run_id": run_id}
    operation = "consolidate" if run_id else None  # a link is no memory write
    await conn.execute(_AUDIT, (action, json.dumps(data), operation, namespace, entry_id, actor))


async def add_link(conn: Conn, link: NewLink, actor: str) -> tuple[MemoryLink, bool]:
    await lock_keys(conn, [(link.from_namespace, link.from_key), (link.to_namespace, link.to_key)])
    source = await (await conn.execute(_LIVE, (link.from_namespace, link.from_key))).fetchone()
    target = await (await conn.execute(_LIVE, (link.to_namespace, link.to_key))).fetchone()
    for row, namespace, key in (
        (source, link.from_namespace, link.from_key),
        (target, link.to_namespace, link.to_key),
    ):
        if row is None:
            raise NotFound(f"no live memory {namespace}/{key} to link")
    assert source is not None and target is not None
    same = await (
        await conn.execute(
            _SAME,
            (link.link_type, link.from_namespace, link.from_key, link.to_namespace, link.to_key),
        )
    ).fetchone()
    if same is not None:
        return link_of(same), False
    params = {
        "type": link.link_type,
        "from_ns": link.from_namespace,
        "from_key": link.from_key,
        "from_version": source[1],
        "to_ns": link.to_namespace,
        "to_key": link.to_key,
        "to_version": target[1],
        "valid_from": source[2],
        "reason": link.reason,
        "metadata": link.metadata_text,
        "run_id": link.run_id,
        "actor": actor,
    }
    row = await (await conn.execute(_INSERT, params)).fetchone()
    assert row is not None
    made = link_of(row)
    await _audit(
        conn,
        "memory_link",
        link.from_namespace,
        source[0],
        actor,
        link.run_id,
        {
            "key": link.from_key,
            "link_type": link.link_type,
            "to": f"{link.to_namespace}/{link.to_key}",
            "link_id": made.id,
        },
    )
    return made, True


async def remove_link(conn: Conn, link_id: int, actor: str, run_id: str | None) -> MemoryLink:
    row = await (
        await conn.execute(
            f"UPDATE memory_links SET removed_at = {SQL_NOW}, removed_by = %s,"
            " removed_run_id = %s WHERE id = %s AND removed_at IS NULL"
            f" RETURNING {LINK}",
            (actor, run_id, link_id),
        )
    ).fetchone()
    if row is None:
        raise NotFound(f"no active link {link_id}")
    removed = link_of(row)
    await _audit(
        conn,
        "memory_unlink",
        removed.from_namespace,
        None,
        actor,
        run_id,
        {
            "key": removed.from_key,
            "link_type": removed.link_type,
            "to": f"{removed.to_namespace}/{removed.to_key}",
            "link_id": link_id,
        },
    )
    return removed


async def add_session_link(
    conn: Conn,
    namespace: str,
    key: str,
    session_id: str,
    seq_start: int,
    seq_end: int,
    actor: str,
) -> tuple[MemoryLink, bool]:
    await lock_keys(conn, [(namespace, key)])
    source = await (await conn.execute(_LIVE, (namespace, key))).fetchone()
    if source is None:
        raise NotFound(f"no live memory {namespace}/{key} to link")
    same = await (
        await conn.execute(
            f"SELECT {LINK} FROM memory_links WHERE removed_at IS NULL"
            " AND link_type = 'derived_from' AND from_namespace = %s AND from_key = %s"
            " AND to_session = %s AND seq_start = %s AND seq_end = %s",
            (namespace, key, session_id, seq_start, seq_end),
        )
    ).fetchone()
    if same is not None:
        return link_of(same), False
    row = await (
        await conn.execute(
            "INSERT INTO memory_links (link_type, from_namespace, from_key, from_version,"
            " to_session, seq_start, seq_end, reason, created_by)"
            " VALUES ('derived_from', %s, %s, %s, %s, %s, %s, 'promoted from a session', %s)"
            f" RETURNING {LINK}",
            (namespace, key, source[1], session_id, seq_start, seq_end, actor),
        )
    ).fetchone()
    assert row is not None
    made = link_of(row)
    data = {"key": key, "session_id": session_id, "seq": [seq_start, seq_end], "link_id": made.id}
    await conn.execute(
        _AUDIT, ("session_promote", json.dumps(data), "publish", namespace, source[0], actor)
    )
    return made, True


class PostgresLinkStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, link: NewLink, actor: str) -> tuple[MemoryLink, bool]:
        return await self.db.transaction(
            lambda conn: add_link(conn, link, actor), what="linking memories"
        )

    async def remove(self, link_id: int, actor: str, run_id: str | None = None) -> MemoryLink:
        return await self.db.transaction(
            lambda conn: remove_link(conn, link_id, actor, run_id), what="unlinking memories"
        )

    async def add_session_link(
        self,
        namespace: str,
        key: str,
        session_id: str,
        seq_start: int,
        seq_end: int,
        actor: str,
    ) -> tuple[MemoryLink, bool]:
        return await self.db.transaction(
            lambda conn: add_session_link(
                conn, namespace, key, session_id, seq_start, seq_end, actor
            ),
            what="linking a memory to a session",
        )

    async def get(self, link_id: int) -> MemoryLink | None:
        row = await self.db.fetchone(f"SELECT {LINK} FROM memory_links WHERE id = %s", (link_id,))
        return None if row is None else link_of(row)

    async def of(self, namespace: str, key: str) -> list[MemoryLink]:
        found = await self.db.fetchall(_OF, (namespace, key, namespace, key))
        return [link_of(r) for r in found]

    async def closing(self, addresses: Sequence[tuple[str, str]]) -> list[MemoryLink]:
        if not addresses:
            return []
        found = await self.db.fetchall(
            _CLOSING, ([a[0] for a in addresses], [a[1] for a in addresses])
        )
        return [link_of(r) for r in found]

    async def contradicting(
        self, addresses: list[tuple[str, str]], cut: int | None
    ) -> list[tuple[tuple[str, str], MemoryEntry]]:
        if not addresses:
            return []
        sql = _CONTRADICTING.format(
            columns=rows.listed(rows.MEMORY, ("value",), cut, "m"), still_holds=STILL_HOLDS
        )
        found = await self.db.fetchall(sql, (json.dumps(addresses, ensure_ascii=False),))
        limit = rows.NO_CUT if cut is None else cut
        return [((r[0], r[1]), rows.memory(r[2:], limit)) for r in found]
