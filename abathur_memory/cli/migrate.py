"""`migrate`: copy the database into another backend (SQLite to PostgreSQL, or back)."""

from __future__ import annotations

import json
import sys

import click

from abathur_memory.cli.common import (
    db_option,
    out_console,
    print_rows,
    progress_bar,
    settings_from,
)
from abathur_memory.ops import migration


@click.command()
@db_option
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL|PATH",
    help="The database to copy into: a postgresql:// URL (its schema must be empty or hold an "
    "unfinished copy of this one) or a new SQLite file.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Count what would be copied and check the target; write nothing.",
)
@click.option(
    "--batch-rows",
    type=click.IntRange(1, 100_000),
    default=migration.BATCH_ROWS,
    show_default=True,
    help="Rows per transaction on the target.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def migrate(db: str | None, target: str, dry_run: bool, batch_rows: int, as_json: bool) -> None:
    """Copy every table of --db into --to, then validate row counts and checksums.

    Memories with their history, sessions with their events, tasks, checkpoints, audit,
    tokens, document roots, documents with their chunks and vectors (nothing is re-embedded).
    Run it again after an interruption: it resumes. Until the copy is complete and valid the
    target refuses to be served. Stop the servers writing to --db first: what they write
    during the copy is not carried.
    """
    settings = settings_from(db)
    with progress_bar(not as_json) as step:
        report = migration.copy(
            settings.db, target, settings, dry_run=dry_run, progress=step, batch_rows=batch_rows
        )
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        _print(report)
    if not report.ok:
        sys.exit(1)


def _print(report: migration.MigrationReport) -> None:
    title = f"{report.source} -> {report.target}" + (" (dry run)" if report.dry_run else "")
    if report.dry_run:
        print_rows(title, ("table", "rows"), [(c.table, str(c.source_rows)) for c in report.tables])
    else:
        rows = []
        for check in report.tables:
            same = check.source_checksum == check.target_checksum
            digest = (
                (check.source_checksum or "")
                if same
                else (f"{check.source_checksum} != {check.target_checksum}")
            )
            mark = "✓" if check.ok else "✗"
            rows.append((check.table, str(check.source_rows), str(check.target_rows), digest, mark))
        print_rows(
            title,
            ("table", "rows", "copied", "checksum", "ok"),
            rows,
            styles=[None if check.ok else "red" for check in report.tables],
        )
    if report.dry_run:
        out_console.print(
            f"{sum(t.source_rows for t in report.tables)} rows would be copied; {report.state}"
        )
    elif report.ok:
        resumed = " (resumed)" if report.resumed else ""
        out_console.print(
            f"[green]copied and validated[/]{resumed}: {report.copied_rows} rows in "
            f"{report.seconds:.1f}s; serve it with --db {report.target}",
            soft_wrap=True,
        )
    else:
        out_console.print(
            f"[red]{report.state}[/]: the target refuses to be served", soft_wrap=True
        )
