"""What the document side reports: typed results the MCP tools and the command line render."""

from __future__ import annotations

from pydantic import BaseModel, Field

from abathur_memory.core.records import truncated_marker
from abathur_memory.core.replies import absent
from abathur_memory.documents.sync import ScanReport


class WorkReport(BaseModel):
    documents_done: int
    documents_failed: int
    chunks_embedded: int
    chunks_reused: int
    embed_seconds: float
    seconds: float
    held_elsewhere: int = Field(
        description="Documents another indexer was working on when this run ended."
    )


class Failure(BaseModel):
    path: str
    error: str | None


class IndexReport(BaseModel):
    scans: list[ScanReport] = Field(default_factory=list)
    work: WorkReport | None = None
    failed_count: int = 0
    # After the run, over the roots it covered (the 50 newest): what `status` says too.
    failed: list[Failure] = Field(default_factory=list)
    omitted: int | None = Field(
        default=None,
        exclude_if=absent,
        description="Names of removed or skipped files left out to keep the reply within the "
        "byte bound (each scan's counts are whole).",
    )


class DocumentText(BaseModel):
    """A document, or a line range of it, read from disk."""

    path: str
    root: str
    title: str
    start_line: int
    end_line: int
    total_lines: int
    text: str
    changed_since_indexed: bool
    next_start_line: int | None = Field(
        default=None,
        exclude_if=absent,
        description="The text stops before the lines asked for (a line or byte bound): "
        "read on from here.",
    )
    truncated: dict[str, int] | None = truncated_marker()


class RootStatus(BaseModel):
    name: str
    path: str | None = Field(description="The folder, shown to the root's owner only.")
    exists: bool
    owner: str | None
    visibility: str = Field(description="private (owner only), project or all.")
    excludes: list[str]
    documents: int
    by_status: dict[str, int]
    last_scan_at: str | None


class WatcherStatus(BaseModel):
    owner: str
    kind: str
    pid: int
    roots: list[str]
    alive: bool
    last_beat_at: str | None
    seconds_since_beat: float
    last_event_at: str | None
    last_indexed_at: str | None


class Rebuild(BaseModel):
    model: str
    documents_done: int
    documents: int
    reason: str | None = Field(
        default=None, description="What differs from the index being replaced."
    )


class IndexStatus(BaseModel):
    roots: list[RootStatus]
    model: str | None = Field(description="Model of the index that answers searches.")
    dimensions: int | None
    configured_model: str | None
    chunks: int
    pending: int = Field(description="Documents waiting to be (re)indexed.")
    oldest_pending_since: str | None
    failed_count: int = Field(description="Documents that could not be indexed.")
    failed: list[Failure] = Field(description="The 20 most recent failures.")
    last_sync_at: str | None
    rebuild: Rebuild | None = Field(description="Progress of a rebuild for a new model.")
    rebuild_needed: str | None = Field(
        default=None,
        description="Why the index must be rebuilt for the configured model, until it starts.",
    )
    watchers: list[WatcherStatus] = Field(description="A watcher not alive has died or hangs.")
