"""Document tools and memory_search through the MCP client; a watched folder stays fresh."""

from __future__ import annotations

import asyncio
import time

import pytest
from indexing_helpers import write_tree
from mcp_helpers import call, connected, snapshot, text_of, wait_for_audit

pytestmark = pytest.mark.anyio


async def test_index_search_read_and_status(any_db_path, tmp_path):
    root = write_tree(tmp_path / "notes")
    async with connected(any_db_path, docs=[str(root)]) as client:
        await call(client, "index_refresh")  # (serve --docs also indexes them in the background)
        status = await call(client, "index_status")
        assert status["roots"][0]["by_status"]["synced"] == 3, status
        found = await call(client, "document_search", query="write-ahead logging readers", k=3)
        assert found["mode_used"] == "hybrid" and found["degraded"] is None
        top = found["results"][0]
        assert top["path"] == "notes/notes/beta.md" and top["heading"] == ["Beta", "WAL"]
        text = await call(
            client,
            "document_get",
            path=top["path"],
            start_line=top["start_line"],
            end_line=top["end_line"],
        )
        assert "Write-ahead logging" in text["text"]
        keyword = await call(
            client, "document_search", query="fox", mode="keyword", path_glob="alpha*"
        )
        assert [h["path"] for h in keyword["results"]][:1] == ["notes/alpha.md"]
        status = await call(client, "index_status")
        assert status["roots"][0]["by_status"]["synced"] == 3
        assert status["model"] == "fake:hash-v1" and status["pending"] == 0
        one = await call(client, "index_refresh", path="notes/alpha.md")
        assert one["work"]["documents_done"] == 0  # nothing changed


async def test_index_refresh_of_one_file_touches_that_file_only(any_db_path, tmp_path):
    root = write_tree(tmp_path / "notes")
    async with connected(any_db_path, docs=[str(root)]) as client:
        await call(client, "index_refresh")
        (root / "alpha.md").write_text("# Alpha\n\nThe otter swims at night.\n")
        (root / "notes" / "beta.md").write_text("# Beta\n\nChanged too, but not refreshed.\n")
        one = await call(client, "index_refresh", path="notes/alpha.md")
        assert [s["files"] for s in one["scans"]] == [1]
        assert one["scans"][0]["changed"] == 1 and one["work"]["documents_done"] == 1
        found = await call(client, "document_search", query="otter", mode="keyword")
        assert [h["path"] for h in found["results"]] == ["notes/alpha.md"]
        beta = await call(client, "document_search", query="refreshed", mode="keyword")
        assert beta["results"] == []  # the whole root was not re-scanned
        status = await call(client, "index_status")
        assert status["roots"][0]["by_status"]["synced"] == 3
        # A file that has gone leaves the index and is reported.
        (root / "alpha.md").unlink()
        gone = await call(client, "index_refresh", path="notes/alpha.md")
        assert gone["scans"][0]["removed"] == ["notes/alpha.md"]
        assert (await call(client, "index_status"))["roots"][0]["documents"] == 2
        # Neither indexed nor there: an error, not a silent success.
        missing = await client.call_tool("index_refresh", {"path": "notes/never.md"})
        assert missing.is_error and text_of(missing).startswith("not_found: no document")
        ignored = await client.call_tool("index_refresh", {"path": "notes/.git/config.md"})
        assert ignored.is_error and text_of(ignored).startswith("not_found")


async def _caught_up(client, **args):
    """memory_search once the background indexer has reached every change."""
    for _ in range(300):
        found = await call(client, "memory_search", **args)
        if found["pending"] == 0:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("the memory index never caught up")


async def test_memory_search_tool(any_db_path):
    async with connected(any_db_path) as client:
        await call(
            client,
            "memory_put",
            namespace="user:alice:prefs",
            key="editor",
            value={"name": "helix", "style": "modal editing"},
        )
        await call(client, "memory_put", namespace="user:alice:prefs", key="shell", value="fish")
        found = await _caught_up(client, query="modal editor", k=3)
        assert found["results"][0]["key"] == "editor"
        assert found["results"][0]["value"] == {"name": "helix", "style": "modal editing"}
        scoped = await call(client, "memory_search", query="fish", prefix="user:alice:prefs")
        assert scoped["results"][0]["key"] == "shell"


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("document_search", {"query": ""}, "at least 1 character"),
        ("document_search", {"query": "x" * 10_000}, "at most 2000 characters"),
        ("document_search", {"query": "fox", "k": 0}, "greater than or equal to 1"),
        ("document_search", {"query": "fox", "k": 1000}, "less than or equal to 100"),
        ("document_search", {"query": "fox", "mode": "fuzzy"}, "Input should be"),
        ("document_search", {"query": "fox", "root": "nope"}, "invalid_input: no root named"),
        ("document_search", {"query": "fox", "color": 1}, "Extra inputs"),
        ("document_get", {"path": "notes/../../etc/passwd"}, "forbidden: '..' is not allowed"),
        ("document_get", {"path": "/etc/passwd"}, "forbidden: absolute paths are not allowed"),
        ("document_get", {"path": "other/x.md"}, "not_found: no document"),
        ("document_get", {"path": "notes/alpha.md", "start_line": 0}, "greater than or equal"),
        ("document_get", {"path": "notes/alpha.md", "start_line": 900}, "past the end"),
        ("index_refresh", {"path": "elsewhere"}, "not_found: no root named 'elsewhere'"),
        ("memory_search", {"query": "x", "prefix": "user:bob"}, "forbidden"),
        ("memory_search", {"query": "?!"}, "invalid_input: query has no words"),
    ],
)
async def test_bad_input(any_db_path, tmp_path, tool, arguments, expected):
    root = write_tree(tmp_path / "notes")
    async with connected(any_db_path, docs=[str(root)]) as client:
        await call(client, "index_refresh")
        before = snapshot(any_db_path)
        result = await client.call_tool(tool, arguments)
        denied = expected.startswith("forbidden")  # every denial of every tool is audited
        if denied:
            await wait_for_audit(any_db_path, int(before["audit"]) + 1)
        else:
            await asyncio.sleep(0.2)
        after = snapshot(any_db_path)
    assert result.is_error and expected in text_of(result), text_of(result)
    assert int(after.pop("audit")) - int(before.pop("audit")) == (1 if denied else 0)
    assert after == before


@pytest.mark.slow
async def test_a_paragraph_written_into_a_watched_folder_is_found_seconds_later(
    any_db_path, tmp_path
):
    root = write_tree(tmp_path / "watched")
    async with connected(
        any_db_path, docs=[str(root)], watch=True, watch_debounce_ms=200
    ) as client:
        deadline = time.monotonic() + 30
        while (await call(client, "index_status"))["roots"][0]["by_status"]["synced"] < 3:
            assert time.monotonic() < deadline, "initial indexing did not finish"
            await asyncio.sleep(0.1)
        (root / "fresh.md").write_text(
            "# Fresh\n\nThe heron watched the estuary at dawn, perfectly still.\n"
        )
        written = time.monotonic()
        while True:
            found = await call(client, "document_search", query="heron estuary dawn", k=1)
            if found["results"] and found["results"][0]["path"] == "watched/fresh.md":
                break
            assert time.monotonic() - written < 60, "the new paragraph was never found"
            await asyncio.sleep(0.1)
        status = await call(client, "index_status")
        assert any(w["alive"] and w["kind"] == "server" for w in status["watchers"])
        # Editors that save through a temporary file and a rename are followed too.
        tmp = root / ".fresh.md.swp"
        tmp.write_text("# Fresh\n\nThe kingfisher replaced the heron.\n")
        tmp.replace(root / "fresh.md")
        while True:
            found = await call(client, "document_search", query="kingfisher", mode="keyword", k=1)
            if found["results"]:
                break
            assert time.monotonic() - written < 60
            await asyncio.sleep(0.1)
        (root / "fresh.md").unlink()
        while (await call(client, "document_search", query="kingfisher", mode="keyword"))[
            "results"
        ]:
            assert time.monotonic() - written < 60
            await asyncio.sleep(0.1)
