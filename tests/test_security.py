"""What one principal may not reach: other owners' document roots, files the index excludes,
anything outside a root (even under a symlink race); and every denial is audited."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from backends import json_text, sync_sql
from indexing_helpers import write_tree
from mcp import Client
from mcp_helpers import connected, text_of, wait_for_audit

from abathur_memory.store.sqlite import driver

pytestmark = pytest.mark.anyio


async def ok(client, tool, **args):
    result = await client.call_tool(tool, args)
    assert not result.is_error, text_of(result)
    return result.structured_content


async def refused(client: Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, result.structured_content
    return text_of(result)


async def test_document_roots_are_private_to_their_owner(any_db_path, tmp_path):
    bob_docs = write_tree(tmp_path / "bob-notes", {"plans.md": "# Plans\n\nBob's secret plan.\n"})
    async with connected(any_db_path, user="bob", docs=[str(bob_docs)]) as bob:
        await ok(bob, "index_refresh")
        assert (await ok(bob, "document_search", query="secret plan"))["results"]
        status = await ok(bob, "index_status")
        assert status["roots"][0]["path"] == str(bob_docs.resolve())
    async with connected(any_db_path, user="alice") as alice:
        found = await ok(alice, "document_search", query="secret plan")
        assert found["results"] == []
        status = await ok(alice, "index_status")
        assert status["roots"] == [] and str(bob_docs) not in str(status)
        text = await refused(alice, "document_get", path="bob-notes/plans.md")
        assert text.startswith("not_found: ")
        text = await refused(alice, "document_search", query="plan", root="bob-notes")
        assert text.startswith("invalid_input: no root named")
        text = await refused(alice, "index_refresh", path="bob-notes")
        assert text.startswith("not_found: ")
        await wait_for_audit(any_db_path, 3)
    with sync_sql(any_db_path) as conn:
        target = json_text(conn, "action_data", "target")
        denied = conn.execute(
            f"SELECT action_type, {target} FROM audit"
            " WHERE result = 'denied' AND actor = 'user:alice'"
        ).fetchall()
    assert {tuple(r) for r in denied} == {("document_denied", "root:bob-notes")}
    # Shared with everyone, bob's root is searchable by alice, but its path stays bob's.
    with sync_sql(any_db_path) as conn:
        conn.execute("UPDATE doc_roots SET visibility = 'all' WHERE name = 'bob-notes'")
    async with connected(any_db_path, user="alice") as alice:
        assert (await ok(alice, "document_search", query="secret plan"))["results"]
        assert (await ok(alice, "index_status"))["roots"][0]["path"] is None


async def test_what_the_index_excludes_is_not_readable(any_db_path, tmp_path):
    root = write_tree(
        tmp_path / "repo",
        {
            "README.md": "# Repo\n\nPublic words.\n",
            ".git/config.md": "# Git\n\ntoken=hunter2\n",
            "drafts/secret.md": "# Draft\n\nunpublished\n",
            "build/out.md": "# Built\n\ngenerated\n",
        },
    )
    (root / ".gitignore").write_text("build/\n")
    async with connected(any_db_path, docs=[f"repo={root}"], exclude=["drafts/"]) as client:
        await ok(client, "index_refresh")
        assert (await ok(client, "document_get", path="repo/README.md"))["text"]
        for path in ("repo/.git/config.md", "repo/drafts/secret.md", "repo/build/out.md"):
            text = await refused(client, "document_get", path=path)
            assert text.startswith("not_found: "), (path, text)


async def test_paths_out_of_a_root_get_precise_errors(db_path, tmp_path):
    root = write_tree(tmp_path / "notes")
    async with connected(db_path, docs=[str(root)]) as client:
        await ok(client, "index_refresh")
        text = await refused(client, "document_get", path="notes//etc/passwd")
        assert text.startswith("forbidden: absolute paths are not allowed"), text
        text = await refused(client, "document_get", path="notes/../../etc/passwd.md")
        assert text.startswith("forbidden: '..' is not allowed"), text
        text = await refused(client, "document_get", path="notes/a\x00b.md")
        assert text.startswith("invalid_input: "), text
        text = await refused(client, "document_get", path="notes/" + "x" * 300 + ".md")
        assert text.startswith("invalid_input: "), text


async def test_a_document_swapped_for_a_link_is_never_read_through_it(db_path, tmp_path):
    """The race: the indexed file (or its folder) flips to a link to a secret outside."""
    root = write_tree(tmp_path / "notes", {"sub/page.md": "# Page\n\npublic text\n"})
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "page.md").write_text("# Secret\n\nTOPSECRET\n")
    (outside / "page.md").write_text("# Secret\n\nTOPSECRET\n")
    async with connected(db_path, docs=[str(root)]) as client:
        await ok(client, "index_refresh")
        stop = threading.Event()

        def flip(target, link_to):
            real = target.with_name(target.name + ".real")
            while not stop.is_set():
                os.replace(target, real)
                os.symlink(link_to, target)
                os.unlink(target)
                os.replace(real, target)

        for target, link_to in (
            (root / "sub" / "page.md", outside / "page.md"),  # the file itself
            (root / "sub", outside / "sub"),  # a folder on the way
        ):
            stop.clear()
            flipper = threading.Thread(target=flip, args=(target, link_to), daemon=True)
            flipper.start()
            try:
                for _ in range(150):
                    result = await client.call_tool("document_get", {"path": "notes/sub/page.md"})
                    assert "TOPSECRET" not in text_of(result)
                    assert "TOPSECRET" not in str(result.structured_content)
            finally:
                stop.set()
                flipper.join()


async def test_denied_sessions_and_tasks_are_audited(db_path):
    async with connected(db_path, user="bob") as bob:
        session = await ok(bob, "session_create")
        task = await ok(bob, "task_create", prompt="bob's work")
    async with connected(db_path, user="alice") as alice:
        for tool, args in (
            ("session_get", {"session_id": session["id"]}),
            (
                "session_append",
                {"session_id": session["id"], "event_type": "x", "actor": "a", "content": 1},
            ),
            ("task_get", {"task_id": task["id"]}),
            ("task_update", {"task_id": task["id"], "status": "cancelled"}),
            ("checkpoint_get", {"task_id": task["id"]}),
        ):
            assert (await refused(alice, tool, **args)).startswith("not_found: ")
        assert (await refused(alice, "session_list", user_id="bob")).startswith("forbidden: ")
        assert (await refused(alice, "session_create", user_id="bob")).startswith("forbidden: ")
        # Missing ids are not denials: nothing to audit.
        missing = "00000000-0000-4000-8000-000000000000"
        assert (await refused(alice, "task_get", task_id=missing)).startswith("not_found: ")
        await wait_for_audit(db_path, 7)
    conn = driver.connect(db_path)
    try:
        rows = conn.execute(
            "SELECT action_type, json_extract(action_data, '$.target'),"
            " json_extract(action_data, '$.count') FROM audit WHERE result = 'denied'"
        ).fetchall()
    finally:
        conn.close()
    counts: dict[tuple[str, str], int] = {}
    for action, target, count in rows:
        counts[(action, target)] = counts.get((action, target), 0) + count
    assert counts == {
        ("session_denied", session["id"]): 2,
        ("task_denied", task["id"]): 3,
        ("session_denied", "user:bob"): 1,
        ("session_denied", "user:bob app:abathur"): 1,
    }


async def test_resource_denials_are_forbidden_not_internal_errors(db_path):
    from mcp.shared.exceptions import MCPError

    async with connected(db_path) as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource("memory://user:bob:x/k")
        assert caught.value.error.code == -32003
        assert caught.value.error.message.startswith("forbidden: ")
        with pytest.raises(MCPError) as caught:
            await client.read_resource("memory://user:alice:x/missing")
        assert caught.value.error.code == -32002
        assert caught.value.error.message.startswith("not_found: ")
