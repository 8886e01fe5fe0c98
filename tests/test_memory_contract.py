"""The memory tools' contract as the README states it: fields, listing everything readable,
names that print the same being the same name, and integers too large for storage."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp_helpers import connected, text_of

pytestmark = pytest.mark.anyio


async def ok(client, tool, **args):
    result = await client.call_tool(tool, args)
    assert not result.is_error, text_of(result)
    return result.structured_content


async def error(client: Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, result.structured_content
    return text_of(result)


async def test_memory_get_returns_what_the_readme_lists(any_db_path):
    async with connected(any_db_path) as client:
        first = await ok(client, "memory_put", namespace="user:alice:n", key="k", value=1)
        assert first["created"] and not first["unchanged"] and first["version"] == 1
        second = await ok(client, "memory_put", namespace="user:alice:n", key="k", value=2)
        assert second["created"] and second["version"] == 2  # created: a new version written
        same = await ok(client, "memory_put", namespace="user:alice:n", key="k", value=2)
        assert not same["created"] and same["unchanged"] and same["version"] == 2
        got = await ok(client, "memory_get", namespace="user:alice:n", key="k")
        assert set(got) == {
            "namespace",
            "key",
            "version",
            "value",
            "memory_type",
            "metadata",
            "is_deleted",
            "created_by",
            "updated_by",
            "created_at",
            "updated_at",
            "links",
        }
        assert got["created_by"] == got["updated_by"] == "user:alice"
        assert got["created_at"].endswith("Z")


async def test_memory_list_without_a_prefix_lists_what_the_caller_may_read(any_db_path):
    async with connected(any_db_path, user="bob") as bob:
        await ok(bob, "memory_put", namespace="user:bob:secret", key="k", value="bob's")
    async with connected(any_db_path) as alice:
        for ns in ("user:alice:a", "project:website:b", "temp:scratch"):
            await ok(alice, "memory_put", namespace=ns, key="k", value=ns)
        everything = await ok(alice, "memory_list")
        seen = {e["namespace"] for e in everything["entries"]}
        assert {"user:alice:a", "project:website:b", "temp:scratch"} <= seen
        assert "app:abathur:config" in seen  # the app namespace is readable
        assert not any(ns.startswith("user:bob") for ns in seen)
        pages, cursor, keys = 0, None, []
        while True:  # paged, in order, nothing twice
            page = await ok(alice, "memory_list", limit=2, cursor=cursor)
            keys += [(e["namespace"], e["key"]) for e in page["entries"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert keys == sorted(keys) and len(keys) == len(set(keys)) == len(everything["entries"])
        assert pages > 1


@pytest.mark.parametrize("invisible", ["\u200b", "\u2060", "\ufeff", "\u202e"])
async def test_invisible_characters_are_refused(db_path, invisible):
    async with connected(db_path) as client:
        for args in (
            {"namespace": f"user:alice:n{invisible}", "key": "k"},
            {"namespace": "user:alice:n", "key": f"k{invisible}"},
        ):
            text = await error(client, "memory_put", value=1, **args)
            assert text.startswith("invalid_input: ") and f"U+{ord(invisible):04X}" in text, text
        listed = await ok(client, "memory_list", prefix="user:alice")
        assert listed["entries"] == []


async def test_names_that_print_the_same_are_the_same_name(db_path):
    decomposed, composed = "cafe\u0301", "caf\u00e9"  # NFD and NFC spellings of "café"
    async with connected(db_path) as client:
        await ok(
            client, "memory_put", namespace=f"user:alice:{decomposed}", key=decomposed, value=1
        )
        got = await ok(client, "memory_get", namespace=f"user:alice:{composed}", key=composed)
        assert got["value"] == 1 and got["key"] == composed
        again = await ok(
            client, "memory_put", namespace=f"user:alice:{composed}", key=composed, value=1
        )
        assert again["unchanged"] and again["version"] == 1


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("memory_get", {"namespace": "user:alice:n", "key": "k", "version": 2**63}),
        (
            "memory_put",
            {"namespace": "user:alice:n", "key": "k", "value": 1, "expected_version": 2**64},
        ),
        ("memory_delete", {"namespace": "user:alice:n", "key": "k", "expected_version": 2**63}),
        ("session_get", {"session_id": "s", "events_after": 2**63}),
        (
            "session_append",
            {
                "session_id": "s",
                "event_type": "e",
                "actor": "a",
                "content": 1,
                "expected_seq": 2**63,
            },
        ),
        ("document_get", {"path": "docs/a.md", "start_line": 2**63}),
        ("checkpoint_save", {"task_id": "t", "iteration": 2**63, "state": {}}),
    ],
)
async def test_integers_too_large_to_store_are_invalid_input(db_path, tool, args):
    async with connected(db_path) as client:
        text = await error(client, tool, **args)
        assert text.startswith("invalid_input: "), text
        assert "less than or equal to 9223372036854775807" in text
