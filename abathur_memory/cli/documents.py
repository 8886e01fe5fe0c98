"""Document commands: index, search, status, watch, roots."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from abathur_memory.cli.common import (
    db_option,
    err_console,
    out_console,
    print_rows,
    settings_from,
)
from abathur_memory.config import Settings
from abathur_memory.core.principal import Principal
from abathur_memory.documents.reports import IndexReport, IndexStatus
from abathur_memory.documents.roots import VISIBILITIES, Root
from abathur_memory.documents.service import DocumentService
from abathur_memory.documents.worker import Progress as WorkProgress
from abathur_memory.runtime import open_runtime
from abathur_memory.search.query import MODES
from abathur_memory.search.results import Filters, SearchResult


@contextlib.asynccontextmanager
async def document_service(
    settings: Settings, *, create: bool = False
) -> AsyncIterator[DocumentService]:
    """The runtime's document service. Only `index` may create the database here."""
    async with open_runtime(settings, create=create, readers=2) as runtime:
        yield runtime.documents


def operator_principal(settings: Settings) -> Principal:
    """Who owns the roots this command registers: the configured user and project."""
    return Principal(user=settings.user, app=settings.app, project=settings.project)


async def register_roots(
    docs: DocumentService,
    specs: list[str],
    excludes: tuple[str, ...],
    *,
    owner: Principal,
    visibility: str | None = None,
) -> list[Root]:
    roots = []
    for spec in specs:
        registered = await docs.add_root(spec, excludes, owner=owner, visibility=visibility)
        for note in registered.notes:
            err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
        roots.append(registered.root)
    return roots


VISIBILITY = click.option(
    "--visibility",
    type=click.Choice(VISIBILITIES),
    default=None,
    help="Who may search and read a new root over MCP: private (its owner, the default), "
    "project (the owner's project) or all.",
)


@click.command()
@db_option
@click.argument("dirs", nargs=-1)
@click.option("--full", is_flag=True, help="Re-read, re-chunk and re-index every document.")
@click.option("--exclude", multiple=True, help="Gitignore-style pattern to skip (repeatable).")
@VISIBILITY
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def index(
    db: str | None,
    dirs: tuple[str, ...],
    full: bool,
    exclude: tuple[str, ...],
    visibility: str | None,
    as_json: bool,
) -> None:
    """Index markdown folders (DIR or NAME=DIR); without DIRs, the folders indexed before.

    Only what changed since the last run is read and embedded; an interrupted run carries
    on where it stopped.
    """
    settings = settings_from(db)
    seen: list[WorkProgress] = []  # the run's progress, to report what an interruption kept

    def record(state: WorkProgress) -> None:
        seen[:] = [state]

    async def run() -> IndexReport:
        async with document_service(settings, create=True) as docs:
            chosen = await register_roots(
                docs,
                [*settings.docs, *dirs],
                tuple([*settings.exclude, *exclude]),
                owner=operator_principal(settings),
                visibility=visibility,
            )
            if not await docs.roots():
                raise click.UsageError("no folders to index: give one, e.g. `index ~/notes`")
            only = chosen if dirs else None
            if as_json or not err_console.is_terminal:  # a bar only where it can redraw
                report = await docs.index(only, full=full, progress=record)
            else:
                report = await _index_with_progress(docs, only, full, record)
            return report

    try:
        report = asyncio.run(run())
    except KeyboardInterrupt:
        kept = seen[-1].documents_done if seen else 0
        err_console.print(
            f"interrupted: kept the {kept} documents indexed so far; the rest stay pending"
            " (run `abathur-memory index` again to carry on)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(130)
    if as_json:
        click.echo(report.model_dump_json(indent=2))
        return
    for scan in report.scans:
        click.echo(
            f"{scan.root}: {scan.files} files ({scan.new} new, {scan.changed} changed,"
            f" {scan.moved} moved, {scan.deleted} deleted)"
        )
        if scan.files == 0 and not scan.skipped.get(""):
            err_console.print(
                f"[yellow]warning:[/] {escape(scan.root)} holds no markdown files "
                "(.md, .markdown) that are not excluded or ignored",
                highlight=False,
            )
        for path, reason in list(scan.skipped.items())[:10]:
            click.echo(f"  skipped {path or scan.root}: {reason}")
    work = report.work
    assert work is not None  # an index run always works
    line = (
        f"indexed {work.documents_done} documents ({work.chunks_embedded} chunks embedded,"
        f" {work.chunks_reused} reused) in {work.seconds:.1f}s"
    )
    if report.failed_count:
        line += f"; {report.failed_count} documents could not be indexed (see `status`)"
    click.echo(line)
    for failure in report.failed[:10]:
        click.echo(f"  failed {failure.path}: {failure.error}")
    if work.held_elsewhere:
        click.echo(
            f"another indexer is working on {work.held_elsewhere} documents of these folders;"
            " they are indexed when it finishes"
        )


async def _index_with_progress(
    docs: DocumentService,
    only: list[Root] | None,
    full: bool,
    record: Callable[[WorkProgress], None],
) -> IndexReport:
    """A bar over the bytes to embed (file counts mislead: the first files may be tiny)."""
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[files]} files"),
        TextColumn("{task.fields[chunks]} chunks, {task.fields[rate]} emb/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task("indexing", total=None, files="0", chunks=0, rate="-")

        def update(state: WorkProgress) -> None:
            record(state)
            rate = state.chunks_embedded / state.embed_seconds if state.embed_seconds else 0
            done = state.documents_done + state.documents_failed
            bar.update(
                task,
                total=state.bytes_total or None,
                completed=min(state.bytes_done, state.bytes_total),
                files=f"{done}/{state.documents_total}",
                chunks=state.chunks_embedded + state.chunks_reused,
                rate=f"{rate:.1f}",
            )

        return await docs.index(only, full=full, progress=update)


@click.command()
@db_option
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True)
@click.option("--root", default=None, help="Only this root (by name).")
@click.option(
    "--path",
    "path_glob",
    default=None,
    help="Only documents whose path inside their root matches this glob: * and ? stay in one "
    "folder, ** spans folders (e.g. 'guides/*.md', '**/setup*.md').",
)
@click.option("--tag", "tags", multiple=True, help="Only documents with this tag (repeatable).")
@click.option("--type", "document_type", default=None, help="Only this document type.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def search(
    db: str | None,
    query: str,
    k: int,
    mode: str,
    root: str | None,
    path_glob: str | None,
    tags: tuple[str, ...],
    document_type: str | None,
    as_json: bool,
) -> None:
    """Search the indexed documents (hybrid keyword + semantic by default)."""
    settings = settings_from(db)
    filters = Filters(root=root, path_glob=path_glob, tags=list(tags), document_type=document_type)

    async def run() -> SearchResult:
        async with document_service(settings) as docs:
            return await docs.search(None, query, k, mode, filters)

    result = asyncio.run(run())
    if as_json:
        click.echo(json.dumps(_rounded(result), indent=2, ensure_ascii=False))
        return
    if result.degraded:
        err_console.print(f"[yellow]note:[/] {result.degraded}")
    if not result.results:
        click.echo("no results")
        return
    for rank, hit in enumerate(result.results, start=1):
        heading = " > ".join(hit.heading)
        flag = "  [changed on disk]" if hit.changed_since_indexed else ""
        out_console.print(
            f"[bold]{rank}. {escape(hit.path)}[/]:{hit.start_line}-{hit.end_line}"
            f"  [dim]{escape(heading)}[/]  score {hit.score:.4f}{flag}",
            highlight=False,
        )
        snippet = re.sub(r"\*\*(.+?)\*\*", r"[bold]\1[/bold]", escape(hit.snippet))
        out_console.print(f"   {snippet}", highlight=False)


def _rounded(result: SearchResult) -> dict[str, Any]:
    """The result as JSON, with the timings rounded."""
    shown = result.model_dump()
    shown["search_ms"] = round(result.search_ms, 2)
    shown["embed_ms"] = round(result.embed_ms, 2)
    return shown


@click.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(db: str | None, as_json: bool) -> None:
    """Show the index: roots, documents per state, model, pending work, watchers."""
    settings = settings_from(db)

    async def run() -> IndexStatus:
        async with document_service(settings) as docs:
            return await docs.status()

    info = asyncio.run(run())
    if as_json:
        click.echo(info.model_dump_json(indent=2))
        return
    columns = ("root", "path", "documents", "synced", "pending", "stale", "failed", "last scan")
    rows = [
        (
            root.name,
            (root.path or "-") + ("" if root.exists else " (missing)"),
            str(root.documents),
            *(str(root.by_status[s]) for s in ("synced", "pending", "stale", "failed")),
            root.last_scan_at or "never",
        )
        for root in info.roots
    ]
    print_rows(f"index of {settings.db_label}", columns, rows)
    out_console.print(
        f"model {info.model or '(none yet)'} ({info.dimensions or '-'} dims), "
        f"{info.chunks} chunks, {info.pending} documents waiting, "
        f"{info.failed_count} failed, last sync {info.last_sync_at or 'never'}",
        highlight=False,
        soft_wrap=True,
    )
    if info.rebuild:
        r = info.rebuild
        why = f" ({r.reason})" if r.reason else ""
        out_console.print(
            f"rebuilding for {r.model}{why}: {r.documents_done}/{r.documents} documents",
            highlight=False,
            soft_wrap=True,
        )
    if info.rebuild_needed:
        out_console.print(f"rebuild needed: {info.rebuild_needed}", highlight=False, soft_wrap=True)
    for failure in info.failed[:10]:
        out_console.print(
            f"[red]failed[/] {escape(failure.path)}: {escape(str(failure.error))}",
            highlight=False,
            soft_wrap=True,
        )
    for watcher in info.watchers:
        state = "alive" if watcher.alive else "[red]not responding[/]"
        out_console.print(
            f"{watcher.kind} pid {watcher.pid} ({', '.join(watcher.roots)}): {state}, "
            f"last beat {watcher.seconds_since_beat}s ago",
            soft_wrap=True,
        )


@click.command()
@db_option
@click.option(
    "--remove", "remove", default=None, metavar="NAME", help="Forget this root and its documents."
)
@click.option(
    "--rename",
    nargs=2,
    default=None,
    metavar="OLD NEW",
    help="Rename a root (its documents follow).",
)
@click.option(
    "--set",
    "set_name",
    default=None,
    metavar="NAME",
    help="Change a root: its --exclude patterns, --visibility or --owner.",
)
@click.option(
    "--exclude", multiple=True, help="With --set: the root's exclude patterns (replace them)."
)
@click.option("--no-excludes", is_flag=True, help="With --set: clear the root's exclude patterns.")
@VISIBILITY
@click.option("--owner", default=None, help="With --set: the user who owns the root.")
@click.option("--json", "as_json", is_flag=True, help="Print the roots as JSON.")
def roots(
    db: str | None,
    remove: str | None,
    rename: tuple[str, str] | None,
    set_name: str | None,
    exclude: tuple[str, ...],
    no_excludes: bool,
    visibility: str | None,
    owner: str | None,
    as_json: bool,
) -> None:
    """List the indexed folders with their owner, visibility and excludes, or change one.

    A changed exclude list applies at the next `index` (which drops what it now excludes).
    """
    settings = settings_from(db)
    if (exclude or no_excludes or visibility or owner) and set_name is None:
        raise click.UsageError("--exclude, --no-excludes, --visibility and --owner need --set NAME")
    if exclude and no_excludes:
        raise click.UsageError("give --exclude or --no-excludes, not both")

    async def run() -> list[Root]:
        async with document_service(settings) as docs:
            if remove is not None:
                removed = await docs.remove_root(remove)
                err_console.print(f"forgot root {remove} ({removed} documents)", highlight=False)
            if rename is not None:
                renamed = await docs.rename_root(*rename)
                err_console.print(f"renamed root {rename[0]} to {renamed.name}", highlight=False)
            if set_name is not None:
                await docs.update_root(
                    set_name,
                    excludes=() if no_excludes else (tuple(exclude) if exclude else None),
                    visibility=visibility,
                    owner=owner,
                )
            return await docs.roots()

    found = asyncio.run(run())
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "path": str(r.path),
                        "owner": r.owner,
                        "project": r.project,
                        "visibility": r.visibility,
                        "excludes": list(r.excludes),
                        "last_scan_at": r.last_scan_at,
                    }
                    for r in found
                ],
                indent=2,
            )
        )
        return
    print_rows(
        "document roots",
        ("root", "path", "owner", "visibility", "excludes"),
        [
            (r.name, str(r.path), r.owner or "-", r.visibility, ", ".join(r.excludes) or "-")
            for r in found
        ],
    )


@click.command()
@db_option
@click.argument("dirs", nargs=-1)
@click.option("--exclude", multiple=True, help="Gitignore-style pattern to skip (repeatable).")
@VISIBILITY
def watch(
    db: str | None, dirs: tuple[str, ...], exclude: tuple[str, ...], visibility: str | None
) -> None:
    """Keep folders indexed: index them, then re-index files as they change (Ctrl-C stops)."""
    settings = settings_from(db)

    async def run() -> None:
        async with open_runtime(settings, create=True, readers=2) as runtime:
            docs = runtime.documents
            await register_roots(
                docs,
                [*settings.docs, *dirs],
                tuple([*settings.exclude, *exclude]),
                owner=operator_principal(settings),
                visibility=visibility,
            )
            if not await docs.roots():
                raise click.UsageError("no folders to watch: give one, e.g. `watch ~/notes`")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C only
                    loop.add_signal_handler(signum, stop.set)
            names = ", ".join(r.name for r in await docs.roots())
            err_console.print(f"watching {names} (Ctrl-C to stop)")
            await runtime.watch(stop, kind="watcher")  # as `serve --watch` does
            err_console.print("stopped")

    asyncio.run(run())
