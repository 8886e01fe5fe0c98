"""`export` and `import`: memories, sessions and tasks out of and into a database
(docs/import-export.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import click

from abathur_memory.cli.common import (
    Step,
    db_option,
    out_console,
    principal_options,
    print_rows,
    progress_bar,
    settings_from,
)
from abathur_memory.runtime import open_runtime
from abathur_memory.transfer.report import ExportReport, ImportReport
from abathur_memory.transfer.sources import FORMATS

PROBLEMS_SHOWN = 20


@contextlib.contextmanager
def _destination(output: str) -> Iterator[TextIO]:
    """stdout, or a file written beside its final name and renamed once complete (an
    interrupted export never leaves a partial file under the name asked for)."""
    if output == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    final = Path(output)
    if final.is_dir():
        raise click.UsageError(f"--output {output} is a folder; give a file name")
    temporary = final.with_name(f".{final.name}.partial-{os.getpid()}")
    try:
        with temporary.open("w", encoding="utf-8", newline="\n") as stream:
            yield stream
        temporary.replace(final)
    finally:
        temporary.unlink(missing_ok=True)


@click.command()
@db_option
@principal_options
@click.option(
    "--prefix",
    "prefixes",
    multiple=True,
    metavar="NAMESPACE",
    help="Only the memories under this namespace (repeatable); then no sessions, tasks or "
    "roots are exported.",
)
@click.option("--with-history", is_flag=True, help="Every version, deleted ones included.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl"]),
    default="jsonl",
    show_default=True,
    help="abathur-memory's own JSONL (the only format written).",
)
@click.option(
    "-o",
    "--output",
    default="-",
    metavar="FILE",
    help="Where to write (default: stdout).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def export(
    db: str | None,
    prefixes: tuple[str, ...],
    with_history: bool,
    fmt: str,
    output: str,
    as_json: bool,
    **principal: Any,
) -> None:
    """Export what the principal may read: memories (latest versions, or every version with
    --with-history), sessions with their events, tasks, checkpoints, document roots.

    The report (records and a SHA-256 per kind, as in the file's footer) goes to stdout when
    the export goes to a file, to stderr when the export itself goes to stdout.
    """
    settings = settings_from(db, **principal)

    async def run(stream: TextIO, step: Step | None) -> ExportReport:
        async with open_runtime(settings, create=False, readers=2) as runtime:
            return await runtime.transfer.export(
                runtime.principal,
                stream.write,
                prefixes=list(prefixes) or None,
                with_history=with_history,
                progress=step,
                output=output,
            )

    with progress_bar(not as_json) as step, _destination(output) as stream:
        report = asyncio.run(run(stream, step))
    to_stdout = output != "-"
    if as_json:
        click.echo(report.model_dump_json(indent=2), err=not to_stdout)
        return
    if report.links_left_out:
        click.echo(
            f"{report.links_left_out} links left out: their other end is not in the export",
            err=True,
        )
    total = sum(k.records for k in report.kinds.values())
    counts = ", ".join(f"{kind}: {k.records}" for kind, k in report.kinds.items()) or "nothing"
    if not to_stdout:
        click.echo(f"exported {total} records ({counts})", err=True)
        return
    print_rows(
        f"exported to {output}",
        ("kind", "records", "checksum"),
        [(kind, str(k.records), _short(k.checksum)) for kind, k in report.kinds.items()],
    )
    click.echo(f"exported {total} records to {output}")


@click.command("import")
@db_option
@principal_options
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="jsonl (abathur-memory's own), mcp-memory (the MCP memory server's memory.jsonl), "
    "mem0 (a mem0 export), claude (a .claude folder); auto tells them apart.",
)
@click.option("--dry-run", is_flag=True, help="Read, check and compare; write nothing.")
@click.option(
    "--namespace-map",
    "namespace_map",
    multiple=True,
    metavar="FROM=TO",
    help="Import the memories of namespace FROM (and below it) into TO (repeatable).",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Write a file's good records even when some of its lines are bad, refused or in "
    "conflict (they are reported and left out).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_(
    db: str | None,
    source: Path,
    fmt: str,
    dry_run: bool,
    namespace_map: tuple[str, ...],
    skip_bad: bool,
    as_json: bool,
    **principal: Any,
) -> None:
    """Import SOURCE (a file, or a .claude folder) into the database, as the principal.

    Each file is read and checked whole, then written in one transaction, or not at all: a
    bad line (reported with its number), a record the principal may not write or one that
    disagrees with the database stops the file unless --skip-bad. Importing the same file
    again writes nothing.
    """
    settings = settings_from(db, **principal)

    async def run(step: Step | None) -> ImportReport:
        async with open_runtime(settings, create=True, readers=2) as runtime:
            return await runtime.transfer.import_path(
                runtime.principal,
                source,
                fmt=fmt,
                dry_run=dry_run,
                namespace_map=namespace_map,
                skip_bad=skip_bad,
                progress=step,
            )

    with progress_bar(not as_json) as step:
        report = asyncio.run(run(step))
    if as_json:
        click.echo(json.dumps({**report.model_dump(), "ok": report.ok}, indent=2))
    else:
        _print_import(report)
    if not report.ok:
        sys.exit(1)


def _short(checksum: str | None) -> str:
    """A checksum whole when piped (to compare), its start on a terminal (to read)."""
    if checksum is None:
        return ""
    return checksum[:19] + "…" if out_console.is_terminal else checksum


def _print_import(report: ImportReport) -> None:
    """One row per file and kind (the file column only when there are several files)."""
    several = len(report.files) > 1
    columns = ("kind", "records", "new", "changed", "present", "refused", "conflict", "bad")
    rows = []
    for f in report.files:
        for kind, k in f.kinds.items():
            numbers = (k.records, k.new, k.changed, k.present, k.refused, k.conflict)
            cells = (kind, *(str(n) for n in numbers), str(k.bad + k.unsupported))
            rows.append(((f.file,) if several else ()) + cells + (_short(k.checksum),))
    title = f"import of {report.source}" + (" (dry run)" if report.dry_run else "")
    print_rows(title, (("file",) if several else ()) + columns + ("checksum",), rows)
    for f in report.files:
        for line in f.problems[:PROBLEMS_SHOWN]:
            click.echo(f"  {line}")
        if f.problem_count > PROBLEMS_SHOWN:
            click.echo(f"  ... and {f.problem_count - PROBLEMS_SHOWN} more (--json lists them)")
        for note in f.notes:
            click.echo(f"  note: {note}")
    written = [f for f in report.files if f.written]
    blocked = [f for f in report.files if not f.written and f.problem_count]
    if report.dry_run:
        verdict = "dry run: nothing written"
        if blocked:
            verdict += f"; {len(blocked)} of {len(report.files)} files have problems"
    else:
        verified = all(f.verified for f in written)
        verdict = f"{len(written)} of {len(report.files)} files imported" + (
            " and verified" if written and verified else ""
        )
        if blocked:
            verdict += (
                f"; {len(blocked)} not written (nothing of them): fix them, or pass --skip-bad "
                "to write the rest"
            )
    style = "red" if not report.ok else "green"
    out_console.print(f"[{style}]{verdict}[/]", highlight=False)
