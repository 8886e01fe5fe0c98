"""Opaque paging cursors: the sort key of the last row returned, base64url-encoded JSON."""

from __future__ import annotations

import base64
import binascii
import json

from abathur_memory.errors import InvalidInput


def encode(*parts: str) -> str:
    raw = json.dumps(list(parts), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None, *, start: tuple[str, ...]) -> tuple[str, ...]:
    """The parts of ``cursor``; ``start`` (the position before the first row) when absent."""
    if not cursor:
        return start
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if (
            not isinstance(parts, list)
            or len(parts) != len(start)
            or not all(isinstance(p, str) for p in parts)
        ):
            raise ValueError
        return tuple(parts)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "cursor is not one this server issued (pass next_cursor back as is)"
        ) from None
