"""``ui``: the web console alone, on 127.0.0.1, opened in the browser."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import sys
import webbrowser
from collections.abc import Mapping

import click

from abathur_memory.cli.common import db_option, err_console, settings_from
from abathur_memory.errors import InvalidInput
from abathur_memory.runtime import open_runtime


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def may_open_browser(env: Mapping[str, str], platform: str) -> bool:
    """Not in CI, and not on a Linux/BSD machine without a display (a server, a container)."""
    if env.get("CI", "").lower() not in ("", "0", "false"):
        return False
    if platform.startswith(("linux", "freebsd", "openbsd")):
        return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))
    return True


@click.command()
@db_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Another than loopback is refused while no token exists.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8766, show_default=True)
@click.option(
    "--browser/--no-browser",
    default=True,
    help="Open the console in the browser (never with CI set or without a display).",
)
def ui(db: str | None, host: str, port: int, browser: bool) -> None:
    """Serve the web console alone at http://127.0.0.1:PORT/ui and open it in the browser.

    Sign in with a token (`tokens create NAME`): the console shows what its principal may
    read, as the MCP tools would. `serve --transport streamable-http` serves it too, at /ui.
    """
    from abathur_memory.server import http
    from abathur_memory.server.console.standalone import console_server
    from abathur_memory.server.web import Holder

    settings = settings_from(db)

    async def live_tokens() -> int:
        async with open_runtime(settings, create=False, readers=1) as runtime:
            return len(await runtime.tokens.list())

    live = asyncio.run(live_tokens())
    if not is_loopback(host) and live == 0:
        raise InvalidInput(
            f"refusing to serve the console on {host}: no token exists, so nobody could sign "
            "in but anyone could try; create one with `abathur-memory tokens create NAME` first"
        )
    sock = http.bind_socket(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/ui"
    err_console.print(
        f"console on {url} (database {settings.db_label}); "
        + (
            f"sign in with one of the {live} token(s)"
            if live
            else "no token exists yet: create one with `abathur-memory tokens create NAME`"
        ),
        highlight=False,
    )
    if browser and may_open_browser(os.environ, sys.platform):
        with contextlib.suppress(Exception):
            webbrowser.open(url)
    holder = Holder(host=host, port=port)
    server = console_server(settings, holder)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve(sockets=[sock]))
