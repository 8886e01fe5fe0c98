"""Small markdown trees and embedders for indexing tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from abathur_memory.embedders.fake import FakeEmbedder
from abathur_memory.errors import Unavailable

if TYPE_CHECKING:
    import pytest

    from abathur_memory.store.postgres.store import PostgresStore
    from abathur_memory.store.sqlite.store import SqliteStore

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

    def __init__(self, ok_calls: int, **kwargs: Any) -> None:
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
    """The runtime's DocumentService over ``store`` (or over a SQLite Database, wrapped in
    its store) with its own retrieval pipeline (runtime.document_service)."""
    from abathur_memory.runtime import document_service
    from abathur_memory.store.sqlite.database import Database
    from abathur_memory.store.sqlite.store import SqliteStore

    if isinstance(store, Database):
        store = SqliteStore(store)
    return document_service(store, embedder, **kwargs)


VOCABULARY = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda")


def long_line(words: int) -> str:
    """One line of ``words`` words from a small vocabulary (as real text repeats its words;
    a million distinct words would measure FTS5's dictionary, not the indexer)."""
    return " ".join(VOCABULARY[(i * 7) % len(VOCABULARY)] for i in range(words))


class Costs:
    """What indexing costs, counted deterministically on either backend: write transactions,
    reads of files under a root (per path), and lookups of the embedding space.

    SQLite: every write runs on the one writer connection (``Database.write`` or
    ``on_writer``), so those entry points are counted. PostgreSQL: a statement-level trigger
    on every table of the schema records the id of the transaction that wrote, so a write
    transaction is one that ran a data-changing statement, whichever helper sent it (an
    UPDATE that matched no row counts too, as BEGIN IMMEDIATE does on SQLite)."""

    def __init__(self, store: SqliteStore | PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
        from abathur_memory.documents import safe_files, scan

        self.store = store
        self.reads: dict[str, int] = {}
        self.spaces = 0
        self._sqlite_writes = 0
        self._installed = False
        self._monkeypatch = monkeypatch

        def counting(real, rel_of):
            def read(*args, **kwargs):
                rel = rel_of(*args)
                self.reads[rel] = self.reads.get(rel, 0) + 1
                return real(*args, **kwargs)

            return read

        for name in ("read_in_root", "hash_in_root"):
            real = getattr(safe_files, name)
            monkeypatch.setattr(safe_files, name, counting(real, lambda root, rel: rel))
        monkeypatch.setattr(
            scan, "hash_file", counting(scan.hash_file, lambda path: Path(path).name)
        )
        real_for_identity = store.spaces.for_identity

        async def for_identity(identity):
            self.spaces += 1
            return await real_for_identity(identity)

        monkeypatch.setattr(store.spaces, "for_identity", for_identity)

    async def start(self) -> None:
        """Count from now on (tables made before this call are the ones counted)."""
        self.reads.clear()
        self.spaces = 0
        if self.store.kind == "sqlite":
            self._sqlite_writes = 0
            if not self._installed:
                self._count_sqlite_writes()
        else:
            if not self._installed:
                await self._install_trigger()
            await self._pg("DELETE FROM counted_writes")
        self._installed = True

    async def writes(self) -> int:
        """Write transactions since ``start``."""
        if self.store.kind == "sqlite":
            return self._sqlite_writes
        rows = await self._pg("SELECT count(DISTINCT xid) FROM counted_writes", fetch=True)
        assert rows is not None
        return int(rows[0][0])

    def _count_sqlite_writes(self) -> None:
        from abathur_memory.store.sqlite.store import SqliteStore

        assert isinstance(self.store, SqliteStore)
        db = self.store.db
        for name in ("write", "on_writer"):
            real = getattr(db, name)

            def counted(*args, _real=real, **kwargs):
                self._sqlite_writes += 1
                return _real(*args, **kwargs)

            self._monkeypatch.setattr(db, name, counted)

    async def _install_trigger(self) -> None:
        await self._pg("CREATE TABLE counted_writes (xid text NOT NULL)")
        await self._pg(
            "CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " EXECUTE format('INSERT INTO %I.counted_writes VALUES ($1)', TG_TABLE_SCHEMA)"
            " USING pg_current_xact_id()::text; RETURN NULL; END $$"
        )
        tables = await self._pg(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            " AND tablename != 'counted_writes'",
            fetch=True,
        )
        assert tables is not None
        for (table,) in tables:
            await self._pg(
                f'CREATE TRIGGER counted AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "{table}"'
                " FOR EACH STATEMENT EXECUTE FUNCTION count_write()"
            )

    async def _pg(self, sql: str, *, fetch: bool = False) -> list[tuple[Any, ...]] | None:
        """Run ``sql`` on PostgreSQL: its rows when ``fetch``, else None."""
        from abathur_memory.store.postgres.store import PostgresStore

        assert isinstance(self.store, PostgresStore)

        async def work(conn):
            cursor = await conn.execute(sql)
            return await cursor.fetchall() if fetch else None

        return await self.store.database.run(work)
