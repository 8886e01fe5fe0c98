"""Serving the MCP server over streamable HTTP, with the socket bound up front and read deadlines.

``MCPServer.run("streamable-http")`` lets uvicorn bind the port, so a port in use surfaces
after the startup banner as a uvicorn log line and exit status 3, and it leaves uvicorn's
defaults in place: a connection that sends nothing, or trickles a request head or body, is
held open for as long as the peer likes (uvicorn's only read timer is the keep-alive one,
armed after a response). Here the caller binds first (a one-line typed error), and the h11
protocol below closes a connection whose request head or body does not arrive in time.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Any

import h11
import uvicorn
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.authentication import AuthenticationError
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from uvicorn.protocols.http.h11_impl import H11Protocol

from abathur_memory.core.throttle import Throttle
from abathur_memory.errors import InvalidInput, Unavailable

log = logging.getLogger(__name__)

# Seconds uvicorn waits on shutdown for open responses before cancelling them. Its default
# (None) waits forever, and a client's SSE GET stream only ends when the app's lifespan does,
# which uvicorn shuts down after that wait.
SHUTDOWN_GRACE_S = 5

TOKEN_CHECK_UNAVAILABLE = "the token cannot be checked now (the database is unavailable); try again"
RETRY_AFTER_S = "5"
UNAVAILABLE_WARNING_EVERY_S = 10.0


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, bound now so a failure is one sentence, not a traceback.

    Port 0 picks a free port (read it back with ``getsockname()``).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise InvalidInput(f"cannot listen on {host}: the host does not resolve ({exc})") from None
    sock = socket.socket(family, kind, proto)
    try:
        if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # Windows: no other process may share it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        else:  # POSIX: rebind at once after a restart; a live listener still gets EADDRINUSE
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise Unavailable(_bind_failure(host, port, exc)) from None
    return sock


def _bind_failure(host: str, port: int, exc: OSError) -> str:
    if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)):
        return f"port {port} on {host} is already in use by another program; pick another port"
    if isinstance(exc, PermissionError) or exc.errno == getattr(errno, "WSAEACCES", errno.EACCES):
        return f"listening on port {port} on {host} is not permitted; pick a port above 1023"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}: it is not an address of this machine"
    return f"cannot listen on port {port} on {host}: {exc.strerror or exc}"


class TokenCheckUnavailable(AuthenticationError):
    """The token could not be checked (the database is down): answered with 503."""


class UnavailableAsAuthError(TokenVerifier):
    """Wraps a verifier so that its Unavailable reaches the client as a 503, not a 500.

    Starlette's AuthenticationMiddleware only turns an ``AuthenticationError`` into a
    response (through its ``on_error``); anything else escapes to the server-error
    middleware, which answers 500 and logs a traceback. The client is not authenticated,
    so it gets a generic sentence; the server's log gets the reason, one warning line at
    most every ``UNAVAILABLE_WARNING_EVERY_S``.
    """

    def __init__(self, inner: TokenVerifier) -> None:
        self.inner = inner
        self._warning = Throttle(UNAVAILABLE_WARNING_EVERY_S)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            return await self.inner.verify_token(token)
        except Unavailable as exc:
            if (held := self._warning.ready()) is not None:
                more = f" ({held} more since the last warning)" if held else ""
                log.warning("cannot check a bearer token: %s%s", exc, more)
            raise TokenCheckUnavailable(TOKEN_CHECK_UNAVAILABLE) from None


def auth_error_response(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    """``on_error`` of the bearer middleware: 503 in the 401's JSON shape when the token
    could not be checked, Starlette's own 400 for any other authentication error."""
    if isinstance(exc, TokenCheckUnavailable):
        body = {"error": "unavailable", "error_description": f"unavailable: {exc}"}
        return JSONResponse(body, status_code=503, headers={"Retry-After": RETRY_AFTER_S})
    return AuthenticationMiddleware.default_on_error(conn, exc)


def answer_unavailable_with_503(app: Starlette) -> None:
    """Give the SDK's bearer middleware in ``app`` our ``on_error`` (it has none)."""
    found = [m for m in app.user_middleware if m.cls is AuthenticationMiddleware]
    if not found:
        raise RuntimeError("the MCP SDK no longer installs its bearer middleware as expected")
    for middleware in found:
        middleware.kwargs["on_error"] = auth_error_response


def auth_kwargs(verifier: TokenVerifier | None, host: str, port: int) -> dict[str, Any]:
    """``MCPServer(...)`` keyword arguments that require a bearer token on ``/mcp``.

    The SDK only installs its bearer middleware when the server is *constructed* with both
    ``token_verifier`` and ``auth``; ``AuthSettings`` insists on an ``issuer_url``, which is
    unused here (no OAuth routes without an ``auth_server_provider``). ``resource_server_url``
    stays None so no OAuth protected-resource metadata is advertised: clients are given a
    static token, and metadata would send OAuth-capable clients looking for an authorization
    server that does not exist.
    """
    if verifier is None:
        return {}
    origin = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    settings = AuthSettings.model_validate({"issuer_url": origin, "resource_server_url": None})
    return {"token_verifier": UnavailableAsAuthError(verifier), "auth": settings}


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus deadlines for receiving a request head and then its body.

    uvicorn (0.54) has no header or body read timeout. The head deadline is armed when a
    connection opens, and on a kept-alive connection when the first byte of the next request
    arrives (until then uvicorn's keep-alive timer covers the idle time); it is a total
    deadline, so dripping a byte at a time does not extend it. The body deadline runs from
    the end of the head to the end of the body. On expiry the connection is closed without a
    response; an application awaiting the body sees ``http.disconnect``.
    """

    header_timeout: float = 10.0
    body_timeout: float | None = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = ""
        super().connection_made(transport)
        self._arm("head", self.header_timeout)

    def data_received(self, data: bytes) -> None:
        if not self._phase and self.conn.their_state is h11.IDLE:
            self._arm("head", self.header_timeout)
        super().data_received(data)
        self._advance()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._advance()  # a pipelined request may have been parsed from the buffer

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _advance(self) -> None:
        """Move the deadline along with h11's view of the peer: head, then body, then none."""
        state = self.conn.their_state
        if self._phase == "head" and state is not h11.IDLE:
            self._disarm()
        if self._phase == "body" and state is not h11.SEND_BODY:
            self._disarm()
        if not self._phase and state is h11.SEND_BODY and self.body_timeout is not None:
            self._arm("body", self.body_timeout)

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expire, phase, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._phase = None, ""

    def _expire(self, phase: str, seconds: float) -> None:
        self._deadline, self._phase = None, ""
        if not self.transport.is_closing():
            log.debug("closing %s: request %s not received within %ss", self.client, phase, seconds)
            self.transport.close()


def make_uvicorn_server(
    server: MCPServer,
    *,
    host: str = "127.0.0.1",
    header_timeout: float = 10.0,
    body_timeout: float | None = 30.0,
    keep_alive_timeout: float = 5.0,
    log_level: str = "warning",
    shutdown_grace: int = SHUTDOWN_GRACE_S,
) -> uvicorn.Server:
    """The uvicorn server for ``server``'s streamable HTTP app (tests keep it to stop it).

    ``host`` feeds the SDK's DNS-rebinding protection (on for loopback hosts), as in
    ``MCPServer.run_streamable_http_async``. Logging is left to the caller's root handlers
    (stderr under the CLI): uvicorn's own log config would send access lines to stdout.
    """
    protocol = type(
        "ConfiguredDeadlineH11Protocol",
        (DeadlineH11Protocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )
    app = server.streamable_http_app(host=host)
    if server.settings.auth is not None:
        answer_unavailable_with_503(app)
    config = uvicorn.Config(
        app,
        http=protocol,
        ws="none",
        lifespan="on",
        log_config=None,
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=keep_alive_timeout,  # type: ignore[arg-type]  # a float works
        timeout_graceful_shutdown=shutdown_grace,
    )
    return uvicorn.Server(config)


async def serve_http(
    server: MCPServer,
    sock: socket.socket,
    *,
    header_timeout: float = 10.0,
    body_timeout: float | None = 30.0,
    keep_alive_timeout: float = 5.0,
    log_level: str = "warning",
) -> None:
    """Serve ``server`` on the already-bound ``sock`` until SIGINT/SIGTERM; closes ``sock``."""
    uvicorn_server = make_uvicorn_server(
        server,
        host=sock.getsockname()[0],
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        keep_alive_timeout=keep_alive_timeout,
        log_level=log_level,
    )
    await uvicorn_server.serve(sockets=[sock])
