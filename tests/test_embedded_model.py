"""The embedded default model, for real (kept few and small: it embeds ~10-20 chunks/s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from indexing_helpers import make_docs

from abathur_memory.embedders.embedded import EmbeddedEmbedder
from abathur_memory.errors import InvalidInput

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

EXAMPLES = Path(__file__).parent.parent / "examples" / "docs"


@pytest.fixture(scope="module")
def model():
    return EmbeddedEmbedder()


async def test_vectors_carry_meaning(model):
    vectors = await model.embed_documents(
        ["The cat sleeps on the mat.", "A kitten naps on a rug.", "Bond yields rose sharply."]
    )
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > unrelated + 0.2
    query = await model.embed_query("where is the cat sleeping")
    assert float(query @ vectors[0]) > float(query @ vectors[2])


async def test_nothing_over_the_limit_is_embedded(model):
    assert model.count_tokens("hello world") == 4  # [CLS] hello world [SEP]
    with pytest.raises(InvalidInput, match="exceeds the 256-token limit"):
        await model.embed_documents(["word " * 400])


async def test_index_and_search_the_examples(store, raw, model):
    docs = make_docs(store, model)
    await docs.add_root(EXAMPLES)
    report = await docs.index()
    assert report.work.documents_done == 5 and report.work.documents_failed == 0
    chunks = await raw.fetchall("SELECT token_count FROM chunks_s1")
    assert chunks and all(row[0] <= 256 for row in chunks)
    for query, expected in [
        ("how do I undo a deleted memory", "docs/guides/versions.md"),
        ("which task should a worker pick up from the queue", "docs/guides/sessions-and-tasks.md"),
        ("the database is locked by another process", "docs/guides/troubleshooting.md"),
    ]:
        semantic = await docs.search(None, query, k=1, mode="semantic")
        assert semantic.results[0].path == expected, query
        hybrid = await docs.search(None, query, k=1)
        assert hybrid.results[0].path == expected, query
