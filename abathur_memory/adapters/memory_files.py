"""A folder of text files, ``/memories``, kept as abathur-memory memories.

The mapping (used by the Anthropic memory tool adapter): ``/memories/<dirs...>/<name>`` is
the memory ``<name>`` (the key) in the namespace ``<root>:<dirs...>`` (default root
``user:<user>:memories``; each folder name percent-encoded where it holds ``%``, ``:`` or
whitespace), whose value is the file's text. Every edit (create, str_replace, insert) is a
new version written with compare-and-set against the version it edited, so two agents
editing one file never lose an edit silently; a delete is a soft delete (history kept); a
rename writes the new path (refused if it exists) and then deletes the old one, with
``renamed_from`` in the new memory's metadata. Folders exist while they hold files.

Paths are as strict as the SDK's own filesystem backend, stricter where it is lenient:
a path is ``/memories`` or starts with ``/memories/``; ``.`` and empty parts are ignored,
``..`` steps up and may never leave ``/memories`` (the SDK resolves it against the disk; here
there is no disk, and ``/memories/../memories/x`` is refused too).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from abathur_memory.adapters.naming import join, split
from abathur_memory.api import Memory
from abathur_memory.core.records import MemoryEntry
from abathur_memory.errors import AbathurError, Conflict, NotFound
from abathur_memory.memory.namespaces import clean

ROOT = "/memories"
MAX_LINES = 999_999
LINE_WIDTH = len(str(MAX_LINES))
PAGE = 1000


class FileError(Exception):
    """A refused command, worded for the model (the tools turn it into a ToolError)."""


@dataclass(frozen=True)
class Path:
    text: str  # as the model wrote it
    parts: tuple[str, ...]  # below /memories, normalised

    @classmethod
    def parse(cls, text: str) -> Path:
        if not isinstance(text, str) or not (text == ROOT or text.startswith(ROOT + "/")):
            raise FileError(f"Path must start with /memories, got: {text}")
        parts: list[str] = []
        for part in text[len(ROOT) :].split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise FileError(f"Path {text} would escape /memories directory")
                parts.pop()
                continue
            parts.append(part)
        return cls(text, tuple(parts))


def _lines(text: str) -> list[str]:
    """Split on LF only (a CR stays with its line), without the empty tail of a final LF."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _size(size: int) -> str:
    if size == 0:
        return "0B"
    unit = min((size.bit_length() - 1) // 10, 3)
    value = size / 1024**unit
    shown = str(int(value)) if value == int(value) else f"{value:.1f}"
    return shown + "BKMG"[unit]


def _numbered(lines: Iterable[str], start: int) -> str:
    return "\n".join(f"{str(n).rjust(LINE_WIDTH)}\t{line}" for n, line in enumerate(lines, start))


class MemoryFiles:
    """The six commands of the memory tool over memories under ``root``."""

    def __init__(self, memory: Memory, root: str | None = None) -> None:
        self.memory = memory
        self.root = clean(root or f"user:{memory.principal.user}:memories")

    # -- where a path lives -----------------------------------------------------------

    def _folder(self, parts: tuple[str, ...]) -> str:
        try:
            return clean(join(self.root, parts, what="folder name"))
        except AbathurError as exc:
            raise FileError(str(exc)) from None

    async def _file(self, path: Path) -> MemoryEntry | None:
        if not path.parts:
            return None
        try:
            entry = await self.memory.memories.get(self._folder(path.parts[:-1]), path.parts[-1])
        except NotFound:
            return None
        except AbathurError as exc:
            raise FileError(str(exc)) from None
        return entry

    async def _files_under(self, parts: tuple[str, ...]) -> list[MemoryEntry]:
        entries: list[MemoryEntry] = []
        cursor: str | None = None
        while True:
            page = await self.memory.memories.list(self._folder(parts), None, PAGE, cursor)
            entries.extend(page.entries)
            if page.next_cursor is None:
                return entries
            cursor = page.next_cursor

    async def _is_folder(self, parts: tuple[str, ...]) -> bool:
        if not parts:
            return True
        page = await self.memory.memories.list(self._folder(parts), None, 1)
        return bool(page.entries)

    def _path_of(self, entry: MemoryEntry) -> tuple[str, ...]:
        return (*(split(self.root, entry.namespace) or ()), entry.key)

    async def _text(self, path: Path) -> MemoryEntry:
        entry = await self._file(path)
        if entry is None:
            if path.parts and await self._is_folder(path.parts):
                raise FileError(f"The path {path.text} is not a file.")
            raise FileError(f"The path {path.text} does not exist. Please provide a valid path.")
        if not isinstance(entry.value, str):
            raise FileError(f"The path {path.text} is a memory whose value is not text.")
        return entry

    async def _write(
        self, path: Path, text: str, expected: int, metadata: dict[str, str] | None = None
    ) -> None:
        try:
            await self.memory.memories.put(
                self._folder(path.parts[:-1]), path.parts[-1], text, "semantic", metadata, expected
            )
        except Conflict:
            if expected == 0:
                raise FileError(f"File {path.text} already exists") from None
            raise FileError(
                f"The file {path.text} was changed by someone else while you edited it; "
                "view it again and redo the edit."
            ) from None
        except AbathurError as exc:
            raise FileError(str(exc)) from None

    # -- the commands -----------------------------------------------------------------

    async def view(self, text: str, view_range: list[int] | None = None) -> str:
        path = Path.parse(text)
        entry = await self._file(path)
        if entry is not None and isinstance(entry.value, str):
            return self._show(path, entry.value, view_range)
        if not await self._is_folder(path.parts):
            raise FileError(f"The path {text} does not exist. Please provide a valid path.")
        return await self._listing(path)

    def _show(self, path: Path, content: str, view_range: list[int] | None) -> str:
        lines = content.split("\n")
        if len(lines) > MAX_LINES:
            raise FileError(f"File {path.text} exceeds maximum line limit of 999,999 lines.")
        start = 1
        if view_range and len(view_range) == 2:
            start = max(1, view_range[0])
            end = len(lines) if view_range[1] == -1 else view_range[1]
            lines = lines[start - 1 : end]
        return f"Here's the content of {path.text} with line numbers:\n" + _numbered(lines, start)

    async def _listing(self, path: Path) -> str:
        sizes: dict[tuple[str, ...], int] = {}
        folders: set[tuple[str, ...]] = set()
        for entry in await self._files_under(path.parts):
            rel = self._path_of(entry)[len(path.parts) :]
            if any(part.startswith(".") for part in rel) or not isinstance(entry.value, str):
                continue
            size = len(entry.value.encode("utf-8"))
            for depth in range(1, len(rel)):
                folders.add(rel[:depth])
                sizes[rel[:depth]] = sizes.get(rel[:depth], 0) + size
            sizes[rel] = size
        total = sum(size for rel, size in sizes.items() if len(rel) == 1)
        rows = [f"{_size(total)}\t{path.text}"]
        for rel in sorted(r for r in sizes if len(r) <= 2):
            shown = "/".join(rel) + ("/" if rel in folders else "")
            rows.append(f"{_size(sizes[rel])}\t{path.text.rstrip('/')}/{shown}")
        header = (
            f"Here're the files and directories up to 2 levels deep in {path.text}, "
            "excluding hidden items:"
        )
        return header + "\n" + "\n".join(rows)

    async def create(self, text: str, file_text: str) -> str:
        path = Path.parse(text)
        if not path.parts or await self._is_folder(path.parts):
            raise FileError(f"The path {text} is a directory.")
        for depth in range(1, len(path.parts)):
            parent = Path(text, path.parts[:depth])
            if await self._file(parent) is not None:
                raise FileError(f"The path {'/'.join((ROOT, *parent.parts))} is a file.")
        await self._write(path, file_text, 0)
        return f"File created successfully at: {text}"

    async def str_replace(self, text: str, old_str: str, new_str: str) -> str:
        path = Path.parse(text)
        entry = await self._text(path)
        content: str = entry.value
        count = content.count(old_str)
        if count == 0:
            raise FileError(
                f"No replacement was performed, old_str `{old_str}` did not appear verbatim "
                f"in {text}."
            )
        if count > 1:
            lines, start = [], 0
            while (found := content.find(old_str, start)) != -1:
                lines.append(content[:found].count("\n") + 1)
                start = found + 1
            raise FileError(
                f"No replacement was performed. Multiple occurrences of old_str `{old_str}` "
                f"in lines: {', '.join(map(str, lines))}. Please ensure it is unique"
            )
        changed = content[: content.find(old_str)].count("\n")
        new_content = content.replace(old_str, new_str)
        await self._write(path, new_content, entry.version)
        new_lines = new_content.split("\n")
        first = max(0, changed - 2)
        snippet = _numbered(new_lines[first : min(len(new_lines), changed + 3)], first + 1)
        return (
            "The memory file has been edited. Here is the snippet showing the change "
            "(with line numbers):\n" + snippet
        )

    async def insert(self, text: str, insert_line: int, insert_text: str) -> str:
        path = Path.parse(text)
        entry = await self._text(path)
        lines = _lines(entry.value)
        if insert_line < 0 or insert_line > len(lines):
            raise FileError(
                f"Invalid `insert_line` parameter: {insert_line}. "
                f"It should be within the range [0, {len(lines)}]."
            )
        lines.insert(insert_line, insert_text.rstrip("\n"))
        await self._write(path, "\n".join(lines) + "\n", entry.version)
        return f"The file {text} has been edited."

    async def delete(self, text: str) -> str:
        path = Path.parse(text)
        if not path.parts:
            raise FileError("Cannot delete the /memories directory itself")
        entry = await self._file(path)
        targets = [entry] if entry is not None else await self._files_under(path.parts)
        if not targets:
            raise FileError(f"The path {text} does not exist")
        for target in targets:
            try:
                await self.memory.memories.delete(target.namespace, target.key, target.version)
            except AbathurError as exc:
                raise FileError(f"Deleting {text} stopped: {exc}") from None
        return f"Successfully deleted {text}"

    async def rename(self, old_text: str, new_text: str) -> str:
        old, new = Path.parse(old_text), Path.parse(new_text)
        if not old.parts:
            raise FileError("Cannot rename the /memories directory itself")
        if not new.parts or await self._file(new) is not None or await self._is_folder(new.parts):
            raise FileError(f"The destination {new_text} already exists")
        entry = await self._file(old)
        moves = (
            [(entry, new.parts)]
            if entry is not None
            else [
                (e, new.parts + self._path_of(e)[len(old.parts) :])
                for e in await self._files_under(old.parts)
            ]
        )
        if not moves:
            raise FileError(f"The path {old_text} does not exist")
        if new.parts[: len(old.parts)] == old.parts:
            raise FileError(f"Cannot move {old_text} into itself")
        for source, target in moves:
            moved = Path("/".join((ROOT, *target)), target)
            from_path = "/".join((ROOT, *self._path_of(source)))
            await self._write(moved, source.value, 0, {"renamed_from": from_path})
            try:
                await self.memory.memories.delete(source.namespace, source.key, source.version)
            except AbathurError as exc:
                raise FileError(f"Renaming {old_text} stopped: {exc}") from None
        return f"Successfully renamed {old_text} to {new_text}"

    async def clear(self) -> str:
        for entry in await self._files_under(()):
            await self.memory.memories.delete(entry.namespace, entry.key, entry.version)
        return "All memory cleared"
