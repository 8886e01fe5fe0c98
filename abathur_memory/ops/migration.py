"""`abathur-memory migrate`: copy a whole database into another backend, then prove it.

Every table goes across (memories with their full history, sessions with their events,
tasks, checkpoints, audit, tokens, roots, documents with their chunks and vectors: nothing
is re-embedded), in batches in key order, each batch one transaction on the target together
with the copy's position. An interrupted copy is resumed by running the same command again.
The memory keyword index is derived data: the target rebuilds it from the copied memories.

Then every table is validated: the row count and a checksum of every row's values (see
store/copy_tables.py) must match on both sides. Until a copy is complete and valid the target
is marked (``meta.migration_state``) and the stores refuse to serve it, saying why.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abathur_memory.config import Settings
from abathur_memory.errors import InvalidInput
from abathur_memory.store.copy_tables import BASE_TABLES, Checksum, Table, space_tables
from abathur_memory.store.open import POSTGRES_SCHEMES, open_operations
from abathur_memory.store.operations import Endpoint, Progress

BATCH_ROWS = 2000
STATE_KEY = "migration_state"
SOURCE_KEY = "migration_source"
PROGRESS_KEY = "migration_progress"


@dataclass
class TableCheck:
    table: str
    source_rows: int
    target_rows: int | None = None
    source_checksum: str | None = None
    target_checksum: str | None = None

    @property
    def ok(self) -> bool:
        return (self.source_rows, self.source_checksum) == (
            self.target_rows,
            self.target_checksum,
        )


@dataclass
class MigrationReport:
    source: str
    target: str
    dry_run: bool
    tables: list[TableCheck] = field(default_factory=list)
    resumed: bool = False
    copied_rows: int = 0
    seconds: float = 0.0
    state: str = ""  # complete | failed: why | (dry run) what the target holds

    @property
    def ok(self) -> bool:
        return self.dry_run or self.state == "complete"

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "state": self.state,
            "resumed": self.resumed,
            "copied_rows": self.copied_rows,
            "seconds": round(self.seconds, 2),
            "tables": [
                {
                    "table": t.table,
                    "source_rows": t.source_rows,
                    "target_rows": t.target_rows,
                    "source_checksum": t.source_checksum,
                    "target_checksum": t.target_checksum,
                    "ok": t.ok if not self.dry_run else None,
                }
                for t in self.tables
            ],
        }


def open_endpoint(spec: str, settings: Settings, *, target: bool) -> Endpoint:
    """A database named by a path (SQLite) or a postgresql:// URL."""
    return open_operations(settings, spec).endpoint(target=target)


def copy(
    source_spec: str,
    target_spec: str,
    settings: Settings,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
) -> MigrationReport:
    started = time.monotonic()
    if _same(source_spec, target_spec):
        raise InvalidInput("the source and the target are the same database")
    source = open_endpoint(source_spec, settings, target=False)
    try:
        source.begin_snapshot()
        tables = _tables(source)
        target_ops = open_operations(settings, target_spec)
        report = MigrationReport(source.label, target_ops.label, dry_run)
        counts = {t.name: source.count(t) for t in tables}
        report.tables = [TableCheck(t.name, counts[t.name]) for t in tables]
        if dry_run:
            report.state = target_ops.target_state(STATE_KEY)
            report.seconds = time.monotonic() - started
            return report
        with target_ops.full_disk_reported():
            _copy_into(source, target_spec, settings, tables, counts, report, batch_rows, progress)
        source.end_snapshot()
    finally:
        source.close()
    report.seconds = time.monotonic() - started
    return report


def _copy_into(
    source: Endpoint,
    target_spec: str,
    settings: Settings,
    tables: list[Table],
    counts: dict[str, int],
    report: MigrationReport,
    batch_rows: int,
    progress: Progress | None,
) -> None:
    target = open_endpoint(target_spec, settings, target=True)
    try:
        report.target = target.label
        report.resumed = _start(source, target)
        positions: dict[str, Any] = json.loads(target.meta(PROGRESS_KEY) or "{}")
        total = sum(counts.values())
        done = sum(counts[n] for n, p in positions.items() if p == "done" and n in counts)
        for table in tables:
            done, copied = _copy_table(
                source, target, table, positions, batch_rows, progress, done, total
            )
            report.copied_rows += copied
        _finish(source, target, positions, progress)
        _validate(source, target, tables, report, progress)
        failed = [t.table for t in report.tables if not t.ok]
        report.state = (
            "complete"
            if not failed
            else f"failed: {', '.join(failed)} differ from the source (counts or checksums)"
        )
        target.set_meta(STATE_KEY, report.state)
    finally:
        target.close()


def _same(a: str, b: str) -> bool:
    if a.startswith(POSTGRES_SCHEMES):
        return a == b
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _tables(source: Endpoint) -> list[Table]:
    tables = list(BASE_TABLES)
    for space_id, dim in source.spaces():
        tables.extend(space_tables(space_id, dim))
    return tables


def _start(source: Endpoint, target: Endpoint) -> bool:
    """Claim the target for this copy; True when resuming an interrupted one."""
    state = target.meta(STATE_KEY)
    if state is None:
        if target.holds_user_data():
            raise InvalidInput(
                f"{target.label} already holds memories, sessions, tasks or documents: "
                "migrate into an empty database (a new schema or file)"
            )
        target.clear()
        target.set_meta(SOURCE_KEY, source.label)
        target.set_meta(PROGRESS_KEY, "{}")
        target.set_meta(STATE_KEY, "copying")
        return False
    if target.meta(SOURCE_KEY) != source.label:
        raise InvalidInput(
            f"{target.label} holds a copy of {target.meta(SOURCE_KEY)}, not of {source.label}"
        )
    if state == "complete":
        raise InvalidInput(f"{target.label} is already a complete, validated copy of it")
    target.set_meta(STATE_KEY, "copying")
    return True


def _key_of(table: Table, row: tuple[Any, ...]) -> list[Any]:
    names = table.column_names()
    return [row[names.index(k)] for k in table.key]


def _copy_table(
    source: Endpoint,
    target: Endpoint,
    table: Table,
    positions: dict[str, Any],
    batch_rows: int,
    progress: Progress | None,
    done: int,
    total: int,
) -> tuple[int, int]:
    position = positions.get(table.name)
    if position == "done":
        return done, 0
    if table.space_id is not None and not positions.get(f"{table.name}:tables"):
        if table.name.startswith("chunks_s"):
            target.create_space(table.space_id, table.dim)
        positions[f"{table.name}:tables"] = True
    copied = 0
    while True:
        rows = source.read(table, position, batch_rows)
        if not rows:
            break
        position = _key_of(table, rows[-1])
        positions[table.name] = position
        target.write(table, rows, json.dumps(positions, default=str))
        copied += len(rows)
        done += len(rows)
        if progress:
            progress(table.name, done, total)
    positions[table.name] = "done"
    target.set_meta(PROGRESS_KEY, json.dumps(positions, default=str))
    return done, copied


def _finish(
    source: Endpoint, target: Endpoint, positions: dict[str, Any], progress: Progress | None
) -> None:
    tasks = next(t for t in BASE_TABLES if t.name == "tasks")
    names = tasks.column_names()
    parents: list[tuple[str, str]] = []
    position = None
    while True:
        rows = source.read(tasks, position, BATCH_ROWS)
        if not rows:
            break
        position = _key_of(tasks, rows[-1])
        child, parent = names.index("id"), names.index("parent_task_id")
        parents += [(r[child], r[parent]) for r in rows if r[parent] is not None]
    target.finish_tasks(parents)
    target.finish(progress)


def _validate(
    source: Endpoint,
    target: Endpoint,
    tables: list[Table],
    report: MigrationReport,
    progress: Progress | None,
) -> None:
    by_name = {t.table: t for t in report.tables}
    for number, table in enumerate(tables, start=1):
        check = by_name[table.name]
        check.source_rows, check.source_checksum = _checksum(source, table)
        check.target_rows, check.target_checksum = _checksum(target, table)
        if progress:
            progress("validating", number, len(tables))


def _checksum(endpoint: Endpoint, table: Table) -> tuple[int, str]:
    checksum = Checksum()
    position = None
    kinds = table.kinds()
    while True:
        rows = endpoint.read(table, position, BATCH_ROWS)
        if not rows:
            break
        checksum.add(kinds, rows)
        position = _key_of(table, rows[-1])
    return checksum.rows, checksum.hexdigest()
