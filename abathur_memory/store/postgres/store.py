"""The PostgreSQL store: one database (the schema first on the URL's search_path, see
placement.py) through a connection pool (connection.py), with every group of the storage
interface over it."""

from __future__ import annotations

from abathur_memory.config import Settings
from abathur_memory.store.postgres import migrate as runner
from abathur_memory.store.postgres import space_tables
from abathur_memory.store.postgres.connection import Conn, Database
from abathur_memory.store.postgres.consolidation import PostgresConsolidationStore
from abathur_memory.store.postgres.documents import PostgresDocumentStore
from abathur_memory.store.postgres.links import PostgresLinkStore
from abathur_memory.store.postgres.memories import PostgresMemoryStore
from abathur_memory.store.postgres.memory_index import PostgresMemoryIndexStore
from abathur_memory.store.postgres.metrics import PostgresMetricsStore
from abathur_memory.store.postgres.placement import OWN_TABLE
from abathur_memory.store.postgres.redaction import PostgresRedactionStore
from abathur_memory.store.postgres.roots import PostgresRootStore
from abathur_memory.store.postgres.search import PostgresSearchStore
from abathur_memory.store.postgres.sessions import PostgresSessionStore
from abathur_memory.store.postgres.spaces import PostgresSpaceStore
from abathur_memory.store.postgres.tasks import PostgresCheckpointStore, PostgresTaskStore
from abathur_memory.store.postgres.tokens import PostgresAuditStore, PostgresTokenStore
from abathur_memory.store.postgres.transfer import PostgresTransferStore
from abathur_memory.store.shared import check_copy_state


async def copy_state(db: Database) -> str | None:
    """``meta.migration_state``: set while `migrate` fills this database (None otherwise)."""
    has_meta = await db.fetchone(OWN_TABLE, ("meta",))
    if not has_meta or not has_meta[0]:
        return None
    row = await db.fetchone("SELECT value FROM meta WHERE key = 'migration_state'")
    return None if row is None else str(row[0])


class PostgresStore:
    kind = "postgres"

    def __init__(self, db: Database) -> None:
        self.database = db
        self.location = db.label
        self.memories = PostgresMemoryStore(db)
        self.links = PostgresLinkStore(db)
        self.redaction = PostgresRedactionStore(db)
        self.consolidation = PostgresConsolidationStore(db)
        self.audit = PostgresAuditStore(db)
        self.sessions = PostgresSessionStore(db)
        self.tasks = PostgresTaskStore(db)
        self.checkpoints = PostgresCheckpointStore(db)
        self.tokens = PostgresTokenStore(db)
        self.roots = PostgresRootStore(db)
        self.spaces = PostgresSpaceStore(db)
        self.documents = PostgresDocumentStore(db)
        self.memory_index = PostgresMemoryIndexStore(db)
        self.search = PostgresSearchStore(db)
        self.transfer = PostgresTransferStore(db)
        self.metrics = PostgresMetricsStore(db)

    @classmethod
    async def open(
        cls,
        url: str,
        settings: Settings,
        *,
        create: bool = True,
        allow_incomplete: bool = False,
        check_path: bool = True,
    ) -> PostgresStore:
        """Connect (checked first: Unavailable when the server cannot be reached, NotFound
        when the database, or with ``create=False`` its tables, are missing; Unavailable for
        an unfinished copy unless ``allow_incomplete``; InvalidInput for a search_path that
        reaches another schema's tables unless not ``check_path``: doctor reports it)."""
        db = await Database.open(url, settings, create=create, check_path=check_path)
        if not allow_incomplete:
            try:
                check_copy_state(await copy_state(db), db.label)
            except BaseException:
                await db.close()
                raise
        return cls(db)

    async def migrate(self) -> list[int]:
        """Apply the numbered migrations (creating the vector extension when missing), then
        bring every embedding space's tables up to date."""
        applied = await runner.migrate(self.database)

        async def ensure(conn: Conn) -> list[int]:
            async with conn.transaction():
                return await space_tables.ensure_all(conn)

        await self.database.run(ensure, what="upgrading the embedding spaces' tables")
        return applied

    async def close(self) -> None:
        await self.database.close()
