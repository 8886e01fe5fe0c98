"""The one timestamp format stored in the database: UTC 'YYYY-MM-DD HH:MM:SS.fff'.

It has the shape of SQLite's CURRENT_TIMESTAMP (plus milliseconds), so stored values sort
and compare as text, including values written by older layouts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# The same expression the migrations use as column defaults.
SQL_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"


def to_db(moment: datetime) -> str:
    """A datetime (naive = UTC) in the stored format."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    # isoformat pads years before 1000 to four digits (strftime's %Y does not on glibc),
    # so every stored time compares as text in time order
    return moment.isoformat(sep=" ", timespec="milliseconds")


def now_db() -> str:
    return to_db(datetime.now(UTC))


def ago_db(days: float) -> str:
    return to_db(datetime.now(UTC) - timedelta(days=days))


def to_iso(stored: str | None) -> str | None:
    """The stored format as ISO 8601 with a 'Z' (what the API returns)."""
    if stored is None:
        return None
    return stored.replace(" ", "T", 1) + ("Z" if "+" not in stored else "")


def from_db(stored: str | None) -> datetime | None:
    """The stored format as an aware UTC datetime (None stays None; an unreadable value,
    which a CHECKed column cannot hold, is None too)."""
    if not stored:
        return None
    try:
        moment = datetime.fromisoformat(stored.replace(" ", "T", 1).removesuffix("Z"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
