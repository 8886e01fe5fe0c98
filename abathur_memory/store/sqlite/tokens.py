"""Bearer tokens and denial audit rows on SQLite."""

from __future__ import annotations

from abathur_memory.core.browse import AuditQuery, AuditRecord
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import Denial, TokenInfo
from abathur_memory.errors import Conflict
from abathur_memory.store.shared import denial_row
from abathur_memory.store.sqlite import browse, rows, timestamps
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.driver import Connection


class SqliteTokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, token_id: str, name: str, token_hash: str, principal: Principal
    ) -> TokenInfo:
        def insert(conn: Connection) -> TokenInfo:
            if conn.execute(
                "SELECT 1 FROM api_tokens WHERE name = ? AND revoked_at IS NULL", (name,)
            ).fetchone():
                raise Conflict(f"a live token named {name!r} exists; revoke it or pick a name")
            row = conn.execute(
                "INSERT INTO api_tokens (id, name, token_hash, user_id, app_name, project_id,"
                " is_admin) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (
                    token_id,
                    name,
                    token_hash,
                    principal.user,
                    principal.app,
                    principal.project,
                    int(principal.admin),
                ),
            ).fetchone()
            return rows.token(row)

        return await self.db.write(insert)

    async def all(self, include_revoked: bool) -> list[TokenInfo]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        found = await self.db.fetchall(f"SELECT * FROM api_tokens{where} ORDER BY created_at")
        return [rows.token(r) for r in found]

    async def revoke(self, id_or_name: str) -> TokenInfo | None:
        def revoke(conn: Connection) -> TokenInfo | None:
            row = conn.execute(
                f"UPDATE api_tokens SET revoked_at = {timestamps.SQL_NOW}"
                " WHERE (id = ? OR name = ?) AND revoked_at IS NULL RETURNING *",
                (id_or_name, id_or_name),
            ).fetchone()
            return None if row is None else rows.token(row)

        return await self.db.write(revoke)

    async def by_hash(self, token_hash: str) -> TokenInfo | None:
        row = await self.db.fetchone(
            "SELECT * FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL", (token_hash,)
        )
        return None if row is None else rows.token(row)


class SqliteAuditStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def write_denials(
        self, batch: dict[Denial, int], recent: dict[Denial, int]
    ) -> dict[Denial, int]:
        return await self.db.write(_write_denials, batch, recent)

    async def count(self) -> int:
        row = await self.db.fetchone("SELECT count(*) FROM audit")
        return int(row[0]) if row else 0

    async def page(self, query: AuditQuery, before_id: int | None, limit: int) -> list[AuditRecord]:
        return await self.db.read(browse.audit_page, query, before_id, limit)

    async def record(self, actor: str, action: str, data: dict[str, object]) -> int:
        return await self.db.write(browse.record, actor, action, data)


def _write_denials(
    conn: Connection, batch: dict[Denial, int], recent: dict[Denial, int]
) -> dict[Denial, int]:
    written: dict[Denial, int] = {}
    for denial, count in batch.items():
        previous = recent.get(denial)
        if previous is not None:
            updated = conn.execute(
                "UPDATE audit SET action_data = json_set(action_data, '$.count',"
                " json_extract(action_data, '$.count') + ?),"
                f" timestamp = {timestamps.SQL_NOW} WHERE id = ? RETURNING id",
                (count, previous),
            ).fetchone()
            if updated is not None:
                written[denial] = previous
                continue
        written[denial] = conn.execute(
            "INSERT INTO audit (action_type, action_data, result, memory_namespace, actor)"
            " VALUES (?, ?, 'denied', ?, ?) RETURNING id",
            denial_row(denial, count),
        ).fetchone()[0]
    return written
