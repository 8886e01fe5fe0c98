"""Times as both backends hand them out: ISO 8601, milliseconds, ``Z``.

Stored times are ``timestamptz`` truncated to milliseconds (the precision SQLite keeps), so
records, comparisons and cursors agree with SQLite to the millisecond.
"""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg.abc import Buffer
from psycopg.adapt import Loader

from abathur_memory.errors import InvalidInput

# The time a statement started, at stored precision: what every column default and update
# uses (SQLite's ``timestamps.SQL_NOW``). Taken when the statement starts, so a statement
# that ran after waiting for a lock is stamped after the writer it waited for.
SQL_NOW = "date_trunc('milliseconds', statement_timestamp())"


def sql_iso(column: str) -> str:
    """SQL for ``column`` in the records' text form, where a value is built in SQL (JSON)."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


class IsoTimestampLoader(Loader):
    """``timestamptz`` read straight into the records' text form ('2026-01-02T03:04:05.678Z').

    Connections run with TimeZone UTC and DateStyle ISO, so the server sends
    '2026-01-02 03:04:05.678+00' (the fraction without trailing zeros, or none); rebuilding
    the text costs less than a datetime parsed and formatted again for every row.
    """

    def load(self, data: Buffer) -> str:
        text = bytes(data).decode("ascii")
        if not text.endswith("+00") or len(text) < 22 or text[10] != " ":
            return _iso(datetime.fromisoformat(text))  # pragma: no cover - TimeZone is UTC
        fraction = text[20:-3] if text[19] == "." else ""
        return f"{text[:10]}T{text[11:19]}.{(fraction + '000')[:3]}Z"


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def at_ms(moment: datetime) -> datetime:
    """``moment`` (naive = UTC) at stored precision, as SQLite compares it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def cursor_text(iso: str) -> str:
    """A record's ISO time as a cursor part: the stored form SQLite's cursors carry."""
    return iso[:-1].replace("T", " ", 1)


def cursor_position(before: tuple[str, str]) -> tuple[datetime | str, int]:
    """A (time, row) cursor position from ``page``'s caller as query parameters; an empty
    part means "before the first row" (SQLite's '\uffff' and 2**62)."""
    try:
        moment = datetime.fromisoformat(before[0]).replace(tzinfo=UTC) if before[0] else None
        row = int(before[1]) if before[1] else 2**62
    except ValueError:
        raise InvalidInput(
            "cursor is not one this server issued (pass next_cursor back as is)"
        ) from None
    return ("infinity" if moment is None else moment), row


def as_datetime(value: object) -> datetime | None:
    """A loaded timestamp (the records' ISO text, see IsoTimestampLoader) as an aware UTC
    datetime; None stays None."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
