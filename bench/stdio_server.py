"""The project's MCP server plus a no-op tool, for bench.service.

``python bench/stdio_server.py`` serves over stdio, like ``abathur-memory serve``; the
settings come from the environment (``ABATHUR_DB``, ``ABATHUR_USER``, ...). The extra tool
``noop`` takes no arguments and returns ``{}``: calling it costs everything a tool call costs
(framing, dispatch, argument and result handling) except the work of a real tool, so it is
the floor that ``memory_get`` is compared with through the same client and process. The extra
tool ``search_only`` runs the same search as ``memory_search`` in the server
(``runtime.memories.search``) and answers only the number of hits: a search over the wire
without its result's payload (bench.mcp_search).

With ``BENCH_SDK_STDIO=1`` it serves through the SDK's own stdio transport instead of the
project's (server/stdio.py), to compare the two.

With ``BENCH_TOOL_TIMINGS=1`` in the environment the server also times every tool call inside
its tool manager (argument validation, the tool, result conversion) and offers a tool
``bench_tool_timings`` that returns the median of those times per tool, in microseconds, and
starts a new count. That is how the benchmark sees the server's share of a call over stdio.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer

from abathur_memory.config import Settings, load_settings
from abathur_memory.server.app import create_server
from abathur_memory.server.context import acting

TIMINGS_TOOL = "bench_tool_timings"


async def noop() -> dict:
    """Do nothing: the floor of a tool call."""
    return {}


async def search_only(ctx: Context, query: str, k: int = 10) -> dict:
    """memory_search's search in the server, answering only how many hits it found."""
    runtime, principal = acting(ctx)
    return {"hits": len((await runtime.memories.search(principal, query, None, k)).results)}


def build(settings: Settings | None = None, *, timings: bool = False) -> MCPServer[Any]:
    server = create_server(settings if settings is not None else load_settings())
    server.add_tool(noop, name="noop")
    server.add_tool(search_only, name="search_only")
    if timings:
        _add_timings(server)
    return server


def _add_timings(server: MCPServer[Any]) -> None:
    """Wrap this server's ToolManager.call_tool (an SDK internal) with a timer."""
    manager = server._tool_manager
    original = manager.call_tool
    times: dict[str, list[int]] = {}

    async def timed(name: str, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter_ns()
        try:
            return await original(name, *args, **kwargs)
        finally:
            if name != TIMINGS_TOOL:
                times.setdefault(name, []).append(time.perf_counter_ns() - start)

    async def bench_tool_timings() -> dict:
        """Median time per call inside the tool manager, per tool (µs); resets the count."""
        out = {
            name: {"p50_us": round(statistics.median(v) / 1000, 2), "calls": len(v)}
            for name, v in times.items()
        }
        times.clear()
        return out

    manager.call_tool = timed  # type: ignore[method-assign]  # wraps an SDK internal on purpose
    server.add_tool(bench_tool_timings, name=TIMINGS_TOOL)


def main() -> None:
    server = build(timings=os.environ.get("BENCH_TOOL_TIMINGS") == "1")
    if os.environ.get("BENCH_SDK_STDIO") == "1":  # the SDK's own transport, for comparison
        anyio.run(MCPServer.run_stdio_async, server)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
