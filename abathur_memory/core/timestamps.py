"""Times as callers give them (ISO 8601) and as the API returns them (ISO 8601 with 'Z')."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from abathur_memory.errors import InvalidInput


def parse_user_time(value: str | datetime) -> datetime:
    """ISO 8601 (with or without zone; no zone means UTC) as an aware UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    else:
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput("a time must be an ISO 8601 string such as '2026-11-23T10:15:00Z'")
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(
                f"{value!r} is not an ISO 8601 time such as '2026-11-23T10:15:00Z'"
            ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise InvalidInput(f"{value!r} is out of the range of times") from None


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)
