"""What the server costs an agent's context: the tools/list it reads at the start of every
conversation, and the text copy of every result."""

from __future__ import annotations

import asyncio
import json

import pytest
from mcp.types import TextContent, TextResourceContents
from mcp_helpers import call, connected
from pydantic import BaseModel
from test_server import ALL_TOOLS

pytestmark = pytest.mark.anyio

# tools/list with every group on, measured as below: 54.6 KB (about 14k tokens) before the
# schemas were made lean, 21 KB after.
TOOLS_LIST_BUDGET = 24_000


def _wire(model: BaseModel) -> str:
    """A result as the JSON-RPC message carries it (compact, no null fields)."""
    return json.dumps(
        model.model_dump(mode="json", by_alias=True, exclude_none=True),
        separators=(",", ":"),
        ensure_ascii=False,
    )


async def test_tools_list_fits_the_budget(db_path):
    async with connected(db_path, disabled_tools=[]) as client:
        listed = await client.list_tools()
    assert {tool.name for tool in listed.tools} == ALL_TOOLS  # every group is on
    size = len(_wire(listed).encode())
    assert size < TOOLS_LIST_BUDGET, f"tools/list is {size:,} bytes"
    for tool in listed.tools:  # lean, yet every tool still says what it takes and returns
        assert tool.description and tool.input_schema["type"] == "object", tool.name
        assert tool.output_schema and tool.output_schema.get("required"), tool.name
        assert "$defs" not in json.dumps(tool.input_schema), tool.name


async def test_the_text_copy_is_the_structured_result_as_compact_json(db_path):
    """MCP asks for the structured result serialised in a text block too; indenting it made
    every answer a quarter larger."""
    async with connected(db_path) as client:
        await call(client, "memory_put", namespace="user:alice:p", key="k", value={"a": [1, 2]})
        session = await call(client, "session_create", state={"step": 1})
        for tool, args in (
            ("memory_get", {"namespace": "user:alice:p", "key": "k"}),
            ("memory_list", {"prefix": "user:alice"}),
            ("session_get", {"session_id": session["id"]}),
            ("task_create", {"prompt": "p"}),
            ("index_status", {}),
        ):
            result = await client.call_tool(tool, args)
            assert not result.is_error
            [block] = result.content
            assert isinstance(block, TextContent), block
            assert json.loads(block.text) == result.structured_content, tool
            assert "\n" not in block.text and '": ' not in block.text, block.text[:200]


async def test_a_search_results_text_copy_is_its_structured_content(db_path):
    """memory_search, the call bench.mcp_search measures: its hits (float scores, nested
    values) come back once structured and once as the same compact JSON."""
    async with connected(db_path) as client:
        value = {"text": "sailing on the lake", "sizes": [1, 2.5], "boat": {"name": "Ann"}}
        await call(client, "memory_put", namespace="user:alice:p", key="boat", value=value)
        for _ in range(200):  # the background indexer catches up within moments
            result = await client.call_tool("memory_search", {"query": "sailing lake"})
            assert not result.is_error and result.structured_content is not None
            if result.structured_content["pending"] == 0:
                break
            await asyncio.sleep(0.05)
        assert value in [hit["value"] for hit in result.structured_content["results"]]
        [block] = result.content
        assert isinstance(block, TextContent), block
        assert json.loads(block.text) == result.structured_content
        assert "\n" not in block.text and '": ' not in block.text, block.text[:200]


async def test_get_history_list_and_the_resource_show_one_memory_shape(db_path):
    """memory_get, memory_history's versions, memory_list's entries and the memory://
    resource show a memory with the same fields (get adds its links); none shows the
    store's internal row id."""
    async with connected(db_path) as client:
        await call(client, "memory_put", namespace="user:alice:notes", key="k", value="v1")
        await call(client, "memory_put", namespace="user:alice:notes", key="k", value="v2")
        got = await call(client, "memory_get", namespace="user:alice:notes", key="k")
        history = await call(client, "memory_history", namespace="user:alice:notes", key="k")
        listed = await call(client, "memory_list", prefix="user:alice:notes")
        read = await client.read_resource("memory://user:alice:notes/k")
        [contents] = read.contents
        assert isinstance(contents, TextResourceContents), contents
        resource = json.loads(contents.text)
    shape = set(got) - {"links"}
    assert "id" not in shape
    assert [set(v) for v in history["versions"]] == [shape, shape]
    assert [set(e) for e in listed["entries"]] == [shape]
    assert set(resource) == shape and resource["value"] == "v2"
