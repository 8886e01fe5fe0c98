"""Document commands: index, search, status, watch, roots."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from abathur_memory.cli import cli, db_option, err_console, out_console, settings_from
from abathur_memory.config import Settings
from abathur_memory.indexer.documents import DocumentService
from abathur_memory.indexer.embedders.factory import make_embedder
from abathur_memory.indexer.search import MODES, Filters
from abathur_memory.indexer.worker import Progress as WorkProgress
from abathur_memory.storage.database import Database


@contextlib.asynccontextmanager
async def document_service(
    settings: Settings, *, with_embedder: bool = True
) -> AsyncIterator[DocumentService]:
    db = await Database.open(
        settings.db,
        readers=2,
        busy_timeout_ms=settings.busy_timeout_ms,
        write_retries=settings.write_retries,
    )
    embedder = make_embedder(settings) if with_embedder else None
    try:
        yield DocumentService(db, embedder, max_file_bytes=settings.max_file_bytes)
    finally:
        if embedder is not None:
            await embedder.close()
        await db.close()


async def register_roots(
    docs: DocumentService, specs: list[str], excludes: tuple[str, ...]
) -> list[Any]:
    return [await docs.add_root(spec, excludes) for spec in specs]


@cli.command()
@db_option
@click.argument("dirs", nargs=-1)
@click.option("--full", is_flag=True, help="Re-read, re-chunk and re-index every document.")
@click.option("--exclude", multiple=True, help="Gitignore-style pattern to skip (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def index(
    db: Path | None, dirs: tuple[str, ...], full: bool, exclude: tuple[str, ...], as_json: bool
) -> None:
    """Index markdown folders (DIR or NAME=DIR); without DIRs, the folders indexed before.

    Only what changed since the last run is read and embedded; an interrupted run carries
    on where it stopped.
    """
    settings = settings_from(db)

    async def run() -> dict[str, Any]:
        async with document_service(settings) as docs:
            chosen = await register_roots(
                docs, [*settings.docs, *dirs], tuple([*settings.exclude, *exclude])
            )
            if not await docs.roots():
                raise click.UsageError("no folders to index: give one, e.g. `index ~/notes`")
            only = chosen if dirs else None
            if as_json:
                report = await docs.index(only, full=full)
            else:
                report = await _index_with_progress(docs, only, full)
            return report.as_dict()

    report = asyncio.run(run())
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for scan in report["scans"]:
        click.echo(
            f"{scan['root']}: {scan['files']} files ({scan['new']} new, {scan['changed']} changed,"
            f" {scan['moved']} moved, {scan['deleted']} deleted, {scan['failed']} failed)"
        )
        for path, reason in list(scan["skipped"].items())[:10]:
            click.echo(f"  skipped {path}: {reason}")
    work = report["work"]
    click.echo(
        f"indexed {work['documents_done']} documents ({work['chunks_embedded']} chunks embedded,"
        f" {work['chunks_reused']} reused) in {work['seconds']:.1f}s"
        + (
            f"; {work['documents_failed']} failed (see `status`)"
            if work["documents_failed"]
            else ""
        )
    )


async def _index_with_progress(docs: DocumentService, only: Any, full: bool) -> Any:
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TextColumn("{task.fields[chunks]} chunks, {task.fields[rate]} emb/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task("indexing", total=None, chunks=0, rate="-")

        def update(state: WorkProgress) -> None:
            rate = state.chunks_embedded / state.embed_seconds if state.embed_seconds else 0
            bar.update(
                task,
                total=state.documents_total or None,
                completed=state.documents_done + state.documents_failed,
                chunks=state.chunks_embedded + state.chunks_reused,
                rate=f"{rate:.1f}",
            )

        return await docs.index(only, full=full, progress=update)


@cli.command()
@db_option
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True)
@click.option("--root", default=None, help="Only this root (by name).")
@click.option("--path", "path_glob", default=None, help="Only paths matching this glob.")
@click.option("--tag", "tags", multiple=True, help="Only documents with this tag (repeatable).")
@click.option("--type", "document_type", default=None, help="Only this document type.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def search(
    db: Path | None,
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

    async def run() -> dict[str, Any]:
        async with document_service(settings) as docs:
            return (await docs.search(query, k, mode, filters)).as_dict()

    result = asyncio.run(run())
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    if result["degraded"]:
        err_console.print(f"[yellow]note:[/] {result['degraded']}")
    if not result["results"]:
        click.echo("no results")
        return
    for rank, hit in enumerate(result["results"], start=1):
        heading = " > ".join(hit["heading"])
        flag = "  [changed on disk]" if hit["changed_since_indexed"] else ""
        out_console.print(
            f"[bold]{rank}. {hit['path']}[/]:{hit['start_line']}-{hit['end_line']}"
            f"  [dim]{heading}[/]  score {hit['score']:.4f}{flag}",
            highlight=False,
        )
        snippet = re.sub(r"\*\*(.+?)\*\*", r"[bold]\1[/bold]", escape(hit["snippet"]))
        out_console.print(f"   {snippet}", highlight=False)


@cli.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(db: Path | None, as_json: bool) -> None:
    """Show the index: roots, documents per state, model, pending work, watchers."""
    settings = settings_from(db)

    async def run() -> dict[str, Any]:
        async with document_service(settings, with_embedder=False) as docs:
            return await docs.status()

    info = asyncio.run(run())
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    table = Table(title=f"index of {settings.db}")
    for column in (
        "root",
        "path",
        "documents",
        "synced",
        "pending",
        "stale",
        "failed",
        "last scan",
    ):
        table.add_column(column)
    for root in info["roots"]:
        states = root["by_status"]
        table.add_row(
            root["name"],
            root["path"] + ("" if root["exists"] else " (missing)"),
            str(root["documents"]),
            *(str(states[s]) for s in ("synced", "pending", "stale", "failed")),
            root["last_scan_at"] or "never",
        )
    out_console.print(table)
    out_console.print(
        f"model {info['model'] or '(none yet)'} ({info['dimensions'] or '-'} dims), "
        f"{info['chunks']} chunks, {info['pending']} documents waiting, "
        f"last sync {info['last_sync_at'] or 'never'}"
    )
    if info["rebuild"]:
        r = info["rebuild"]
        out_console.print(
            f"rebuilding for {r['model']}: {r['documents_done']}/{r['documents']} documents"
        )
    for failure in info["failed"][:10]:
        out_console.print(f"[red]failed[/] {failure['path']}: {failure['error']}", highlight=False)
    for watcher in info["watchers"]:
        state = "alive" if watcher["alive"] else "[red]not responding[/]"
        out_console.print(
            f"{watcher['kind']} pid {watcher['pid']} ({', '.join(watcher['roots'])}): {state}, "
            f"last beat {watcher['seconds_since_beat']}s ago"
        )


@cli.command()
@db_option
@click.option("--remove", "remove", default=None, help="Forget this root and its documents.")
def roots(db: Path | None, remove: str | None) -> None:
    """List the indexed folders, or forget one (--remove NAME)."""
    settings = settings_from(db)

    async def run() -> list[Any]:
        async with document_service(settings, with_embedder=False) as docs:
            if remove is not None:
                removed = await docs.remove_root(remove)
                click.echo(f"forgot root {remove} ({removed} documents)")
            return await docs.roots()

    for root in asyncio.run(run()):
        click.echo(f"{root.name}\t{root.path}")


@cli.command()
@db_option
@click.argument("dirs", nargs=-1)
@click.option("--exclude", multiple=True, help="Gitignore-style pattern to skip (repeatable).")
def watch(db: Path | None, dirs: tuple[str, ...], exclude: tuple[str, ...]) -> None:
    """Keep folders indexed: index them, then re-index files as they change (Ctrl-C stops)."""
    from abathur_memory.indexer.watcher import Watcher

    settings = settings_from(db)

    async def run() -> None:
        async with document_service(settings) as docs:
            await register_roots(
                docs, [*settings.docs, *dirs], tuple([*settings.exclude, *exclude])
            )
            if not await docs.roots():
                raise click.UsageError("no folders to watch: give one, e.g. `watch ~/notes`")
            watcher = Watcher(docs, debounce_ms=settings.watch_debounce_ms, kind="watcher")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C only
                    loop.add_signal_handler(signum, stop.set)
            names = ", ".join(r.name for r in await docs.roots())
            err_console.print(f"watching {names} (Ctrl-C to stop)")
            await watcher.run(stop)
            err_console.print("stopped")

    asyncio.run(run())
