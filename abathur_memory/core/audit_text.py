"""Text bound for an audit row, made storable on both backends and safe to read.

An audit row records what a caller tried, and callers choose that text: it may hold a NUL
(PostgreSQL's text and jsonb refuse it), a lone surrogate (not encodable as UTF-8, so neither
backend can store it), a megabyte (a btree index entry holds ~2.7 kB), or characters that
mislead whoever reads the log later (control characters, direction overrides). No such text
may stop a denial from being audited, so each field is rewritten, never refused:

- control characters (C0, DEL, C1), surrogates, format characters (direction marks and
  overrides, zero-width characters) and line/paragraph separators become ``\\uXXXX``
  escapes (``\\UXXXXXXXX`` beyond the BMP);
- text longer than its limit is cut, and ends with a marker giving the original length.

Quotes and backslashes are kept as they are: the stores write JSON with a serializer. A
literal ``\\u0000`` typed by a caller reads the same as an escaped NUL; the audit row still
names the actor, which is what matters. The rewrite is idempotent.
"""

from __future__ import annotations

import unicodedata

from abathur_memory.core.records import Denial

MAX_FIELD_CHARS = 1024  # a field inside action_data (attempted, target, rule, key)
MAX_COLUMN_CHARS = 512  # an indexed text column (memory_namespace, actor, action_type)
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cs", "Cf", "Zl", "Zp"})


def storable(text: str, limit: int = MAX_FIELD_CHARS, *, ascii_only: bool = False) -> str:
    """``text`` with unsafe characters escaped and cut to at most ``limit`` characters.

    ``ascii_only`` also escapes every non-ASCII character (for last-resort placeholder rows).
    """
    if len(text) <= limit and text.isascii() and text.isprintable():
        return text  # the common case: nothing to do
    head = text[: limit + 1]  # escaping only lengthens: the rest can never be shown
    escaped = "".join(_escape(char, ascii_only) for char in head)
    if len(text) <= limit and len(escaped) <= limit:
        return escaped
    marker = f"...[cut: {len(text):,} characters in all]"
    return escaped[: max(0, limit - len(marker))] + marker


def _escape(char: str, ascii_only: bool) -> str:
    code = ord(char)
    if 0x20 <= code < 0x7F:
        return char
    if not ascii_only and unicodedata.category(char) not in _ESCAPED_CATEGORIES:
        return char
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def storable_denial(denial: Denial) -> Denial:
    """``denial`` with every field storable (the same object when nothing needed changing)."""
    fields = (
        storable(denial.actor, MAX_COLUMN_CHARS),
        storable(denial.action, MAX_COLUMN_CHARS),
        storable(denial.attempted),
        storable(denial.target),
        storable(denial.rule),
        None if denial.namespace is None else storable(denial.namespace, MAX_COLUMN_CHARS),
        None if denial.key is None else storable(denial.key),
    )
    original = (
        denial.actor,
        denial.action,
        denial.attempted,
        denial.target,
        denial.rule,
        denial.namespace,
        denial.key,
    )
    return denial if fields == original else Denial(*fields)


def placeholder_for(denial: Denial, reason: str) -> Denial:
    """A stand-in row for a denial whose own row could not be stored: plain ASCII, short,
    naming who was denied what and why the row is a stand-in."""
    return Denial(
        storable(denial.actor, 128, ascii_only=True),
        storable(denial.action, 64, ascii_only=True),
        storable(denial.attempted, 64, ascii_only=True),
        storable(denial.target, 256, ascii_only=True),
        "the audit row of this denial could not be stored: "
        + storable(reason, 256, ascii_only=True),
    )
