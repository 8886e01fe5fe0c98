"""The HTTP server's routes beside ``/mcp``: ``/metrics`` (Prometheus) and the console.

Every route here checks its own token, as the bearer middleware does on ``/mcp``: the
``Authorization: Bearer`` header, or the console's session cookie (which holds the same
token, HttpOnly). The token is looked up in the database on every request, so a revoked one
stops working at once. Requests also pass the Host/Origin checks of the MCP endpoint (DNS
rebinding): a page fetched through a foreign host name, or posted from a foreign origin, is
refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from abathur_memory.core.principal import Principal
from abathur_memory.errors import Unavailable
from abathur_memory.memory.metrics import facts_text, prometheus_text
from abathur_memory.runtime import Runtime

COOKIE = "abathur_console"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")


@dataclass
class Holder:
    """The runtime, once the server's lifespan has opened it, and where the server listens
    (for the Host/Origin checks)."""

    host: str = "127.0.0.1"
    port: int = 8765
    runtime: Runtime | None = None
    extra_hosts: list[str] = field(default_factory=list)

    def get(self) -> Runtime:
        if self.runtime is None:
            raise Unavailable("the server is starting; try again")
        return self.runtime

    def allowed_hosts(self) -> set[str]:
        names = {self.host, *self.extra_hosts}
        if self.host in LOOPBACK:
            names |= {"127.0.0.1", "localhost", "[::1]"}
        return {f"{n}:{self.port}" for n in names} | (
            {n for n in names} if self.port == 80 else set()
        )

    def allowed_origins(self) -> set[str]:
        return {f"http://{h}" for h in self.allowed_hosts()}


def host_refusal(request: Request, holder: Holder) -> Response | None:
    """421 for a foreign Host, 403 for a foreign Origin (as the MCP endpoint answers). On a
    wildcard address (0.0.0.0, ::) any Host is taken, and the Origin must be that Host."""
    host = request.headers.get("host", "")
    wildcard = holder.host in ("0.0.0.0", "::", "[::]")
    if not wildcard and host not in holder.allowed_hosts():
        return PlainTextResponse("Invalid Host header", status_code=421)
    origin = request.headers.get("origin")
    allowed = {f"http://{host}"} if wildcard else holder.allowed_origins()
    if origin is not None and origin not in allowed:
        return PlainTextResponse("Invalid Origin header", status_code=403)
    return None


def token_of(request: Request) -> str | None:
    """The bearer token of the request, else the console's cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(COOKIE) or None


@dataclass(frozen=True)
class Caller:
    principal: Principal
    token: str
    token_id: str
    by_cookie: bool


async def caller_of(request: Request, holder: Holder) -> Caller | None:
    """Who sent the request (the token checked against the database now), or None."""
    token = token_of(request)
    if token is None:
        return None
    info = await holder.get().tokens.verify(token)
    if info is None:
        return None
    by_cookie = not request.headers.get("authorization")
    return Caller(info.principal, token, info.id, by_cookie)


def unauthorised() -> Response:
    return JSONResponse(
        {"error": "invalid_token", "error_description": "a valid bearer token is required"},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def unavailable(exc: Unavailable) -> Response:
    return JSONResponse(
        {"error": "unavailable", "error_description": f"unavailable: {exc}"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def metrics_endpoint(holder: Holder) -> Callable[[Request], Awaitable[Response]]:
    """``GET /metrics``: the calls this server measured since it started, as Prometheus
    text; an admin's token also sees every principal's calls and the database's gauges."""

    async def endpoint(request: Request) -> Response:
        if (refused := host_refusal(request, holder)) is not None:
            return refused
        try:
            caller = await caller_of(request, holder)
            if caller is None:
                return unauthorised()
            runtime = holder.get()
            principal = caller.principal
            text = prometheus_text(
                runtime.call_metrics, None if principal.admin else principal.actor
            )
            if principal.admin:
                text += facts_text(await runtime.metrics.facts())
        except Unavailable as exc:
            return unavailable(exc)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return endpoint
