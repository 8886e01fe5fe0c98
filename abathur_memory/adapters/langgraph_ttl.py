"""Time-to-live for the LangGraph store, kept in the memories' metadata.

abathur-memory has no per-memory expiry of its own (lifecycle policies expire episodic
memories by age), so the adapter keeps LangGraph's TTL itself, in the open: a put with a
TTL stores ``{"langgraph": {"ttl_minutes": T, "expires_at": "<ISO 8601 UTC>"}}`` as the
memory's metadata. Reads skip expired items (as TTLConfig's ``omit_expired`` does, always);
``sweep`` soft-deletes them (audited, history kept). Refreshing on read means writing the
new expiry, which is a new version; to keep reads from piling up versions, a read refreshes
only once less than half of the TTL is left (so at most two refreshes per TTL period).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

KEY = "langgraph"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Expiry:
    ttl_minutes: float
    expires_at: datetime

    @classmethod
    def of(cls, entry: Any) -> Expiry | None:
        mine = entry.metadata.get(KEY) if isinstance(entry.metadata, dict) else None
        if not isinstance(mine, dict):
            return None
        ttl, at = mine.get("ttl_minutes"), mine.get("expires_at")
        if not isinstance(ttl, int | float) or isinstance(ttl, bool) or not isinstance(at, str):
            return None
        try:
            return cls(float(ttl), datetime.fromisoformat(at))
        except ValueError:
            return None

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def due_for_refresh(self, now: datetime) -> bool:
        return self.expires_at - now < timedelta(minutes=self.ttl_minutes / 2)


def metadata(ttl_minutes: float | None, now: datetime) -> dict[str, Any]:
    """The metadata a put writes: the expiry, or nothing (no TTL)."""
    if ttl_minutes is None:
        return {}
    expires = now + timedelta(minutes=ttl_minutes)
    return {KEY: {"ttl_minutes": ttl_minutes, "expires_at": expires.isoformat()}}


def live(entry: Any, clock: Callable[[], datetime]) -> bool:
    expiry = Expiry.of(entry)
    return expiry is None or not expiry.expired(clock())
