"""PostgreSQL going away and coming back, on a server of this module's own (stopped and
started again here): calls fail fast with ``unavailable`` once the server is known to be
down, the HTTP token check answers 503 (not a 500 with a traceback), and everything works
again after the restart without restarting abathur-memory."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pg_server
import pytest
from conftest import settings_for

from abathur_memory.config import Settings
from abathur_memory.core.principal import Principal
from abathur_memory.errors import Unavailable
from abathur_memory.runtime import open_runtime
from abathur_memory.server.app import create_server
from abathur_memory.server.auth import DatabaseTokenVerifier
from abathur_memory.server.http import bind_socket, make_uvicorn_server
from abathur_memory.store.postgres.store import PostgresStore

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

POOL_TIMEOUT_S = 5.0
CALLS = 10
NS = "user:alice:notes"
ALICE = Principal(user="alice", app="abathur")
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@dataclass
class Server:
    base: Path
    admin: str

    def stop(self) -> None:
        pg_server.stop_postgres(self.base, delete=False)

    def start(self) -> None:
        assert pg_server.start_postgres(self.base, keep_data=True) == self.admin


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(prefix="abathur-pg-", dir=shm if shm.is_dir() else None))
    try:
        yield Server(base, pg_server.start_postgres(base, keep_data=True))
    finally:
        pg_server.stop_postgres(base, delete=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def url(server: Server) -> Iterator[str]:
    """A database of its own, which survives the server's restarts."""
    name = f"o_{uuid.uuid4().hex[:12]}"
    yield pg_server.fresh_database(server.admin, name)
    server.start()  # a failed test may have left it stopped
    pg_server.drop_database(server.admin, name)


def outage_settings(url: str) -> Settings:
    return settings_for(url, pg_pool_timeout_s=POOL_TIMEOUT_S, pg_pool_min=1, pg_pool_max=4)


T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], what: str, limit: float = 60.0) -> T:
    deadline = time.monotonic() + limit
    while True:
        try:
            if (found := await check()) is not None:
                return found
        except Unavailable:
            pass
        assert time.monotonic() < deadline, f"{what} did not happen within {limit} s"
        await asyncio.sleep(0.2)


async def test_calls_fail_fast_while_postgresql_is_down_and_work_after_it_returns(server, url):
    async with open_runtime(outage_settings(url)) as runtime:
        await runtime.memories.put(ALICE, NS, "k", "before")
        assert isinstance(runtime.store, PostgresStore)
        breaker = runtime.store.database.breaker
        server.stop()
        with pytest.raises(Unavailable):  # the first call finds out (lost connection)
            await runtime.memories.get(ALICE, NS, "k")

        async def known_down():
            return True if breaker.is_open else None

        await eventually(known_down, "the circuit opening", limit=POOL_TIMEOUT_S * 3)
        rejected = breaker.rejected
        started = time.monotonic()
        for _ in range(CALLS):
            with pytest.raises(Unavailable, match="unreachable"):
                await runtime.memories.get(ALICE, NS, "k")
        elapsed = time.monotonic() - started
        assert breaker.rejected - rejected == CALLS  # none of them waited for the pool
        assert elapsed < CALLS * POOL_TIMEOUT_S / 5, elapsed  # far below ten pool timeouts

        server.start()

        async def read():
            return (await runtime.memories.get(ALICE, NS, "k")).value

        assert await eventually(read, "a read after the restart") == "before"
        assert not breaker.is_open and breaker.trips == 1
        assert (await runtime.memories.put(ALICE, NS, "k", "after")).version == 2


def _serve(url: str, stop: threading.Event, port_box: list[int]) -> None:
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = create_server(outage_settings(url), verifier=DatabaseTokenVerifier(), port=port)
    uv = make_uvicorn_server(server, shutdown_grace=1)

    async def run() -> None:
        task = asyncio.create_task(uv.serve(sockets=[sock]))
        while not uv.started:
            await asyncio.sleep(0.01)
        port_box.append(port)
        await asyncio.to_thread(stop.wait)
        uv.should_exit = True
        await task

    asyncio.run(run())


def test_the_token_check_answers_503_while_postgresql_is_down(server, url, caplog):
    async def make_token() -> str:
        async with open_runtime(outage_settings(url)) as runtime:
            return (await runtime.tokens.create("laptop", ALICE)).secret

    token = asyncio.run(make_token())
    stop, port_box = threading.Event(), list[int]()
    thread = threading.Thread(target=_serve, args=(url, stop, port_box), daemon=True)
    with caplog.at_level(logging.WARNING):
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not port_box:
                assert thread.is_alive() and time.monotonic() < deadline, "no server"
                time.sleep(0.01)
            endpoint = f"http://127.0.0.1:{port_box[0]}/mcp"
            headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}

            def post() -> httpx.Response:
                return httpx.post(endpoint, json=INITIALIZE, headers=headers, timeout=60)

            assert post().status_code == 200
            server.stop()
            started = time.monotonic()
            replies = [post() for _ in range(CALLS)]
            elapsed = time.monotonic() - started
            server.start()
            deadline = time.monotonic() + 60
            while (back := post()).status_code != 200:
                assert back.status_code == 503, back.text
                assert time.monotonic() < deadline, "still refused after the restart"
                time.sleep(0.2)
        finally:
            stop.set()
            thread.join(30)
    assert not thread.is_alive()
    for reply in replies:
        assert reply.status_code == 503, reply.text
        body = reply.json()
        assert body["error"] == "unavailable" and body["error_description"].startswith(
            "unavailable: "
        )
        assert "Traceback" not in reply.text
    assert elapsed < CALLS * POOL_TIMEOUT_S / 5, elapsed  # not a pool timeout each
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    ]
