"""Drive abathur-memory through the official MCP client, as an agent would.

Starts `abathur-memory serve` as a stdio subprocess on a throwaway database, then stores,
recalls and versions a memory, lists a namespace, runs a short session and claims a task.

    python examples/agent_memory.py [--db PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise SystemExit(f"{tool} failed: {result.content[0].text}")
    return result.structured_content


async def main(db: Path) -> None:
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "abathur_memory", "serve", "--db", str(db), "--user", "alice"],
    )
    async with Client(server) as client:
        tools = await client.list_tools()
        print(f"connected: {len(tools.tools)} tools")

        ns = "user:alice:preferences"
        await call(client, "memory_put", namespace=ns, key="editor", value={"name": "vim"})
        put = await call(
            client,
            "memory_put",
            namespace=ns,
            key="editor",
            value={"name": "helix"},
            expected_version=1,
        )
        print(f"stored editor preference, now version {put['version']}")

        recalled = await call(client, "memory_get", namespace=ns, key="editor")
        print(f"recalled: {json.dumps(recalled['value'])}")
        history = await call(client, "memory_history", namespace=ns, key="editor")
        print("history:", [v["value"]["name"] for v in history["versions"]])

        await call(
            client,
            "memory_put",
            namespace="user:alice:projects",
            key="site",
            value="static site in Rust",
            memory_type="semantic",
        )
        listing = await call(client, "memory_list", prefix="user:alice")
        print("under user:alice:", [f"{e['namespace']}/{e['key']}" for e in listing["entries"]])

        session = await call(client, "session_create", state={"topic": "setup"})
        await call(
            client,
            "session_append",
            session_id=session["id"],
            event_type="message",
            actor="user",
            content={"text": "Set up my editor"},
        )
        step = await call(
            client,
            "session_append",
            session_id=session["id"],
            event_type="action",
            actor="agent",
            content={"did": "installed"},
            state_delta={"done": True},
        )
        print(f"session {session['id'][:8]}: event {step['seq']}, state {step['state']}")

        task = await call(client, "task_create", prompt="write the editor config", priority=8)
        claimed = await call(client, "task_claim")
        assert claimed["task"]["id"] == task["id"]
        await call(
            client,
            "task_update",
            task_id=task["id"],
            status="completed",
            result={"file": "~/.config/helix/config.toml"},
        )
        print(f"task {task['id'][:8]} claimed and completed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="database file (default: a temporary one)")
    args = parser.parse_args()
    if args.db:
        anyio.run(main, args.db)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(main, Path(tmp) / "example.db")
