"""The embedded model is loaded when something needs an embedding and freed when it has been
idle: an idle `serve` once held 310 MB because the model was loaded at start (the memory
indexer embedded the seeded app memories of a new database)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
from conftest import settings_for

from abathur_memory.core.principal import Principal
from abathur_memory.embedders.embedded import EmbeddedEmbedder
from abathur_memory.runtime import open_runtime

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ALICE = Principal(user="alice", app="abathur", project="website")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def in_memory(embedder: EmbeddedEmbedder) -> bool:
    """Whether the model itself is loaded (its onnxruntime session exists)."""
    return embedder._session is not None


async def until(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout  # a guard against hanging, not a measurement
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_serve_loads_the_model_on_first_need_and_frees_it_when_idle(db_url):
    settings = settings_for(db_url, embedder="embedded", embedder_idle_unload_s=300)
    async with open_runtime(settings) as runtime:
        embedder = runtime.embedder
        assert isinstance(embedder, EmbeddedEmbedder)  # as the settings asked
        clock = Clock()
        embedder.clock = clock
        await runtime.start_serving()
        indexer = runtime.memory_indexer
        await until(lambda: indexer.rounds >= 3, "the memory indexer never ran")
        # A new database holds the seeded app memories: nothing asked for an embedding yet.
        assert not in_memory(embedder) and not embedder.loaded

        found = await runtime.memories.search(ALICE, "default workflow steps", mode="semantic")
        assert found.mode_used == "semantic" and in_memory(embedder)
        # Now that the model is loaded, the seeded memories are embedded too.
        deadline = time.monotonic() + 60
        while (await runtime.memories.search(ALICE, "workflow", mode="keyword")).pending:
            assert time.monotonic() < deadline, "the seeded memories were never embedded"
            await asyncio.sleep(0.05)

        clock.advance(299)
        assert not embedder.unload_if_idle() and in_memory(embedder)
        clock.advance(2)
        assert embedder.unload_if_idle() and not in_memory(embedder)

        await runtime.memories.put(ALICE, "user:alice:notes", "k", "the heron came back")
        await until(lambda: in_memory(embedder), "a new memory was not embedded")


def test_an_embedding_in_progress_keeps_the_model():
    clock = Clock()
    embedder = EmbeddedEmbedder(idle_unload_s=10, clock=clock)
    reference = embedder._embed_all(["a kingfisher by the river"])
    inside, leave = threading.Event(), threading.Event()
    results: list = []

    def embed() -> None:
        with embedder._using() as session:  # an embedding that takes a while
            inside.set()
            leave.wait(30)
            results.append(embedder._run(session, ["a kingfisher by the river"]))

    worker = threading.Thread(target=embed)
    worker.start()
    assert inside.wait(30)
    clock.advance(3600)
    assert not embedder.unload_if_idle() and in_memory(embedder)  # in use: kept
    leave.set()
    worker.join(30)
    assert results and (results[0] == reference).all()
    clock.advance(9)
    assert not embedder.unload_if_idle()  # idle since the embedding ended, not before
    clock.advance(2)
    assert embedder.unload_if_idle() and not in_memory(embedder)
    again = embedder._embed_all(["a kingfisher by the river"])  # loads it again
    assert in_memory(embedder) and (again == reference).all()


def test_zero_keeps_the_model_loaded():
    clock = Clock()
    embedder = EmbeddedEmbedder(idle_unload_s=0, clock=clock)
    embedder._embed_all(["x"])
    clock.advance(10**6)
    assert not embedder.unload_if_idle() and in_memory(embedder)


async def test_the_server_frees_an_idle_model_by_itself(tmp_path):
    settings = settings_for(tmp_path / "a.db", embedder="embedded", embedder_idle_unload_s=0.2)
    async with open_runtime(settings) as runtime:
        await runtime.start_serving()
        await until(lambda: runtime.memory_indexer.rounds >= 1, "the memory indexer never ran")
        await runtime.memories.search(ALICE, "anything at all", mode="semantic")
        embedder = runtime.embedder
        assert isinstance(embedder, EmbeddedEmbedder)  # as the settings asked
        assert in_memory(embedder)
        await until(lambda: not in_memory(embedder), "the idle model was never freed")
