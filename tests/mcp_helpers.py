"""An in-process MCP client over a fresh database, and a snapshot of what the database holds."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from backends import is_postgres, sync_sql
from mcp import Client

from abathur_memory.config import load_settings
from abathur_memory.server.app import create_server

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
async def connected(db_path: Path | str, **settings: Any) -> AsyncIterator[Client]:
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


# meta rows the background indexers own (derived state, allowed to move at any time): these
# and every ``memory_index_*`` row (the memory indexer's progress, per space too).
DERIVED_META = (
    "embedding_model",
    "embedding_dim",
    "embedding_identity",
)


def snapshot(db: Path | str) -> dict[str, str]:
    """A digest per table of what users stored (audit counted separately: denials are
    audited by design; derived index state is left out: it is caught up in the background)."""
    postgres = is_postgres(db)
    order = "ORDER BY t::text" if postgres else "ORDER BY rowid"
    with sync_sql(db) as conn:
        digests = {}
        for table in TABLES:
            if postgres and table == "agents":
                continue  # not part of the PostgreSQL schema
            where = ""
            if table == "meta":
                where = (
                    " WHERE key NOT IN (" + ", ".join(f"'{k}'" for k in DERIVED_META) + ")"
                    " AND substr(key, 1, 13) != 'memory_index_'"
                )
            rows = conn.execute(f"SELECT * FROM {table} AS t{where} {order}").fetchall()
            digests[table] = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
        digests["audit"] = str(conn.scalar("SELECT count(*) FROM audit"))
        return digests


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def wait_for_audit(db_path: Path | str, rows: int, timeout: float = 5.0) -> int:
    """Wait until the audit table has at least ``rows`` rows (denials are audited in the
    background, right after the answer); returns the count."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        with sync_sql(db_path) as conn:
            count = int(conn.scalar("SELECT count(*) FROM audit"))
        if count >= rows or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.02)


async def call(client: Client, tool: str, **args: Any) -> Any:
    """Call ``tool`` and return its structured result; a tool error fails the test."""
    result = await client.call_tool(tool, args)
    assert not result.is_error, text_of(result)
    return result.structured_content
