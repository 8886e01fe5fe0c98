"""The MCP server through the official client: every tool, its errors, resources, groups."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from mcp.types import ReadResourceResult, TextResourceContents
from mcp_helpers import call, connected

pytestmark = pytest.mark.anyio

ALL_TOOLS = {
    "memory_put",
    "memory_link",
    "memory_unlink",
    "memory_consolidate",
    "memory_redact",
    "memory_get",
    "memory_history",
    "memory_delete",
    "memory_restore",
    "memory_list",
    "session_create",
    "session_get",
    "session_append",
    "session_update_state",
    "session_set_status",
    "session_list",
    "session_promote",
    "task_create",
    "task_get",
    "task_update",
    "task_list",
    "task_claim",
    "checkpoint_save",
    "checkpoint_get",
    "memory_search",
    "document_search",
    "document_get",
    "index_status",
    "index_refresh",
}
READ_ONLY = {
    "memory_get",
    "memory_history",
    "memory_list",
    "session_get",
    "session_list",
    "task_get",
    "task_list",
    "checkpoint_get",
    "memory_search",
    "document_search",
    "document_get",
    "index_status",
}


async def test_tools_have_schemas_and_truthful_annotations(db_path):
    async with connected(db_path) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == ALL_TOOLS
    for name, tool in tools.items():
        assert tool.description and len(tool.description) > 30, name
        assert tool.input_schema["type"] == "object"
        assert tool.input_schema.get("additionalProperties") is False, name
        assert tool.output_schema is not None, name
        assert tool.annotations is not None, name
        assert tool.annotations.read_only_hint is (name in READ_ONLY), name
        assert tool.annotations.open_world_hint is False
    deleting, putting = tools["memory_delete"].annotations, tools["memory_put"].annotations
    assert deleting is not None and deleting.destructive_hint is True
    assert putting is not None and putting.destructive_hint is False
    put = tools["memory_put"].input_schema
    assert put["required"] == ["namespace", "key", "value"]
    assert put["properties"]["memory_type"]["enum"] == ["semantic", "episodic", "procedural"]


async def test_memory_tools_end_to_end(any_db_path):
    ns = "user:alice:prefs"
    async with connected(any_db_path) as client:
        put = await call(client, "memory_put", namespace=ns, key="theme", value={"mode": "light"})
        assert put == {**put, "version": 1, "created": True, "unchanged": False}
        again = await call(client, "memory_put", namespace=ns, key="theme", value={"mode": "light"})
        assert again["unchanged"] is True and again["version"] == 1
        await call(
            client,
            "memory_put",
            namespace=ns,
            key="theme",
            value={"mode": "dark"},
            expected_version=1,
            metadata={"why": "eyes"},
        )
        got = await call(client, "memory_get", namespace=ns, key="theme")
        assert (got["value"], got["version"], got["metadata"]) == (
            {"mode": "dark"},
            2,
            {"why": "eyes"},
        )
        v1 = await call(client, "memory_get", namespace=ns, key="theme", version=1)
        assert v1["value"] == {"mode": "light"}
        listed = await call(client, "memory_list", prefix="user:alice")
        assert [(e["key"], e["version"]) for e in listed["entries"]] == [("theme", 2)]
        assert listed["next_cursor"] is None
        deleted = await call(client, "memory_delete", namespace=ns, key="theme")
        assert deleted == {"namespace": ns, "key": "theme", "deleted_version": 2, "deleted": True}
        history = await call(client, "memory_history", namespace=ns, key="theme")
        assert [v["is_deleted"] for v in history["versions"]] == [True, True]
        restored = await call(client, "memory_restore", namespace=ns, key="theme")
        assert restored["version"] == 3
        app = await call(
            client, "memory_get", namespace="app:abathur:config", key="memory_lifecycle_policies"
        )
        assert app["value"]["episodic_ttl_days"] == 90


async def test_session_tools_end_to_end(any_db_path):
    async with connected(any_db_path) as client:
        s = await call(client, "session_create", state={"step": 0}, metadata={"k": "v"})
        assert (s["status"], s["user_id"], s["project_id"]) == ("created", "alice", "website")
        a1 = await call(
            client,
            "session_append",
            session_id=s["id"],
            event_type="message",
            actor="user",
            content={"text": "hello"},
        )
        assert (a1["seq"], a1["status"], a1["state"]) == (1, "active", None)
        a2 = await call(
            client,
            "session_append",
            session_id=s["id"],
            event_type="tool",
            actor="agent",
            content="ran",
            state_delta={"step": 1},
            expected_seq=1,
        )
        assert a2["seq"] == 2 and a2["state"] == {"step": 1}
        got = await call(client, "session_get", session_id=s["id"])
        assert [e["seq"] for e in got["events"]] == [1, 2] and got["last_seq"] == 2
        page = await call(client, "session_get", session_id=s["id"], events_after=1, events_limit=5)
        assert [e["seq"] for e in page["events"]] == [2]
        updated = await call(client, "session_update_state", session_id=s["id"], state={"x": 1})
        assert updated["state"] == {"step": 1, "x": 1}
        paused = await call(client, "session_set_status", session_id=s["id"], status="paused")
        assert paused["status"] == "paused"
        listed = await call(client, "session_list", status="paused")
        assert [x["id"] for x in listed["sessions"]] == [s["id"]]
        # The session's own namespace is writable by its owner.
        await call(client, "memory_put", namespace=f"session:{s['id']}:scratch", key="k", value=1)


async def test_task_tools_end_to_end(any_db_path):
    async with connected(any_db_path) as client:
        first = await call(client, "task_create", prompt="collect sources", priority=3)
        second = await call(
            client,
            "task_create",
            prompt="write summary",
            priority=9,
            dependencies=[first["id"]],
            input={"words": 200},
        )
        claimed = await call(client, "task_claim")
        assert claimed["task"]["id"] == first["id"]
        assert (await call(client, "task_claim")) == {"task": None}
        await call(
            client, "task_update", task_id=first["id"], status="completed", result={"sources": 3}
        )
        next_task = (await call(client, "task_claim", claimant="writer"))["task"]
        assert next_task["id"] == second["id"] and next_task["claimed_by"] == "user:alice/writer"
        beat = await call(client, "task_update", task_id=second["id"])
        assert beat["status"] == "running"
        got = await call(client, "task_get", task_id=first["id"])
        assert got["result"] == {"sources": 3} and got["status"] == "completed"
        listed = await call(client, "task_list", status="running")
        assert [t["id"] for t in listed["tasks"]] == [second["id"]]


def _text(resource: ReadResourceResult) -> str:
    first = resource.contents[0]
    assert isinstance(first, TextResourceContents), first
    return first.text


async def test_resources(any_db_path):
    async with connected(any_db_path) as client:
        await call(client, "memory_put", namespace="user:alice:notes", key="n1", value="remember")
        s = await call(client, "session_create")
        memory = await client.read_resource("memory://user:alice:notes/n1")
        assert '"remember"' in _text(memory)
        session = await client.read_resource(f"session://{s['id']}")
        assert s["id"] in _text(session)
        templates = await client.list_resource_templates()
        uris = {t.uri_template for t in templates.resource_templates}
        assert {"memory://{namespace}/{key}", "session://{session_id}"} <= uris
        with pytest.raises(Exception, match="no memory"):
            await client.read_resource("memory://user:alice:notes/missing")


async def test_fifty_concurrent_session_reads(db_path):
    async with connected(db_path) as client:
        s = await call(client, "session_create")
        await call(
            client, "session_append", session_id=s["id"], event_type="m", actor="u", content=1
        )
        results = await asyncio.gather(
            *(client.call_tool("session_get", {"session_id": s["id"]}) for _ in range(50))
        )
    assert all(not r.is_error for r in results)
    assert {r.structured_content["last_seq"] for r in results} == {1}


def test_every_tool_is_documented_in_the_readme():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    documented = set(
        re.findall(r"`((?:memory|session|task|document|index|checkpoint)_[a-z_]+)`", readme)
    )
    assert documented >= ALL_TOOLS, ALL_TOOLS - documented
