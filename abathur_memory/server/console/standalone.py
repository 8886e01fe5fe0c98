"""The console served alone (``abathur-memory ui``): the same routes as inside ``serve``,
without the MCP endpoint, over a runtime opened by the app's lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from abathur_memory.config import Settings
from abathur_memory.runtime import open_runtime
from abathur_memory.server.console.app import Console
from abathur_memory.server.http import SHUTDOWN_GRACE_S, DeadlineH11Protocol
from abathur_memory.server.web import Holder, metrics_endpoint


def console_app(settings: Settings, holder: Holder) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime:
            holder.runtime = runtime
            try:
                yield
            finally:
                holder.runtime = None

    async def home(_: object) -> Response:
        return RedirectResponse("/ui", status_code=307)

    routes = [
        Route("/", home, methods=["GET"]),
        Route("/metrics", metrics_endpoint(holder), methods=["GET"]),
        *Console(holder).routes(),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def console_server(settings: Settings, holder: Holder) -> uvicorn.Server:
    config = uvicorn.Config(
        console_app(settings, holder),
        http=type(
            "ConsoleH11Protocol",
            (DeadlineH11Protocol,),
            {"header_timeout": settings.http_header_timeout_s, "body_timeout": 30.0},
        ),
        ws="none",
        lifespan="on",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=settings.http_keep_alive_s,  # type: ignore[arg-type]
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    return uvicorn.Server(config)
