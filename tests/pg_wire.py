"""What a PostgreSQL store call sends to the server, counted from libpq's own protocol trace
(PQtrace), for tests and benchmarks that hold a call to a number of round trips.

A round trip is a message whose answer the client waits for: a Sync (the end of an
extended-protocol exchange, or of a pipeline's batch) or a simple Query. (psycopg follows a
pipeline's Sync with a Flush while it reads the results: no further wait, not counted.) A
Parse is a statement not yet prepared on that connection.

Only connections the counting task checks out of the pool are traced: background tasks
(an indexer, a statistics pass) share the pool but not the count.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import psycopg


@dataclass
class Wire:
    round_trips: int = 0
    parses: int = 0
    statements: int = 0  # Execute and Query messages
    checkouts: int = 0  # connections taken from the pool
    trace: list[str] = field(default_factory=list)  # the client's messages, in order

    def count(self, text: str) -> None:
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) < 3 or parts[0] != "F":
                continue
            message = parts[2]
            self.trace.append(line)
            if message in ("Sync", "Query"):
                self.round_trips += 1
            if message == "Parse":
                self.parses += 1
            if message in ("Execute", "Query"):
                self.statements += 1


@contextlib.contextmanager
def traced(conn: Any, wire: Wire) -> Any:
    """Count what ``conn`` sends while the block runs."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        conn.pgconn.trace(os.dup(out.fileno()))  # libpq fcloses its FILE on untrace
        conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield conn
        finally:
            conn.pgconn.untrace()
            out.seek(0)
            wire.count(out.read())


@contextlib.asynccontextmanager
async def counting(database: Any) -> AsyncIterator[Wire]:
    """Count the wire traffic of every pooled connection this task checks out of
    ``database`` (store/postgres/connection.Database) while the block runs: traced from
    the pool's ``getconn`` to its ``putconn``."""
    wire = Wire()
    task = asyncio.current_task()
    pool = database.pool
    getconn, putconn = pool.getconn, pool.putconn
    open_traces: dict[int, contextlib.ExitStack] = {}

    async def traced_getconn(timeout: float | None = None) -> Any:
        conn = await getconn(timeout)
        if asyncio.current_task() is task:
            wire.checkouts += 1
            stack = contextlib.ExitStack()
            stack.enter_context(traced(conn, wire))
            open_traces[id(conn)] = stack
        return conn

    async def traced_putconn(conn: Any) -> None:
        stack = open_traces.pop(id(conn), None)
        if stack is not None:
            stack.close()
        await putconn(conn)

    pool.getconn, pool.putconn = traced_getconn, traced_putconn
    try:
        yield wire
    finally:
        del pool.getconn, pool.putconn
        for stack in open_traces.values():
            stack.close()
