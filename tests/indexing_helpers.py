"""Small markdown trees and embedders for indexing tests."""

from __future__ import annotations

from pathlib import Path

from abathur_memory.embedders.fake import FakeEmbedder
from abathur_memory.errors import Unavailable

DOCS = {
    "alpha.md": (
        "# Alpha\n\nThe quick brown fox jumps over the lazy dog.\n\n"
        "## Details\n\nFoxes are clever animals.\n"
    ),
    "notes/beta.md": (
        "---\ntitle: Beta notes\ntags: [db, sqlite]\ntype: design\n---\n"
        "# Beta\n\nSQLite stores everything in one file.\n\n"
        "## WAL\n\nWrite-ahead logging lets readers and a writer work at once.\n"
    ),
    "notes/gamma.markdown": (
        "# Gamma\n\nVector search finds text by meaning, keyword search by words.\n"
    ),
}


def write_tree(root: Path, files: dict[str, str] | None = None) -> Path:
    for rel, text in (files or DOCS).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


class FlakyEmbedder(FakeEmbedder):
    """Fails (as an unavailable model would) after ``ok_calls`` successful batches."""

    def __init__(self, ok_calls: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ok_calls = ok_calls

    async def embed_documents(self, texts):
        if self.calls >= self.ok_calls:
            raise Unavailable("the model went away")
        return await super().embed_documents(texts)


class DownEmbedder(FakeEmbedder):
    async def embed_query(self, text):
        raise Unavailable("cannot reach Ollama at http://127.0.0.1:9: start it with `ollama serve`")


def make_docs(store, embedder, **kwargs):
    """A DocumentService over ``store`` (or over a SQLite Database, wrapped in its store)
    with its own retrieval pipeline, as the runtime builds one."""
    from abathur_memory.documents.service import DocumentService
    from abathur_memory.search.pipeline import Retrieval
    from abathur_memory.store.sqlite.database import Database
    from abathur_memory.store.sqlite.store import SqliteStore

    if isinstance(store, Database):
        store = SqliteStore(store)
    return DocumentService(
        store, embedder, Retrieval(store.search, store.spaces, embedder), **kwargs
    )


VOCABULARY = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda")


def long_line(words: int) -> str:
    """One line of ``words`` words from a small vocabulary (as real text repeats its words;
    a million distinct words would measure FTS5's dictionary, not the indexer)."""
    return " ".join(VOCABULARY[(i * 7) % len(VOCABULARY)] for i in range(words))
