"""The project's MCP server plus a no-op tool, for bench/service.py.

``python bench/stdio_server.py`` serves over stdio, like ``abathur-memory serve``; the
settings come from the environment (``ABATHUR_DB``, ``ABATHUR_USER``, ...). The extra tool
``noop`` takes no arguments and returns ``{}``: calling it costs everything a tool call costs
(framing, dispatch, argument and result handling) except the work of a real tool, so it is
the floor that ``memory_get`` is compared with through the same client and process.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

from abathur_memory.config import Settings, load_settings
from abathur_memory.server.app import create_server


async def noop() -> dict:
    """Do nothing: the floor of a tool call."""
    return {}


def build(settings: Settings | None = None) -> MCPServer[Any]:
    server = create_server(settings if settings is not None else load_settings())
    server.add_tool(noop, name="noop")
    return server


def main() -> None:
    build().run("stdio")


if __name__ == "__main__":
    main()
