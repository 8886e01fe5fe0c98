"""Server commands: serve (stdio or streamable HTTP) and tokens (bearer tokens for HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import click

from abathur_memory.cli.common import (
    db_option,
    err_console,
    principal_options,
    print_rows,
    settings_from,
)
from abathur_memory.config import Settings
from abathur_memory.core.records import TokenInfo
from abathur_memory.memory.tokens import TokenService
from abathur_memory.runtime import open_runtime, principal_of


@click.command()
@db_option
@principal_options
@click.option(
    "--transport",
    type=click.Choice(["stdio", "streamable-http"]),
    default="stdio",
    show_default=True,
    help="stdio for MCP clients that start the server; streamable-http to serve on 127.0.0.1 "
    "(every request then needs a bearer token: see `tokens create`).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8765,
    show_default=True,
    help="Port for streamable-http (always bound to 127.0.0.1); an error with stdio.",
)
@click.option(
    "--docs",
    "docs",
    multiple=True,
    help="A markdown folder to search (DIR or NAME=DIR; repeatable). Added as a root owned "
    "by this server's user.",
)
@click.option(
    "--watch/--no-watch",
    default=None,
    help="Keep the document folders indexed as files change (default: $ABATHUR_WATCH).",
)
@click.option(
    "--embedder",
    type=click.Choice(["embedded", "ollama", "fake"]),
    default=None,
    help="Embedding model for search (default: $ABATHUR_EMBEDDER, else embedded).",
)
def serve(
    db: str | None,
    transport: str,
    port: int,
    docs: tuple[str, ...],
    watch: bool | None,
    embedder: str | None,
    **principal: Any,
) -> None:
    """Serve the MCP tools (memories, sessions, tasks, documents) over stdio or HTTP."""
    from abathur_memory.server.app import create_server

    if transport == "stdio" and _given(click.get_current_context(), "port"):
        # Ignoring it would leave the user waiting for a port nobody listens on.
        raise click.UsageError("--port applies to --transport streamable-http, not to stdio")
    settings = settings_from(
        db, docs=list(docs) or None, watch=watch, embedder=embedder, **principal
    )
    _prepare_database(settings)
    if transport == "stdio":
        create_server(settings).run("stdio")
        return
    from abathur_memory.server import http
    from abathur_memory.server.auth import DatabaseTokenVerifier

    sock = http.bind_socket("127.0.0.1", port)  # a port in use is one line, before anything
    verifier = DatabaseTokenVerifier()
    server = create_server(settings, verifier=verifier, port=port)
    live = asyncio.run(_live_tokens(settings))
    err_console.print(
        f"serving MCP on http://127.0.0.1:{port}/mcp (database {settings.db_label}); "
        + (
            f"{live} token(s) accepted"
            if live
            else "no token exists yet: create one with `abathur-memory tokens create NAME`"
        ),
        highlight=False,
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn has already shut down
        asyncio.run(
            http.serve_http(
                server,
                sock,
                header_timeout=settings.http_header_timeout_s,
                body_timeout=max(30.0, settings.http_header_timeout_s),
                keep_alive_timeout=settings.http_keep_alive_s,
            )
        )


def _given(ctx: click.Context, name: str) -> bool:
    """Whether the user wrote the option (its default does not count)."""
    return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)


def _prepare_database(settings: Settings) -> None:
    """Open, create or upgrade the database before the server starts, so a file that cannot
    be used (damaged, foreign, read-only folder, full disk) is one line and exit 1, not a
    server that fails inside its task group."""
    from abathur_memory.documents.roots import parse_root_spec, resolve_root_dir

    for spec in settings.docs:  # a folder that is not there is a mistake worth stopping for
        resolve_root_dir(parse_root_spec(spec)[1])

    async def check() -> None:
        async with open_runtime(settings, create=True, readers=1):
            pass

    asyncio.run(check())


async def _live_tokens(settings: Settings) -> int:
    return len(await _with_tokens(settings, lambda service: service.list()))


@click.group()
def tokens() -> None:
    """Bearer tokens for `serve --transport streamable-http`: each acts as one principal.

    \b
      tokens create NAME [--user U] [--app A] [--project P] [--admin] [--json]
      tokens list [--all] [--json]
      tokens revoke ID_OR_NAME
    """


def _token_row(info: TokenInfo) -> dict[str, Any]:
    return info.model_dump()


async def _with_tokens(settings: Settings, work: Any) -> Any:
    async with open_runtime(settings, create=False, readers=1) as runtime:
        service: TokenService = runtime.tokens
        return await work(service)


@tokens.command("create")
@db_option
@principal_options
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the token as JSON.")
def tokens_create(db: str | None, name: str, as_json: bool, **principal: Any) -> None:
    """Create a token named NAME for the principal given by --user/--app/--project/--admin
    (default: this machine's). It is printed once; only its hash is stored."""
    settings = settings_from(db, **principal)
    who = principal_of(settings)
    made = asyncio.run(_with_tokens(settings, lambda service: service.create(name, who)))
    if as_json:
        click.echo(json.dumps({**_token_row(made.info), "token": made.secret}, indent=2))
        return
    click.echo(made.secret)
    err_console.print(
        f"token {made.info.id} ({name}) acts as user {who.user!r}, app {who.app!r}"
        + (f", project {who.project!r}" if who.project else "")
        + (", admin" if who.admin else "")
        + ". Send it as `Authorization: Bearer <token>`; it is not shown again.",
        highlight=False,
    )


@tokens.command("list")
@db_option
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print the tokens as JSON.")
def tokens_list(db: str | None, include_revoked: bool, as_json: bool) -> None:
    """List the tokens (never the secrets)."""
    settings = settings_from(db)
    found = asyncio.run(
        _with_tokens(settings, lambda service: service.list(include_revoked=include_revoked))
    )
    if as_json:
        click.echo(json.dumps([_token_row(t) for t in found], indent=2))
        return
    print_rows(
        "tokens",
        ("id", "name", "user", "app", "project", "admin", "created", "revoked"),
        [
            (
                info.id,
                info.name,
                info.user,
                info.app,
                info.project or "-",
                "yes" if info.admin else "no",
                str(info.created_at),
                str(info.revoked_at) if info.revoked_at else "-",
            )
            for info in found
        ],
    )


@tokens.command("revoke")
@db_option
@click.argument("token")
def tokens_revoke(db: str | None, token: str) -> None:
    """Revoke a token by id or name; requests using it fail from now on."""
    settings = settings_from(db)
    info = asyncio.run(_with_tokens(settings, lambda service: service.revoke(token)))
    click.echo(f"revoked {info.id} ({info.name})")
