"""The records of the document side: roots, chunks, scan changes, indexing work.

Pure data and the rules that belong to the data (a root's visibility, a root's name), so
that both storage backends, the document service and the search pipeline share them.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from abathur_memory.core.principal import Principal
from abathur_memory.errors import InvalidInput

Vector = npt.NDArray[np.float32]

# -- chunks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    seq: int
    heading_path: tuple[str, ...]
    start_line: int  # 1-based, inclusive, lines of the original file
    end_line: int
    text: str
    token_count: int  # of embed_text, as the embedding model counts them
    context: str = ""  # the heading context embedded with the text (may be shortened)

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path)

    @property
    def embed_text(self) -> str:
        """What is embedded: the heading context, then the chunk."""
        return f"{self.context}\n\n{self.text}" if self.context else self.text

    @property
    def text_hash(self) -> str:
        return hashlib.sha256(self.embed_text.encode("utf-8")).hexdigest()


@dataclass
class ParsedDocument:
    title: str
    chunks: list[Chunk]
    front_matter: dict[str, Any] = field(default_factory=dict)
    front_matter_error: str | None = None
    tags: list[str] = field(default_factory=list)
    document_type: str | None = None

    def metadata(self) -> dict[str, Any]:
        """What is stored as the document's metadata."""
        stored: dict[str, Any] = {"front_matter": self.front_matter}
        if self.front_matter_error:
            stored["front_matter_error"] = self.front_matter_error
        return stored


# -- roots --------------------------------------------------------------------------------

VISIBILITIES = ("private", "project", "all")
ROOT_NAME_CHARS = 64
_NAME_PUNCTUATION = frozenset("._-")


@dataclass(frozen=True)
class Root:
    """A folder whose markdown is indexed: a short unique name, an owner, a visibility.

    ``visibility`` says who besides the owner may search and read it: ``private`` (its owner
    only), ``project`` (principals of the root's project) or ``all``. An admin sees every
    root. Roots registered before owners existed have none and are visible to all.
    """

    id: int
    name: str
    path: Path
    excludes: tuple[str, ...]
    last_scan_at: str | None  # ISO 8601
    owner: str | None = None
    project: str | None = None
    visibility: str = "all"

    def visible_to(self, principal: Principal | None) -> bool:
        """None stands for the machine's operator (the CLI's maintenance commands)."""
        if principal is None or principal.admin or self.visibility == "all":
            return True
        if self.owner == principal.user:
            return True
        return (
            self.visibility == "project"
            and self.project is not None
            and self.project == principal.project
        )

    def owned_by(self, principal: Principal | None) -> bool:
        return principal is None or principal.admin or self.owner in (None, principal.user)


@dataclass
class Registered:
    root: Root
    notes: list[str] = field(default_factory=list)  # what the user should know (said once)


def clean_root_name(name: str) -> str:
    """A root name from any text: letters, marks and digits of any script (NFC), '.', '_'
    and '-'; every other run of characters (spaces, '/', '=', quotes, controls) becomes one
    '-'. So ``ünï cødé`` is ``ünï-cødé`` and ``ノート`` stays ``ノート``: a name reads as typed
    and is still one path segment, safe in ``<root>/<path>`` and on a command line."""
    text = unicodedata.normalize("NFC", name)
    kept = "".join(
        char if char in _NAME_PUNCTUATION or unicodedata.category(char)[0] in "LMN" else " "
        for char in text
    )
    cleaned = "-".join(kept.split()).strip("-.")[:ROOT_NAME_CHARS].strip("-.")
    return cleaned or "root"


def root_name_of(typed: str) -> str:
    """A root name as typed in a lookup, in the form names are stored in (NFC): a name
    typed on macOS (NFD) finds the root."""
    return unicodedata.normalize("NFC", typed)


def check_visibility(visibility: str, project: str | None) -> str:
    if visibility not in VISIBILITIES:
        raise InvalidInput(f"visibility must be one of {', '.join(VISIBILITIES)}")
    if visibility == "project" and not project:
        raise InvalidInput("visibility 'project' needs a project (--project or ABATHUR_PROJECT)")
    return visibility


def encode_excludes(excludes: tuple[str, ...] | list[str]) -> str:
    return json.dumps(list(excludes))


# -- scanning -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentState:
    """What the index knows of one file, to compare with the disk."""

    id: int
    file_path: str  # '<root name>/<path within the root>'
    size_bytes: int | None
    mtime_ns: int | None
    content_hash: str
    sync_status: str  # pending | synced | stale | failed


@dataclass(frozen=True)
class NewDocument:
    file_path: str
    title: str
    content_hash: str
    size_bytes: int
    mtime_ns: int


@dataclass(frozen=True)
class MovedDocument:
    """A new path whose content equals a vanished one's: the row (chunks, vectors) follows."""

    id: int
    file_path: str
    size_bytes: int
    mtime_ns: int


@dataclass(frozen=True)
class TouchedDocument:
    """The (size, mtime) pair changed, the content did not."""

    id: int
    size_bytes: int
    mtime_ns: int


@dataclass(frozen=True)
class ChangedDocument:
    """New content: stale (or still pending) until the worker embeds it."""

    id: int
    content_hash: str
    size_bytes: int
    mtime_ns: int


@dataclass(frozen=True)
class FailedDocument:
    """A file that cannot be indexed, with the reason (``id`` None: not in the index yet)."""

    id: int | None
    file_path: str
    title: str
    size_bytes: int
    mtime_ns: int
    error: str


@dataclass
class ScanChanges:
    """What a scan of one root found, applied by the store in one transaction."""

    root_id: int
    new: list[NewDocument] = field(default_factory=list)
    moved: list[MovedDocument] = field(default_factory=list)
    touched: list[TouchedDocument] = field(default_factory=list)
    changed: list[ChangedDocument] = field(default_factory=list)
    failed: list[FailedDocument] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)


# -- indexing work ------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkScope:
    """The documents a run works on: all, those of some roots, or some documents."""

    root_ids: tuple[int, ...] | None = None
    document_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ClaimedDocument:
    id: int
    root_id: int
    file_path: str
    content_hash: str
    size_bytes: int


@dataclass
class IndexedDocument:
    """A document read, parsed and embedded by the worker: what the store writes."""

    id: int
    content_hash: str  # of what was read
    size_bytes: int
    mtime_ns: int
    content_changed: bool  # the file changed after the scan: record what was read
    parsed: ParsedDocument


@dataclass(frozen=True)
class DocumentFailure:
    path: str
    error: str | None


@dataclass(frozen=True)
class IndexedFile:
    """A document the index holds, for reading it back."""

    id: int
    file_path: str
    title: str
    size_bytes: int | None
    mtime_ns: int | None


@dataclass
class IndexCounts:
    """The numbers index_status shows, for some roots, read in one snapshot."""

    by_root: dict[int, dict[str, int]]
    pending: int
    oldest_pending_since: str | None
    failed_count: int
    failed: list[DocumentFailure]
    last_sync_at: str | None
    chunks: int
    rebuild_done: int | None  # documents the building space holds (None: no rebuild)
    documents: int


@dataclass(frozen=True)
class Heartbeat:
    owner: str
    kind: str
    pid: int
    host: str
    roots: list[str]
    beat_at: str
    seconds_since_beat: float
    last_event_at: str | None
    last_indexed_at: str | None
