"""The doctor: open a database without changing it, run every check, and repair on request.

A database that does not exist is not created here (a mistyped path must not pass for a
healthy new database); one this process cannot write is checked read-only; one too damaged
to open normally is still opened bare, so integrity_check can say what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from abathur_memory.errors import InvalidInput, NotFound, ReadOnly
from abathur_memory.store.operations import copy_state_check
from abathur_memory.store.sqlite import ann_checks, consistency, driver, statistics
from abathur_memory.store.sqlite import backup as backups
from abathur_memory.store.sqlite import checks as validation
from abathur_memory.store.sqlite import migrate as runner


@dataclass
class DoctorReport:
    database: Path
    checks: list[validation.Check]
    read_only: bool = False
    repaired: list[str] = field(default_factory=list)
    reindex: set[int] = field(default_factory=set)  # documents the caller should re-index

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def open_existing(path: Path) -> tuple[driver.Connection, bool]:
    """A connection to the database at ``path`` and whether it is read-only. Never creates."""
    if path.is_dir():
        raise InvalidInput(f"{path} is a directory, not a database file")
    if not path.exists():
        raise NotFound(f"no database at {path} (create one with `abathur-memory init --db {path}`)")
    problem = backups.verify_header(path)
    if problem is not None:
        raise InvalidInput(f"cannot open {path}: {problem}")
    read_only = not driver.writable(path)
    try:
        return driver.connect(path, file_read_only=read_only), read_only
    except driver.DatabaseError:
        # Too damaged for the usual PRAGMAs: open it bare so the checks can say what is wrong.
        return driver.connect_plain(path), read_only


def _consistency(conn: driver.Connection, _: Path) -> list[validation.Check]:
    if runner.current_version(conn) != runner.latest_version():
        return []  # the schema check already says to upgrade (this database or abathur-memory)
    return consistency.check(conn)


def _copy_state(conn: driver.Connection, _: Path) -> list[validation.Check]:
    """A database `migrate` is still filling, or failed to fill, is refused by the server."""
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
    row = (
        conn.execute("SELECT value FROM meta WHERE key = 'migration_state'").fetchone()
        if has_meta
        else None
    )
    return [copy_state_check(None if row is None else str(row[0]))]


EXTRA_CHECKS = (
    ("index consistency", _consistency),
    ("copy state", _copy_state),
    (ann_checks.NAME, ann_checks.check),
)


def examine(path: Path, *, repair: bool = False) -> DoctorReport:
    conn, read_only = open_existing(path)
    try:
        report = DoctorReport(path, [], read_only)
        if repair:
            if read_only:
                raise ReadOnly(f"{path} is read-only: it can be checked but not repaired")
            runner.refuse_newer(conn)  # an older abathur-memory must not rewrite newer data
            _repair(conn, report)
        report.checks = validation.run_checks(conn, path, EXTRA_CHECKS)
        return report
    finally:
        conn.close()


def _repair(conn: driver.Connection, report: DoctorReport) -> None:
    """Fix what the checks report that can be fixed in place. Derived data only: memories,
    sessions and tasks are never touched."""
    if runner.current_version(conn) < runner.latest_version():
        runner.migrate(conn)
        report.repaired.append("applied the missing schema migrations")
    mismatched = ann_checks.mismatched(conn, report.database)  # before repairs move the tables
    conn.execute("BEGIN IMMEDIATE")
    try:
        missing = _recreate_missing_indexes(conn)
        drift = consistency.repair(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if missing:
        report.repaired.append(f"re-created missing indexes: {', '.join(missing)}")
    for saved in mismatched:
        saved.unlink(missing_ok=True)
        report.repaired.append(
            f"removed the approximate index {saved.name}, which did not match its table "
            "(a server rebuilds it)"
        )
    report.repaired.extend(f"repairing: {problem}" for problem in drift.problems)
    report.reindex = drift.documents
    stale = validation.stale_statistics(conn)
    if stale:
        conn.execute("ANALYZE")
        statistics.drop_small(conn)
        report.repaired.append(f"refreshed the statistics of {', '.join(stale)} (ANALYZE)")
    wal = Path(f"{report.database}-wal")
    if wal.exists() and wal.stat().st_size > validation.WAL_WARN_BYTES:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        report.repaired.append(
            "checkpointed the WAL"
            if not busy
            else "the WAL could not be checkpointed: a "
            "reader holds it (stop long-running readers and run `maintain`)"
        )


def _recreate_missing_indexes(conn: driver.Connection) -> list[str]:
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    created = []
    for kind, name, sql, _ in runner.target_schema():
        if kind == "index" and sql and name not in present:
            conn.execute(sql)
            created.append(name)
    return created
