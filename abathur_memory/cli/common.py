"""What every command shares: the --db and principal options, the settings, the consoles.

Logs go to stderr; stdout is reserved for results (and, under ``serve``, for the protocol).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from abathur_memory.config import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])
Step = Callable[[str, int, int | None], None]  # phase, done, total (None: not known yet)

# soft_wrap: a line is never cut at the console width (80 columns when piped); a terminal
# wraps long lines itself, and a pipe gets every line whole.
err_console = Console(stderr=True, soft_wrap=True)
out_console = Console(soft_wrap=True)


class DatabaseParam(click.ParamType):
    """A SQLite file path or a ``postgresql://`` URL; a directory is a usage error, as
    for any file argument."""

    name = "database"
    _paths = click.Path(dir_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if text.startswith(("postgresql://", "postgres://")):
            return text
        return str(self._paths.convert(text, param, ctx))


def db_option(fn: F) -> F:
    return click.option(
        "--db",
        "db",
        type=DatabaseParam(),
        default=None,
        metavar="PATH|URL",
        help="Database: a SQLite file (default: $ABATHUR_DB, else the per-user data "
        "directory) or a postgresql:// URL.",
    )(fn)


def principal_options(fn: F) -> F:
    """--user/--app/--project/--admin: who the command acts for (the namespace policy)."""
    fn = click.option("--admin", is_flag=True, default=None, help="Lift the namespace policy.")(fn)
    fn = click.option("--project", default=None, help="Project (default: $ABATHUR_PROJECT).")(fn)
    fn = click.option("--app", default=None, help="App name (default: $ABATHUR_APP or abathur).")(
        fn
    )
    return click.option("--user", default=None, help="User (default: $ABATHUR_USER or login).")(fn)


def settings_from(db: str | Path | None, **overrides: Any) -> Settings:
    settings = load_settings(db=None if db is None else str(db), **overrides)
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


def print_rows(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    styles: Sequence[str | None] | None = None,
) -> None:
    """Every command's tables: drawn on a terminal; piped, tab-separated lines under a
    header line, never wrapped or truncated (a tab or newline inside a cell becomes a
    space). ``styles`` colours whole rows on a terminal."""
    if not out_console.is_terminal:
        click.echo("\t".join(columns))
        for row in rows:
            click.echo("\t".join(" ".join(cell.split()) for cell in row))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for n, row in enumerate(rows):
        style = styles[n] if styles is not None else None
        table.add_row(*(escape(cell) for cell in row), style=style)
    out_console.print(table)


@contextlib.contextmanager
def progress_bar(enabled: bool) -> Iterator[Step | None]:
    """A bar on stderr that shows a phase and its progress, only where it can redraw (a
    terminal; ``enabled`` False for --json); the function to report progress to, or None."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def update(phase: str, done: int, total: int | None) -> None:
            bar.update(task, description=phase, completed=done, total=total)

        yield update


def one_line(message: str) -> str:
    """An error message as one line: what SQLite or a server says may span several."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())
