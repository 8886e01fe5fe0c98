"""The runtime is the one place services are wired: given an embedder, every service that
embeds uses it (tests and benchmarks bring their own model this way)."""

from __future__ import annotations

import pytest

from abathur_memory.config import load_settings
from abathur_memory.embedders.fake import FakeEmbedder
from abathur_memory.runtime import open_runtime

pytestmark = pytest.mark.anyio


async def test_a_given_embedder_serves_every_service(tmp_path):
    model = FakeEmbedder(dim=48)
    settings = load_settings(db=str(tmp_path / "r.db"), user="alice", embedder="embedded")
    async with open_runtime(settings, embedder=model) as runtime:
        assert runtime.embedder is model
        assert runtime.documents.embedder is model
        assert runtime.retrieval.embedder is model
        assert runtime.memory_indexer.embedder is model
        assert runtime.consolidation.embedder is model
        await runtime.memories.put(runtime.principal, "user:alice:notes", "k", "a fact")
        await runtime.memory_indexer.catch_up()
        found = await runtime.memories.search(
            runtime.principal, "a fact", prefix="user:alice", mode="semantic"
        )
        assert [hit.key for hit in found.results] == ["k"]
