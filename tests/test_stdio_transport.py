"""The stdio transport (server/stdio.py): the event loop reads and writes the pipes, the
JSON-RPC stream stays clean when a library prints, large and concurrent messages arrive
whole, and where the loop cannot watch stdin the SDK's transport serves."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

NOISY_SERVER = """
import os, sys
from abathur_memory.server.stdio import StdioServer

server = StdioServer("noisy")

@server.tool()
async def shout(text: str) -> dict:
    print("stray print from a library")  # must not reach the JSON-RPC stream
    os.write(1, b"stray bytes on fd 1\\n")
    return {"echo": text}

server.run("stdio")
sys.stdout.write("fd 1 is the wire again\\n")
"""


def _message(**fields: object) -> bytes:
    return (json.dumps({"jsonrpc": "2.0", **fields}) + "\n").encode()


def test_stray_output_is_diverted_and_the_descriptors_restored(tmp_path: Path) -> None:
    script = tmp_path / "noisy.py"
    script.write_text(NOISY_SERVER)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    init = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    proc.stdin.write(_message(id=1, method="initialize", params=init))
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["id"] == 1
    proc.stdin.write(_message(method="notifications/initialized"))
    call = {"name": "shout", "arguments": {"text": "héllo"}}
    proc.stdin.write(_message(id=2, method="tools/call", params=call))
    proc.stdin.flush()
    reply = json.loads(proc.stdout.readline())
    assert reply["id"] == 2 and not reply["result"].get("isError"), reply
    assert json.loads(reply["result"]["content"][0]["text"]) == {"echo": "héllo"}
    proc.stdin.close()
    rest, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    assert proc.wait(timeout=30) == 0, err
    assert rest == b"fd 1 is the wire again\n"  # nothing stray, and fd 1 restored on exit
    assert b"stray print from a library" in err and b"stray bytes on fd 1" in err


async def test_large_and_concurrent_messages_arrive_whole(tmp_path: Path) -> None:
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "abathur_memory", "serve", "--db", str(tmp_path / "a.db"), "--user", "alice"],
        env={**os.environ, "ABATHUR_EMBEDDER": "fake"},
    )
    big = "ü" * 300_000  # 600 KB of UTF-8 on one line, both ways
    async with Client(server) as client:
        put = await client.call_tool(
            "memory_put", {"namespace": "user:alice:notes", "key": "big", "value": big}
        )
        assert not put.is_error, put
        got = await client.call_tool("memory_get", {"namespace": "user:alice:notes", "key": "big"})
        assert (got.structured_content or {})["value"] == big
        keys = [f"k{i}" for i in range(20)]
        await asyncio.gather(
            *(
                client.call_tool(
                    "memory_put", {"namespace": "user:alice:notes", "key": k, "value": k * 3}
                )
                for k in keys
            )
        )
        replies = await asyncio.gather(
            *(
                client.call_tool("memory_get", {"namespace": "user:alice:notes", "key": k})
                for k in keys
            )
        )
        assert [(r.structured_content or {})["value"] for r in replies] == [k * 3 for k in keys]


def test_stdin_from_a_regular_file_is_served_by_the_sdk_transport(tmp_path: Path) -> None:
    """The loop cannot watch a regular file: loop_pipes says so and changes no descriptor."""
    probe = (
        "import asyncio, os\n"
        "from abathur_memory.server.stdio import loop_pipes\n"
        "async def main():\n"
        "    before = os.fstat(0).st_ino, os.fstat(1).st_ino\n"
        "    async with loop_pipes() as pipes:\n"
        "        same = (os.fstat(0).st_ino, os.fstat(1).st_ino) == before\n"
        "        print('none' if pipes is None else 'pipes', same)\n"
        "asyncio.run(main())\n"
    )
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(_message(id=1, method="ping"))
    with requests.open("rb") as stdin:
        out = subprocess.run(
            [sys.executable, "-c", probe], stdin=stdin, capture_output=True, timeout=60
        )
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"none True\n"
