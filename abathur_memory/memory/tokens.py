"""Bearer tokens for the HTTP transport, each naming the principal its requests act as.

A token is 32 random bytes (``abm_`` + URL-safe base64), shown once when it is created. Only
its SHA-256 is stored: a token carries 256 bits of entropy, so a fast hash is as good as a
slow one and keeps every request's check to one indexed read. Every request is checked
against the table (no cache), so a revoked token stops working at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from pydantic import BaseModel

from abathur_memory.core import values
from abathur_memory.errors import Conflict, NotFound
from abathur_memory.memory.namespaces import Principal
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite.database import Database

PREFIX = "abm_"


class TokenInfo(BaseModel):
    id: str
    name: str
    user: str
    app: str
    project: str | None
    admin: bool
    created_at: str
    revoked_at: str | None

    @classmethod
    def from_row(cls, row: driver.Row) -> TokenInfo:
        return cls(
            id=row["id"],
            name=row["name"],
            user=row["user_id"],
            app=row["app_name"],
            project=row["project_id"],
            admin=bool(row["is_admin"]),
            created_at=timestamps.to_iso(row["created_at"]) or "",
            revoked_at=timestamps.to_iso(row["revoked_at"]),
        )

    @property
    def principal(self) -> Principal:
        return Principal(user=self.user, app=self.app, project=self.project, admin=self.admin)


@dataclass(frozen=True)
class NewToken:
    info: TokenInfo
    secret: str  # shown once; only its hash is kept


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TokenService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, name: str, principal: Principal) -> NewToken:
        values.check_identifier(name, what="token name", max_length=128)
        for value, what in ((principal.user, "user"), (principal.app, "app")):
            values.check_identifier(value, what=what, max_length=128)
        if principal.project is not None:
            values.check_identifier(principal.project, what="project", max_length=128)
        secret = PREFIX + secrets.token_urlsafe(32)
        token_id = "tok_" + secrets.token_hex(6)

        def insert(conn: driver.Connection) -> driver.Row:
            if conn.execute(
                "SELECT 1 FROM api_tokens WHERE name = ? AND revoked_at IS NULL", (name,)
            ).fetchone():
                raise Conflict(f"a live token named {name!r} exists; revoke it or pick a name")
            return conn.execute(
                "INSERT INTO api_tokens (id, name, token_hash, user_id, app_name, project_id,"
                " is_admin) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (
                    token_id,
                    name,
                    digest(secret),
                    principal.user,
                    principal.app,
                    principal.project,
                    int(principal.admin),
                ),
            ).fetchone()

        return NewToken(TokenInfo.from_row(await self.db.write(insert)), secret)

    async def list(self, *, include_revoked: bool = False) -> list[TokenInfo]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        rows = await self.db.fetchall(f"SELECT * FROM api_tokens{where} ORDER BY created_at")
        return [TokenInfo.from_row(r) for r in rows]

    async def revoke(self, id_or_name: str) -> TokenInfo:
        values.check_identifier(id_or_name, what="token id or name", max_length=128)

        def revoke(conn: driver.Connection) -> driver.Row:
            row = conn.execute(
                f"UPDATE api_tokens SET revoked_at = {timestamps.SQL_NOW}"
                " WHERE (id = ? OR name = ?) AND revoked_at IS NULL RETURNING *",
                (id_or_name, id_or_name),
            ).fetchone()
            if row is None:
                raise NotFound(f"no live token with id or name {id_or_name!r}")
            return row

        return TokenInfo.from_row(await self.db.write(revoke))

    async def verify(self, secret: str) -> TokenInfo | None:
        """The live token ``secret`` is, or None (unknown, malformed or revoked)."""
        if not isinstance(secret, str) or not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        row = await self.db.fetchone(
            "SELECT * FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
            (digest(secret),),
        )
        return TokenInfo.from_row(row) if row is not None else None
