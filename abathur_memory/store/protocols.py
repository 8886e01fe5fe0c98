"""The storage interface the services call, grouped by what is stored.

Two implementations, ``store.sqlite`` and ``store.postgres``, own their SQL and their
numbered migrations; nothing above this package writes SQL. Every method is one
transaction (or one read snapshot) and raises the project's typed errors
(``abathur_memory.errors``), never a driver's.

Policy stays with the services: a store never decides who may do what. Where a decision
needs the current row inside the transaction (a status transition, a compare-and-set), the
service passes a ``decide`` function of the current record that returns the change or
raises; the store calls it between reading the locked row and writing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from abathur_memory.core.browse import (
    AuditQuery,
    AuditRecord,
    DatabaseFacts,
    DocumentFile,
    NamespaceCount,
)
from abathur_memory.core.documents import (
    ClaimedDocument,
    DocumentFailure,
    DocumentState,
    Heartbeat,
    IndexCounts,
    IndexedDocument,
    IndexedFile,
    Registered,
    Root,
    ScanChanges,
    Vector,
    WorkScope,
)
from abathur_memory.core.metrics import BucketCount, CallMetric
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import (
    Checkpoint,
    ConsolidationRun,
    Denial,
    ExpiredMemory,
    MemoryEntry,
    MemoryLink,
    NewEvent,
    NewLink,
    NewTask,
    PreparedPut,
    PutResult,
    Session,
    SessionChange,
    SessionEvent,
    SessionWithEvents,
    StoredProposal,
    Task,
    TaskChange,
    TokenInfo,
)
from abathur_memory.core.replies import Bounds
from abathur_memory.core.search import (
    CandidateQuery,
    ChunkRow,
    DocumentScope,
    Found,
    Fuse,
    MemoryFuse,
    MemoryRow,
    MemoryScope,
    MemoryVectorPart,
    UnembeddedMemory,
)
from abathur_memory.core.spaces import EmbeddingIdentity, Space
from abathur_memory.core.transfer import Decide, Held, Wanted, Writes


class MemoryStore(Protocol):
    """Versions of (namespace, key) with their audit rows."""

    async def put_many(self, puts: Sequence[PreparedPut], actor: str) -> list[PutResult]:
        """All puts in one transaction, each against the newest version (earlier puts of
        the batch included): a changed value is a new version with its audit row, an equal
        one writes nothing. A failed compare-and-set raises Conflict and writes nothing."""
        ...

    async def latest(self, namespace: str, key: str) -> MemoryEntry | None:
        """The latest live version."""
        ...

    async def latest_with_supersedes(
        self, namespace: str, key: str
    ) -> tuple[MemoryEntry | None, list[MemoryLink]]:
        """The latest live version and, when there is one, the active ``supersedes`` links
        to (namespace, key) that carry a ``holds_until``: the links that can end a version's
        validity (memory/memories.py, ``closed``), oldest first. What ``memory_get`` reads,
        in one round trip (PostgreSQL: one statement; SQLite: one read transaction)."""
        ...

    async def version(self, namespace: str, key: str, version: int) -> MemoryEntry | None: ...

    async def as_of(self, namespace: str, key: str, at: datetime) -> MemoryEntry | None:
        """The version live at ``at`` (None if it did not exist or was deleted then)."""
        ...

    async def history(
        self,
        namespace: str,
        key: str,
        *,
        after_version: int = 0,
        limit: int | None = None,
        cut: int | None = None,
    ) -> list[MemoryEntry]:
        """Versions after ``after_version``, oldest first (at most ``limit``); with ``cut``,
        values longer than ``cut`` bytes are cut as core/replies.py says, in SQL."""
        ...

    async def list_prefix(
        self,
        prefix: str,
        memory_type: str | None,
        after: tuple[str, str],
        limit: int,
        *,
        cut: int | None = None,
        include_superseded: bool = False,
        as_of: datetime | None = None,
        valid_at: datetime | None = None,
    ) -> list[MemoryEntry]:
        """Latest live entries under ``prefix`` on ':' boundaries (a bare scope lists the
        scope), by (namespace, key), after the cursor position ``after``; ``cut`` as for
        history. What no longer holds (superseded, a duplicate, validity ended) is left out
        unless ``include_superseded``. With ``as_of`` (a past time), each key's version
        live then (as ``as_of()``), and the links as they stood then; with ``valid_at``,
        what held at that time (valid_from <= valid_at < valid_to) instead of now."""
        ...

    async def list_readable(
        self,
        principal: Principal,
        memory_type: str | None,
        after: tuple[str, str],
        limit: int,
        *,
        cut: int | None = None,
        include_superseded: bool = False,
        as_of: datetime | None = None,
        valid_at: datetime | None = None,
    ) -> list[MemoryEntry]:
        """Like list_prefix over every namespace ``principal`` may read."""
        ...

    async def delete(
        self, namespace: str, key: str, expected_version: int | None, actor: str
    ) -> MemoryEntry:
        """Soft-delete every version; returns the version that was live (NotFound,
        Conflict)."""
        ...

    async def restore(self, namespace: str, key: str, actor: str) -> PutResult:
        """The last value of a deleted key back as a new version (NotFound, Conflict)."""
        ...

    async def expired_episodic(self, cutoff: datetime, limit: int | None) -> list[ExpiredMemory]:
        """Live episodic memories not updated since ``cutoff``, oldest first."""
        ...

    async def expire_episodic(
        self, cutoff: datetime, actor: str, limit: int
    ) -> list[ExpiredMemory]:
        """Soft-delete up to ``limit`` of them (audited as ``actor``); returns them."""
        ...

    async def namespaces(
        self, principal: Principal, prefix: str | None, after: str, limit: int
    ) -> list[NamespaceCount]:
        """Namespaces ``principal`` may read that hold live keys (within ``prefix`` on ':'
        boundaries), by name after ``after``, with their live key counts."""
        ...


class LinkStore(Protocol):
    """Typed, directed links between memories; removed by stamping, never deleted."""

    async def add(self, link: NewLink, actor: str) -> tuple[MemoryLink, bool]:
        """The link between the live versions of both ends, with its audit row (NotFound
        when an end has no live version); an equal active link is returned as it is.
        Returns (link, created)."""
        ...

    async def remove(self, link_id: int, actor: str, run_id: str | None = None) -> MemoryLink:
        """Stamp an active link removed, with its audit row (NotFound)."""
        ...

    async def add_session_link(
        self,
        namespace: str,
        key: str,
        session_id: str,
        seq_start: int,
        seq_end: int,
        actor: str,
    ) -> tuple[MemoryLink, bool]:
        """A derived_from link from a memory's live version to events of a session, audited
        as ``publish``; an equal active link is returned as it is."""
        ...

    async def get(self, link_id: int) -> MemoryLink | None: ...

    async def of(self, namespace: str, key: str) -> list[MemoryLink]:
        """Every link from or to (namespace, key), removed ones included, oldest first."""
        ...

    async def closing(self, addresses: Sequence[tuple[str, str]]) -> list[MemoryLink]:
        """The ``supersedes`` links to any of these (namespace, key) that carry a
        ``holds_until`` (the links that can close a version's validity), removed ones
        included, oldest first: what a listing needs to show each entry's closed
        ``valid_to``."""
        ...

    async def contradicting(
        self, addresses: list[tuple[str, str]], cut: int | None
    ) -> list[tuple[tuple[str, str], MemoryEntry]]:
        """For each address, the latest live versions on the other side of its active
        ``contradicts`` links that still hold (unresolved contradictions), values cut to
        ``cut`` bytes."""
        ...


class ConsolidationStore(Protocol):
    """Consolidation runs (who, when, counts) and the proposals each stored."""

    async def start_run(
        self, run_id: str, prefix: str, actor: str, mode: str, undoes: str | None
    ) -> None: ...

    async def finish_run(self, run_id: str, status: str, counts: dict[str, Any]) -> None:
        """Stamp the run finished; a finished undo marks the run it undid."""
        ...

    async def save_proposals(self, run_id: str, proposals: Sequence[StoredProposal]) -> None: ...

    async def run(self, run_id: str) -> ConsolidationRun | None: ...

    async def last_run(self, prefix: str, actor: str) -> ConsolidationRun | None:
        """The newest finished run of ``actor`` on ``prefix``."""
        ...

    async def applied(self, run_id: str) -> list[StoredProposal]:
        """The proposals ``run_id`` applied, in order, with what applying each wrote."""
        ...

    async def recent_runs(self, prefix: str, limit: int) -> list[ConsolidationRun]:
        """The newest ``limit`` runs on ``prefix`` (any actor, any mode), newest first."""
        ...

    async def vectors(self, model: str, entry_ids: Sequence[int]) -> dict[int, Vector]:
        """The vectors kept for these versions with ``model`` (an embedding identity's key)."""
        ...

    async def keep_vectors(self, model: str, vectors: dict[int, Vector]) -> None:
        """Keep each version's vector for the next run (one short write)."""
        ...

    async def forget_vectors(self) -> int:
        """Drop the kept vectors of versions no longer live (deleted or superseded by a
        newer version); returns how many."""
        ...


class RedactionStore(Protocol):
    """Erasing content while keeping the record of it."""

    async def redact(self, namespace: str, key: str, version: int, actor: str) -> MemoryEntry:
        """Erase one version's value and metadata, keep its row (who, when) stamped with who
        redacted it when, drop its search text and vectors; audited. Redacting a redacted
        version changes nothing. NotFound if there is no such version."""
        ...

    async def erase_user(self, user: str, actor: str) -> dict[str, Any]:
        """Remove every memory version under user:<user> and the session namespaces of its
        sessions, their links, its sessions with their events, and its tasks (created by it
        or in its sessions) with their checkpoints, in one transaction; one audit row keeps
        the counts. Returns the counts."""
        ...


class AuditStore(Protocol):
    async def write_denials(
        self, batch: dict[Denial, int], recent: dict[Denial, int]
    ) -> dict[Denial, int]:
        """One audit row per denial with its count, or the count added to the recent row
        named in ``recent``; returns the row id of each."""
        ...

    async def count(self) -> int: ...

    async def page(self, query: AuditQuery, before_id: int | None, limit: int) -> list[AuditRecord]:
        """Rows matching ``query``, newest first (by id), below ``before_id``."""
        ...

    async def record(self, actor: str, action: str, data: dict[str, object]) -> int:
        """One audit row for an operation that is not a memory's (a token revoked); its id."""
        ...


class SessionStore(Protocol):
    async def create(
        self,
        session_id: str,
        app_name: str,
        user_id: str,
        project_id: str | None,
        state_text: str,
        metadata_text: str,
    ) -> Session:
        """Conflict if the id exists."""
        ...

    async def owner(self, session_id: str) -> tuple[str, str] | None:
        """(user_id, app_name) of a session (owners never change)."""
        ...

    async def get(
        self, session_id: str, events_after: int, events_limit: int, *, cut: int | None = None
    ) -> SessionWithEvents | None:
        """The session and a page of its events, in one snapshot (``events_after=-1``: the
        last ``events_limit`` events); with ``cut``, the events' long fields are cut as
        core/replies.py says, in SQL."""
        ...

    async def events(
        self, session_id: str, start_seq: int, end_seq: int | None, limit: int
    ) -> list[SessionEvent]: ...

    async def append(
        self,
        session_id: str,
        event: NewEvent,
        check: Callable[[Session], None],
        max_state_bytes: int,
    ) -> tuple[SessionEvent, Session]:
        """Append under the session row's lock: ``check`` sees the current session and
        raises to refuse; seq is last_seq + 1; the delta is merged into the state."""
        ...

    async def change(
        self, session_id: str, decide: Callable[[Session], SessionChange | None]
    ) -> Session:
        """Apply what ``decide`` returns for the locked current session (None: no change)."""
        ...

    async def page(
        self,
        *,
        user_id: str | None,
        app_name: str | None,
        status: str | None,
        project_id: str | None,
        before: tuple[str, str],
        limit: int,
        bounds: Bounds | None = None,
    ) -> tuple[list[Session], tuple[str, str] | None]:
        """Newest first; returns the page and the cursor position after its last row. With
        ``bounds``, long states are cut and the page ends before it passes the reply bound
        (core/replies.py)."""
        ...

    async def terminated_before(self, cutoff: datetime, limit: int | None) -> list[str]: ...

    async def deltas(self, session_id: str, end_seq: int) -> list[dict[str, object]]:
        """The state deltas of the events up to ``end_seq``, in order (events without one
        left out)."""
        ...

    async def archive_terminated(self, cutoff: datetime, limit: int) -> list[str]: ...


class TaskStore(Protocol):
    async def create(self, task: NewTask) -> Task: ...

    async def owners(self, task_ids: Sequence[str]) -> dict[str, str | None]:
        """created_by of each task that exists (owners never change)."""
        ...

    async def get(self, task_id: str) -> Task | None: ...

    async def change(self, task_id: str, decide: Callable[[Task], TaskChange | None]) -> Task:
        """Apply what ``decide`` returns for the locked current task (None: heartbeat)."""
        ...

    async def claim(self, agent_type: str | None, owner: str | None, claimant: str) -> Task | None:
        """Requeue timed-out tasks, then take the most urgent ready one, atomically (two
        claimers never get the same task, across processes and hosts)."""
        ...

    async def page(
        self,
        *,
        owner: str | None,
        status: str | None,
        agent_type: str | None,
        session_id: str | None,
        before: tuple[str, str],
        limit: int,
        bounds: Bounds | None = None,
    ) -> tuple[list[Task], tuple[str, str] | None]:
        """Newest first; ``bounds`` as for SessionStore.page (prompt, input, result cut)."""
        ...


class CheckpointStore(Protocol):
    async def save(
        self, task_id: str, iteration: int, state_text: str, session_id: str | None
    ) -> Checkpoint:
        """Save or overwrite; the task's own session when ``session_id`` is None."""
        ...

    async def load(self, task_id: str, iteration: int | None) -> Checkpoint | None: ...

    async def iterations(self, task_id: str) -> list[int]: ...


class TokenStore(Protocol):
    async def create(
        self, token_id: str, name: str, token_hash: str, principal: Principal
    ) -> TokenInfo:
        """Conflict if a live token has that name."""
        ...

    async def all(self, include_revoked: bool) -> list[TokenInfo]: ...

    async def revoke(self, id_or_name: str) -> TokenInfo | None: ...

    async def by_hash(self, token_hash: str) -> TokenInfo | None:
        """The live token with that hash."""
        ...


class RootStore(Protocol):
    """Document roots. Names are unique; a folder is registered once."""

    async def ensure(
        self,
        directory: Path,
        name: str | None,
        excludes: tuple[str, ...],
        owner: Principal | None,
        visibility: str | None,
    ) -> Registered:
        """The root of ``directory``, registered if new (a free name derived from ``name`` or
        the folder's); given excludes or visibility replace the stored ones."""
        ...

    async def all(self) -> list[Root]:
        """Every root, by name (visibility is the caller's to apply)."""
        ...

    async def exists(self, name: str) -> bool: ...

    async def update(
        self,
        name: str,
        *,
        excludes: tuple[str, ...] | None = None,
        visibility: str | None = None,
        owner: str | None = None,
    ) -> Root: ...

    async def rename(self, old: str, new: str) -> Root:
        """Rename a root; its documents' names (``<root>/<path>``) follow."""
        ...

    async def remove(self, name: str) -> int:
        """Forget a root and everything indexed from it; returns the documents removed."""
        ...


class SpaceStore(Protocol):
    async def active(self) -> Space | None: ...

    async def building(self) -> Space | None: ...

    async def for_identity(self, identity: EmbeddingIdentity) -> Space:
        """The space of ``identity``: the active one, the one being built, or a new one
        (active at once when nothing is indexed, else built beside the active one, every
        document then marked stale)."""
        ...

    async def memory_space(self, identity: EmbeddingIdentity) -> Space | None:
        """The space holding memory vectors of ``identity`` (active or being built)."""
        ...

    async def ensure_memory_space(self, identity: EmbeddingIdentity) -> Space | None:
        """That space, created (active) when nothing is indexed yet; None when documents
        are indexed with another model and no rebuild for this one exists."""
        ...


class DocumentStore(Protocol):
    """document_index, the chunks and vectors of each space, work leases, heartbeats."""

    async def states(self, root_id: int, file_path: str | None = None) -> list[DocumentState]:
        """What the index knows of the root's files (or of one of them)."""
        ...

    async def apply_scan(self, changes: ScanChanges) -> None:
        """Apply a scan's findings in one transaction and stamp the root's last scan."""
        ...

    async def indexed_file(self, file_path: str) -> IndexedFile | None: ...

    async def remaining(self, space_id: int, scope: WorkScope) -> tuple[int, int]:
        """(documents, bytes) the space does not hold the current content of (failed ones
        excluded)."""
        ...

    async def claim(
        self,
        space_id: int,
        owner: str,
        limit: int,
        scope: WorkScope,
        dead_owner: Callable[[str], bool],
    ) -> list[ClaimedDocument]:
        """Lease up to ``limit`` documents that need work (pending, stale, failed and due)
        for ``owner``; leases of owners ``dead_owner`` says are gone are freed first."""
        ...

    async def held_elsewhere(self, owner: str, scope: WorkScope) -> int:
        """Documents of the scope another owner holds a live lease on."""
        ...

    async def release(self, document_ids: Sequence[int], owner: str) -> None: ...

    async def delete(self, document_id: int) -> None: ...

    async def mark_failed(self, document_id: int, reason: str, *, transient: bool) -> None:
        """Record why a document could not be indexed: a transient failure is retried
        with exponential backoff, a permanent one waits until the file changes."""
        ...

    async def reusable_vectors(self, space: Space, text_hashes: set[str]) -> dict[str, Vector]:
        """Vectors the space already holds for these chunk texts."""
        ...

    async def write(
        self, space: Space, documents: Sequence[IndexedDocument], vectors: dict[str, Vector]
    ) -> None:
        """Replace each document's chunks in ``space`` (vectors by text hash), in one
        transaction, and tell readers the space changed."""
        ...

    async def finish_rebuild(self, space: Space) -> bool:
        """Activate a building space once it holds every document; False if not yet."""
        ...

    async def forget_space(self, space: Space, root_ids: Sequence[int] | None) -> None:
        """Have every document (of these roots) re-indexed into ``space``."""
        ...

    async def failures(self, root_ids: Sequence[int] | None) -> list[DocumentFailure]:
        """Failed documents of these roots (None: all), newest first."""
        ...

    async def counts(self, root_ids: Sequence[int]) -> IndexCounts: ...

    async def beat(
        self,
        owner: str,
        kind: str,
        roots: Sequence[str],
        *,
        started: bool,
        event_age_s: float | None = None,
        indexed_age_s: float | None = None,
    ) -> None:
        """Say that an indexing process is alive (and which roots it keeps), and how many
        seconds ago its last file events arrived and its last indexing run ended (None:
        unchanged). One write, every few seconds, rather than one per run."""
        ...

    async def forget_beat(self, owner: str) -> None: ...

    async def heartbeats(self) -> list[Heartbeat]: ...

    async def files(
        self, root_id: int, status: str | None, after: str, limit: int
    ) -> list[DocumentFile]:
        """The root's indexed files (of one status), by path after ``after``."""
        ...


class MemoryIndexStore(Protocol):
    """The keyword index and vectors of live memories, caught up from the audit log."""

    async def behind(self) -> bool:
        """True when memories changed since the keyword index was brought up to date."""
        ...

    async def sync_keywords(self) -> int:
        """Apply the memory changes since the last sync; returns the keys updated."""
        ...

    async def request_rebuild(self) -> None: ...

    async def keyword_position(self) -> str:
        """Where the keyword index stands in the change log (opaque to callers)."""
        ...

    async def vectors_current(self, space: Space, position: str) -> bool:
        """Whether ``space``'s vectors were recorded complete at ``position``."""
        ...

    async def mark_vectors_current(self, space: Space, position: str) -> None:
        """Record that every memory indexed at ``position`` has its vectors in ``space``,
        so counting what is not searchable yet reads only the changes after it."""
        ...

    async def unembedded(self, space: Space, limit: int) -> list[UnembeddedMemory]:
        """Indexed memories the space holds no vector for."""
        ...

    async def has_stale_vectors(self, space: Space) -> bool: ...

    async def drop_stale_vectors(self, space: Space) -> None:
        """Drop vectors of memories no longer live."""
        ...

    async def write_vectors(self, space: Space, parts: Sequence[MemoryVectorPart]) -> None: ...

    async def pool_contexts(self, space: Space, limit: int) -> int:
        """Pool up to ``limit`` missing or stale context vectors from their windows' own
        vectors (core/memory_units.py); returns how many were written."""
        ...


class SearchStore(Protocol):
    """Candidates for the retrieval pipeline, each search in one read snapshot."""

    async def chunks(
        self, query: CandidateQuery, scope: DocumentScope, fuse: Fuse
    ) -> Found[ChunkRow]:
        """Keyword and vector candidates among the active space's chunks, fused by
        ``fuse``, with the rows of the fused hits."""
        ...

    async def memories(
        self, query: CandidateQuery, scope: MemoryScope, fuse: MemoryFuse
    ) -> Found[MemoryRow]:
        """The same over the live memories the scope may read (the space of the query
        vector's identity), with each memory's context vector as a third list and its
        filters applied inside both candidate lists; ``pending`` counts changes not indexed
        yet."""
        ...

    async def memory_neighbours(
        self, hits: list[tuple[int, str, int]], around: int, cut: int | None
    ) -> dict[int, list[tuple[int, MemoryEntry]]]:
        """For each (entry id, namespace, position): up to ``around`` live memories stored
        before and after it in its namespace, as (offset, entry) in stored order (values
        cut as listings cut them)."""
        ...

    # memory_search's as_of (search/then.py): the versions live then are not in the
    # indexes (those hold the live versions), so they are ranked from their own text.

    async def rank_texts(
        self, terms: tuple[str, ...], docs: Sequence[tuple[str, str]], pool: int
    ) -> list[tuple[int, float]]:
        """The ``pool`` best of ``docs`` ((key, text) pairs) for ``terms`` by this
        backend's own keyword ranking, as (position in ``docs``, relevance), best first."""
        ...

    async def memory_parts(
        self, identity: str, entry_ids: Sequence[int]
    ) -> tuple[Space | None, dict[int, list[Vector]]]:
        """The memory space of ``identity`` and the vectors of the given versions' own
        parts in it (those the memory indexer embedded: live versions)."""
        ...

    async def first_stored(
        self, addresses: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], datetime]:
        """When each (namespace, key) was first stored (its first version's time)."""
        ...


class TransferStore(Protocol):
    """Export's reads and import's one write (docs/import-export.md)."""

    async def memory_versions(
        self, scope: MemoryScope, with_history: bool, after: tuple[str, str, int], limit: int
    ) -> list[MemoryEntry]:
        """Versions the scope may read, by (namespace, key, version) after ``after``: every
        version, deleted ones included (``with_history``), or each key's latest live one."""
        ...

    async def count_memory_versions(self, scope: MemoryScope, with_history: bool) -> int: ...

    async def links(self, after_id: int, limit: int) -> list[MemoryLink]:
        """Every link (removed ones included) with an id after ``after_id``, by id: the
        exporter keeps those whose ends are in the export."""
        ...

    async def held(self, wanted: Wanted) -> Held:
        """What the database holds of ``wanted``, in one read snapshot."""
        ...

    async def apply(self, wanted: Wanted, decide: Decide, actor: str) -> Writes:
        """In one transaction: read (and lock) what the database holds of ``wanted``, call
        ``decide`` with it, write what it returns (an audit row per memory version and
        deletion, as ``actor``, and the summary row), and return that. ``decide`` raising
        rolls everything back."""
        ...


class MetricsStore(Protocol):
    """Measured calls (core/metrics.py): one row per call, rolled up into minutes."""

    async def write(self, calls: Sequence[CallMetric]) -> None:
        """Insert a batch of calls in one transaction."""
        ...

    async def compact(self, raw_before: datetime, minutes_before: datetime) -> tuple[int, int]:
        """In one transaction: roll the calls older than ``raw_before`` into per-minute rows
        and delete them; delete minutes older than ``minutes_before``. Returns (calls rolled
        up, minute rows pruned)."""
        ...

    async def buckets(
        self, since: datetime, actor: str | None, step_s: int | None
    ) -> list[BucketCount]:
        """Calls since ``since`` (of ``actor`` only, if given), raw and rolled up, counted
        per tool, outcome and latency bucket (and per ``step_s`` step of the window)."""
        ...

    async def facts(self, identity: EmbeddingIdentity | None) -> DatabaseFacts:
        """Counts, sizes and the memory index's lag (vectors of ``identity`` included)."""
        ...


class Store(Protocol):
    """One open database: the groups above, and what the runtime needs to manage it."""

    kind: str  # "sqlite" | "postgres"
    location: str  # a file path, or a URL without its password

    # read-only members, so that an implementation may hold its own subtypes
    @property
    def memories(self) -> MemoryStore: ...
    @property
    def links(self) -> LinkStore: ...
    @property
    def consolidation(self) -> ConsolidationStore: ...
    @property
    def redaction(self) -> RedactionStore: ...
    @property
    def audit(self) -> AuditStore: ...
    @property
    def sessions(self) -> SessionStore: ...
    @property
    def tasks(self) -> TaskStore: ...
    @property
    def checkpoints(self) -> CheckpointStore: ...
    @property
    def tokens(self) -> TokenStore: ...
    @property
    def roots(self) -> RootStore: ...
    @property
    def spaces(self) -> SpaceStore: ...
    @property
    def documents(self) -> DocumentStore: ...
    @property
    def memory_index(self) -> MemoryIndexStore: ...
    @property
    def search(self) -> SearchStore: ...
    @property
    def transfer(self) -> TransferStore: ...
    @property
    def metrics(self) -> MetricsStore: ...

    async def migrate(self) -> list[int]:
        """Bring the schema up to date; returns the migrations applied."""
        ...

    async def close(self) -> None: ...
