"""Sessions on PostgreSQL: the session row, its append-only event log and its JSON state.

An append or a change reads the session ``FOR NO KEY UPDATE`` (the row lock that orders
sequence numbers and state merges; unlike FOR UPDATE it does not hold up other transactions'
foreign-key checks, such as creating a task for the session), lets the service's function
judge it, and writes with one statement, all in one implicit transaction (connection.py,
``pipelined``): two round trips. The JSON merge patch is applied here (merge.py).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import Any

from psycopg import errors
from psycopg.rows import TupleRow

from abathur_memory.core.records import (
    NewEvent,
    Session,
    SessionChange,
    SessionEvent,
    SessionWithEvents,
)
from abathur_memory.core.replies import Bounds, fitting
from abathur_memory.errors import Conflict, NotFound
from abathur_memory.store.postgres import browse, rows
from abathur_memory.store.postgres.connection import Conn, Database, Queued
from abathur_memory.store.postgres.merge import merged_text
from abathur_memory.store.postgres.times import (
    SQL_NOW,
    at_ms,
    cursor_position,
    cursor_text,
    sql_iso,
)
from abathur_memory.store.shared import check_state_size

_LOCKED = f"SELECT {rows.SESSION} FROM sessions WHERE id = %s FOR NO KEY UPDATE"

# The session and a page of its events in one statement, so in one snapshot; {events}:
# the event columns, long ones cut (_event_columns).
_WITH_EVENTS = f"""
SELECT {rows.columns(rows.SESSION, "s")}, (
    SELECT COALESCE(jsonb_agg(jsonb_build_array({{events}}) ORDER BY e.seq), '[]')
    FROM (SELECT * FROM session_events AS e
          WHERE e.session_id = s.id
            AND e.seq > CASE WHEN %(after)s = -1 THEN greatest(s.last_seq - %(limit)s, 0)
                             ELSE %(after)s END
          ORDER BY e.seq LIMIT %(limit)s) AS e
)
FROM sessions AS s WHERE s.id = %(id)s
"""


def _event_columns(cut: int | None) -> str:
    """An event inside jsonb_build_array, as rows.event reads it: long content and delta
    cut, created_at as its ISO text, then the full sizes of content and delta."""
    return (
        f"e.seq, e.event_type, e.actor, {rows.cut_expression('e.content', cut)},"
        f" {rows.cut_expression('e.state_delta', cut)}, {sql_iso('e.created_at')},"
        " octet_length(e.content::text), octet_length(e.state_delta::text)"
    )


_APPEND = f"""
WITH added AS (
    INSERT INTO session_events (session_id, seq, event_type, actor, content, state_delta)
    VALUES (%(id)s, %(seq)s, %(event_type)s, %(actor)s, %(content)s::jsonb, %(delta)s::jsonb)
    RETURNING {rows.EVENT}
), updated AS (
    UPDATE sessions SET last_seq = %(seq)s, status = %(status)s,
        state = COALESCE(%(state)s::jsonb, state), last_update_time = {SQL_NOW}
    WHERE id = %(id)s
    RETURNING {rows.SESSION}
)
SELECT added.*, updated.* FROM added, updated
"""

_OLD_TERMINATED = """
SELECT id FROM sessions
WHERE status = 'terminated' AND terminated_at < %(cutoff)s
ORDER BY terminated_at, row_id
LIMIT %(limit)s
"""

_ARCHIVE = f"""
WITH picked AS (
    SELECT id, terminated_at, row_id FROM sessions
    WHERE status = 'terminated' AND terminated_at < %(cutoff)s
    ORDER BY terminated_at, row_id
    LIMIT %(limit)s
    FOR NO KEY UPDATE SKIP LOCKED
), archived AS (
    UPDATE sessions AS s
    SET status = 'archived', archived_at = {SQL_NOW}, last_update_time = {SQL_NOW}
    FROM picked AS p WHERE s.id = p.id
    RETURNING s.id
)
SELECT p.id FROM picked AS p JOIN archived AS a ON a.id = p.id
ORDER BY p.terminated_at, p.row_id
"""


class PostgresSessionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        session_id: str,
        app_name: str,
        user_id: str,
        project_id: str | None,
        state_text: str,
        metadata_text: str,
    ) -> Session:
        async def insert(conn: Conn) -> Session:
            try:
                cur = await conn.execute(
                    "INSERT INTO sessions (id, app_name, user_id, project_id, state, metadata)"
                    f" VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb) RETURNING {rows.SESSION}",
                    (session_id, app_name, user_id, project_id, state_text, metadata_text),
                )
            except errors.UniqueViolation:
                raise Conflict(f"a session with id {session_id!r} already exists") from None
            row = await cur.fetchone()
            assert row is not None
            return rows.session(row)

        return await self.db.run(insert, what="creating a session")

    async def owner(self, session_id: str) -> tuple[str, str] | None:
        row = await self.db.fetchone(
            "SELECT user_id, app_name FROM sessions WHERE id = %s", (session_id,)
        )
        return None if row is None else (row[0], row[1])

    async def get(
        self, session_id: str, events_after: int, events_limit: int, *, cut: int | None = None
    ) -> SessionWithEvents | None:
        row = await self.db.fetchone(
            _WITH_EVENTS.format(events=_event_columns(cut)),
            {"id": session_id, "after": events_after, "limit": events_limit},
        )
        if row is None:
            return None
        limit = rows.NO_CUT if cut is None else cut
        events = [rows.event(e, limit) for e in row[-1]]
        return rows.session_with_events(row, events)

    async def events(
        self, session_id: str, start_seq: int, end_seq: int | None, limit: int
    ) -> builtins.list[SessionEvent]:
        found = await self.db.fetchall(
            f"SELECT {rows.EVENT} FROM session_events"
            " WHERE session_id = %s AND seq BETWEEN %s AND %s ORDER BY seq LIMIT %s",
            (session_id, start_seq, end_seq if end_seq is not None else 2**62, limit),
        )
        return [rows.event(r) for r in found]

    async def append(
        self,
        session_id: str,
        event: NewEvent,
        check: Callable[[Session], None],
        max_state_bytes: int,
    ) -> tuple[SessionEvent, Session]:
        async def queue(conn: Conn) -> Queued:
            _, current = await _locked(conn, session_id)
            check(current)
            state_text = None
            if event.delta_text is not None:
                state_text = merged_text(current.state, event.delta_text)
                check_state_size(state_text, max_state_bytes)
            params = {
                "id": session_id,
                "seq": current.last_seq + 1,
                "event_type": event.event_type,
                "actor": event.actor,
                "content": event.content_text,
                "delta": event.delta_text,
                "status": "active" if current.status == "created" else current.status,
                "state": state_text,
            }
            return await conn.execute(_APPEND, params)

        found = await self.db.pipelined(queue, what="appending an event")
        return rows.event(found[0][:6]), rows.session(found[0][6:])

    async def change(
        self, session_id: str, decide: Callable[[Session], SessionChange | None]
    ) -> Session:
        async def queue(conn: Conn) -> Queued:
            row, current = await _locked(conn, session_id)
            change = decide(current)
            if change is None:
                return [row]
            sets = [f"last_update_time = {SQL_NOW}"]
            params: builtins.list[Any] = []
            if change.status is not None:
                sets.append("status = %s")
                params.append(change.status)
            if change.state_text is not None:
                state_text = change.state_text
                if change.merge:
                    state_text = merged_text(current.state, state_text)
                if change.max_state_bytes is not None:
                    check_state_size(state_text, change.max_state_bytes)
                sets.append("state = %s::jsonb")
                params.append(state_text)
            if change.stamp in ("terminated_at", "archived_at"):
                sets.append(f"{change.stamp} = {SQL_NOW}")
            return await conn.execute(
                f"UPDATE sessions SET {', '.join(sets)} WHERE id = %s RETURNING {rows.SESSION}",
                [*params, session_id],
            )

        found = await self.db.pipelined(queue, what="updating a session")
        return rows.session(found[0])

    async def page(
        self,
        *,
        user_id: str | None,
        app_name: str | None,
        status: str | None,
        project_id: str | None,
        before: tuple[str, str],
        limit: int,
        bounds: Bounds | None = None,
    ) -> tuple[builtins.list[Session], tuple[str, str] | None]:
        # row_id breaks ties between sessions created in the same millisecond.
        clauses = ["(created_at, row_id) < (%s::timestamptz, %s::bigint)"]
        params: builtins.list[Any] = list(cursor_position(before))
        for column, value in (
            ("user_id", user_id),
            ("app_name", app_name),
            ("status", status),
            ("project_id", project_id),
        ):
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        cut = None if bounds is None else bounds.field_bytes
        found = await self.db.fetchall(
            f"SELECT row_id, {rows.listed(rows.SESSION, ('state',), cut)} FROM sessions"
            f" WHERE {' AND '.join(clauses)} ORDER BY created_at DESC, row_id DESC LIMIT %s",
            [*params, limit + 1],
        )
        limited = rows.NO_CUT if cut is None else cut
        candidates = [rows.session(r[1:], limited) for r in found[:limit]]
        kept = len(candidates) if bounds is None else fitting(candidates, bounds.reply_bytes)
        cursor = None
        if len(found) > kept:
            last = found[kept - 1]
            cursor = (cursor_text(last[9]), str(last[0]))
        return candidates[:kept], cursor

    async def terminated_before(self, cutoff: datetime, limit: int | None) -> builtins.list[str]:
        found = await self.db.fetchall(_OLD_TERMINATED, {"cutoff": at_ms(cutoff), "limit": limit})
        return [r[0] for r in found]

    async def archive_terminated(self, cutoff: datetime, limit: int) -> builtins.list[str]:
        found = await self.db.fetchall(
            _ARCHIVE, {"cutoff": at_ms(cutoff), "limit": limit}, what="archiving sessions"
        )
        return [r[0] for r in found]

    async def deltas(self, session_id: str, end_seq: int) -> builtins.list[dict[str, object]]:
        return await browse.deltas(self.db, session_id, end_seq)


async def _locked(conn: Conn, session_id: str) -> tuple[TupleRow, Session]:
    """The session's row, locked until the transaction ends, and its record."""
    row = await (await conn.execute(_LOCKED, (session_id,))).fetchone()
    if row is None:
        raise NotFound(f"no session {session_id!r}")
    return row, rows.session(row)
