"""Who a request acts for: the bearer token's principal over HTTP, the server's own on stdio.

Tokens live in the database (memory/tokens.py). The verifier is handed to MCPServer, whose
bearer middleware answers 401 for a missing or unknown token; a tool then reads the
principal from the verified token of its own HTTP request.
"""

from __future__ import annotations

from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken, TokenVerifier

from abathur_memory.errors import Unavailable
from abathur_memory.memory.namespaces import Principal
from abathur_memory.memory.tokens import TokenService

SCOPE = "abathur-memory"


class DatabaseTokenVerifier(TokenVerifier):
    """Checks each request's token against the database (a revoked token fails at once).

    ``tokens`` is set by the server's lifespan, which opens the database; uvicorn runs that
    before it accepts the first request.
    """

    def __init__(self) -> None:
        self.tokens: TokenService | None = None

    async def verify_token(self, token: str) -> AccessToken | None:
        if self.tokens is None:
            raise Unavailable("the server is starting; try again")
        info = await self.tokens.verify(token)
        if info is None:
            return None
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
