"""The server object for `mcp dev` / `mcp run` (the MCP SDK's developer commands).

    uv run --with 'mcp[cli]' mcp dev examples/mcp_dev.py --with-editable . --with 'mcp[cli]'

Settings come from the environment (ABATHUR_DB, ABATHUR_USER, ...), as for
`abathur-memory serve`.
"""

from abathur_memory.config import load_settings
from abathur_memory.server.app import create_server

mcp = create_server(load_settings())
