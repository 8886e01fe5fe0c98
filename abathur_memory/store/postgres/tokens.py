"""Bearer tokens and denial audit rows on PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import errors

from abathur_memory.core.browse import AuditQuery, AuditRecord
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import Denial, TokenInfo
from abathur_memory.errors import Conflict
from abathur_memory.store.postgres import browse, rows
from abathur_memory.store.postgres.connection import Conn, Database
from abathur_memory.store.postgres.times import SQL_NOW
from abathur_memory.store.shared import denial_row

_LIVE_NAME = "idx_api_tokens_live_name"  # migrations/0001: one live token per name

_FOLD = f"""
UPDATE audit
SET action_data = jsonb_set(action_data, '{{count}}',
                            to_jsonb(COALESCE((action_data->>'count')::bigint, 0) + %s)),
    "timestamp" = {SQL_NOW}
WHERE id = %s
RETURNING id
"""
_INSERT_DENIAL = (
    "INSERT INTO audit (action_type, action_data, result, memory_namespace, actor)"
    " VALUES (%s, %s::jsonb, 'denied', %s, %s) RETURNING id"
)


class PostgresTokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, token_id: str, name: str, token_hash: str, principal: Principal
    ) -> TokenInfo:
        async def insert(conn: Conn) -> TokenInfo:
            try:
                cur = await conn.execute(
                    "INSERT INTO api_tokens (id, name, token_hash, user_id, app_name, project_id,"
                    f" is_admin) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {rows.TOKEN}",
                    (
                        token_id,
                        name,
                        token_hash,
                        principal.user,
                        principal.app,
                        principal.project,
                        principal.admin,
                    ),
                )
            except errors.UniqueViolation as exc:
                if exc.diag.constraint_name == _LIVE_NAME:
                    raise Conflict(
                        f"a live token named {name!r} exists; revoke it or pick a name"
                    ) from None
                raise Conflict("a token with that id or secret exists; create it again") from None
            row = await cur.fetchone()
            assert row is not None
            return rows.token(row)

        return await self.db.run(insert, what="creating a token")

    async def all(self, include_revoked: bool) -> list[TokenInfo]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        found = await self.db.fetchall(
            f"SELECT {rows.TOKEN} FROM api_tokens{where} ORDER BY created_at, row_id"
        )
        return [rows.token(r) for r in found]

    async def revoke(self, id_or_name: str) -> TokenInfo | None:
        row = await self.db.fetchone(
            f"UPDATE api_tokens SET revoked_at = {SQL_NOW}"
            f" WHERE (id = %s OR name = %s) AND revoked_at IS NULL RETURNING {rows.TOKEN}",
            (id_or_name, id_or_name),
            what="revoking a token",
        )
        return None if row is None else rows.token(row)

    async def by_hash(self, token_hash: str) -> TokenInfo | None:
        row = await self.db.fetchone(
            f"SELECT {rows.TOKEN} FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL",
            (token_hash,),
        )
        return None if row is None else rows.token(row)


class PostgresAuditStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def write_denials(
        self, batch: dict[Denial, int], recent: dict[Denial, int]
    ) -> dict[Denial, int]:
        async def write(conn: Conn) -> dict[Denial, int]:
            written: dict[Denial, int] = {}
            folded = [d for d in batch if d in recent]
            if folded:  # add the counts to recent rows that still exist
                ids = await _each_id(conn, _FOLD, [(batch[d], recent[d]) for d in folded])
                still = zip(folded, ids, strict=True)
                written.update((d, recent[d]) for d, found in still if found is not None)
            fresh = [d for d in batch if d not in written]
            if fresh:
                params = [denial_row(d, batch[d]) for d in fresh]
                ids = await _each_id(conn, _INSERT_DENIAL, params)
                written.update((d, i) for d, i in zip(fresh, ids, strict=True) if i is not None)
            return {d: written[d] for d in batch}

        return await self.db.transaction(write, what="auditing denied operations")

    async def count(self) -> int:
        row = await self.db.fetchone("SELECT count(*) FROM audit")
        return int(row[0]) if row else 0

    async def page(self, query: AuditQuery, before_id: int | None, limit: int) -> list[AuditRecord]:
        return await browse.audit_page(self.db, query, before_id, limit)

    async def record(self, actor: str, action: str, data: dict[str, object]) -> int:
        return await browse.record(self.db, actor, action, data)


async def _each_id(conn: Conn, sql: str, params: Sequence[Sequence[object]]) -> list[int | None]:
    """``executemany`` with RETURNING (in the open pipeline): the id each row returned."""
    cur = conn.cursor()
    await cur.executemany(sql, params, returning=True)
    ids: list[int | None] = []
    while True:
        row = await cur.fetchone()
        ids.append(None if row is None else int(row[0]))
        if not cur.nextset():
            return ids
