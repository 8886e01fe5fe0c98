"""Choosing the backend from the settings: a path (or ``sqlite:///path``) is SQLite, the
embedded default; a ``postgresql://`` URL is PostgreSQL. The one place a backend is picked,
for the services (``open_store``) and for the operations room (``open_operations``)."""

from __future__ import annotations

from pathlib import Path

from abathur_memory.config import Settings
from abathur_memory.store.operations import Operations
from abathur_memory.store.protocols import Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


async def open_store(
    settings: Settings,
    *,
    create: bool = True,
    create_dirs: bool = False,
    readers: int | None = None,
) -> Store:
    if settings.is_postgres:
        from abathur_memory.store.postgres import require_driver

        require_driver()
        from abathur_memory.store.postgres.store import PostgresStore

        return await PostgresStore.open(settings.db, settings, create=create)
    from abathur_memory.store.sqlite.ann import AnnSettings
    from abathur_memory.store.sqlite.store import SqliteStore

    return await SqliteStore.open(
        settings.db_path,
        readers=readers or settings.readers,
        busy_timeout_ms=settings.busy_timeout_ms,
        write_retries=settings.write_retries,
        create=create,
        create_dirs=create_dirs,
        ann=AnnSettings(
            enabled=settings.ann,
            min_vectors=settings.ann_min_vectors,
            selective_fraction=settings.ann_selective_fraction,
        ),
    )


def open_operations(settings: Settings, db: str | None = None) -> Operations:
    """The operations on ``db``, a path or a ``postgresql://`` URL (default: the settings'
    database; `migrate` names its other side). Nothing is opened until an operation runs."""
    if db is None:
        if settings.is_postgres:
            from abathur_memory.store.postgres.operations import PostgresOperations

            return PostgresOperations(settings.db, settings)
        from abathur_memory.store.sqlite.operations import SqliteOperations

        return SqliteOperations(settings.db_path, settings)
    if db.startswith(POSTGRES_SCHEMES):
        from abathur_memory.store.postgres.operations import PostgresOperations

        return PostgresOperations(db, settings)
    from abathur_memory.store.sqlite.operations import SqliteOperations

    path = Path(db.removeprefix("sqlite://")).expanduser()
    return SqliteOperations(path, settings, label=db)
