"""Every tool works with each tool group switched off, on a fresh and an upgraded database:
the groups do not lean on each other (memory_search once failed without documents)."""

from __future__ import annotations

import pytest
from indexing_helpers import write_tree
from mcp import Client
from mcp_helpers import connected, text_of
from test_server import ALL_TOOLS

pytestmark = pytest.mark.anyio

GROUPS = {
    "memory": {t for t in ALL_TOOLS if t.startswith("memory_")},
    "sessions": {t for t in ALL_TOOLS if t.startswith("session_")},
    "tasks": {t for t in ALL_TOOLS if t.startswith(("task_", "checkpoint_"))},
    "documents": {t for t in ALL_TOOLS if t.startswith(("document_", "index_"))},
}


async def ok(client, tool, **args):
    result = await client.call_tool(tool, args)
    assert not result.is_error, f"{tool}: {text_of(result)}"
    return result.structured_content


async def exercise(client: Client, offered: set[str]) -> set[str]:
    """Call every offered tool with good arguments; returns the tools called."""
    called: set[str] = set()

    async def call(tool, **args):
        called.add(tool)
        return await ok(client, tool, **args)

    if "memory_put" in offered:
        ns = "user:alice:groups"
        await call("memory_put", namespace=ns, key="k", value={"text": "kingfisher by the river"})
        await call("memory_get", namespace=ns, key="k")
        await call("memory_history", namespace=ns, key="k")
        await call("memory_list", prefix=ns)
        await call("memory_search", query="kingfisher")
        await call("memory_put", namespace=ns, key="k2", value={"text": "a kingfisher, again"})
        made = await call(
            "memory_link",
            from_namespace=ns,
            from_key="k2",
            link_type="duplicates",
            to_namespace=ns,
            to_key="k",
        )
        await call("memory_unlink", link_id=made["link"]["id"])
        await call("memory_consolidate", prefix=ns)
        await call("memory_redact", namespace=ns, key="k2", version=1)
        await call("memory_delete", namespace=ns, key="k")
        await call("memory_restore", namespace=ns, key="k")
    session_id = None
    if "session_create" in offered:
        session = await call("session_create", state={"step": 0})
        session_id = session["id"]
        await call(
            "session_append",
            session_id=session_id,
            event_type="m",
            actor="user",
            content="hi",
            state_delta={"step": 1},
        )
        await call("session_get", session_id=session_id)
        await call("session_update_state", session_id=session_id, state={"more": True})
        await call("session_list")
        await call(  # writes memories, with or without the memory tools offered
            "session_promote",
            session_id=session_id,
            namespace="user:alice:kept",
            seq_start=1,
            seq_end=1,
        )
        await call("session_set_status", session_id=session_id, status="paused")
    if "task_create" in offered:
        task = await call("task_create", prompt="index the docs", session_id=session_id)
        await call("task_get", task_id=task["id"])
        await call("task_list")
        claimed = await call("task_claim")
        assert claimed["task"]["id"] == task["id"]
        await call("checkpoint_save", task_id=task["id"], iteration=0, state={"done": 1})
        await call("checkpoint_get", task_id=task["id"])
        await call("task_update", task_id=task["id"], status="completed", result={"ok": True})
    if "document_search" in offered:
        await call("index_refresh")
        found = await call("document_search", query="write-ahead logging")
        assert found["results"], found
        await call("document_get", path=found["results"][0]["path"])
        await call("index_status")
    return called


@pytest.mark.parametrize("off", [None, *GROUPS])
async def test_every_tool_works_with_each_group_switched_off(any_db_path, tmp_path, off):
    docs = write_tree(tmp_path / "docs")
    disabled = [off] if off else []
    async with connected(any_db_path, disabled_tools=disabled, docs=[str(docs)]) as client:
        offered = {t.name for t in (await client.list_tools()).tools}
        assert offered == ALL_TOOLS - GROUPS.get(off, set())
        assert await exercise(client, offered) == offered  # each one called, each one worked
        for tool in GROUPS.get(off, set()):
            result = await client.call_tool(tool, {})
            assert result.is_error and "unknown tool" in text_of(result).lower(), text_of(result)
        templates = {
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        }
        assert ("memory://{namespace}/{key}" in templates) == (off != "memory")
        assert ("session://{session_id}" in templates) == (off != "sessions")
