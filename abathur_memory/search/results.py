"""What a search returns: typed results that the MCP tools and the command line render."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from abathur_memory.core.records import MemoryRecord, truncated_marker
from abathur_memory.core.replies import absent
from abathur_memory.core.values import JsonAny

VECTOR_SEARCH = (
    "How vector candidates were found on a large SQLite vector table: 'approximate' (the "
    "IVF index) or 'exact: <why>'; absent when the table is small enough to search exactly."
)
OMITTED = "Hits left out to keep the reply within the server's byte bound (ask for fewer)."


@dataclass
class Filters:
    """document_search's filters (the roots the caller may see are applied besides)."""

    root: str | None = None
    path_glob: str | None = None
    tags: list[str] = field(default_factory=list)
    document_type: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.root or self.path_glob or self.tags or self.document_type)


class Hit(BaseModel):
    """One matching section of a document."""

    path: str = Field(description="'<root>/<path within the root>': pass it to document_get.")
    root: str
    title: str
    heading: list[str] = Field(description="Heading path of the section.")
    start_line: int
    end_line: int
    snippet: str
    score: float = Field(description="Fused (reciprocal rank) score.")
    keyword_score: float | None
    keyword_rank: int | None
    semantic_score: float | None
    semantic_rank: int | None
    document_type: str | None
    tags: list[str]
    changed_since_indexed: bool = Field(description="The file changed after it was indexed.")
    chunk_id: int


class SearchResult(BaseModel):
    query: str
    mode: str
    mode_used: str = Field(description="hybrid, keyword or semantic: what actually ran.")
    degraded: str | None = Field(
        default=None, description="Why the search ran in a lesser mode, if it did."
    )
    model: str | None = None
    results: list[Hit] = Field(default_factory=list)
    omitted: int | None = Field(default=None, exclude_if=absent, description=OMITTED)
    vector_search: str | None = Field(default=None, exclude_if=absent, description=VECTOR_SEARCH)
    search_ms: float = 0.0
    embed_ms: float = 0.0


class MemoryNeighbour(BaseModel):
    """A memory stored next to a hit in its namespace (``offset`` -1: just before it)."""

    key: str
    version: int
    offset: int
    value: JsonAny
    memory_type: str
    updated_at: str
    truncated: dict[str, int] | None = truncated_marker()


class Contradiction(BaseModel):
    """A memory an unresolved ``contradicts`` link ties to a hit: both still hold, so the
    agent sees both and decides (a supersedes link resolves it)."""

    namespace: str
    key: str
    version: int
    value: JsonAny
    truncated: dict[str, int] | None = truncated_marker()


class MemoryHit(MemoryRecord):
    """One memory that matched: the record memory_get shows, with the parts of its score."""

    score: float
    keyword_rank: int | None
    semantic_rank: int | None
    semantic_score: float | None
    snippet: str
    context: list[MemoryNeighbour] | None = Field(
        default=None,
        exclude_if=absent,
        description="Its neighbours in stored order (with context=n), nearest kept first "
        "when packed.",
    )
    contradicts: list[Contradiction] | None = Field(
        default=None,
        exclude_if=absent,
        description="Memories it contradicts, unresolved: both hold until one supersedes.",
    )


class Packing(BaseModel):
    """What max_tokens kept: whole memories, best hits first, never one cut in half."""

    max_tokens: int
    used_tokens: int
    hits_left_out: int
    neighbours_left_out: int


class MemorySearchResult(BaseModel):
    query: str
    mode_used: str = Field(description="hybrid, keyword or semantic: what actually ran.")
    degraded: str | None = Field(description="Why the search ran in a lesser mode, if it did.")
    pending: int = Field(
        description="Memory changes the background indexer has not reached yet (they may be "
        "missing from the results); 0 when the index is current."
    )
    results: list[MemoryHit]
    omitted: int | None = Field(default=None, exclude_if=absent, description=OMITTED)
    packed: Packing | None = Field(default=None, exclude_if=absent)
    vector_search: str | None = Field(default=None, exclude_if=absent, description=VECTOR_SEARCH)
