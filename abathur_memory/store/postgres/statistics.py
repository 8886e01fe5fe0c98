"""Planner statistics on PostgreSQL, refreshed soon after bulk writes.

List and keyword plans depend on them: after 100,000 rows loaded and before an ANALYZE, a
listing took 20-36 ms where it takes 0.3 ms after. Autovacuum analyses a changed table
within a minute or so; an import, a large ``put_many`` or a document index run should not
leave a minute of slow plans behind it, so they report the rows they wrote to which
tables and, past BULK_ROWS, those tables are analysed in the background (never on the
request path). ``abathur-memory maintain`` analyses every table whose statistics are stale
(``stale``), on its schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from abathur_memory.store.postgres.connection import Conn, Database

log = logging.getLogger(__name__)

BULK_ROWS = 5_000  # rows written in bulk before the statistics are looked at
STALE_FRACTION = 0.1  # changed rows since the last ANALYZE, relative to the live rows
STALE_MIN_ROWS = 50


async def table_activity(conn: Conn) -> list[Any]:
    """(table, live rows, dead rows, rows changed since the last ANALYZE, never analysed)."""
    cur = await conn.execute(
        "SELECT relname, n_live_tup, n_dead_tup, n_mod_since_analyze,"
        " COALESCE(last_analyze, last_autoanalyze) IS NULL"
        " FROM pg_stat_user_tables WHERE schemaname = current_schema() ORDER BY relname"
    )
    return list(await cur.fetchall())


def stale(activity: list[Any]) -> list[str]:
    """The tables whose statistics no longer describe them."""
    return [
        name
        for name, live, _, modified, never in activity
        if (never and live) or modified > max(STALE_MIN_ROWS, STALE_FRACTION * live)
    ]


class StatisticsKeeper:
    """Counts rows written in bulk per table and, past BULK_ROWS, analyses those tables in
    the background (one pass at a time; a failure is logged, never raised to a writer).

    The writers name their tables: PostgreSQL's activity counters reach
    ``pg_stat_user_tables`` only a moment after a commit, too late to tell right away."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.written: dict[str, int] = {}  # rows per table since the last pass
        self.rows = 0  # rows since the last pass (a write may touch several tables)
        self.passes = 0  # finished passes (tests wait on it)
        self._task: asyncio.Task[None] | None = None

    def wrote(self, rows: int, *tables: str) -> None:
        if rows <= 0:
            return
        self.rows += rows
        for table in tables:
            self.written[table] = self.written.get(table, 0) + rows
        if self.rows < BULK_ROWS or (self._task is not None and not self._task.done()):
            return
        tables_now, self.written, self.rows = sorted(self.written), {}, 0
        self._task = asyncio.get_running_loop().create_task(self._pass(tables_now))

    async def _pass(self, tables: list[str]) -> None:
        try:
            for name in tables:

                async def run(conn: Conn, name: str = name) -> None:
                    await conn.execute(f'ANALYZE "{name}"'.encode())

                await self.db.run(run, what=f"ANALYZE {name}")
            log.info("refreshed the statistics of %s after bulk writes", ", ".join(tables))
        except Exception as exc:  # statistics are an optimisation: never fail for them
            log.warning("could not refresh statistics after bulk writes: %s", exc)
        finally:
            self.passes += 1

    async def idle(self) -> None:
        """Wait for a pass under way (tests, and closing)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
