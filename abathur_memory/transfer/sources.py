"""Which reader a path needs (``--format``, or told by its first line), and reading it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from abathur_memory.core.principal import Principal
from abathur_memory.errors import InvalidInput, NotFound
from abathur_memory.transfer import claude, jsonl, mcp_memory, mem0
from abathur_memory.transfer.records import Unit

FORMATS = ("auto", "jsonl", "mcp-memory", "mem0", "claude")
SNIFF_BYTES = 1024 * 1024


def _first_value(path: Path) -> Any:
    """The first line's JSON, or for a JSON document over several lines the document (or,
    past the first megabyte, its first element); None when it is not JSON."""
    with path.open("rb") as stream:
        head = stream.read(SNIFF_BYTES)
    text = head.decode("utf-8", errors="replace").lstrip()
    if not text:
        return None
    for candidate in (text.split("\n", 1)[0], text):
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    for opening in (r"\[\s*", r'\{\s*"(?:results|memories)"\s*:\s*\[\s*'):
        match = re.match(opening, text)
        if match:
            try:
                return [decoder.raw_decode(text, match.end())[0]]
            except json.JSONDecodeError:
                return None
    return None


def detect(path: Path) -> str:
    if path.is_dir():
        if claude.looks_like(path):
            return "claude"
        raise InvalidInput(f"{path} is a folder but not a .claude folder; give a file to import")
    first = _first_value(path)
    if isinstance(first, dict) and jsonl.looks_like(first):
        return "jsonl"
    if isinstance(first, dict) and mcp_memory.looks_like(first):
        return "mcp-memory"
    if mem0.looks_like(first):
        return "mem0"
    raise InvalidInput(
        f"cannot tell the format of {path} from its first line; give --format "
        "(jsonl, mcp-memory, mem0, claude)"
    )


def read(
    path: Path,
    fmt: str,
    principal: Principal,
    *,
    max_value_bytes: int,
    progress: Callable[[int, int | None], None] | None = None,
) -> list[Unit]:
    """The units of ``path`` (one per file), read and checked; nothing is written."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if not path.exists():
        raise NotFound(f"no file or folder {path}")
    if fmt == "auto":
        fmt = detect(path)
    if (fmt == "claude") != path.is_dir():
        raise InvalidInput(
            f"{path}: the claude format reads a folder"
            if fmt == "claude"
            else f"{path} is a folder; the {fmt} format reads a file"
        )
    total = None if path.is_dir() else path.stat().st_size
    step = None if progress is None else (lambda done: progress(done, total))
    if fmt == "claude":
        return claude.read(path, principal, max_value_bytes=max_value_bytes, progress=step)
    if fmt == "jsonl":
        return [jsonl.read(path, max_value_bytes=max_value_bytes, progress=step)]
    if fmt == "mcp-memory":
        return [mcp_memory.read(path, principal, max_value_bytes=max_value_bytes, progress=step)]
    return [mem0.read(path, principal, max_value_bytes=max_value_bytes, progress=step)]
