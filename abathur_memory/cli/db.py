"""Database commands: init, doctor, backup, restore, maintain."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from abathur_memory import __version__
from abathur_memory.cli.common import (
    db_option,
    err_console,
    out_console,
    print_rows,
    settings_from,
)
from abathur_memory.config import Settings
from abathur_memory.runtime import open_runtime
from abathur_memory.store.open import open_operations
from abathur_memory.store.operations import FileCopies


@click.command()
@db_option
@click.option(
    "--create-dirs", is_flag=True, help="Also create the database's directory if it is missing."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def init(db: str | None, create_dirs: bool, as_json: bool) -> None:
    """Create the database, or upgrade an older one in place."""
    settings = settings_from(db)
    done = open_operations(settings).initialize(create_dirs=create_dirs)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "database": done.database,
                    "action": done.action,
                    "schema_version": done.schema_version,
                }
            )
        )
        return
    click.echo(f"{done.database}: {done.action} (schema version {done.schema_version})")


@click.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option(
    "--repair",
    is_flag=True,
    help="Fix what the checks find in derived data: indexes, statistics, the document and "
    "memory search indexes (re-indexing what disagrees).",
)
@click.option(
    "--recover",
    "recover_to",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Salvage what is readable from a damaged database into this new file.",
)
def doctor(db: str | None, as_json: bool, repair: bool, recover_to: Path | None) -> None:
    """Check the database: schema, indexes, PRAGMAs, integrity, query plans, search indexes.

    Exits with status 1 when any check fails (warnings do not fail). It never creates a
    database; a read-only file is checked without being written.
    """

    settings = settings_from(db)
    operations = open_operations(settings)
    if recover_to is not None:
        if operations.files is None:
            raise click.UsageError(
                "--recover salvages a damaged SQLite file; a PostgreSQL server recovers from "
                "its own WAL (restore a base backup or a pg_dump instead)"
            )
        _recover(operations.files, recover_to, as_json)
        return
    report = operations.examine(repair=repair)
    for line in report.repaired:
        err_console.print(line, highlight=False)
    if report.reindex:
        _reindex(settings)
        err_console.print(f"re-indexed {len(report.reindex)} documents")
        report = operations.examine()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "database": settings.db_label,
                    "version": __version__,
                    "read_only": report.read_only,
                    "checks": [c.as_dict() for c in report.checks],
                },
                indent=2,
            )
        )
    else:
        print_rows(
            f"abathur-memory doctor — {settings.db_label}",
            ("ok", "check", "detail"),
            [(_mark(check), check.name, check.detail) for check in report.checks],
            styles=[
                "red" if not check.ok else ("yellow" if check.warning else None)
                for check in report.checks
            ],
        )
        failed = sum(not c.ok for c in report.checks)
        warned = sum(c.ok and c.warning for c in report.checks)
        summary = (
            "[green]all checks passed[/]" if report.ok else f"[red]{failed} check(s) failed[/]"
        )
        if warned:
            summary += f" ([yellow]{warned} warning(s)[/])"
        if report.read_only:
            summary += " — read-only file, checked without writing"
        out_console.print(summary)
    if not report.ok:
        sys.exit(1)


def _mark(check: Any) -> str:
    return "✗" if not check.ok else ("!" if check.warning else "✓")


def _reindex(settings: Settings) -> None:
    """Re-index the documents a repair marked (needs the embedding model)."""

    async def reindex() -> None:
        async with open_runtime(settings, create=False) as runtime:
            await runtime.documents.index()

    asyncio.run(reindex())


def _recover(files: FileCopies, output: Path, as_json: bool) -> None:
    result = files.salvage(output)
    tables = {name: vars(stats) for name, stats in result.tables.items()}
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": True,
                    "output": str(output),
                    "copied": result.copied,
                    "read_errors": result.read_errors,
                    "tables": tables,
                    "reindex": result.reindex_documents,
                },
                indent=2,
            )
        )
        return
    for name, stats in tables.items():
        click.echo(
            f"{name}: {stats['copied']} rows copied, {stats['read_errors']} unreadable, "
            f"{stats['detached']} detached, {stats['dropped']} dropped"
        )
    click.echo(f"salvaged {result.copied} rows into {output} (verified)")
    if result.reindex_documents:
        click.echo(
            f"{result.reindex_documents} documents will be re-indexed by the next "
            f"`abathur-memory index --db {output}` (their chunks and vectors are derived)"
        )


@click.command()
@db_option
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--gzip", "compress", is_flag=True, help="Compress the backup with gzip.")
@click.option(
    "--keep-days",
    type=click.IntRange(min=1),
    default=None,
    help="In a backup directory, delete this database's own backups older than N days.",
)
def backup(db: str | None, dest: Path, compress: bool, keep_days: int | None) -> None:
    """Back up the database to DEST, consistently, even while a server is writing.

    DEST ending in .db, .sqlite or .gz is a file; anything else is a directory that gets
    timestamped copies (<name>-<UTC time>.db[.gz]).
    """
    settings = settings_from(db)
    files = _files(settings, "backup")
    result = files.backup(dest, compress=compress, keep_days=keep_days)
    click.echo(f"backed up {settings.db_path} to {result.path} ({result.size} bytes, verified)")
    for path in result.pruned:
        click.echo(f"pruned {path}")


@click.command()
@db_option
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
def restore(db: str | None, src: Path) -> None:
    """Replace the database with the backup SRC (.db or .db.gz), after verifying it.

    The database being replaced is kept beside it as <name>.before-restore-<time>.db.
    """
    settings = settings_from(db)
    files = _files(settings, "restore")
    result = files.restore(src)
    click.echo(f"restored {settings.db_path} from {src}")
    if result.previous_copy:
        click.echo(f"the replaced database is kept at {result.previous_copy}")


@click.command()
@db_option
@click.option("--dry-run", is_flag=True, help="Only report what would be done.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def maintain(db: str | None, dry_run: bool, as_json: bool) -> None:
    """Regular maintenance: apply the lifecycle policy, then refresh the statistics, reclaim
    free space and checkpoint the WAL.

    The policy is the memory app:abathur:config/memory_lifecycle_policies
    (episodic_ttl_days, archival_after_days): episodic memories not updated for that long
    are soft-deleted, terminated sessions that old are archived.
    """
    settings = settings_from(db)

    async def lifecycle() -> dict[str, Any]:
        async with open_runtime(settings, create=False) as runtime:
            report = (await runtime.lifecycle.run(dry_run=dry_run)).model_dump()
            if not dry_run:
                rolled, pruned = await runtime.roll_up_metrics()
                report["metrics"] = {"rolled_up": rolled, "pruned_minutes": pruned}
            return report

    report = asyncio.run(lifecycle())
    steps = open_operations(settings).maintain(dry_run=dry_run)
    report["database"] = [vars(step) for step in steps]
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    verb = "would expire" if dry_run else "expired"
    click.echo(
        f"{verb} {len(report['expired_memories'])} episodic memories "
        f"(older than {report['policy']['episodic_ttl_days']} days)"
    )
    for item in report["expired_memories"]:
        click.echo(f"  {item['namespace']}/{item['key']} (version {item['version']})")
    verb = "would archive" if dry_run else "archived"
    click.echo(
        f"{verb} {len(report['archived_sessions'])} terminated sessions "
        f"(older than {report['policy']['archival_after_days']} days)"
    )
    for session_id in report["archived_sessions"]:
        click.echo(f"  {session_id}")
    if "metrics" in report:
        click.echo(
            f"metrics: rolled {report['metrics']['rolled_up']} calls up into minutes, "
            f"pruned {report['metrics']['pruned_minutes']} minutes past the retention"
        )
    for run in report["consolidation"]:
        if run["mode"] == "due":
            click.echo(f"would consolidate {run['prefix']} (due)")
        else:
            counts = ", ".join(f"{k}: {v}" for k, v in run["counts"].items())
            click.echo(
                f"consolidated {run['prefix']}: {run['mode']} run {run['run_id']} ({counts})"
            )
    for step in steps:
        click.echo(f"{step.name}: {step.detail}")


def _files(settings: Settings, command: str) -> FileCopies:
    """The copies of the database file, or a usage error where a server owns the files."""
    files = open_operations(settings).files
    if files is None:
        raise click.UsageError(
            f"`{command}` copies a SQLite file; back up PostgreSQL with its own tools "
            "(`pg_dump -Fc`, then `pg_restore`), or copy it into SQLite with "
            "`abathur-memory migrate --to FILE.db`"
        )
    return files
