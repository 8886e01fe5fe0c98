"""An in-process MCP client over a fresh database, and a snapshot of what the database holds."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mcp import Client

from abathur_memory.config import load_settings
from abathur_memory.server.app import create_server
from abathur_memory.store.sqlite import driver

TABLES = (
    "memory_entries",
    "sessions",
    "session_events",
    "tasks",
    "agents",
    "checkpoints",
    "document_index",
    "meta",
)


@contextlib.asynccontextmanager
async def connected(db_path: Path, **settings: Any) -> AsyncIterator[Client]:
    options = {
        "user": "alice",
        "app": "abathur",
        "project": "website",
        "embedder": "fake",
        "maintenance_interval_hours": 0,
        **settings,
    }
    server = create_server(load_settings(db=str(db_path), **options))
    async with Client(server) as client:
        yield client


# meta rows the background indexers own (derived state, allowed to move at any time).
DERIVED_META = ("memory_index_audit_id", "embedding_model", "embedding_dim", "embedding_identity")


def snapshot(db_path: Path) -> dict[str, str]:
    """A digest per table of what users stored (audit counted separately: denials are
    audited by design; derived index state is left out: it is caught up in the background)."""
    conn = driver.connect(db_path)
    try:
        digests = {}
        for table in TABLES:
            where = ""
            if table == "meta":
                where = " WHERE key NOT IN (" + ", ".join(f"'{k}'" for k in DERIVED_META) + ")"
            rows = conn.execute(f"SELECT * FROM {table}{where} ORDER BY rowid").fetchall()
            digests[table] = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
        digests["audit"] = str(conn.execute("SELECT count(*) FROM audit").fetchone()[0])
        return digests
    finally:
        conn.close()


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def wait_for_audit(db_path: Path, rows: int, timeout: float = 5.0) -> int:
    """Wait until the audit table has at least ``rows`` rows (denials are audited in the
    background, right after the answer); returns the count."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        conn = driver.connect(db_path)
        try:
            count = int(conn.execute("SELECT count(*) FROM audit").fetchone()[0])
        finally:
            conn.close()
        if count >= rows or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.02)
