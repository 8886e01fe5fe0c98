"""Claude's memory tool (``memory_20250818``) with its /memories folder in abathur-memory.

The model's tool calls are scripted so the example runs offline; with a real client, pass
the tool to ``client.beta.messages.tool_runner(..., tools=[tool])`` and Claude makes them.
Every edit of /memories/notes.md is a version of one memory.

    pip install 'abathur-memory[anthropic]'
    python examples/anthropic_memory_tool.py --db agent.db
"""

from __future__ import annotations

import argparse
import asyncio

import abathur_memory
from abathur_memory.adapters.anthropic import AbathurMemoryTool

SCRIPT = [  # what a model would call, session after session
    {"command": "view", "path": "/memories"},
    {"command": "create", "path": "/memories/notes.md", "file_text": "# Alice\n- likes tea\n"},
    {"command": "str_replace", "path": "/memories/notes.md", "old_str": "tea", "new_str": "coffee"},
    {"command": "view", "path": "/memories/notes.md"},
]


async def main(db: str) -> None:
    async with abathur_memory.open(db=db, user="alice") as mem:
        tool = AbathurMemoryTool(mem)
        print("tool definition:", tool.to_dict())
        for call in SCRIPT:
            print(f"> {call['command']} {call['path']}\n{await tool.call(call)}")
        versions = await mem.memories.history("user:alice:memories", "notes.md")
        print("versions of notes.md:", [v.value for v in versions])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="agent.db")
    asyncio.run(main(parser.parse_args().db))
