"""``stats``: what the tools and commands did over a window, and the database's facts."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import click

from abathur_memory.cli.common import db_option, print_rows, settings_from
from abathur_memory.memory.metrics import Stats
from abathur_memory.runtime import open_runtime

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Duration(click.ParamType):
    """``90s``, ``15m``, ``1h``, ``2d``, ``1w``."""

    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = _DURATION.match(str(value))
        if not match or float(match[1]) <= 0:
            self.fail(f"{value!r} is not a duration such as 90s, 15m, 1h, 2d or 1w", param, ctx)
        seconds = float(match[1]) * _UNIT_S[match[2]]
        if seconds > 3650 * 86400:
            self.fail(f"{value!r} is longer than ten years", param, ctx)
        return timedelta(seconds=seconds)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)  # pragma: no cover


@click.command()
@db_option
@click.option(
    "--since",
    "window",
    type=Duration(),
    default="1h",
    show_default=True,
    help="The window: calls that ended within it (90s, 15m, 1h, 2d, 1w).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stats(db: str | None, window: timedelta, as_json: bool) -> None:
    """Calls, error rates and p50/p95/p99 latency per tool and command over a window, with
    the memory index's lag, memory/session/task counts and the database (and WAL) size."""
    settings = settings_from(db)

    async def read() -> Stats:
        async with open_runtime(settings, create=False, readers=1) as runtime:
            await runtime.call_metrics.flush()
            return await runtime.metrics.stats(window)

    found = asyncio.run(read())
    if as_json:
        click.echo(json.dumps(found.model_dump(), indent=2))
        return
    facts = found.database
    click.echo(
        f"{found.calls} calls, {found.errors} errors since {found.since}"
        f" ({facts.backend} {facts.location})"
    )
    print_rows(
        "calls",
        ("tool", "calls", "errors", "error rate", "p50 ms", "p95 ms", "p99 ms", "max ms", "rows"),
        [
            (
                t.name,
                str(t.calls),
                str(t.errors),
                f"{t.error_rate:.1%}",
                _ms(t.p50_ms),
                _ms(t.p95_ms),
                _ms(t.p99_ms),
                _ms(t.max_ms),
                str(t.rows),
            )
            for t in found.tools
        ],
    )
    print_rows(
        "database",
        ("what", "value"),
        [
            ("memories", str(facts.memories)),
            ("memory versions", str(facts.memory_versions)),
            ("sessions", str(facts.sessions)),
            ("session events", str(facts.session_events)),
            ("tasks", str(facts.tasks)),
            ("documents", str(facts.documents)),
            ("audit rows", str(facts.audit_rows)),
            ("memory index lag (changes)", str(facts.memory_changes_behind)),
            ("database size", _bytes(facts.size_bytes)),
            ("WAL size", _bytes(facts.wal_bytes)),
        ],
    )
