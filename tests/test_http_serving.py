"""Streamable HTTP serving: the port bound up front, read deadlines, bearer tokens.

A one-tool MCPServer (no database) is served on a free port by uvicorn in a background
thread; the tests talk to it with raw sockets (to hold connections half-open), httpx, and
the SDK's own client. Timeouts are shortened to ~1 s so the file stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.mcpserver import MCPServer

from abathur_memory.errors import Unavailable
from abathur_memory.server.http import auth_kwargs, bind_socket, make_uvicorn_server

HOST = "127.0.0.1"
TOKEN = "s3cret-token"
SLACK = 2.0  # seconds allowed past a deadline before the server counts as not closing
INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
).encode()
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


class OneTokenVerifier:
    """Accepts exactly TOKEN."""

    async def verify_token(self, token: str) -> AccessToken | None:
        if token != TOKEN:
            return None
        return AccessToken(token=token, client_id="tester", scopes=[])


@contextlib.contextmanager
def serving(verifier: TokenVerifier | None = None, **timeouts: Any) -> Iterator[int]:
    """Serve a one-tool server on a free port; yields the port, stops the server on exit."""
    sock = bind_socket(HOST, 0)
    port = sock.getsockname()[1]
    server = MCPServer(name="t", log_level="WARNING", **auth_kwargs(verifier, HOST, port))
    server.add_tool(add)
    options = {"header_timeout": 1.0, "body_timeout": 1.0, "keep_alive_timeout": 1, **timeouts}
    uv = make_uvicorn_server(server, host=HOST, **options)
    thread = threading.Thread(target=asyncio.run, args=(uv.serve(sockets=[sock]),), daemon=True)
    thread.start()
    started = time.monotonic()
    while not uv.started:
        assert thread.is_alive() and time.monotonic() - started < 5, "server did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        uv.should_exit = True
        thread.join(10)
        assert not thread.is_alive(), "server did not stop"


def connect(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=5)


def seconds_until_closed(sock: socket.socket, started: float, limit: float) -> float:
    """Read until the server closes; fail if it stays open past `limit` s from `started`."""
    sock.settimeout(0.05)
    received = b""
    while time.monotonic() - started < limit:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
        if not chunk:
            return time.monotonic() - started
        received += chunk
    pytest.fail(f"still open after {limit} s (received {received[:80]!r})")


def head(port: int, method: str, length: int | None = None, extra: str = "") -> bytes:
    lines = [f"{method} /mcp HTTP/1.1", f"Host: {HOST}:{port}", extra]
    if length is not None:
        lines += [f"Content-Length: {length}", *(f"{k}: {v}" for k, v in MCP_HEADERS.items())]
    return ("\r\n".join(line for line in lines if line) + "\r\n\r\n").encode()


def test_bind_socket_reports_a_port_in_use_in_one_sentence() -> None:
    other = socket.socket()
    other.bind((HOST, 0))
    other.listen()
    port = other.getsockname()[1]
    try:
        with pytest.raises(Unavailable) as caught:
            bind_socket(HOST, port)
    finally:
        other.close()
    message = str(caught.value)
    assert message.startswith(f"port {port} on {HOST} is already in use")
    assert "\n" not in message and "Errno" not in message


def test_bind_socket_listens_at_once() -> None:
    sock = bind_socket(HOST, 0)
    try:
        socket.create_connection(sock.getsockname(), timeout=2).close()  # queued, not refused
    finally:
        sock.close()


def test_a_silent_connection_is_closed_after_the_header_timeout() -> None:
    with serving() as port, connect(port) as sock:
        elapsed = seconds_until_closed(sock, time.monotonic(), 1.0 + SLACK)
        assert elapsed > 0.8


def test_a_partial_request_head_is_closed_after_the_header_timeout() -> None:
    with serving() as port, connect(port) as sock:
        started = time.monotonic()
        sock.sendall(f"POST /mcp HTTP/1.1\r\nHost: {HOST}\r\n".encode())
        assert seconds_until_closed(sock, started, 1.0 + SLACK) > 0.8


def test_dripping_the_head_does_not_extend_the_header_deadline() -> None:
    with serving() as port, connect(port) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /mcp HTTP/1.1\r\n")
        sock.settimeout(0.1)
        while time.monotonic() - started < 1.0 + SLACK:
            try:
                sock.sendall(b"X-Pad: 1\r\n")
                if sock.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        else:
            pytest.fail("a dripped request head kept the connection open")


def test_sixty_half_open_connections_are_all_closed_and_service_continues() -> None:
    with serving() as port:
        socks = [connect(port) for _ in range(60)]
        started = time.monotonic()
        try:
            for sock in socks:
                sock.sendall(f"POST /mcp HTTP/1.1\r\nHost: {HOST}\r\n".encode())
            for sock in socks:
                seconds_until_closed(sock, started, 1.0 + SLACK)
        finally:
            for sock in socks:
                sock.close()
        response = httpx.post(f"http://{HOST}:{port}/mcp", content=INITIALIZE, headers=MCP_HEADERS)
        assert response.status_code == 200


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() -> None:
    with serving(header_timeout=30.0) as port, connect(port) as sock:
        sock.sendall(f"GET /missing HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
        response = b""
        while b"Not Found" not in response:
            response += sock.recv(65536)
        assert response.startswith(b"HTTP/1.1 404") and b"connection: close" not in response
        elapsed = seconds_until_closed(sock, time.monotonic(), 1.0 + SLACK)
        assert elapsed > 0.8


def test_a_partial_second_request_head_is_closed_after_the_header_timeout() -> None:
    """uvicorn cancels its keep-alive timer on any byte; the head deadline takes over."""
    with serving(keep_alive_timeout=30) as port, connect(port) as sock:
        sock.sendall(f"GET /missing HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
        response = b""
        while b"Not Found" not in response:
            response += sock.recv(65536)
        time.sleep(1.2)  # longer than the first request's head deadline
        started = time.monotonic()
        sock.sendall(b"GET /missing HTTP/1.1\r\n")
        assert seconds_until_closed(sock, started, 1.0 + SLACK) > 0.8


def test_a_stalled_request_body_is_closed_after_the_body_timeout() -> None:
    with serving(header_timeout=30.0) as port, connect(port) as sock:
        sock.sendall(head(port, "POST", length=len(INITIALIZE)) + INITIALIZE[:10])
        started = time.monotonic()
        assert seconds_until_closed(sock, started, 1.0 + SLACK) > 0.8


def test_a_slow_but_steady_request_within_the_deadlines_succeeds() -> None:
    """Head and body each take ~0.6 s of a 1 s deadline: together longer than either."""
    with serving() as port, connect(port) as sock:
        request_head = head(port, "POST", length=len(INITIALIZE), extra="Connection: close")
        for data in (request_head, INITIALIZE):
            step = len(data) // 6 + 1
            for start in range(0, len(data), step):
                sock.sendall(data[start : start + step])
                time.sleep(0.1)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
        assert response.startswith(b"HTTP/1.1 200"), response[:200]
        assert b'"serverInfo"' in response


@pytest.mark.anyio
async def test_the_sdk_client_calls_a_tool() -> None:
    with serving() as port:
        async with Client(f"http://{HOST}:{port}/mcp") as client:
            result = await client.call_tool("add", {"a": 2, "b": 3})
    assert result.structured_content == {"result": 5}


def test_with_a_verifier_requests_need_the_right_bearer_token() -> None:
    with serving(OneTokenVerifier()) as port:
        url = f"http://{HOST}:{port}/mcp"

        def post(**headers: str) -> httpx.Response:
            return httpx.post(url, content=INITIALIZE, headers={**MCP_HEADERS, **headers})

        assert post().status_code == 401
        assert post(Authorization="Bearer wrong").status_code == 401
        assert post(Authorization=f"Basic {TOKEN}").status_code == 401
        refused = post()
        assert refused.headers["www-authenticate"].startswith("Bearer ")
        assert post(Authorization=f"Bearer {TOKEN}").status_code == 200


class DownVerifier:
    """A verifier whose database is down."""

    async def verify_token(self, token: str) -> AccessToken | None:
        raise Unavailable("lost the connection to PostgreSQL at postgresql://db-host/prod: gone")


def test_a_token_check_that_cannot_reach_the_database_is_503_not_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO), serving(DownVerifier()) as port:
        url = f"http://{HOST}:{port}/mcp"
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}
        replies = [httpx.post(url, content=INITIALIZE, headers=headers) for _ in range(3)]
        missing = httpx.post(url, content=INITIALIZE, headers=MCP_HEADERS)
    for reply in replies:
        assert reply.status_code == 503, reply.text
        assert reply.headers["content-type"] == "application/json"
        assert reply.headers["retry-after"]
        body = reply.json()
        assert body["error"] == "unavailable"
        assert body["error_description"].startswith("unavailable: ")
        assert "db-host" not in reply.text and "Traceback" not in reply.text
    assert missing.status_code == 401  # no token: nothing to check, still 401
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.exc_info]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "db-host" in warned[0], warned  # one line, not one per request


@pytest.mark.anyio
async def test_with_a_verifier_the_sdk_client_works_with_the_token() -> None:
    with serving(OneTokenVerifier()) as port:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(streamable_http_client(f"http://{HOST}:{port}/mcp", http_client=http)) as client,
        ):
            result = await client.call_tool("add", {"a": 4, "b": 5})
    assert result.structured_content == {"result": 9}


def test_shutdown_is_not_held_up_by_an_open_event_stream() -> None:
    """uvicorn's default waits forever for an SSE GET stream, which only shutdown ends."""
    stream_open = threading.Event()
    with httpx.Client(timeout=None) as http:  # outlives the server, so the stream stays open
        with serving(shutdown_grace=1) as port:
            url = f"http://{HOST}:{port}/mcp"
            reply = http.post(url, content=INITIALIZE, headers=MCP_HEADERS)
            headers = {
                "Accept": "text/event-stream",
                "Mcp-Session-Id": reply.headers["mcp-session-id"],
                "Mcp-Protocol-Version": "2025-06-18",
            }

            def listen() -> None:
                with (
                    contextlib.suppress(httpx.HTTPError),
                    http.stream("GET", url, headers=headers) as stream,
                ):
                    stream_open.set()
                    for _ in stream.iter_bytes():
                        pass

            threading.Thread(target=listen, daemon=True).start()
            assert stream_open.wait(5)
            started = time.monotonic()
        assert time.monotonic() - started < 1 + SLACK
