"""Shared fixtures: a fresh database file per test, the asyncio backend for anyio tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from acting import Acting

from abathur_memory.store.sqlite import driver
from abathur_memory.store.sqlite import migrate as runner
from abathur_memory.store.sqlite.database import Database

if TYPE_CHECKING:
    from abathur_memory.config import Settings
    from abathur_memory.runtime import Runtime

pytest_plugins = ["pg_fixtures"]


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


def settings_for(db_path: Path | str, **overrides: Any) -> Settings:
    from abathur_memory.config import load_settings

    options = {
        "user": "alice",
        "app": "abathur",
        "project": "website",
        "embedder": "fake",
        "busy_timeout_ms": 200,
        "write_retries": 1,
        "readers": 2,
        "max_value_bytes": 64 * 1024,
        "maintenance_interval_hours": 0,
        **overrides,
    }
    return load_settings(db=str(db_path), **options)


BACKENDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a runtime (and so the services) runs on both backends, unless
    it reads SQLite's own file through the ``db`` fixture (then it is about SQLite)."""
    if "backend" in metafunc.fixturenames:
        wanted = ("sqlite",) if "db" in metafunc.fixturenames else BACKENDS
        metafunc.parametrize("backend", wanted, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, db_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh database on the test's backend: a SQLite file, or a new PostgreSQL schema."""
    if backend == "postgres":
        return request.getfixturevalue("pg_url")
    return str(db_path)


@pytest.fixture
def target_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second fresh database on the test's backend (an import's target, say)."""
    if backend == "postgres":
        import uuid

        import pg_server

        admin = request.getfixturevalue("pg_admin_uri")
        name = f"t_{uuid.uuid4().hex[:16]}"
        yield pg_server.fresh_schema(admin, name)
        pg_server.drop_schema(admin, name)
    else:
        yield str(tmp_path / "target.db")


@pytest.fixture
async def runtime(db_url: str) -> AsyncIterator[Runtime]:
    """The composition root over a fresh database (fake embedder), as the server builds it."""
    from abathur_memory.runtime import open_runtime

    async with open_runtime(settings_for(db_url)) as opened:
        yield opened


@pytest.fixture
async def store(runtime):
    return runtime.store


@pytest.fixture
async def raw(runtime):
    """Plain SQL on the runtime's database, either backend (tests/backends.py)."""
    from backends import Raw

    return Raw(runtime.store)


@pytest.fixture
async def db(runtime: Runtime) -> AsyncIterator[Database]:
    """The runtime's SQLite database (migrated): tests of SQLite itself."""
    from abathur_memory.store.sqlite.store import SqliteStore

    assert isinstance(runtime.store, SqliteStore)  # a test that asks for it runs on SQLite
    yield runtime.store.db


@pytest.fixture
def principal():
    from abathur_memory.core.principal import Principal

    return Principal(user="alice", app="abathur", project="website")


@pytest.fixture
async def services(runtime, principal):
    return Acting(runtime, principal)


@pytest.fixture
async def as_principal(runtime):
    """The services acting for another principal: ``as_principal(user=...)``."""
    from abathur_memory.core.principal import Principal

    def make(**fields):
        return Acting(runtime, Principal(**fields))

    return make


@pytest.fixture(params=["fresh", "upgraded", "postgres"])
def any_db_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A database that is a new SQLite file, an upgrade of the oldest supported SQLite
    layout, or a new PostgreSQL schema (a URL).

    Tests of where features meet run on all three: most defects so far lived in upgraded
    files, and the second backend must give the same answers.
    """
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return _sqlite_layout(request.param, tmp_path)


@pytest.fixture(params=["fresh", "upgraded"])
def any_sqlite_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A SQLite file, new or upgraded: for tests of the file itself."""
    return _sqlite_layout(request.param, tmp_path)


def _sqlite_layout(kind: str, tmp_path: Path) -> Path:
    import layouts

    path = tmp_path / "abathur.db"
    if kind == "upgraded":
        layouts.build_legacy(path)
    return path
