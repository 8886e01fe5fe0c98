"""JSON values as stored: encoding, canonical comparison, size limits, identifiers."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Annotated, Any

from pydantic import WithJsonSchema

from abathur_memory.errors import InvalidInput

# "Any JSON value", spelled out so JSON-schema consumers see a real constraint.
JSON_VALUE_SCHEMA = {
    "anyOf": [
        {"type": "object"},
        {"type": "array"},
        {"type": "string"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
    ]
}
JsonAny = Annotated[Any, WithJsonSchema(JSON_VALUE_SCHEMA)]

DEFAULT_MAX_VALUE_BYTES = 1024 * 1024
MAX_METADATA_BYTES = 64 * 1024
MAX_KEY_LENGTH = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def encode_json(value: Any, *, what: str, max_bytes: int) -> str:
    """Serialise ``value`` as JSON text, refusing NaN/infinity, non-JSON types, text that is
    not valid Unicode (lone surrogates: no backend can store them) and oversize."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        raise InvalidInput(f"{what} contains NaN or infinity, which JSON cannot hold") from None
    except TypeError as exc:
        raise InvalidInput(f"{what} is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput(f"{what} is nested too deeply") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800" in the JSON it came in)
        char = exc.object[exc.start]
        raise InvalidInput(
            f"{what} contains U+{ord(char):04X}, a lone surrogate, which is not valid Unicode"
        ) from None
    if size > max_bytes:
        raise InvalidInput(f"{what} is {size:,} bytes of JSON; the limit is {max_bytes:,} bytes")
    return text


def encode_object(value: Any, *, what: str, max_bytes: int = MAX_METADATA_BYTES) -> str:
    """Like encode_json, for values that must be JSON objects (metadata, state)."""
    if value is None:
        return "{}"
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object, not {type(value).__name__}")
    return encode_json(value, what=what, max_bytes=max_bytes)


def canonical(text: str) -> str:
    """A key-order-independent form of stored JSON, to tell 'same value' from 'new value'."""
    return json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def same_json(stored: str, given: str) -> bool:
    """Whether two JSON texts hold the same value (identical text needs no parsing)."""
    return stored == given or canonical(stored) == canonical(given)


def decode(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def check_identifier(value: Any, *, what: str, max_length: int = MAX_KEY_LENGTH) -> str:
    """Keys and ids: non-empty text without control or invisible formatting characters,
    bounded length, in Unicode NFC (so two names that print the same are the same name).
    Returns the normalised text: use it, not the argument."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string")
    value = visible_text(value, what=what)
    if len(value) > max_length:
        raise InvalidInput(f"{what} is longer than {max_length} characters")
    if _CONTROL.search(value):
        raise InvalidInput(f"{what} must not contain control characters")
    return value


def check_id(value: Any, *, what: str, made_by: str) -> str:
    """Session and task ids: the UUID text that ``made_by`` returned. Anything else cannot
    name a session or task, so it is invalid input (a mistake to correct), not "not found"
    (a session or task that may have existed)."""
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        shown = (
            repr(value[:60] + ("..." if len(value) > 60 else ""))
            if isinstance(value, str)
            else type(value).__name__
        )
        raise InvalidInput(
            f"{what} must be an id as {made_by} returns it (a UUID such as "
            f"0f8e2c1a-5b7d-4c3e-9a21-6d4f8b2e7c90), not {shown}"
        )
    return value


def visible_text(value: str, *, what: str) -> str:
    """``value`` in NFC; refuses format characters (Unicode category Cf: zero-width spaces,
    joiners, byte-order marks, direction overrides), which make two different names print
    the same, and lone surrogates (undecodable bytes of a command-line argument), which no
    backend can store."""
    if value.isascii():  # the common case: no format characters, already NFC
        return value
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":  # undecodable bytes (surrogateescape) or a lone surrogate
            raise InvalidInput(
                f"{what} contains U+{ord(char):04X}, a lone surrogate, which is not valid Unicode"
            )
        if category == "Cf":
            raise InvalidInput(
                f"{what} contains the invisible character U+{ord(char):04X} "
                f"({unicodedata.name(char, 'format character').lower()}); remove it"
            )
    return unicodedata.normalize("NFC", value)


MAX_INTEGER = 2**63 - 1  # SQLite stores 64-bit integers


def check_integer(value: Any, *, what: str, low: int, high: int = MAX_INTEGER) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{what} must be an integer from {low} to {high}")
    return value
