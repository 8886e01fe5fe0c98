"""Store a conversation turn by turn, then ask memory_search for evidence, as an agent would.

Starts `abathur-memory serve` as a stdio subprocess on a throwaway database (the embedded
model, offline), stores each turn as one memory (speaker, text, date), waits for the
background indexer, and asks a question whose answer shares no word with it: the turn
that answers is found through the turn before it, and comes back with its neighbours,
packed into a token budget.

    python examples/conversation_recall.py [--db PATH] [--embedder fake]
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

DATE = "10:02 am on 3 March, 2025"
TURNS = [
    ("Nora", "Hi Sam! Long time no talk. How have things been at the bakery?"),
    ("Sam", "Busy! We started selling sourdough on weekends and it sells out by noon."),
    ("Nora", "I have news too: I adopted a greyhound from the shelter last Friday."),
    ("Sam", "No way! What's the dog's name?"),
    ("Nora", "Biscuit. He is shy but loves long walks by the canal."),
    ("Sam", "How often do you two go out?"),
    ("Nora", "Twice a day, before work and after dinner."),
    ("Sam", "I've been thinking of taking up climbing again."),
]


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise SystemExit(f"{tool} failed: {result.content[0].text}")
    return result.structured_content


async def main(db: Path, embedder: str) -> None:
    server = StdioServerParameters(
        command=sys.executable,
        args=[
            *("-m", "abathur_memory", "serve", "--db", str(db)),
            *("--user", "alice", "--embedder", embedder),
        ],
    )
    async with Client(server) as client:
        for number, (speaker, text) in enumerate(TURNS, start=1):
            value = {"speaker": speaker, "text": text, "date": DATE}
            await call(
                client, "memory_put", namespace="user:alice:chat", key=f"S1:{number}", value=value
            )
        while (await call(client, "memory_search", query="wait", k=1))["pending"]:
            await anyio.sleep(0.2)  # the background indexer catches up
        found = await call(
            client,
            "memory_search",
            query="How often does Nora go out with her dog?",
            prefix="user:alice:chat",
            k=2,
            context=1,
            max_tokens=300,
        )
        print(json.dumps(found, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path)
    parser.add_argument("--embedder", default="embedded")
    args = parser.parse_args()
    if args.db is not None:
        anyio.run(main, args.db, args.embedder)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(main, Path(tmp) / "conversation.db", args.embedder)
