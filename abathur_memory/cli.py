"""The ``abathur-memory`` command line.

Every command takes ``--db`` (or ``ABATHUR_DB``). Errors print one line on stderr and exit
with status 1; usage mistakes exit with 2. Logs go to stderr: stdout is reserved for results
(and, under ``serve``, for the MCP protocol).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from abathur_memory import __version__
from abathur_memory.config import Settings, default_db_path, load_settings
from abathur_memory.errors import AbathurError
from abathur_memory.ops import backup as backups
from abathur_memory.ops import salvage
from abathur_memory.store.sqlite import driver
from abathur_memory.store.sqlite import migrate as runner
from abathur_memory.store.sqlite.database import check_database_path

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True)
out_console = Console()


def db_option(fn: F) -> F:
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Database file (default: $ABATHUR_DB, else the per-user data directory).",
    )(fn)


def principal_options(fn: F) -> F:
    """--user/--app/--project/--admin: who the server acts for (see the namespace policy)."""
    fn = click.option("--admin", is_flag=True, default=None, help="Lift the namespace policy.")(fn)
    fn = click.option("--project", default=None, help="Project (default: $ABATHUR_PROJECT).")(fn)
    fn = click.option("--app", default=None, help="App name (default: $ABATHUR_APP or abathur).")(
        fn
    )
    return click.option("--user", default=None, help="User (default: $ABATHUR_USER or login).")(fn)


def settings_from(db: Path | None, **overrides: Any) -> Settings:
    settings = load_settings(db=db, **overrides)
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="abathur-memory")
def cli() -> None:
    """abathur-memory: durable, searchable memory for AI agents, served over MCP."""


@cli.command()
@db_option
@click.option(
    "--create-dirs", is_flag=True, help="Also create the database's directory if it is missing."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def init(db: Path | None, create_dirs: bool, as_json: bool) -> None:
    """Create the database, or upgrade an older one in place."""
    settings = settings_from(db)
    existed = settings.db.exists()
    conn = _open_for_cli(settings.db, create=True, create_dirs=create_dirs)
    try:
        applied = runner.migrate(conn)
        version = runner.current_version(conn)
    finally:
        conn.close()
    action = "upgraded" if existed and applied else ("created" if applied else "up to date")
    if as_json:
        click.echo(
            json.dumps({"database": str(settings.db), "action": action, "schema_version": version})
        )
        return
    click.echo(f"{settings.db}: {action} (schema version {version})")


@cli.command()
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
def doctor(db: Path | None, as_json: bool, repair: bool, recover_to: Path | None) -> None:
    """Check the database: schema, indexes, PRAGMAs, integrity, query plans, search indexes.

    Exits with status 1 when any check fails (warnings do not fail). It never creates a
    database; a read-only file is checked without being written.
    """
    from abathur_memory.ops import doctor as doctor_ops

    settings = settings_from(db)
    if recover_to is not None:
        _recover(settings.db, recover_to, as_json)
        return
    report = doctor_ops.examine(settings.db, repair=repair)
    for line in report.repaired:
        err_console.print(line, highlight=False)
    if report.reindex:
        _reindex(settings)
        err_console.print(f"re-indexed {len(report.reindex)} documents")
        report = doctor_ops.examine(settings.db)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "database": str(settings.db),
                    "version": __version__,
                    "read_only": report.read_only,
                    "checks": [c.as_dict() for c in report.checks],
                },
                indent=2,
            )
        )
    else:
        table = Table(title=f"abathur-memory doctor — {settings.db}", show_lines=False)
        table.add_column("", width=2)
        table.add_column("check")
        table.add_column("detail", overflow="fold")
        for check in report.checks:
            mark = (
                "[red]✗[/]"
                if not check.ok
                else ("[yellow]![/]" if check.warning else "[green]✓[/]")
            )
            table.add_row(mark, check.name, escape(check.detail))
        out_console.print(table)
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


def _reindex(settings: Settings) -> None:
    """Re-index the documents a repair marked (needs the embedding model)."""
    from abathur_memory.cli_documents import document_service

    async def reindex() -> None:
        async with document_service(settings) as docs:
            await docs.index()

    asyncio.run(reindex())


def _recover(db_path: Path, output: Path, as_json: bool) -> None:
    result = salvage.salvage(db_path, output)
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


@cli.command()
@db_option
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--gzip", "compress", is_flag=True, help="Compress the backup with gzip.")
@click.option(
    "--keep-days",
    type=click.IntRange(min=1),
    default=None,
    help="In a backup directory, delete this database's own backups older than N days.",
)
def backup(db: Path | None, dest: Path, compress: bool, keep_days: int | None) -> None:
    """Back up the database to DEST, consistently, even while a server is writing.

    DEST ending in .db, .sqlite or .gz is a file; anything else is a directory that gets
    timestamped copies (<name>-<UTC time>.db[.gz]).
    """
    settings = settings_from(db)
    result = backups.backup(settings.db, dest, compress=compress, keep_days=keep_days)
    click.echo(f"backed up {settings.db} to {result.path} ({result.size} bytes, verified)")
    for path in result.pruned:
        click.echo(f"pruned {path}")


@cli.command()
@db_option
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
def restore(db: Path | None, src: Path) -> None:
    """Replace the database with the backup SRC (.db or .db.gz), after verifying it.

    The database being replaced is kept beside it as <name>.before-restore-<time>.db.
    """
    settings = settings_from(db)
    result = backups.restore(src, settings.db)
    click.echo(f"restored {settings.db} from {src}")
    if result.previous_copy:
        click.echo(f"the replaced database is kept at {result.previous_copy}")


@cli.command()
@db_option
@click.option("--dry-run", is_flag=True, help="Only report what would be done.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def maintain(db: Path | None, dry_run: bool, as_json: bool) -> None:
    """Regular maintenance: apply the lifecycle policy, then refresh the statistics, reclaim
    free space and checkpoint the WAL.

    The policy is the memory app:abathur:config/memory_lifecycle_policies
    (episodic_ttl_days, archival_after_days): episodic memories not updated for that long
    are soft-deleted, terminated sessions that old are archived.
    """
    from abathur_memory.memory.services import Services
    from abathur_memory.ops import doctor as doctor_ops
    from abathur_memory.ops import maintain as maintenance

    settings = settings_from(db)
    doctor_ops.open_existing(settings.db)[0].close()  # refuse a missing database

    async def lifecycle() -> dict[str, Any]:
        services = await Services.open(settings)
        try:
            return (await services.lifecycle.run(dry_run=dry_run)).as_dict()
        finally:
            await services.close()

    report = asyncio.run(lifecycle())
    conn = driver.connect(settings.db)
    try:
        steps = maintenance.run(conn, settings.db, dry_run=dry_run)
    finally:
        conn.close()
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
    for step in steps:
        click.echo(f"{step.name}: {step.detail}")


def _open_for_cli(path: Path, *, create: bool, create_dirs: bool = False) -> driver.Connection:
    """Open a database for a one-shot command, with one-line errors for the usual failures."""
    check_database_path(path, create=create, create_dirs=create_dirs or path == default_db_path())
    try:
        return driver.connect(path)
    except driver.Error as exc:
        raise AbathurError(f"cannot open {path}: {exc}") from None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI, turning our errors into one-line messages."""
    try:
        cli.main(args=argv, prog_name="abathur-memory", standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AbathurError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except BaseExceptionGroup as group:  # a server's task group failing on our error
        ours = _first_of(group, AbathurError)
        if ours is None:
            raise
        click.echo(f"error: {ours}", err=True)
        sys.exit(1)


def _first_of(group: BaseExceptionGroup, kind: type[AbathurError]) -> AbathurError | None:
    for exc in group.exceptions:
        if isinstance(exc, kind):
            return exc
        if isinstance(exc, BaseExceptionGroup) and (found := _first_of(exc, kind)) is not None:
            return found
    return None


# Document commands (index, search, status, watch, roots) and the server's (serve, tokens)
# register themselves on `cli`.
from abathur_memory import cli_documents as _cli_documents  # noqa: E402, F401
from abathur_memory import cli_server as _cli_server  # noqa: E402, F401
