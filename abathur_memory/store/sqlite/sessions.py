"""Sessions on SQLite: the session row, its append-only event log and its JSON state.

Appending is one insert plus one update of the session row inside ``BEGIN IMMEDIATE``, so
its cost does not grow with the log, and the write lock orders the sequence numbers.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import Any

from abathur_memory.core.records import (
    NewEvent,
    Session,
    SessionChange,
    SessionEvent,
    SessionWithEvents,
)
from abathur_memory.core.replies import Bounds, fitting
from abathur_memory.errors import Conflict, NotFound
from abathur_memory.store.shared import check_state_size
from abathur_memory.store.sqlite import browse, rows, timestamps
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.driver import Connection, IntegrityError

_OLD_TERMINATED = """
SELECT id FROM sessions
WHERE status = 'terminated' AND terminated_at < :cutoff
ORDER BY terminated_at
LIMIT :limit
"""


class SqliteSessionStore:
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
        def insert(conn: Connection) -> Session:
            try:
                row = conn.execute(
                    "INSERT INTO sessions (id, app_name, user_id, project_id, state, metadata)"
                    " VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
                    (session_id, app_name, user_id, project_id, state_text, metadata_text),
                ).fetchone()
            except IntegrityError:
                raise Conflict(f"a session with id {session_id!r} already exists") from None
            return rows.session(row)

        return await self.db.write(insert)

    async def owner(self, session_id: str) -> tuple[str, str] | None:
        row = await self.db.fetchone(
            "SELECT user_id, app_name FROM sessions WHERE id = ?", (session_id,)
        )
        return None if row is None else (row[0], row[1])

    async def get(
        self, session_id: str, events_after: int, events_limit: int, *, cut: int | None = None
    ) -> SessionWithEvents | None:
        limit = rows.NO_CUT if cut is None else cut

        def read(conn: Connection) -> SessionWithEvents | None:
            row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                return None
            events: builtins.list[SessionEvent] = []
            if events_limit:
                start = (
                    max(row["last_seq"] - events_limit, 0) if events_after == -1 else events_after
                )
                events = [
                    rows.event(r, limit)
                    for r in conn.execute(
                        f"SELECT {rows.listed_event_columns(cut)} FROM session_events"
                        " WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                        (session_id, start, events_limit),
                    )
                ]
            return rows.session_with_events(row, events)

        return await self.db.read(read)

    async def events(
        self, session_id: str, start_seq: int, end_seq: int | None, limit: int
    ) -> builtins.list[SessionEvent]:
        found = await self.db.fetchall(
            "SELECT * FROM session_events WHERE session_id = ? AND seq BETWEEN ? AND ?"
            " ORDER BY seq LIMIT ?",
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
        def append(conn: Connection) -> tuple[SessionEvent, Session]:
            row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                raise NotFound(f"no session {session_id!r}")
            check(rows.session(row))
            seq = row["last_seq"] + 1
            added = conn.execute(
                "INSERT INTO session_events (session_id, seq, event_type, actor, content,"
                " state_delta) VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
                (
                    session_id,
                    seq,
                    event.event_type,
                    event.actor,
                    event.content_text,
                    event.delta_text,
                ),
            ).fetchone()
            status = "active" if row["status"] == "created" else row["status"]
            updated = conn.execute(
                "UPDATE sessions SET last_seq = ?, status = ?,"
                " state = CASE WHEN ? IS NULL THEN state ELSE json_patch(state, ?) END,"
                f" last_update_time = {timestamps.SQL_NOW} WHERE id = ? RETURNING *",
                (seq, status, event.delta_text, event.delta_text, session_id),
            ).fetchone()
            check_state_size(updated["state"], max_state_bytes)
            return rows.event(added), rows.session(updated)

        return await self.db.write(append)

    async def change(
        self, session_id: str, decide: Callable[[Session], SessionChange | None]
    ) -> Session:
        def update(conn: Connection) -> Session:
            row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                raise NotFound(f"no session {session_id!r}")
            change = decide(rows.session(row))
            if change is None:
                return rows.session(row)
            sets = [f"last_update_time = {timestamps.SQL_NOW}"]
            params: builtins.list[Any] = []
            if change.status is not None:
                sets.append("status = ?")
                params.append(change.status)
            if change.state_text is not None:
                sets.append("state = json_patch(state, ?)" if change.merge else "state = ?")
                params.append(change.state_text)
            if change.stamp in ("terminated_at", "archived_at"):
                sets.append(f"{change.stamp} = {timestamps.SQL_NOW}")
            updated = conn.execute(
                f"UPDATE sessions SET {', '.join(sets)} WHERE id = ? RETURNING *",
                [*params, session_id],
            ).fetchone()
            if change.max_state_bytes is not None:
                check_state_size(updated["state"], change.max_state_bytes)
            return rows.session(updated)

        return await self.db.write(update)

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
        # rowid breaks ties between sessions created in the same millisecond.
        clauses = ["(created_at, rowid) < (?, CAST(? AS INTEGER))"]
        params: builtins.list[Any] = [before[0] or "\uffff", before[1] or str(2**62)]
        for column, value in (
            ("user_id", user_id),
            ("app_name", app_name),
            ("status", status),
            ("project_id", project_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        cut = None if bounds is None else bounds.field_bytes
        found = await self.db.fetchall(
            f"SELECT rowid AS row_number, {rows.listed_session_columns(cut)} FROM sessions"
            f" WHERE {' AND '.join(clauses)} ORDER BY created_at DESC, rowid DESC LIMIT ?",
            [*params, limit + 1],
        )
        candidates = [rows.session(r, rows.NO_CUT if cut is None else cut) for r in found[:limit]]
        kept = len(candidates) if bounds is None else fitting(candidates, bounds.reply_bytes)
        cursor = None
        if len(found) > kept:
            last = found[kept - 1]
            cursor = (last["created_at"], str(last["row_number"]))
        return candidates[:kept], cursor

    async def deltas(self, session_id: str, end_seq: int) -> builtins.list[dict[str, object]]:
        return await self.db.read(browse.deltas, session_id, end_seq)

    async def terminated_before(self, cutoff: datetime, limit: int | None) -> builtins.list[str]:
        found = await self.db.fetchall(
            _OLD_TERMINATED,
            {"cutoff": timestamps.to_db(cutoff), "limit": -1 if limit is None else limit},
        )
        return [r["id"] for r in found]

    async def archive_terminated(self, cutoff: datetime, limit: int) -> builtins.list[str]:
        def archive(conn: Connection) -> builtins.list[str]:
            ids = [
                r["id"]
                for r in conn.execute(
                    _OLD_TERMINATED, {"cutoff": timestamps.to_db(cutoff), "limit": limit}
                )
            ]
            for session_id in ids:
                conn.execute(
                    f"UPDATE sessions SET status = 'archived', archived_at = {timestamps.SQL_NOW},"
                    f" last_update_time = {timestamps.SQL_NOW} WHERE id = ?",
                    (session_id,),
                )
            return ids

        return await self.db.write(archive)
