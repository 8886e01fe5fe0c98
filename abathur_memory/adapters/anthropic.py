"""Anthropic's memory tool (``memory_20250818``) backed by abathur-memory.

    from abathur_memory.adapters.anthropic import AbathurMemoryTool

    async with abathur_memory.open(db="agent.db", user="alice") as mem:
        tool = AbathurMemoryTool(mem)
        runner = client.beta.messages.tool_runner(model=..., tools=[tool], messages=[...])

``AbathurMemoryTool`` implements the SDK's ``BetaAsyncAbstractMemoryTool``;
``AbathurMemoryToolSync`` its synchronous ``BetaAbstractMemoryTool`` (for a synchronous
client, called from a thread other than the event loop that opened abathur-memory). How
``/memories`` maps onto memories, and the path rules, are in ``adapters/memory_files.py``.

Deliberate differences from the SDK's filesystem backend: a file holds at most
``max_value_bytes`` of text (1 MiB by default), so a file too large is refused when it is
written, not when it is viewed; folders exist while they hold files (no empty folders);
folder sizes in ``view`` are the sizes of the files under them; renaming or deleting a
folder moves or deletes its files one by one (each file atomically, not the folder).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable

from abathur_memory.adapters.bridge import run_blocking
from abathur_memory.adapters.memory_files import FileError, MemoryFiles
from abathur_memory.api import Memory

if importlib.util.find_spec("anthropic") is None:  # pragma: no cover - the extra is missing
    raise ImportError(
        "the Anthropic adapter needs the anthropic package: pip install 'abathur-memory[anthropic]'"
    )

from anthropic.lib.tools import ToolError
from anthropic.lib.tools._beta_builtin_memory_tool import (
    BetaAbstractMemoryTool,
    BetaAsyncAbstractMemoryTool,
)
from anthropic.types.beta import (
    BetaCacheControlEphemeralParam,
    BetaMemoryTool20250818CreateCommand,
    BetaMemoryTool20250818DeleteCommand,
    BetaMemoryTool20250818InsertCommand,
    BetaMemoryTool20250818RenameCommand,
    BetaMemoryTool20250818StrReplaceCommand,
    BetaMemoryTool20250818ViewCommand,
)


async def _answer(work: Awaitable[str]) -> str:
    try:
        return await work
    except FileError as exc:
        raise ToolError(str(exc)) from None


class AbathurMemoryTool(BetaAsyncAbstractMemoryTool):
    """The memory tool's commands over memories under ``root`` (``user:<user>:memories``)."""

    def __init__(
        self,
        memory: Memory,
        *,
        root: str | None = None,
        cache_control: BetaCacheControlEphemeralParam | None = None,
    ) -> None:
        super().__init__(cache_control=cache_control)
        self.files = MemoryFiles(memory, root)

    async def view(self, command: BetaMemoryTool20250818ViewCommand) -> str:
        return await _answer(self.files.view(command.path, command.view_range))

    async def create(self, command: BetaMemoryTool20250818CreateCommand) -> str:
        return await _answer(self.files.create(command.path, command.file_text))

    async def str_replace(self, command: BetaMemoryTool20250818StrReplaceCommand) -> str:
        return await _answer(self.files.str_replace(command.path, command.old_str, command.new_str))

    async def insert(self, command: BetaMemoryTool20250818InsertCommand) -> str:
        return await _answer(
            self.files.insert(command.path, command.insert_line, command.insert_text)
        )

    async def delete(self, command: BetaMemoryTool20250818DeleteCommand) -> str:
        return await _answer(self.files.delete(command.path))

    async def rename(self, command: BetaMemoryTool20250818RenameCommand) -> str:
        return await _answer(self.files.rename(command.old_path, command.new_path))

    async def clear_all_memory(self) -> str:
        return await _answer(self.files.clear())


class AbathurMemoryToolSync(BetaAbstractMemoryTool):
    """The synchronous memory tool: each command runs on the loop that opened ``memory``."""

    def __init__(
        self,
        memory: Memory,
        *,
        root: str | None = None,
        cache_control: BetaCacheControlEphemeralParam | None = None,
    ) -> None:
        super().__init__(cache_control=cache_control)
        self._async = AbathurMemoryTool(memory, root=root)
        self._loop = memory.loop

    def _run(self, work: Awaitable[str], what: str) -> str:
        async def call() -> str:
            return await work

        return run_blocking(self._loop, call(), f"AbathurMemoryToolSync.{what}")

    def view(self, command: BetaMemoryTool20250818ViewCommand) -> str:
        return self._run(self._async.view(command), "view")

    def create(self, command: BetaMemoryTool20250818CreateCommand) -> str:
        return self._run(self._async.create(command), "create")

    def str_replace(self, command: BetaMemoryTool20250818StrReplaceCommand) -> str:
        return self._run(self._async.str_replace(command), "str_replace")

    def insert(self, command: BetaMemoryTool20250818InsertCommand) -> str:
        return self._run(self._async.insert(command), "insert")

    def delete(self, command: BetaMemoryTool20250818DeleteCommand) -> str:
        return self._run(self._async.delete(command), "delete")

    def rename(self, command: BetaMemoryTool20250818RenameCommand) -> str:
        return self._run(self._async.rename(command), "rename")

    def clear_all_memory(self) -> str:
        return self._run(self._async.clear_all_memory(), "clear_all_memory")
