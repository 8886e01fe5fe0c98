"""Bearer tokens for the HTTP transport, each naming the principal its requests act as.

A token is 32 random bytes (``abm_`` + URL-safe base64), shown once when it is created. Only
its SHA-256 is stored: a token carries 256 bits of entropy, so a fast hash is as good as a
slow one and keeps every request's check to one indexed read. Every request is checked
against the store (no cache), so a revoked token stops working at once.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
from dataclasses import dataclass

from abathur_memory.core import values
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import TokenInfo
from abathur_memory.errors import NotFound
from abathur_memory.store.protocols import TokenStore

PREFIX = "abm_"


@dataclass(frozen=True)
class NewToken:
    info: TokenInfo
    secret: str  # shown once; only its hash is kept


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TokenService:
    def __init__(self, store: TokenStore) -> None:
        self.store = store

    async def create(self, name: str, principal: Principal) -> NewToken:
        name = values.check_identifier(name, what="token name", max_length=128)
        for value, what in ((principal.user, "user"), (principal.app, "app")):
            values.check_identifier(value, what=what, max_length=128)
        if principal.project is not None:
            values.check_identifier(principal.project, what="project", max_length=128)
        secret = PREFIX + secrets.token_urlsafe(32)
        token_id = "tok_" + secrets.token_hex(6)
        info = await self.store.create(token_id, name, digest(secret), principal)
        return NewToken(info, secret)

    async def list(self, *, include_revoked: bool = False) -> builtins.list[TokenInfo]:
        return await self.store.all(include_revoked)

    async def revoke(self, id_or_name: str) -> TokenInfo:
        id_or_name = values.check_identifier(id_or_name, what="token id or name", max_length=128)
        info = await self.store.revoke(id_or_name)
        if info is None:
            raise NotFound(f"no live token with id or name {id_or_name!r}")
        return info

    async def verify(self, secret: str) -> TokenInfo | None:
        """The live token ``secret`` is, or None (unknown, malformed or revoked)."""
        if not isinstance(secret, str) or not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        return await self.store.by_hash(digest(secret))
