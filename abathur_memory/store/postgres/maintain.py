"""Regular maintenance on PostgreSQL: statistics and free space (the server owns its files
and its WAL)."""

from __future__ import annotations

from abathur_memory.store.operations import Step
from abathur_memory.store.postgres import statistics
from abathur_memory.store.postgres.connection import Conn
from abathur_memory.store.postgres.store import PostgresStore

DEAD_FRACTION = 0.2  # dead rows relative to the live rows before a VACUUM is worth it


async def maintain(store: PostgresStore, *, dry_run: bool = False) -> list[Step]:
    """Statistics (ANALYZE the tables that changed), free space (VACUUM the tables with
    many dead rows; autovacuum does the same on its own schedule)."""
    db = store.database

    tables = await db.run(statistics.table_activity)
    stale = statistics.stale(tables)
    bloated = [name for name, live, dead, _, _ in tables if dead > max(1000, DEAD_FRACTION * live)]
    for names, verb in ((stale, "ANALYZE"), (bloated, "VACUUM")):
        if dry_run:
            continue
        for name in names:

            async def run(conn: Conn, name: str = name, verb: str = verb) -> None:
                await conn.execute(f'{verb} "{name}"'.encode())

            await db.run(run, what=f"{verb} {name}")
    would = "would run" if dry_run else "ran"
    return [
        Step(
            "statistics",
            bool(stale) and not dry_run,
            f"{would} ANALYZE on {', '.join(stale)}" if stale else "statistics are current",
        ),
        Step(
            "free space",
            bool(bloated) and not dry_run,
            f"{would} VACUUM on {', '.join(bloated)}"
            if bloated
            else "no table has many dead rows (autovacuum keeps up)",
        ),
    ]
