"""A LangGraph ``BaseStore`` kept in abathur-memory memories.

    from abathur_memory.adapters.langgraph import AbathurStore

    async with abathur_memory.open(db="agent.db", user="alice") as mem:
        store = AbathurStore(mem)                      # root: user:alice:langgraph
        graph = builder.compile(store=store)

The mapping: the store lives under one *root* namespace (default ``user:<user>:langgraph``;
``project:<project>:langgraph`` shares it with a project). A LangGraph namespace tuple is
the root followed by one segment per label, each label percent-encoded where it holds
``%``, ``:`` or whitespace (``adapters/naming.py``), so ``("memories", "a b")`` is
``user:alice:langgraph:memories:a%20b`` and reads back as the same tuple. The key is the
memory's key, the value (a JSON object) the memory's value: every put is a new version
(history, audit, compare-and-set through the Python API), a delete is a soft delete.
``search(query=...)`` goes through the retrieval pipeline (keyword + vectors, fused),
limited to the namespace prefix; filters apply to the value as in LangGraph. TTL is kept by
this adapter in the memories' metadata (``adapters/langgraph_ttl.py``). The principal's
access rules apply: a root the principal may not write refuses puts (``forbidden``).

Deliberate differences from LangGraph's own stores: the ``index`` argument of ``put`` is
ignored (every memory is indexed whole by abathur-memory's pipeline); a query search ranks
at most 100 candidates (the pipeline's limit) before filters and offset apply; scores are
fused rank scores, not cosine similarities; keys must be non-empty text without control
characters (256 characters at most) and the whole namespace fits in 512 characters;
``created_at`` is when the current version was written (its history has the first one).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from abathur_memory.adapters import langgraph_ttl as ttl
from abathur_memory.adapters.bridge import run_blocking
from abathur_memory.adapters.naming import join, split
from abathur_memory.api import Memory
from abathur_memory.core import values
from abathur_memory.core.records import MemoryEntry
from abathur_memory.errors import Conflict, NotFound
from abathur_memory.memory.memories import PutRequest
from abathur_memory.memory.namespaces import clean
from abathur_memory.search.results import MemoryHit

if importlib.util.find_spec("langgraph") is None:  # pragma: no cover - the extra is missing
    raise ImportError(
        "the LangGraph adapter needs the langgraph package: pip install 'abathur-memory[langgraph]'"
    )

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)

PAGE = 1000
MAX_QUERY_CANDIDATES = 100


class AbathurStore(BaseStore):
    """LangGraph's store interface over the memories of one principal, under ``root``."""

    supports_ttl = True

    def __init__(
        self,
        memory: Memory,
        *,
        root: str | None = None,
        ttl_config: TTLConfig | None = None,
        memory_type: str = "semantic",
        search_mode: str = "hybrid",
        clock: Callable[[], datetime] = ttl.utc_now,
    ) -> None:
        self.memory = memory
        self.root = clean(root or f"user:{memory.principal.user}:langgraph")
        self.ttl_config = ttl_config
        self.memory_type = memory_type
        self.search_mode = search_mode
        self.clock = clock
        self._sweeper: asyncio.Task[None] | None = None

    # -- the two entry points -----------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return run_blocking(self.memory.loop, self.abatch(ops), "AbathurStore.batch")

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        for op in ops:  # everything is checked before anything is done
            validate_op_namespace(op)
            if isinstance(op, GetOp | PutOp):
                self._namespace(op.namespace)
                values.check_identifier(str(op.key), what="key")
        results: list[Result] = []
        pending: dict[tuple[str, str], PutRequest] = {}
        for op in ops:
            if isinstance(op, PutOp) and op.value is not None:
                pending[(self._namespace(op.namespace), str(op.key))] = self._put_request(op)
                results.append(None)
                continue
            await self._flush(pending)
            results.append(await self._run(op))
        await self._flush(pending)
        return results

    async def _run(self, op: Op) -> Result:
        if isinstance(op, GetOp):
            return await self._get(op)
        if isinstance(op, PutOp):
            with contextlib.suppress(NotFound):
                await self.memory.memories.delete(self._namespace(op.namespace), str(op.key))
            return None
        if isinstance(op, SearchOp):
            return await self._search(op)
        if isinstance(op, ListNamespacesOp):
            return await self._list_namespaces(op)
        raise ValueError(f"unknown operation {type(op).__name__}")

    # -- puts -------------------------------------------------------------------------

    def _put_request(self, op: PutOp) -> PutRequest:
        value = dict(op.value or {})
        meta = ttl.metadata(op.ttl, self.clock())
        return PutRequest(self._namespace(op.namespace), str(op.key), value, self.memory_type, meta)

    async def _flush(self, pending: dict[tuple[str, str], PutRequest]) -> None:
        """Consecutive puts in one transaction (the last put of a key wins, as in
        LangGraph's batching)."""
        if pending:
            requests = list(pending.values())
            pending.clear()
            await self.memory.memories.put_many(requests)

    # -- reads ------------------------------------------------------------------------

    async def _get(self, op: GetOp) -> Item | None:
        try:
            entry = await self.memory.memories.get(self._namespace(op.namespace), str(op.key))
        except NotFound:
            return None
        row = Row.of(entry)
        if not ttl.live(row, self.clock):
            return None
        if op.refresh_ttl:
            row = await self._refresh(row)
        return self._item(row, Item)

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = self._namespace(op.namespace_prefix)
        scores: dict[tuple[str, str], float] = {}
        if op.query:
            found = await self.memory.memories.search(
                op.query, prefix, MAX_QUERY_CANDIDATES, self.search_mode
            )
            for hit in found.results:
                scores[(hit.namespace, hit.key)] = hit.score
            entries = [Row.of(hit) for hit in found.results]
        else:
            entries = [Row.of(entry) for entry in await self._entries(prefix)]
        now = self.clock()
        kept = [
            e
            for e in entries
            if ttl.live(e, lambda: now) and _matches(_value(e.value), op.filter or {})
        ]
        page = kept[op.offset : op.offset + op.limit]
        if op.refresh_ttl:
            page = [await self._refresh(entry) for entry in page]
        return [
            self._item(entry, SearchItem, scores.get((entry.namespace, entry.key)))
            for entry in page
        ]

    async def _entries(self, prefix: str) -> list[MemoryEntry]:
        """Every live memory under ``prefix``, by namespace then key."""
        entries: list[MemoryEntry] = []
        cursor: str | None = None
        while True:
            page = await self.memory.memories.list(prefix, None, PAGE, cursor)
            entries.extend(page.entries)
            if page.next_cursor is None:
                return entries
            cursor = page.next_cursor

    async def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        found: set[tuple[str, ...]] = set()
        now = self.clock()
        for entry in await self._entries(self.root):
            names = split(self.root, entry.namespace)
            if names and ttl.live(entry, lambda: now):
                found.add(names)
        conditions = op.match_conditions or ()
        namespaces = [ns for ns in found if all(_matches_condition(c, ns) for c in conditions)]
        if op.max_depth is not None:
            namespaces = list({ns[: op.max_depth] for ns in namespaces})
        return sorted(namespaces)[op.offset : op.offset + op.limit]

    # -- TTL --------------------------------------------------------------------------

    async def _refresh(self, entry: Row) -> Row:
        """Push the expiry of ``entry`` out by its TTL, if it is due (a new version)."""
        expiry = ttl.Expiry.of(entry)
        now = self.clock()
        if expiry is None or not expiry.due_for_refresh(now):
            return entry
        try:
            await self.memory.memories.put(
                entry.namespace,
                entry.key,
                entry.value,
                entry.memory_type,
                ttl.metadata(expiry.ttl_minutes, now),
                entry.version,
            )
        except Conflict:
            return entry  # written meanwhile: that write set its own expiry
        return Row.of(await self.memory.memories.get(entry.namespace, entry.key))

    async def sweep_ttl(self) -> int:
        """Soft-delete every expired item under the root; returns how many."""
        swept = 0
        now = self.clock()
        for entry in await self._entries(self.root):
            expiry = ttl.Expiry.of(entry)
            if expiry is not None and expiry.expired(now):
                with contextlib.suppress(Conflict, NotFound):  # rewritten meanwhile
                    await self.memory.memories.delete(entry.namespace, entry.key, entry.version)
                    swept += 1
        return swept

    async def start_ttl_sweeper(self, sweep_interval_minutes: float | None = None) -> None:
        """Sweep every ``sweep_interval_minutes`` (default: the TTL config's, else 5)."""
        configured = (self.ttl_config or {}).get("sweep_interval_minutes")
        minutes = sweep_interval_minutes or configured or 5
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep_every(minutes * 60))

    async def stop_ttl_sweeper(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            await self.sweep_ttl()

    # -- mapping ----------------------------------------------------------------------

    def _namespace(self, labels: tuple[str, ...]) -> str:
        return clean(join(self.root, tuple(labels), what="namespace label"))

    def _item(self, entry: Row, kind: Any, score: float | None = None) -> Any:
        names = split(self.root, entry.namespace)
        fields: dict[str, Any] = {
            "namespace": names if names is not None else (entry.namespace,),
            "key": entry.key,
            "value": _value(entry.value),
            "created_at": datetime.fromisoformat(entry.created_at),
            "updated_at": datetime.fromisoformat(entry.updated_at),
        }
        if kind is SearchItem:
            fields["score"] = score
        return kind(**fields)


@dataclass(frozen=True)
class Row:
    """What an item is made of, from a memory (a get, a listing) or a search hit; each
    version's ``created_at`` is when it was written, as a hit's ``updated_at`` says."""

    namespace: str
    key: str
    version: int
    value: Any
    memory_type: str
    metadata: dict[str, Any]
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, found: MemoryEntry | MemoryHit) -> Row:
        created = found.created_at if isinstance(found, MemoryEntry) else found.updated_at
        return cls(
            found.namespace,
            found.key,
            found.version,
            found.value,
            found.memory_type,
            found.metadata,
            created,
            found.updated_at,
        )


def _value(value: Any) -> dict[str, Any]:
    """A memory's value as a LangGraph value (a non-object written by other means is
    wrapped as ``{"value": ...}``)."""
    return value if isinstance(value, dict) else {"value": value}


def _matches(value: Any, wanted: dict[str, Any]) -> bool:
    return all(_compare(value.get(k), v) for k, v in wanted.items())


def _compare(item: Any, wanted: Any) -> bool:
    """LangGraph's filter semantics: nested objects, lists, and $eq/$ne/$gt/$gte/$lt/$lte."""
    if isinstance(wanted, dict):
        if any(k.startswith("$") for k in wanted):
            return all(_operator(item, op, v) for op, v in wanted.items())
        return isinstance(item, dict) and all(_compare(item.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list | tuple):
        return (
            isinstance(item, list | tuple)
            and len(item) == len(wanted)
            and all(_compare(i, w) for i, w in zip(item, wanted, strict=True))
        )
    return bool(item == wanted)


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda a, b: bool(a == b),
    "$ne": lambda a, b: bool(a != b),
    "$gt": lambda a, b: float(a) > float(b),
    "$gte": lambda a, b: float(a) >= float(b),
    "$lt": lambda a, b: float(a) < float(b),
    "$lte": lambda a, b: float(a) <= float(b),
}


def _operator(item: Any, op: str, wanted: Any) -> bool:
    if op not in _OPERATORS:
        raise ValueError(f"unsupported filter operator {op!r}")
    if item is None and op not in ("$eq", "$ne"):
        return False
    return _OPERATORS[op](item, wanted)


def _matches_condition(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if not path:
        return True
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[-len(path) :]
    return all(p in ("*", n) for p, n in zip(path, part, strict=True))
