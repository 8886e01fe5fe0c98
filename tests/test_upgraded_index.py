"""An index built by an older release (issue 13 item 18): same model, older chunker.

Its vectors are the configured model's, so semantic search keeps working at once (documents
and memories); `status` says a rebuild is needed and why; `serve` rebuilds it in the
background without embedding again what did not change. Both backends: the older identity
is planted in the space a current release built.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from acting import Acting
from backends import sync_sql
from conftest import settings_for
from indexing_helpers import write_tree

from abathur_memory.core.principal import Principal
from abathur_memory.core.spaces import CHUNKER_VERSION
from abathur_memory.embedders.fake import FakeEmbedder
from abathur_memory.runtime import open_runtime

pytestmark = pytest.mark.anyio

ALICE = Principal(user="alice", app="abathur", project="website")
OLDER = CHUNKER_VERSION - 1


def _plant_older_chunker(db_url: str) -> None:
    """What a release with the previous chunker recorded for the same model."""
    with sync_sql(db_url) as sql:
        key = sql.scalar("SELECT identity FROM embedding_spaces WHERE status = 'active'")
        identity = json.loads(key)
        identity["chunker_version"] = OLDER
        older = json.dumps(identity, sort_keys=True)
        sql.execute("UPDATE embedding_spaces SET identity = ? WHERE identity = ?", (older, key))
        sql.execute("UPDATE meta SET value = ? WHERE key = 'embedding_identity'", (older,))


async def test_an_index_of_an_older_chunker_keeps_searching_and_rebuilds_in_the_background(
    db_url, tmp_path
):
    docs = write_tree(tmp_path / "docs")
    async with open_runtime(settings_for(db_url)) as runtime:
        await runtime.documents.add_root(str(docs), (), owner=ALICE)
        await runtime.documents.index()
        await Acting(runtime, ALICE).memories.put("user:alice:notes", "fox", "a quick red fox")
        await runtime.memory_indexer.catch_up()
    _plant_older_chunker(db_url)

    async with open_runtime(settings_for(db_url)) as runtime:
        services = Acting(runtime, ALICE)
        found = await runtime.documents.search(ALICE, "clever animals", mode="semantic")
        assert (found.mode_used, found.degraded) == ("semantic", None)
        assert found.results
        memories = await services.memories.search("red fox", mode="semantic")
        assert (memories.mode_used, memories.degraded, memories.pending) == ("semantic", None, 0)
        first = memories.results[0]
        assert (first.namespace, first.key, first.semantic_rank) == ("user:alice:notes", "fox", 1)
        status = await runtime.documents.status(ALICE)
        assert status.rebuild_needed is not None
        assert f"chunker version {OLDER} -> {CHUNKER_VERSION}" in status.rebuild_needed
        assert "semantic search keeps working" in status.rebuild_needed

        embedder = runtime.embedder
        assert isinstance(embedder, FakeEmbedder)  # the tests' settings
        before = embedder.embedded_texts
        await runtime.start_serving()  # no --docs: the rebuild starts all the same
        for _ in range(200):
            active = await runtime.store.spaces.active()
            status = await runtime.documents.status(ALICE)  # read after: the rebuild is over
            if active is not None and active.identity == embedder.identity and not status.rebuild:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"the rebuild did not finish: {status}")
        assert status.rebuild_needed is None
        # The unchanged texts kept their vectors, and so did the memory: nothing re-embedded.
        assert embedder.embedded_texts == before
        memories = await services.memories.search("red fox", mode="semantic")
        assert (memories.mode_used, memories.degraded, memories.pending) == ("semantic", None, 0)
        found = await runtime.documents.search(ALICE, "clever animals", mode="semantic")
        assert (found.mode_used, found.degraded) == ("semantic", None)


async def test_another_model_is_named_with_what_differs(db_url, tmp_path):
    docs = write_tree(tmp_path / "docs")
    async with open_runtime(settings_for(db_url)) as runtime:
        await runtime.documents.add_root(str(docs), (), owner=ALICE)
        await runtime.documents.index()
    with sync_sql(db_url) as sql:  # as if indexed with a 32-dimension model of the same name
        key = sql.scalar("SELECT identity FROM embedding_spaces WHERE status = 'active'")
        identity = json.loads(key)
        identity["dim"] = 32
        sql.execute(
            "UPDATE embedding_spaces SET identity = ? WHERE identity = ?",
            (json.dumps(identity, sort_keys=True), key),
        )
    async with open_runtime(settings_for(db_url)) as runtime:
        found = await runtime.documents.search(ALICE, "clever animals")
        assert found.mode_used == "keyword"
        assert found.degraded is not None and "dim 32 -> 64" in found.degraded
        status = await runtime.documents.status(ALICE)
        assert status.rebuild_needed is not None and "dim 32 -> 64" in status.rebuild_needed
        assert "keywords until it is done" in status.rebuild_needed
