"""Regular database maintenance (seed 001 §7.1): statistics, free space, the WAL.

- statistics: ``PRAGMA optimize`` (which re-analyzes what changed), or a full ``ANALYZE``
  when the statistics of a hot table describe a tenth of its rows or fewer; either way the
  statistics of small tables are dropped (store/sqlite/statistics.py says why);
- free space: ``VACUUM`` once a quarter of the file (and at least 1 MiB) is free pages;
- the WAL: a ``TRUNCATE`` checkpoint, which writes it back and empties it (it cannot finish
  while another process reads an old snapshot, and then says so).

Each step is reported with what it did; ``dry_run`` reports what it would do.
"""

from __future__ import annotations

import os
from pathlib import Path

from abathur_memory.store.operations import Step
from abathur_memory.store.sqlite import checks as validation
from abathur_memory.store.sqlite import driver, statistics


def run(
    conn: driver.Connection, db_path: Path, *, dry_run: bool = False, vacuum: bool = True
) -> list[Step]:
    return [
        _statistics(conn, dry_run),
        _free_space(conn, dry_run, allowed=vacuum),
        _checkpoint(conn, db_path, dry_run),
    ]


def _statistics(conn: driver.Connection, dry_run: bool) -> Step:
    stale = validation.stale_statistics(conn)
    if stale:
        if not dry_run:
            conn.execute("ANALYZE")
            statistics.drop_small(conn)
        verb = "would run" if dry_run else "ran"
        return Step(
            "statistics", not dry_run, f"{verb} ANALYZE: {', '.join(stale)} had stale statistics"
        )
    if not dry_run:
        conn.execute("PRAGMA optimize")
        statistics.drop_small(conn)
    return Step(
        "statistics",
        not dry_run,
        "statistics are current" + ("" if dry_run else " (PRAGMA optimize ran)"),
    )


def _free_space(conn: driver.Connection, dry_run: bool, *, allowed: bool) -> Step:
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    due = (
        pages
        and free / pages >= validation.VACUUM_FREE_RATIO
        and free >= validation.VACUUM_MIN_PAGES
    )
    if not due:
        return Step("free space", False, f"{free} of {pages} pages free: nothing to reclaim")
    mib = free * page_size / 1024 / 1024
    if dry_run or not allowed:
        reason = "would VACUUM" if dry_run else "VACUUM left to `abathur-memory maintain`"
        return Step("free space", False, f"{free} of {pages} pages free ({mib:.1f} MiB): {reason}")
    conn.execute("VACUUM")
    after = conn.execute("PRAGMA page_count").fetchone()[0]
    return Step("free space", True, f"VACUUM reclaimed {pages - after} pages ({mib:.1f} MiB)")


def _checkpoint(conn: driver.Connection, db_path: Path, dry_run: bool) -> Step:
    wal = Path(f"{db_path}-wal")
    size = wal.stat().st_size if wal.exists() else 0
    if dry_run:
        return Step("wal", False, f"WAL is {size:,} bytes: would checkpoint it")
    busy, frames, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        return Step(
            "wal",
            False,
            f"WAL is {size:,} bytes; {done} of {frames} frames written back: another process "
            "is reading an older snapshot, so it could not be emptied (try again later)",
        )
    after = os.path.getsize(wal) if wal.exists() else 0
    return Step("wal", True, f"checkpointed: WAL {size:,} -> {after:,} bytes")
