"""The Ollama embedder through the official client against a local Ollama-speaking server."""

from __future__ import annotations

import pytest
from indexing_helpers import make_docs, write_tree
from ollama_stub import OllamaStub, unused_port

from abathur_memory.embedders.ollama_embedder import OllamaEmbedder
from abathur_memory.errors import InvalidInput, Unavailable

pytestmark = pytest.mark.anyio


async def test_index_and_search_with_ollama(store, tmp_path):
    with OllamaStub() as stub:
        embedder = OllamaEmbedder(host=stub.host)
        docs = make_docs(store, embedder)
        await docs.add_root(write_tree(tmp_path / "docs"))
        report = await docs.index()
        assert report.work.documents_done == 3
        result = await docs.search(None, "write-ahead logging")
        assert result.mode_used == "hybrid" and result.model == "ollama:nomic-embed-text"
        assert result.results[0].path == "docs/notes/beta.md"
        embeds = [r for r in stub.requests if "input" in r]
        documents = [t for r in embeds[:-1] for t in r["input"]]
        assert all(t.startswith("search_document: ") for t in documents)
        assert embeds[-1]["input"] == ["search_query: write-ahead logging"]
        assert all(r["truncate"] is False for r in embeds)
        await embedder.close()


async def test_batches_of_32(tmp_path):
    with OllamaStub() as stub:
        embedder = OllamaEmbedder(host=stub.host)
        vectors = await embedder.embed_documents([f"text {i}" for i in range(70)])
        assert vectors.shape == (70, 768)
        assert [len(r["input"]) for r in stub.requests] == [32, 32, 6]
        await embedder.close()


async def test_transient_errors_are_retried():
    with OllamaStub() as stub:
        stub.fail_next = 2
        embedder = OllamaEmbedder(host=stub.host)
        vector = await embedder.embed_query("hello")
        assert vector.shape == (768,)
        assert len(stub.requests) == 3
        await embedder.close()


async def test_a_missing_model_says_to_pull_it():
    with OllamaStub(models=("all-minilm:latest",)) as stub:
        embedder = OllamaEmbedder(host=stub.host)
        with pytest.raises(Unavailable, match="ollama pull nomic-embed-text"):
            await embedder.check()
        await embedder.close()


async def test_a_server_that_is_down_says_to_start_it(store, tmp_path, monkeypatch):
    monkeypatch.setattr("abathur_memory.embedders.ollama_embedder.RETRIES", 1)
    embedder = OllamaEmbedder(host=f"http://127.0.0.1:{unused_port()}")
    with pytest.raises(Unavailable, match="start it with `ollama serve`"):
        await embedder.embed_query("x")
    docs = make_docs(store, embedder)
    await docs.add_root(write_tree(tmp_path / "docs"))
    with pytest.raises(Unavailable, match="ollama serve"):
        await docs.index()
    await embedder.close()


async def test_search_degrades_when_ollama_goes_away(store, tmp_path, monkeypatch):
    monkeypatch.setattr("abathur_memory.embedders.ollama_embedder.RETRIES", 0)
    with OllamaStub() as stub:
        embedder = OllamaEmbedder(host=stub.host)
        docs = make_docs(store, embedder)
        await docs.add_root(write_tree(tmp_path / "docs"))
        await docs.index()
    result = await docs.search(None, "write-ahead logging")  # the stub has stopped
    assert result.mode_used == "keyword"
    assert "ollama serve" in result.degraded
    assert result.results[0].path == "docs/notes/beta.md"
    await embedder.close()


async def test_over_long_inputs_are_refused_never_truncated():
    with OllamaStub() as stub:
        embedder = OllamaEmbedder(host=stub.host)
        with pytest.raises(InvalidInput, match="exceeds the 2048-token limit"):
            await embedder.embed_documents(["word " * 5000])
        assert stub.requests == []
        await embedder.close()


def test_unknown_models_need_their_dimensions():
    with pytest.raises(InvalidInput, match="unknown Ollama embedding model"):
        OllamaEmbedder("mystery-embed")
    custom = OllamaEmbedder("mystery-embed", dim=256, max_tokens=512)
    assert (custom.dim, custom.identity.max_tokens) == (256, 512)


async def test_a_model_that_returns_other_dimensions_is_a_clear_error():
    with OllamaStub(dim=384) as stub:  # e.g. another model pulled under the same name
        embedder = OllamaEmbedder(host=stub.host)
        with pytest.raises(Unavailable, match="should give 768 dimensions"):
            await embedder.embed_documents(["hello"])
        await embedder.close()
