"""The SQLite store: one database file, one writer and a pool of readers (database.py),
with every group of the storage interface over it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from abathur_memory.store.shared import check_copy_state
from abathur_memory.store.sqlite import migrate as runner
from abathur_memory.store.sqlite.ann import AnnIndexes, AnnSettings
from abathur_memory.store.sqlite.consolidation import SqliteConsolidationStore
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.documents import SqliteDocumentStore
from abathur_memory.store.sqlite.links import SqliteLinkStore
from abathur_memory.store.sqlite.memories import SqliteMemoryStore
from abathur_memory.store.sqlite.memory_index import SqliteMemoryIndexStore
from abathur_memory.store.sqlite.metrics import SqliteMetricsStore
from abathur_memory.store.sqlite.redaction import SqliteRedactionStore
from abathur_memory.store.sqlite.roots import SqliteRootStore
from abathur_memory.store.sqlite.search import SqliteSearchStore
from abathur_memory.store.sqlite.sessions import SqliteSessionStore
from abathur_memory.store.sqlite.spaces import SqliteSpaceStore
from abathur_memory.store.sqlite.tasks import SqliteCheckpointStore, SqliteTaskStore
from abathur_memory.store.sqlite.tokens import SqliteAuditStore, SqliteTokenStore
from abathur_memory.store.sqlite.transfer import SqliteTransferStore
from abathur_memory.store.sqlite.vector_index import VectorIndex


class SqliteStore:
    kind = "sqlite"

    def __init__(self, db: Database, ann: AnnSettings | None = None) -> None:
        self.db = db
        self.location = str(db.path)
        self.memories = SqliteMemoryStore(db)
        self.links = SqliteLinkStore(db)
        self.redaction = SqliteRedactionStore(db)
        self.consolidation = SqliteConsolidationStore(db)
        self.audit = SqliteAuditStore(db)
        self.sessions = SqliteSessionStore(db)
        self.tasks = SqliteTaskStore(db)
        self.checkpoints = SqliteCheckpointStore(db)
        self.tokens = SqliteTokenStore(db)
        self.roots = SqliteRootStore(db)
        self.spaces = SqliteSpaceStore(db)
        self.documents = SqliteDocumentStore(db)
        self.memory_index = SqliteMemoryIndexStore(db)
        # The 1-bit codes of each space's vectors, held in memory for the coarse pass.
        self.vector_cache = VectorIndex()
        # Graphs for approximate search over large vector tables, built in the background.
        self.ann = AnnIndexes(db.path, ann)
        self.search = SqliteSearchStore(db, self.vector_cache, self.ann)
        self.transfer = SqliteTransferStore(db)
        self.metrics = SqliteMetricsStore(db)

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        readers: int = 4,
        busy_timeout_ms: int = 5000,
        write_retries: int = 3,
        create: bool = True,
        create_dirs: bool = False,
        allow_incomplete: bool = False,
        ann: AnnSettings | None = None,
    ) -> SqliteStore:
        """Open the file (checked first: a foreign or damaged file is never written to)."""
        path = Path(path).expanduser()
        db = await Database.open(
            path,
            readers=readers,
            busy_timeout_ms=busy_timeout_ms,
            write_retries=write_retries,
            create=create,
            create_dirs=create_dirs,
        )
        if not allow_incomplete:
            try:
                row = (
                    await db.fetchone("SELECT value FROM meta WHERE key = 'migration_state'")
                    if await db.fetchone("SELECT 1 FROM sqlite_master WHERE name = 'meta'")
                    else None
                )
                check_copy_state(None if row is None else str(row[0]), str(path))
            except BaseException:
                await db.close()
                raise
        return cls(db, ann)

    async def migrate(self) -> list[int]:
        """Apply the numbered migrations (and bring per-space tables up to date)."""
        return await self.db.on_writer(runner.migrate, what="migrating the schema")

    async def check_vector_indexes(self) -> None:
        """Check the saved approximate indexes against the tables (in the background)."""
        await self.db.read(self.ann.check_saved)

    async def close(self) -> None:
        await asyncio.to_thread(self.ann.close)
        await self.db.close()
