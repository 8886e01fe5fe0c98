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
from rich.table import Table

from abathur_memory import __version__
from abathur_memory.config import Settings, default_db_path, load_settings
from abathur_memory.errors import AbathurError, NotFound
from abathur_memory.indexer import consistency
from abathur_memory.schema import runner, validation
from abathur_memory.storage import backup as backups
from abathur_memory.storage import driver, salvage

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
def init(db: Path | None) -> None:
    """Create the database, or upgrade an older one in place."""
    settings = settings_from(db)
    existed = settings.db.exists()
    conn = _open_for_cli(settings.db, create=True)
    try:
        applied = runner.migrate(conn)
        version = runner.current_version(conn)
    finally:
        conn.close()
    action = "upgraded" if existed and applied else ("created" if applied else "up to date")
    click.echo(f"{settings.db}: {action} (schema version {version})")


@cli.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option(
    "--repair",
    is_flag=True,
    help="Re-index documents whose chunks, full-text rows or vectors disagree.",
)
@click.option(
    "--recover",
    "recover_to",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Salvage what is readable from a damaged database into this new file.",
)
def doctor(db: Path | None, as_json: bool, repair: bool, recover_to: Path | None) -> None:
    """Check the database: schema, indexes, PRAGMAs, integrity and query plans.

    Exits with status 1 when any check fails. A database that does not exist yet is created
    first (in an existing directory), so a new install can be checked end to end.
    """
    settings = settings_from(db)
    if recover_to is not None:
        _recover(settings.db, recover_to, as_json)
        return
    created = not settings.db.exists()
    conn = _open_for_cli(settings.db, create=True)
    try:
        if created:
            runner.migrate(conn)
            logging.getLogger(__name__).warning("created a new database at %s", settings.db)
        if repair:
            _repair(conn, settings)
        checks = validation.run_checks(conn, settings.db)
        if runner.current_version(conn) >= runner.latest_version():
            checks.extend(consistency.check(conn))
    finally:
        conn.close()
    ok = all(check.ok for check in checks)
    if as_json:
        report = {
            "ok": ok,
            "database": str(settings.db),
            "version": __version__,
            "checks": [c.as_dict() for c in checks],
        }
        click.echo(json.dumps(report, indent=2))
    else:
        table = Table(title=f"abathur-memory doctor — {settings.db}", show_lines=False)
        table.add_column("", width=2)
        table.add_column("check")
        table.add_column("detail", overflow="fold")
        for check in checks:
            table.add_row("[green]✓[/]" if check.ok else "[red]✗[/]", check.name, check.detail)
        out_console.print(table)
        failed = sum(not c.ok for c in checks)
        out_console.print(
            "[green]all checks passed[/]" if ok else f"[red]{failed} check(s) failed[/]"
        )
    if not ok:
        sys.exit(1)


def _repair(conn: driver.Connection, settings: Settings) -> None:
    """Fix index drift: mark what disagrees for re-indexing, then re-index it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        drift = consistency.repair(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    for problem in drift.problems:
        err_console.print(f"repairing: {problem}")
    if drift.documents:
        from abathur_memory.cli_documents import document_service

        async def reindex() -> None:
            async with document_service(settings) as docs:
                await docs.index()

        asyncio.run(reindex())
        err_console.print(f"re-indexed {len(drift.documents)} documents")


def _recover(db_path: Path, output: Path, as_json: bool) -> None:
    result = salvage.salvage(db_path, output)
    problem = backups.verify_database(output)
    tables = {name: vars(stats) for name, stats in result.tables.items()}
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": problem is None,
                    "output": str(output),
                    "copied": result.copied,
                    "read_errors": result.read_errors,
                    "tables": tables,
                },
                indent=2,
            )
        )
    else:
        for name, stats in tables.items():
            click.echo(
                f"{name}: {stats['copied']} rows copied, {stats['read_errors']} unreadable, "
                f"{stats['detached']} detached, {stats['dropped']} dropped"
            )
        click.echo(f"salvaged {result.copied} rows into {output}")
    if problem:
        raise AbathurError(f"the salvaged file did not verify: {problem}")


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
@principal_options
@click.option(
    "--transport",
    type=click.Choice(["stdio", "streamable-http"]),
    default="stdio",
    show_default=True,
    help="stdio for MCP clients that start the server; streamable-http to serve on 127.0.0.1.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8765,
    show_default=True,
    help="Port for streamable-http (always bound to 127.0.0.1).",
)
def serve(db: Path | None, transport: str, port: int, **principal: Any) -> None:
    """Serve the MCP tools (memories, sessions, tasks) over stdio or streamable HTTP."""
    from abathur_memory.server.app import create_server

    settings = settings_from(db, **principal)
    server = create_server(settings)
    if transport == "stdio":
        server.run("stdio")
    else:
        err_console.print(f"serving MCP on http://127.0.0.1:{port}/mcp (database {settings.db})")
        server.run("streamable-http", host="127.0.0.1", port=port)


@cli.command()
@db_option
@click.option("--dry-run", is_flag=True, help="Only list what would be expired or archived.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def maintain(db: Path | None, dry_run: bool, as_json: bool) -> None:
    """Apply the lifecycle policy: expire old episodic memories, archive old sessions.

    The policy is the memory app:abathur:config/memory_lifecycle_policies
    (episodic_ttl_days, archival_after_days).
    """
    from abathur_memory.memory.services import Services

    settings = settings_from(db)

    async def run() -> dict[str, Any]:
        services = await Services.open(settings)
        try:
            return (await services.lifecycle.run(dry_run=dry_run)).as_dict()
        finally:
            await services.close()

    report = asyncio.run(run())
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


def _open_for_cli(path: Path, *, create: bool) -> driver.Connection:
    """Open a database for a one-shot command, with one-line errors for the usual failures."""
    if path.is_dir():
        raise AbathurError(f"{path} is a directory, not a database file")
    if not path.exists():
        if not create:
            raise NotFound(f"no database at {path}")
        if path == default_db_path():
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.parent.is_dir():
            raise NotFound(f"no database at {path}, and its directory {path.parent} does not exist")
    elif (problem := backups.verify_header(path)) is not None:
        raise AbathurError(f"cannot open {path}: {problem}")
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


# Document commands (index, search, status, watch, roots) register themselves on `cli`.
from abathur_memory import cli_documents as _cli_documents  # noqa: E402, F401
