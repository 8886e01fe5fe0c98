"""memory_search's filters and packing options, checked: a clear error, never a silent
empty result."""

from __future__ import annotations

from typing import Any

from abathur_memory.core.records import MEMORY_TYPES
from abathur_memory.core.search import MemoryFilters
from abathur_memory.core.timestamps import parse_user_time
from abathur_memory.errors import InvalidInput

MAX_CONTEXT = 5  # neighbours on each side of a hit
MIN_MAX_TOKENS = 16
MAX_MAX_TOKENS = 200_000
MAX_METADATA_FILTERS = 16
MAX_METADATA_NAME = 256


def search_filters(
    memory_type: str | None,
    after: str | None,
    before: str | None,
    metadata: dict[str, Any] | None,
) -> MemoryFilters:
    if memory_type is not None and memory_type not in MEMORY_TYPES:
        raise InvalidInput(f"memory_type must be one of {', '.join(MEMORY_TYPES)}")
    start = parse_user_time(after) if after is not None else None
    end = parse_user_time(before) if before is not None else None
    if start is not None and end is not None and start >= end:
        raise InvalidInput("after must be earlier than before")
    pairs: list[tuple[str, str | int | float | bool]] = []
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidInput("metadata must be an object of field: value to match")
        if len(metadata) > MAX_METADATA_FILTERS:
            raise InvalidInput(f"metadata may name at most {MAX_METADATA_FILTERS} fields")
        for name, value in metadata.items():
            if not isinstance(name, str) or not name or len(name) > MAX_METADATA_NAME:
                raise InvalidInput(
                    f"metadata field names must be 1 to {MAX_METADATA_NAME} characters"
                )
            if not isinstance(value, str | int | float | bool) or (
                isinstance(value, float) and value != value
            ):
                raise InvalidInput(
                    f"metadata.{name}: only a string, number or boolean can be matched"
                )
            pairs.append((name, value))
    return MemoryFilters(memory_type, start, end, tuple(pairs))


def check_packing(context: int, max_tokens: int | None) -> None:
    if (
        not isinstance(context, int)
        or isinstance(context, bool)
        or not (0 <= context <= MAX_CONTEXT)
    ):
        raise InvalidInput(f"context must be between 0 and {MAX_CONTEXT}")
    if max_tokens is not None and (
        not isinstance(max_tokens, int)
        or isinstance(max_tokens, bool)
        or not MIN_MAX_TOKENS <= max_tokens <= MAX_MAX_TOKENS
    ):
        raise InvalidInput(f"max_tokens must be between {MIN_MAX_TOKENS} and {MAX_MAX_TOKENS:,}")
