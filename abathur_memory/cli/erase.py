"""``abathur-memory erase --user U``: remove a user's memories, sessions and tasks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from abathur_memory.cli.common import db_option, settings_from
from abathur_memory.runtime import open_runtime


@click.command()
@db_option
@click.option("--user", "user", required=True, metavar="U", help="The user to erase.")
@click.option("--admin", is_flag=True, help="Act as an admin (erasing needs it).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def erase(db: str | None, user: str, admin: bool, yes: bool, as_json: bool) -> None:
    """Remove every memory version under user:U and the namespaces of U's sessions, their
    links, U's sessions with their events and U's tasks with their checkpoints (admin).

    The audit keeps one row saying who erased whom, with the counts; audit rows of the
    erased memories stay (they name keys and versions, never values).
    """
    if not yes:
        click.confirm(f"erase everything of user {user!r}?", abort=True)
    settings = settings_from(db, **({"admin": True} if admin else {}))

    async def run() -> dict[str, Any]:
        async with open_runtime(settings, create=False) as runtime:
            return await runtime.redaction.erase_user(runtime.principal, user)

    counts = asyncio.run(run())
    if as_json:
        click.echo(json.dumps({"user": user, **counts}))
        return
    click.echo(f"erased user {user}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
