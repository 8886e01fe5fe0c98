"""Contract tests of the Anthropic memory tool adapter, on both backends.

Modelled on the Anthropic SDK's tests of its filesystem backend (anthropic 2.17,
``tests/lib/tools/memory_tools/test_filesystem.py``, the async class): the same cases and
answers, run against ``AbathurMemoryTool``, with the folder snapshot read from the memories
instead of the disk. Cases about the disk itself (umask, symlinks swapped in during a call)
have no counterpart: there is no disk. Deliberate differences are ``xfail(strict=True)``
with their reason (DIFFERS). Then ours: every edit is a version, traversal is refused.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from adapter_fixtures import memory_fixture  # noqa: F401

pytest.importorskip("anthropic")

from anthropic.lib.tools import ToolError
from anthropic.types.beta import (
    BetaMemoryTool20250818CreateCommand as Create,
)
from anthropic.types.beta import (
    BetaMemoryTool20250818DeleteCommand as Delete,
)
from anthropic.types.beta import (
    BetaMemoryTool20250818InsertCommand as Insert,
)
from anthropic.types.beta import (
    BetaMemoryTool20250818RenameCommand as Rename,
)
from anthropic.types.beta import (
    BetaMemoryTool20250818StrReplaceCommand as Replace,
)
from anthropic.types.beta import (
    BetaMemoryTool20250818ViewCommand as View,
)

from abathur_memory.adapters.anthropic import AbathurMemoryTool, AbathurMemoryToolSync
from abathur_memory.api import Memory

pytestmark = pytest.mark.anyio

DIFFERS = {
    "size": "a file is one memory, at most max_value_bytes of text (1 MiB by default, 64 KiB "
    "in these tests): a file this large is refused when it is written, not when it is viewed",
}
ROOT = "user:alice:memories"


@pytest.fixture
def tool(memory):
    return AbathurMemoryTool(memory)


async def snapshot(memory: Memory) -> dict[str, str]:
    """The folder as the SDK's test reads the disk: relative path -> text."""
    files = {}
    for entry in (await memory.memories.list(ROOT, limit=1000)).entries:
        folders = entry.namespace[len(ROOT) :].split(":")[1:]
        files["/".join(["memories", *folders, entry.key])] = entry.value
    return files


async def create(tool, path, text):
    return await tool.create(Create(command="create", path=path, file_text=text))


async def test_create(tool, memory):
    result = await create(tool, "/memories/test_file.txt", "Hello, World!")
    assert result == "File created successfully at: /memories/test_file.txt"
    assert await snapshot(memory) == {"memories/test_file.txt": "Hello, World!"}


async def test_create_nested_directories(tool, memory):
    result = await create(tool, "/memories/deep/nested/file.txt", "Nested file")
    assert result == "File created successfully at: /memories/deep/nested/file.txt"
    assert await snapshot(memory) == {"memories/deep/nested/file.txt": "Nested file"}


async def test_create_error_if_file_already_exists(tool):
    await create(tool, "/memories/existing.txt", "Original")
    with pytest.raises(ToolError, match=re.escape("File /memories/existing.txt already exists")):
        await create(tool, "/memories/existing.txt", "New")


async def test_view_file(tool):
    await create(tool, "/memories/view_test.txt", "Line 1\nLine 2\nLine 3")
    assert await tool.view(View(command="view", path="/memories/view_test.txt")) == (
        "Here's the content of /memories/view_test.txt with line numbers:\n"
        "     1\tLine 1\n     2\tLine 2\n     3\tLine 3"
    )


async def test_view_directory(tool):
    await create(tool, "/memories/dir/file1.txt", "File 1")
    await create(tool, "/memories/dir/file2.txt", "File 2")
    result = await tool.view(View(command="view", path="/memories/dir"))
    assert "Here're the files and directories up to 2 levels deep in /memories/dir" in result
    assert "/memories/dir/file1.txt" in result and "/memories/dir/file2.txt" in result


async def test_view_file_with_range(tool):
    await create(tool, "/memories/range_test.txt", "Line 1\nLine 2\nLine 3\nLine 4\nLine 5")
    view = View(command="view", path="/memories/range_test.txt", view_range=[2, 4])
    assert await tool.view(view) == (
        "Here's the content of /memories/range_test.txt with line numbers:\n"
        "     2\tLine 2\n     3\tLine 3\n     4\tLine 4"
    )


async def test_view_error_for_non_existent_file(tool):
    with pytest.raises(
        ToolError,
        match=re.escape("The path /memories/nonexistent.txt does not exist. Please provide"),
    ):
        await tool.view(View(command="view", path="/memories/nonexistent.txt"))


@pytest.mark.xfail(strict=True, reason=DIFFERS["size"])
async def test_view_error_for_files_with_too_many_lines(tool):
    await create(tool, "/memories/huge.txt", "\n".join(["line"] * 1000000))
    with pytest.raises(ToolError, match=r"exceeds maximum line limit of 999,999 lines"):
        await tool.view(View(command="view", path="/memories/huge.txt"))


async def test_str_replace(tool, memory):
    await create(tool, "/memories/replace_test.txt", "Line 1\nOld Text\nLine 3")
    result = await tool.str_replace(
        Replace(
            command="str_replace",
            path="/memories/replace_test.txt",
            old_str="Old Text",
            new_str="New Text",
        )
    )
    assert result == (
        "The memory file has been edited. Here is the snippet showing the change "
        "(with line numbers):\n     1\tLine 1\n     2\tNew Text\n     3\tLine 3"
    )
    assert await snapshot(memory) == {"memories/replace_test.txt": "Line 1\nNew Text\nLine 3"}


async def test_str_replace_errors(tool):
    await create(tool, "/memories/replace_test.txt", "Hello\nMiddle\nHello")
    with pytest.raises(ToolError, match=re.escape("old_str `NotFound` did not appear verbatim in")):
        await tool.str_replace(
            Replace(
                command="str_replace",
                path="/memories/replace_test.txt",
                old_str="NotFound",
                new_str="x",
            )
        )
    with pytest.raises(
        ToolError, match=r"Multiple occurrences of old_str `Hello` in lines: 1, 3\. Please ensure"
    ):
        await tool.str_replace(
            Replace(
                command="str_replace",
                path="/memories/replace_test.txt",
                old_str="Hello",
                new_str="Hi",
            )
        )
    with pytest.raises(
        ToolError, match=re.escape("The path /memories/nonexistent.txt does not exist")
    ):
        await tool.str_replace(
            Replace(
                command="str_replace", path="/memories/nonexistent.txt", old_str="o", new_str="n"
            )
        )


@pytest.mark.parametrize(
    ("line", "text", "expected"),
    [
        (1, "Inserted Line", "Line 1\nInserted Line\nLine 2\n"),
        (0, "First Line", "First Line\nLine 1\nLine 2\n"),
        (2, "Last Line", "Line 1\nLine 2\nLast Line\n"),
    ],
)
async def test_insert(tool, memory, line, text, expected):
    await create(tool, "/memories/insert_test.txt", "Line 1\nLine 2")
    result = await tool.insert(
        Insert(
            command="insert", path="/memories/insert_test.txt", insert_line=line, insert_text=text
        )
    )
    assert result == "The file /memories/insert_test.txt has been edited."
    assert await snapshot(memory) == {"memories/insert_test.txt": expected}


async def test_crlf_line_endings_are_preserved(tool, memory):
    await create(tool, "/memories/crlf.txt", "line1\r\nline2\r\nline3\r\n")
    assert await tool.view(View(command="view", path="/memories/crlf.txt")) == (
        "Here's the content of /memories/crlf.txt with line numbers:\n"
        "     1\tline1\r\n     2\tline2\r\n     3\tline3\r\n     4\t"
    )
    await tool.str_replace(
        Replace(command="str_replace", path="/memories/crlf.txt", old_str="line2", new_str="LINE2")
    )
    await tool.insert(
        Insert(command="insert", path="/memories/crlf.txt", insert_line=1, insert_text="Inserted")
    )
    assert (await snapshot(memory))["memories/crlf.txt"] == (
        "line1\r\nInserted\nLINE2\r\nline3\r\n"
    )


async def test_insert_errors(tool):
    with pytest.raises(
        ToolError, match=re.escape("The path /memories/nonexistent.txt does not exist")
    ):
        await tool.insert(
            Insert(
                command="insert", path="/memories/nonexistent.txt", insert_line=0, insert_text="t"
            )
        )
    await create(tool, "/memories/insert_test.txt", "Line 1\nLine 2")
    with pytest.raises(
        ToolError,
        match=r"Invalid `insert_line` parameter: 10\. It should be within the range \[0, 2\]",
    ):
        await tool.insert(
            Insert(
                command="insert", path="/memories/insert_test.txt", insert_line=10, insert_text="t"
            )
        )


async def test_delete_file_and_directory(tool, memory):
    await create(tool, "/memories/delete_me.txt", "To be deleted")
    await create(tool, "/memories/subdir/file.txt", "Content")
    assert await tool.delete(Delete(command="delete", path="/memories/delete_me.txt")) == (
        "Successfully deleted /memories/delete_me.txt"
    )
    assert await tool.delete(Delete(command="delete", path="/memories/subdir")) == (
        "Successfully deleted /memories/subdir"
    )
    assert await snapshot(memory) == {}
    with pytest.raises(
        ToolError, match=re.escape("The path /memories/nonexistent.txt does not exist")
    ):
        await tool.delete(Delete(command="delete", path="/memories/nonexistent.txt"))


@pytest.mark.parametrize("path", ["/memories", "/memories/", "/memories/.", "/memories/sub/.."])
async def test_delete_and_rename_never_touch_the_memories_directory(tool, path):
    with pytest.raises(ToolError, match=re.escape("Cannot delete the /memories directory itself")):
        await tool.delete(Delete(command="delete", path=path))
    with pytest.raises(ToolError, match=re.escape("Cannot rename the /memories directory itself")):
        await tool.rename(Rename(command="rename", old_path=path, new_path="/memories/moved"))


async def test_rename(tool, memory):
    await create(tool, "/memories/old_name.txt", "Original content")
    result = await tool.rename(
        Rename(
            command="rename", old_path="/memories/old_name.txt", new_path="/memories/new_name.txt"
        )
    )
    assert result == "Successfully renamed /memories/old_name.txt to /memories/new_name.txt"
    assert await snapshot(memory) == {"memories/new_name.txt": "Original content"}
    await tool.rename(
        Rename(
            command="rename",
            old_path="/memories/new_name.txt",
            new_path="/memories/nested/dir/file.txt",
        )
    )
    assert await snapshot(memory) == {"memories/nested/dir/file.txt": "Original content"}


async def test_rename_errors(tool):
    with pytest.raises(
        ToolError, match=re.escape("The path /memories/nonexistent.txt does not exist")
    ):
        await tool.rename(
            Rename(
                command="rename", old_path="/memories/nonexistent.txt", new_path="/memories/n.txt"
            )
        )
    await create(tool, "/memories/file1.txt", "File 1")
    await create(tool, "/memories/file2.txt", "File 2")
    with pytest.raises(
        ToolError, match=re.escape("The destination /memories/file2.txt already exists")
    ):
        await tool.rename(
            Rename(command="rename", old_path="/memories/file1.txt", new_path="/memories/file2.txt")
        )


async def test_path_validation(tool, memory):
    with pytest.raises(ToolError, match=re.escape("Path must start with /memories")):
        await create(tool, "/invalid/path.txt", "Invalid")
    with pytest.raises(
        ToolError,
        match=re.escape("Path /memories/../../../etc/passwd would escape /memories directory"),
    ):
        await create(tool, "/memories/../../../etc/passwd", "Escape attempt")
    assert await snapshot(memory) == {}


# -- ours -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/memoriesX/notes.md",  # the SDK's prefix check lets this one into /memories
        "memories/notes.md",
        "/memories/../memories/notes.md",  # the SDK resolves it; here every .. is refused
        "/memories/a/../../notes.md",
        "/etc/passwd",
        "",
    ],
)
async def test_no_traversal_no_escape(tool, memory, path):
    with pytest.raises(ToolError):
        await create(tool, path, "x")
    assert await snapshot(memory) == {}


async def test_every_edit_is_a_version(tool, memory):
    await create(tool, "/memories/notes.md", "# Notes\n")
    await tool.insert(
        Insert(command="insert", path="/memories/notes.md", insert_line=1, insert_text="- coffee")
    )
    await tool.str_replace(
        Replace(command="str_replace", path="/memories/notes.md", old_str="coffee", new_str="tea")
    )
    await tool.rename(
        Rename(command="rename", old_path="/memories/notes.md", new_path="/memories/n.md")
    )
    old = await memory.memories.history(ROOT, "notes.md")
    assert [v.value for v in old] == ["# Notes\n", "# Notes\n- coffee\n", "# Notes\n- tea\n"]
    assert old[-1].is_deleted
    new = await memory.memories.get(ROOT, "n.md")
    assert new.metadata == {"renamed_from": "/memories/notes.md"}


async def test_concurrent_edits_are_never_lost_silently(tool, memory):
    await create(tool, "/memories/list.md", "start\n")
    edits = [
        tool.insert(
            Insert(
                command="insert", path="/memories/list.md", insert_line=1, insert_text=f"item {n}"
            )
        )
        for n in range(5)
    ]
    results = await asyncio.gather(*edits, return_exceptions=True)
    done = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, ToolError)]
    assert len(done) + len(refused) == 5 and done
    text = (await memory.memories.get(ROOT, "list.md")).value
    assert text.count("item") == len(done)  # every edit that said done is there


async def test_files_and_folders_do_not_collide(tool):
    await create(tool, "/memories/a", "a file")
    with pytest.raises(ToolError, match=re.escape("is a file")):
        await create(tool, "/memories/a/b.md", "under a file")
    await create(tool, "/memories/d/e.md", "x")
    with pytest.raises(ToolError, match=re.escape("is a directory")):
        await create(tool, "/memories/d", "over a folder")


async def test_hidden_files_are_not_listed_and_names_are_kept(tool):
    await create(tool, "/memories/.secret", "hidden")
    await create(tool, "/memories/my notes/a:b.md", "odd names")
    listing = await tool.view(View(command="view", path="/memories"))
    assert ".secret" not in listing
    assert "/memories/my notes/a:b.md" in listing


async def test_sync_tool_runs_outside_the_loop(memory):
    tool = AbathurMemoryToolSync(memory)
    await asyncio.to_thread(
        tool.create, Create(command="create", path="/memories/s.md", file_text="x")
    )
    shown = await asyncio.to_thread(tool.view, View(command="view", path="/memories/s.md"))
    assert shown.endswith("1\tx")
