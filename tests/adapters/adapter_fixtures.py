"""Fixtures of the adapter tests: the Python API opened on the test's backend.

Import them into a test module (``from adapter_fixtures import memory_fixture``); every test that
uses one runs on SQLite and on PostgreSQL (the ``backend`` fixture of tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from conftest import settings_for

from abathur_memory.api import Memory, open_memory


@pytest.fixture(name="memory")
async def memory_fixture(db_url: str) -> AsyncIterator[Memory]:
    """alice in app abathur, project website: not an admin."""
    async with open_memory(settings=settings_for(db_url)) as opened:
        yield opened


@pytest.fixture(name="admin_memory")
async def admin_memory_fixture(db_url: str) -> AsyncIterator[Memory]:
    """An admin principal (ops), as a server serving many users would be opened."""
    async with open_memory(settings=settings_for(db_url, user="ops", admin=True)) as opened:
        yield opened
