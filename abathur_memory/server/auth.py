"""Who a request acts for: the bearer token's principal over HTTP, the server's own on stdio.

Tokens live in the database (memory/tokens.py). The verifier is handed to MCPServer, whose
bearer middleware answers 401 for a missing or unknown token; a tool then reads the
principal from the verified token of its own HTTP request. A refused token is counted and
logged (a short prefix of its SHA-256, never the token), at most once per
``REFUSED_WARNING_EVERY_S`` with the count of the others; a check that could not reach the
database raises Unavailable, which server/http.py answers with 503.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken, TokenVerifier

from abathur_memory.core.throttle import Throttle
from abathur_memory.errors import Unavailable
from abathur_memory.memory.namespaces import Principal
from abathur_memory.memory.tokens import TokenService, digest

log = logging.getLogger(__name__)

SCOPE = "abathur-memory"
REFUSED_WARNING_EVERY_S = 10.0


@dataclass
class AuthCounters:
    """Bearer checks since the server started (for logs and metrics)."""

    accepted: int = 0
    refused: int = 0  # a token was sent, and it is unknown, malformed or revoked
    unavailable: int = 0  # the database could not be asked


class DatabaseTokenVerifier(TokenVerifier):
    """Checks each request's token against the database (a revoked token fails at once).

    ``tokens`` is set by the server's lifespan, which opens the database; uvicorn runs that
    before it accepts the first request.
    """

    def __init__(self) -> None:
        self.tokens: TokenService | None = None
        self.counters = AuthCounters()
        self._refused_warning = Throttle(REFUSED_WARNING_EVERY_S)

    async def verify_token(self, token: str) -> AccessToken | None:
        if self.tokens is None:
            self.counters.unavailable += 1
            raise Unavailable("the server is starting; try again")
        try:
            info = await self.tokens.verify(token)
        except Unavailable:
            self.counters.unavailable += 1
            raise
        if info is None:
            self._refused(token)
            return None
        self.counters.accepted += 1
        return AccessToken(
            token=token,
            client_id=info.id,
            scopes=[SCOPE],
            subject=info.user,
            claims={
                "user": info.user,
                "app": info.app,
                "project": info.project,
                "admin": info.admin,
                "token_name": info.name,
            },
        )

    def _refused(self, token: str) -> None:
        self.counters.refused += 1
        held = self._refused_warning.ready()
        if held is not None:
            log.warning(
                "refused a bearer token (sha256 %s...)%s",
                digest(token)[:8],
                f"; {held} more refused since the last warning" if held else "",
            )


def principal_of(request_context: Any, default: Principal) -> Principal:
    """The principal of the token that authenticated this request, else ``default``."""
    token = _token_of(getattr(request_context, "request", None)) or get_access_token()
    if token is None or not token.claims:
        return default
    claims = token.claims
    return Principal(
        user=str(claims["user"]),
        app=str(claims["app"]),
        project=claims.get("project"),
        admin=bool(claims.get("admin")),
    )


def _token_of(request: Any) -> AccessToken | None:
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    return user.access_token if isinstance(user, AuthenticatedUser) else None
