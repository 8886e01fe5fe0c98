"""Replies of a bounded size.

A listing or a search may not grow with what it lists: 200 memories of 1 MiB once made one
``memory_list`` call a 410 MB reply. Two rules keep every list and search reply small:

- long fields are cut where they are read (in SQL, so the server never holds the whole
  value): a field whose JSON is longer than ``Bounds.field_bytes`` comes back as the first
  ``field_bytes`` bytes of its JSON text (an object field comes back empty), and its record
  says so in ``truncated`` ({field: full size in bytes}); the get tools return it whole;
- a page stops before the entry that would take it past ``Bounds.reply_bytes`` (it always
  holds at least one entry, so paging moves on) and says where to go on (``next_cursor``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic_core

T = TypeVar("T")

DEFAULT_REPLY_BYTES = 1024 * 1024
DEFAULT_FIELD_BYTES = 4096


@dataclass(frozen=True)
class Bounds:
    reply_bytes: int = DEFAULT_REPLY_BYTES  # about the most JSON one reply carries
    field_bytes: int = DEFAULT_FIELD_BYTES  # a longer field is cut in listings and hits


DEFAULT_BOUNDS = Bounds()


def cut_text(text: str, limit: int) -> str:
    """The first ``limit`` bytes of ``text`` in UTF-8, never half a character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def json_size(item: Any) -> int:
    """Bytes of ``item`` as compact JSON (a pydantic model, a dataclass or plain data)."""
    return len(pydantic_core.to_json(item))


def fitting(items: Sequence[T], budget: int, size: Callable[[T], int] = json_size) -> int:
    """How many leading ``items`` fit in ``budget`` bytes: at least one when there is one,
    so a page always moves on."""
    used = 0
    for count, item in enumerate(items):
        used += size(item) + 1  # the comma
        if used > budget and count > 0:
            return count
    return len(items)


def absent(value: Any) -> bool:
    """For ``Field(exclude_if=absent)``: a marker that is left out of replies when unset."""
    return value is None
