"""What a put decides, written once: the compare-and-set, the metadata a put without one
keeps, whether it changes anything, and the version it writes.

SQLite applies it row by row (store/sqlite/memories.py). PostgreSQL decides a whole batch in
one statement (store/postgres/puts.py: one round trip, the documented exception); the same
rule written in SQL, pinned to this function by generated cases on both backends
(tests/test_put_rule.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from abathur_memory.core.records import PreparedPut
from abathur_memory.errors import Conflict


@dataclass(frozen=True)
class PutDecision:
    unchanged: bool  # the live version equals the put: nothing is written
    version: int  # the version now live (the one written, or the one that stands)
    metadata_text: str  # the metadata of a version written
    action: str  # "create" (no live version), "update", or "" when unchanged


def decide_put(
    put: PreparedPut,
    newest_version: int | None,
    live_metadata: str | None,
    same_as_live: Callable[[str], bool],
) -> PutDecision:
    """``newest_version``: the key's newest version, deleted or not (None: never stored);
    ``live_metadata``: the live version's metadata (None: no live version, the key is new
    or deleted); ``same_as_live(metadata)``: whether the put with that metadata equals the
    live version (type, value, metadata, validity). Raises Conflict on a lost
    compare-and-set."""
    live = live_metadata is not None
    live_version = (newest_version or 0) if live else 0
    check_expected(put, live_version)
    metadata = put.metadata_text
    if metadata is None:  # not given: keep the live version's metadata
        metadata = live_metadata if live_metadata is not None else "{}"
    if live and same_as_live(metadata):
        return PutDecision(True, live_version, metadata, "")
    return PutDecision(False, (newest_version or 0) + 1, metadata, "update" if live else "create")


def check_expected(put: PreparedPut, live_version: int) -> None:
    """Compare-and-set: the caller's view of the version, or Conflict."""
    if put.expected_version is None or put.expected_version == live_version:
        return
    if live_version:
        raise Conflict(
            f"{put.namespace}/{put.key} is at version {live_version}, not "
            f"{put.expected_version}: re-read it and retry"
        )
    raise Conflict(
        f"{put.namespace}/{put.key} does not exist (expected version {put.expected_version})"
    )
