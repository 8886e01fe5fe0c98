"""The HTTP server (``/mcp``, ``/metrics``, ``/ui``) in-process on a free loopback port,
over either backend, and tokens made through the services."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import settings_for

from abathur_memory.core.principal import Principal
from abathur_memory.runtime import open_runtime
from abathur_memory.server.app import create_server
from abathur_memory.server.auth import DatabaseTokenVerifier
from abathur_memory.server.http import bind_socket, make_uvicorn_server


def make_token(db: Path | str, name: str, **principal: Any) -> str:
    """A token for ``principal`` (user alice unless told), made as `tokens create` does."""

    async def create() -> str:
        async with open_runtime(settings_for(db)) as runtime:
            made = await runtime.tokens.create(name, Principal(**{"user": "alice", **principal}))
            return made.secret

    return asyncio.run(create())


def revoke_token(db: Path | str, name: str) -> None:
    async def revoke() -> None:
        async with open_runtime(settings_for(db)) as runtime:
            await runtime.tokens.revoke(name)

    asyncio.run(revoke())


@contextlib.contextmanager
def serving(db: Path | str, **settings: Any) -> Iterator[int]:
    """``serve --transport streamable-http`` in a thread; yields its port."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = create_server(
        settings_for(db, user="server", **settings), verifier=DatabaseTokenVerifier(), port=port
    )
    uv = make_uvicorn_server(server, host="127.0.0.1", shutdown_grace=1)
    thread = threading.Thread(target=asyncio.run, args=(uv.serve(sockets=[sock]),), daemon=True)
    thread.start()
    started = time.monotonic()
    while not uv.started:
        assert thread.is_alive() and time.monotonic() - started < 60, "server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        uv.should_exit = True
        thread.join(30)


ALICE = Principal(user="alice", app="abathur", project="website")


def seed(db: Path | str) -> dict[str, str]:
    """What the console tests look at: alice's memory in two versions (the second holding a
    ``<script>``), bob's private memory, a session with a state delta, a task, a denial."""

    async def fill() -> dict[str, str]:
        async with open_runtime(settings_for(db)) as rt:
            alice, bob = ALICE, Principal(user="bob", app="abathur")
            await rt.memories.put(alice, "user:alice:notes", "editor", {"name": "vim"})
            await rt.memories.put(
                alice, "user:alice:notes", "editor", {"name": "helix", "note": SCRIPT}
            )
            await rt.memories.put(
                alice, "project:website:facts", "db", "postgres holds editor data"
            )
            await rt.memories.put(bob, "user:bob:secret", "plan", "bob's editor plan")
            session = await rt.sessions.create(alice, state={"topic": "setup"})
            await rt.sessions.append(
                alice, session.id, "message", "user", {"text": "hi"}, state_delta={"step": 1}
            )
            await rt.sessions.append(
                alice, session.id, "message", "user", {"text": "next"}, state_delta={"step": 2}
            )
            task = await rt.tasks.create(alice, prompt="index the docs", agent_type="indexer")
            with contextlib.suppress(Exception):
                await rt.memories.get(alice, "user:bob:secret", "plan")  # a denial, audited
            await rt.recorder.flush()
            while True:  # keywords and vectors indexed now, not by the server a moment later
                done = await rt.memory_indexer.catch_up()
                if not done.keywords and not done.embedded:
                    break
            return {"session": session.id, "task": task.id}

    return asyncio.run(fill())


SCRIPT = "<script>document.title='owned'</script>"
