"""What the retrieval pipeline asks a store for, and what comes back.

The pipeline (search/pipeline.py) turns a query into keyword terms and a query vector; a
store turns those into two ranked candidate lists inside one read snapshot, hands them to
the pipeline's fusion, and reads the rows of the fused top ``k`` in that same snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from abathur_memory.core.documents import Vector
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import MemoryEntry
from abathur_memory.core.spaces import Space

R = TypeVar("R")

CONTEXT_PART = -1  # the part number of a memory's context vector (core/memory_units.py)


@dataclass(frozen=True)
class CandidateQuery:
    terms: tuple[str, ...]  # keyword terms (empty: no keyword candidates)
    vector: Vector | None  # the query vector (None: no semantic candidates)
    identity: str | None  # EmbeddingIdentity.key() the vector belongs to
    pool: int  # candidates per list, before fusion
    k: int  # hits wanted after fusion
    cut: int | None = None  # memory hits: longer values are cut (core/replies.py)


# The beginning of a hit's indexed text that its snippet is taken from: a memory's text
# can be as large as its value, and k of them are read per search.
SNIPPET_SOURCE_CHARS = 65_536


@dataclass(frozen=True)
class DocumentScope:
    """Which chunks may be ranked: visible roots and the caller's filters."""

    root_ids: tuple[int, ...] | None  # None: every root
    path_matches: Callable[[str], bool] | None = None  # on the path within the root
    tags: tuple[str, ...] = ()
    document_type: str | None = None

    @property
    def narrowed(self) -> bool:
        return bool(
            self.root_ids is not None or self.path_matches or self.tags or self.document_type
        )


@dataclass(frozen=True)
class MemoryFilters:
    """What a memory search keeps, applied inside candidate selection (both lists, both
    backends), never after the top k: a memory type, a span of the memory's time (its
    moment: the date its value names, else when it was first stored), metadata equality."""

    memory_type: str | None = None
    after: dt.datetime | None = None  # inclusive
    before: dt.datetime | None = None  # exclusive
    metadata: tuple[tuple[str, str | int | float | bool], ...] = ()
    # Superseded memories, the from side of duplicates and ended validity are left out
    # unless this is set (memory/links.py says what hides what).
    include_superseded: bool = False
    # When what is kept must hold (valid_from <= valid_at < valid_to, supersedes links
    # closing it); None: now.
    valid_at: dt.datetime | None = None

    @property
    def any(self) -> bool:
        return bool(self.memory_type or self.after or self.before or self.metadata)


@dataclass(frozen=True)
class MemoryScope:
    """Which memories may be ranked: what ``principal`` may read, within ``prefix``, kept
    by ``filters``."""

    principal: Principal
    prefix: str | None = None
    filters: MemoryFilters = MemoryFilters()


@dataclass(frozen=True)
class Ranked:
    """One fused candidate with the parts of its score."""

    id: int
    score: float
    keyword_rank: int | None
    keyword_score: float | None
    semantic_rank: int | None
    semantic_score: float | None


# (keyword list, semantic list, k) -> the fused top k; each list is (id, score), best first.
# Documents fuse by rank alone, so a store may leave a semantic score as None (not read) and
# read it for the fused hits only: pgvector's walk finds ids without re-reading each
# candidate's embedding (store/postgres/search.py).
Fuse = Callable[
    [Sequence[tuple[int, float]], Sequence[tuple[int, float | None]], int], list[Ranked]
]


@dataclass(frozen=True)
class CandidateFacts:
    """What the fusion may weigh besides the lists: when a memory happened, who said it."""

    moment: dt.datetime | None
    speaker: str | None


# Memories: (keyword, semantic, context vectors, k, facts of the candidates) -> the top k.
MemoryFuse = Callable[
    [
        list[tuple[int, float]],
        list[tuple[int, float]],
        list[tuple[int, float]],
        int,
        dict[int, CandidateFacts],
    ],
    list[Ranked],
]


@dataclass
class Found(Generic[R]):
    space: Space | None  # the space searched (None: nothing indexed for it)
    vector_used: bool  # False when the space does not hold the query vector's identity
    ranked: list[Ranked] = field(default_factory=list)
    rows: dict[int, R] = field(default_factory=dict)
    pending: int = 0  # changes not in the indexes yet (memories)
    vector_path: str | None = None  # how vector candidates were found, when it matters


@dataclass(frozen=True)
class ChunkRow:
    id: int
    file_path: str
    root_name: str
    root_path: str
    title: str
    heading_path: list[str]
    start_line: int
    end_line: int
    text: str
    document_type: str | None
    tags: list[str]
    content_hash: str
    indexed_hash: str | None  # the content the space's chunks were built from
    size_bytes: int | None
    mtime_ns: int | None


@dataclass(frozen=True)
class MemoryRow:
    entry: MemoryEntry
    text: str  # the words the keyword index holds for it
    position: int = 0  # where it sits in its namespace (the id of its first version)


@dataclass(frozen=True)
class MemoryVectorPart:
    """One embedded piece of a memory (long values are split to fit the model)."""

    entry_id: int
    part: int
    text: str
    vector: Vector


@dataclass(frozen=True)
class UnembeddedMemory:
    entry_id: int
    key: str
    text: str
