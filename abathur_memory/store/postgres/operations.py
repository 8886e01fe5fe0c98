"""The operations on a PostgreSQL schema (store/operations.py): init, doctor, maintain, and
either side of `migrate`. There are no file copies: the server's own tools back it up
(pg_dump, base backups with WAL archiving) and recover it."""

from __future__ import annotations

import asyncio
import contextlib

from abathur_memory.config import Settings
from abathur_memory.store.operations import (
    DoctorReport,
    Endpoint,
    FileCopies,
    Initialized,
    Step,
)
from abathur_memory.store.postgres import copy_endpoint, doctor, maintain, placement, require_driver
from abathur_memory.store.postgres import migrate as runner
from abathur_memory.store.postgres.connection import redact
from abathur_memory.store.postgres.store import PostgresStore


class PostgresOperations:
    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings

    @property
    def label(self) -> str:
        return redact(self.url)

    @property
    def files(self) -> FileCopies | None:
        return None

    def initialize(self, *, create_dirs: bool = False) -> Initialized:
        """The tables in the URL's schema (the database must exist: PostgreSQL makes
        those)."""

        async def run() -> list[int]:
            store = await PostgresStore.open(self.url, self.settings, create=True)
            try:
                return await store.migrate()
            finally:
                await store.close()

        applied = asyncio.run(run())
        version = max(m.version for m in runner.load_migrations())
        action = "created" if 1 in applied else ("upgraded" if applied else "up to date")
        return Initialized(self.label, action, version)

    def examine(self, *, repair: bool = False) -> DoctorReport:
        return asyncio.run(doctor.examine(self.url, self.settings, repair=repair))

    def maintain(self, *, dry_run: bool = False) -> list[Step]:
        async def run() -> list[Step]:
            store = await PostgresStore.open(self.url, self.settings, create=False)
            try:
                return await maintain.maintain(store, dry_run=dry_run)
            finally:
                await store.close()

        return asyncio.run(run())

    def endpoint(self, *, target: bool) -> Endpoint:
        require_driver()
        return copy_endpoint.PostgresEndpoint(self.url, self.settings, target=target)

    def target_state(self, state_key: str) -> str:
        """What a copy would find at the target, without writing to it."""
        require_driver()
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=10) as conn:
                tables = list(placement.our_tables())
                problem = placement.placement_of(
                    conn.execute(placement.PROBE, (tables,)).fetchone()
                ).problem()
                if problem is not None:
                    return f"the target would be refused: {problem}"
                has_meta = conn.execute(placement.OWN_TABLE, ("meta",)).fetchone()
                if not has_meta or not has_meta[0]:
                    return "the target is reachable and holds no abathur-memory tables yet"
                row = conn.execute("SELECT value FROM meta WHERE key = %s", (state_key,)).fetchone()
        except psycopg.Error as exc:
            return f"cannot reach the target {self.label}: {exc}"
        return f"the target holds a copy in state {row[0]!r}" if row else "the target exists"

    def full_disk_reported(self) -> contextlib.AbstractContextManager[None]:
        """The server reports its own full disk."""
        return contextlib.nullcontext()
