"""Shared fixtures: a fresh database file per test, the asyncio backend for anyio tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from abathur_memory.store.sqlite import driver
from abathur_memory.store.sqlite import migrate as runner
from abathur_memory.store.sqlite.database import Database


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "abathur.db"


@pytest.fixture
def conn(db_path: Path) -> Iterator[driver.Connection]:
    """A migrated synchronous connection on a fresh file."""
    connection = driver.connect(db_path)
    runner.migrate(connection)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(db_path, readers=2, busy_timeout_ms=200, write_retries=1)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def principal():
    from abathur_memory.memory.namespaces import Principal

    return Principal(user="alice", app="abathur", project="website")


@pytest.fixture
async def services(db, principal):
    from abathur_memory.memory.services import Services

    return Services.over(db, principal, max_value_bytes=64 * 1024)


@pytest.fixture
async def as_principal(db):
    """Services for another principal on the same database: ``as_principal(user=...)``."""
    from abathur_memory.memory.namespaces import Principal
    from abathur_memory.memory.services import Services

    def make(**fields):
        return Services.over(db, Principal(**fields), max_value_bytes=64 * 1024)

    return make


@pytest.fixture(params=["fresh", "upgraded"])
def any_db_path(request, tmp_path: Path) -> Path:
    """A database path that is either new or an upgrade of the oldest supported layout.

    Tests of where features meet run on both: most defects so far lived in upgraded files.
    """
    import layouts

    path = tmp_path / "abathur.db"
    if request.param == "upgraded":
        layouts.build_legacy(path)
    return path
