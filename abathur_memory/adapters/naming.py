"""Reversible names: framework names as namespace segments of abathur-memory.

A namespace segment may hold any printable text except ``:`` and whitespace
(``memory/namespaces.py``). A framework's names (a LangGraph label, an ADK app or session
id, a folder of a memory file) may hold those, so they are written percent-encoded: ``%``,
``:``, whitespace and control characters become ``%XX`` (UTF-8 bytes), everything else is
kept, and decoding gives the name back. Names are compared in Unicode NFC, as everywhere in
abathur-memory; invisible formatting characters are refused (``invalid_input``).
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import unquote

from abathur_memory.core.values import visible_text
from abathur_memory.errors import InvalidInput

_UNSAFE = re.compile(r"[%:\s\x00-\x1f\x7f]")


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8"))


def encode_segment(name: str, *, what: str) -> str:
    """``name`` as one namespace segment (non-empty; reversible with decode_segment)."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{what} must be a non-empty string")
    return _UNSAFE.sub(_escape, visible_text(name, what=what))


def decode_segment(segment: str) -> str:
    return unquote(segment, errors="strict")


def join(root: str, names: tuple[str, ...], *, what: str) -> str:
    """``root`` followed by ``names`` as encoded segments."""
    return ":".join([root, *(encode_segment(name, what=what) for name in names)])


def split(root: str, namespace: str) -> tuple[str, ...] | None:
    """The names below ``root`` in ``namespace`` (None if it is not under ``root``)."""
    if namespace == root:
        return ()
    if not namespace.startswith(root + ":"):
        return None
    return tuple(decode_segment(part) for part in namespace[len(root) + 1 :].split(":"))


# The namespace of the UUIDs that framework session names map to.
SESSION_IDS = uuid.UUID("9b1f0c3e-6a5d-4f7e-8c2b-1d3e5f7a9b0c")


def session_uuid(framework: str, name: str) -> str:
    """The id of the session a framework names ``name``: a UUID as it is (so an existing
    session can be named), any other name as the UUID it names."""
    try:
        return str(uuid.UUID(name))
    except ValueError:
        return str(uuid.uuid5(SESSION_IDS, f"{framework}:{name}"))
