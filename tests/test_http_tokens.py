"""`serve --transport streamable-http`: every request needs a bearer token, each token acts as
its own principal, a revoked token stops at once, and the socket is bounded in time."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abathur_memory", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _token(db: Path, name: str, *principal: str) -> str:
    made = _cli(db, "tokens", "create", name, *principal)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(db: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[int]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "abathur_memory",
            "serve",
            "--db",
            str(db),
            "--user",
            "server",
            "--transport",
            "streamable-http",
            "--port",
            str(port),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ABATHUR_EMBEDDER": "fake", **(env or {})},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the server never listened"
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


@contextlib.asynccontextmanager
async def client_with(port: int, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as c,
    ):
        yield c


async def call(client, tool, **args):
    result = await client.call_tool(tool, args)
    return (
        result.is_error,
        result.structured_content,
        result.content[0].text if result.content else "",
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "shared.db"
    assert _cli(path, "init").returncode == 0
    return path


def test_requests_without_a_valid_token_get_401(db):
    _token(db, "alice", "--user", "alice")
    with serving(db) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        for headers in (
            {},
            {"Authorization": "Bearer abm_not-a-token"},
            {"Authorization": "Basic x"},
        ):
            reply = httpx.post(url, json=body, headers=headers, timeout=10)
            assert reply.status_code == 401, (headers, reply.text)


async def test_each_token_acts_as_its_principal_and_revocation_is_immediate(db):
    alice = _token(db, "alice-laptop", "--user", "alice", "--project", "web")
    bob = _token(db, "bob-laptop", "--user", "bob")
    listed = _cli(db, "tokens", "list", "--json")
    assert listed.returncode == 0 and alice not in listed.stdout and bob not in listed.stdout
    with serving(db) as port:
        async with client_with(port, alice) as a, client_with(port, bob) as b:
            error, out, text = await call(
                a, "memory_put", namespace="user:alice:notes", key="k", value="private"
            )
            assert not error, text
            error, _, text = await call(b, "memory_get", namespace="user:alice:notes", key="k")
            assert error and text.startswith("forbidden: "), text
            error, _, text = await call(
                b, "memory_put", namespace="user:bob:notes", key="k", value="mine"
            )
            assert not error, text
            error, out, _ = await call(a, "memory_get", namespace="project:web:x", key="missing")
            assert error  # alice's project namespace is hers to read (not found, not forbidden)
            session = (await call(a, "session_create"))[1]
            assert session["user_id"] == "alice"
            error, _, text = await call(b, "session_get", session_id=session["id"])
            assert error and text.startswith("not_found: "), text
            revoked = _cli(db, "tokens", "revoke", "bob-laptop")
            assert revoked.returncode == 0, revoked.stderr
            with pytest.raises((MCPError, httpx2.HTTPStatusError)):  # refused at once
                await call(b, "memory_get", namespace="user:bob:notes", key="k")
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        reply = httpx.post(
            f"http://127.0.0.1:{port}/mcp",
            json=ping,
            headers={"Authorization": f"Bearer {bob}"},
            timeout=10,
        )
        assert reply.status_code == 401
        async with client_with(port, alice) as a:
            error, out, _ = await call(a, "memory_get", namespace="user:alice:notes", key="k")
            assert not error and out["value"] == "private"


def test_a_port_in_use_is_one_line_and_exit_1(db):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "abathur_memory",
                "serve",
                "--db",
                str(db),
                "--transport",
                "streamable-http",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: port {port} on 127.0.0.1 is already in use")
    assert "serving" not in proc.stderr and proc.stdout == ""


def test_half_open_and_idle_connections_are_closed(db):
    _token(db, "alice", "--user", "alice")
    env = {"ABATHUR_HTTP_HEADER_TIMEOUT_S": "1", "ABATHUR_HTTP_KEEP_ALIVE_S": "1"}
    with serving(db, env=env) as port:
        sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(60)]
        for n, sock in enumerate(sockets):
            if n % 2:
                sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and then nothing
            sock.settimeout(10)  # a 1 s deadline: the old server held them for 25-30 s
        for sock in sockets:
            assert sock.recv(1) == b""  # closed by the server (a timeout here raises)
            sock.close()
