"""The ``abathur-memory`` command line.

Commands are registered explicitly below (no import side effects). Every command takes
``--db``. Errors print one line on stderr and exit with status 1; usage mistakes exit 2.
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click

from abathur_memory import __version__
from abathur_memory.cli import (
    consolidate,
    db,
    documents,
    erase,
    migrate,
    server,
    stats,
    transfer,
    ui,
)
from abathur_memory.cli.common import err_console, one_line
from abathur_memory.errors import AbathurError

log = logging.getLogger(__name__)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="abathur-memory")
def cli() -> None:
    """abathur-memory: durable, searchable memory for AI agents, served over MCP."""


for command in (
    db.init,
    db.doctor,
    db.backup,
    db.restore,
    db.maintain,
    consolidate.consolidate,
    erase.erase,
    migrate.migrate,
    transfer.export,
    transfer.import_,
    documents.index,
    documents.search,
    documents.status,
    documents.roots,
    documents.watch,
    server.serve,
    server.tokens,
    stats.stats,
    ui.ui,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI; every error is one ``error:`` line on
    stderr (an unexpected one too: its traceback is logged at DEBUG, ABATHUR_LOG_LEVEL)."""
    try:
        cli.main(args=argv, prog_name="abathur-memory", standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AbathurError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    except BaseExceptionGroup as group:  # a server's task group failing on our error
        ours = _first_of(group, AbathurError)
        if ours is None:
            _unexpected(group)
        _fail(str(ours))
    except Exception as exc:  # a library's error (a PostgreSQL driver's, the OS's): one line
        _unexpected(exc)


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(1)


def _unexpected(exc: BaseException) -> NoReturn:
    log.debug("unexpected error", exc_info=exc)
    detail = str(exc) or "no message"
    _fail(f"{type(exc).__name__}: {detail}")


def _first_of(group: BaseExceptionGroup, kind: type[AbathurError]) -> AbathurError | None:
    for exc in group.exceptions:
        if isinstance(exc, kind):
            return exc
        if isinstance(exc, BaseExceptionGroup) and (found := _first_of(exc, kind)) is not None:
            return found
    return None
