"""Versioned, namespaced memories: the rules, for the principal of each call.

Every put appends version n+1 (one transaction, audited); reading gives the latest live
version, a given version, or the version live at a past time. Delete is soft: all versions
are flagged, history stays readable, and a later put (or restore) continues the numbering.
A put whose value, type and metadata equal the live version's creates nothing new. The
store does the writing (store/protocols.py); this module decides what may be written.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from abathur_memory.core import cursors, timestamps, values
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import (
    MEMORY_TYPES,
    MemoryEntry,
    MemoryLink,
    MemoryPage,
    PreparedPut,
    PutResult,
)
from abathur_memory.core.replies import DEFAULT_BOUNDS, Bounds, fitting
from abathur_memory.core.search import MemoryFilters, MemoryScope
from abathur_memory.core.search_filters import check_packing, search_filters
from abathur_memory.errors import InvalidInput, NotFound
from abathur_memory.memory.access import AccessGuard
from abathur_memory.memory.namespaces import SCOPES, Access, clean, parse, validate_prefix
from abathur_memory.search.pipeline import Retrieval
from abathur_memory.search.query import check_k, check_mode, check_query
from abathur_memory.search.results import Contradiction, MemoryHit, MemorySearchResult
from abathur_memory.search.then import Then, search_then
from abathur_memory.store.protocols import LinkStore, MemoryStore

MAX_LIST_LIMIT = 1000
MAX_HISTORY_LIMIT = 1000
MAX_BATCH = 10_000
# An as_of search ranks every version live then in its scope (search/then.py): past this
# many it asks for a narrower scope.
AS_OF_MAX_MEMORIES = 20_000


@dataclass(frozen=True)
class PutRequest:
    namespace: str
    key: str
    value: Any
    memory_type: str = "semantic"
    metadata: dict[str, Any] | None = None
    expected_version: int | None = None
    valid_from: str | None = None  # ISO 8601: when the fact starts to hold in the world
    valid_to: str | None = None  # when it stops (exclusive)


def _iso(moment: datetime) -> str:
    """A time as records show it (ISO 8601, milliseconds, Z), for comparing with them."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"  # years before 1000 padded too


Shown = TypeVar("Shown", MemoryEntry, MemoryHit)


def closed(entry: Shown, links: Sequence[MemoryLink]) -> Shown:
    """``entry`` with its validity closed by the supersedes links that cover its version
    (the version itself is never rewritten: the link says when it stopped holding)."""
    ends = [
        link.holds_until
        for link in links
        if link.link_type == "supersedes"
        and link.removed_at is None
        and link.holds_until is not None
        and (link.to_namespace, link.to_key) == (entry.namespace, entry.key)
        and (link.to_version or 0) >= entry.version
    ]
    if entry.valid_to is not None:
        ends.append(entry.valid_to)
    end = min(ends) if ends else None
    return entry if end == entry.valid_to else entry.model_copy(update={"valid_to": end})


def _past(moment: datetime | None) -> datetime | None:
    """An ``as_of`` time, None when it is not in the past (a future as_of reads as now)."""
    return moment if moment is not None and moment < datetime.now(UTC) else None


def _as_they_stood(links: Sequence[MemoryLink], at: datetime | None) -> list[MemoryLink]:
    """``links`` as they stood at ``at`` (None: now): made by then, and those removed
    since shown as active."""
    if at is None:
        return list(links)
    stamp = _iso(at)
    return [
        link.model_copy(update={"removed_at": None})
        if link.removed_at is not None and link.removed_at > stamp
        else link
        for link in links
        if link.created_at <= stamp
    ]


def _holds(entry: MemoryEntry, at: str) -> bool:
    return (entry.valid_from is None or entry.valid_from <= at) and (
        entry.valid_to is None or at < entry.valid_to
    )


class MemoryService:
    def __init__(
        self,
        store: MemoryStore,
        guard: AccessGuard,
        retrieval: Retrieval,
        *,
        max_value_bytes: int = values.DEFAULT_MAX_VALUE_BYTES,
        bounds: Bounds = DEFAULT_BOUNDS,
        links: LinkStore | None = None,
    ) -> None:
        self.store = store
        self.links = links
        self.guard = guard
        self.retrieval = retrieval
        self.max_value_bytes = max_value_bytes
        self.bounds = bounds
        # Called after every committed change (the memory indexer wakes up on it).
        self.on_change: builtins.list[Callable[[], None]] = []

    def _changed(self) -> None:
        for listener in self.on_change:
            listener()

    # -- writes ---------------------------------------------------------------------------

    async def put(
        self,
        principal: Principal,
        namespace: str,
        key: str,
        value: Any,
        memory_type: str = "semantic",
        metadata: dict[str, Any] | None = None,
        expected_version: int | None = None,
        valid_from: str | None = None,
        valid_to: str | None = None,
    ) -> PutResult:
        """Store ``value`` as the next version of (namespace, key); ``valid_from`` /
        ``valid_to`` say when its fact holds in the world (omitted: always)."""
        request = PutRequest(
            namespace, key, value, memory_type, metadata, expected_version, valid_from, valid_to
        )
        return (await self.put_many(principal, [request]))[0]

    async def put_many(
        self, principal: Principal, requests: Sequence[PutRequest]
    ) -> builtins.list[PutResult]:
        """Several puts in one transaction: all are applied, or none (first error wins)."""
        if not requests:
            return []
        if len(requests) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} puts per batch, got {len(requests)}")
        prepared = [self._prepare(r) for r in requests]
        checked: set[str] = set()
        for put, segments in prepared:
            if put.namespace not in checked:
                await self.guard.check(
                    principal, put.namespace, segments, Access.WRITE, "write", put.key
                )
                checked.add(put.namespace)
        results = await self.store.put_many([put for put, _ in prepared], principal.actor)
        if any(result.created for result in results):
            self._changed()
        return results

    def _prepare(self, request: PutRequest) -> tuple[PreparedPut, builtins.list[str]]:
        namespace = clean(request.namespace)
        key = values.check_identifier(request.key, what="key")
        segments = parse(namespace)
        if request.memory_type not in MEMORY_TYPES:
            raise InvalidInput(
                f"memory_type must be one of {', '.join(MEMORY_TYPES)}, not {request.memory_type!r}"
            )
        if request.expected_version is not None:
            values.check_integer(
                request.expected_version,
                what="expected_version (0: the key must not exist)",
                low=0,
            )
        value_text = values.encode_json(request.value, what="value", max_bytes=self.max_value_bytes)
        metadata_text = (
            None
            if request.metadata is None
            else values.encode_object(request.metadata, what="metadata")
        )
        valid_from = self._time(request.valid_from, "valid_from")
        valid_to = self._time(request.valid_to, "valid_to")
        if valid_from is not None and valid_to is not None and valid_from >= valid_to:
            raise InvalidInput("valid_from must be earlier than valid_to")
        put = PreparedPut(
            namespace,
            key,
            value_text,
            request.memory_type,
            metadata_text,
            request.expected_version,
            valid_from,
            valid_to,
        )
        return put, segments

    @staticmethod
    def _time(value: str | datetime | None, what: str) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, str | datetime):
            raise InvalidInput(f"{what} must be an ISO 8601 time")
        try:
            return timestamps.parse_user_time(value)
        except InvalidInput as exc:
            raise InvalidInput(f"{what}: {exc}") from None

    def _held_at(self, valid_at: str | None, include_superseded: bool) -> datetime | None:
        """A read's ``valid_at``: it keeps what held then, which include_superseded (keep
        everything) would contradict."""
        held = self._time(valid_at, "valid_at")
        if held is not None and include_superseded:
            raise InvalidInput(
                "valid_at keeps what held then and include_superseded keeps everything:"
                " give one of them"
            )
        return held

    async def delete(
        self, principal: Principal, namespace: str, key: str, expected_version: int | None = None
    ) -> MemoryEntry:
        """Soft-delete every version of (namespace, key); returns the version that was live."""
        namespace, key = await self._writable(principal, namespace, key, "delete")
        if expected_version is not None:
            values.check_integer(expected_version, what="expected_version", low=1)
        entry = await self.store.delete(namespace, key, expected_version, principal.actor)
        self._changed()
        return entry

    async def restore(self, principal: Principal, namespace: str, key: str) -> PutResult:
        """Bring back a deleted key: its last value becomes a new version."""
        namespace, key = await self._writable(principal, namespace, key, "restore")
        result = await self.store.restore(namespace, key, principal.actor)
        self._changed()
        return result

    async def _writable(
        self, principal: Principal, namespace: str, key: str, attempted: str
    ) -> tuple[str, str]:
        namespace, key = clean(namespace), values.check_identifier(key, what="key")
        await self.guard.check(principal, namespace, parse(namespace), Access.WRITE, attempted, key)
        return namespace, key

    # -- reads ----------------------------------------------------------------------------

    async def get(
        self,
        principal: Principal,
        namespace: str,
        key: str,
        version: int | None = None,
        as_of: str | None = None,
        valid_at: str | None = None,
    ) -> MemoryEntry:
        """The latest live version, a given ``version``, or the version live at ``as_of``
        (what the store knew then); with ``valid_at``, the newest of those versions whose
        fact held at that time. Its ``valid_to`` is closed by any supersedes link."""
        namespace = clean(namespace)
        key = values.check_identifier(key, what="key")
        segments = parse(namespace)
        if version is not None and (as_of is not None or valid_at is not None):
            raise InvalidInput("give version, or as_of and/or valid_at, not both")
        if version is not None:
            values.check_integer(version, what="version", low=1)
        at = self._time(as_of, "as_of")
        held = self._time(valid_at, "valid_at")
        await self.guard.check(principal, namespace, segments, Access.READ, "read", key)
        if version is None and at is None and self.links is not None:
            # The usual get: the entry and what can close its validity, in one round trip.
            entry, links = await self.store.latest_with_supersedes(namespace, key)
        else:
            if version is not None:
                entry = await self.store.version(namespace, key, version)
            elif at is not None:
                entry = await self.store.as_of(namespace, key, at)
            else:
                entry = await self.store.latest(namespace, key)
            links = await self._links(namespace, key, at)
        if entry is not None and held is not None:
            entry = await self._held(entry, links, _iso(held))
        if entry is None:
            when = f" at {as_of}" if as_of is not None else ""
            which = f" version {version}" if version is not None else ""
            holding = f" holding at {valid_at}" if valid_at is not None else ""
            raise NotFound(f"no memory {namespace}/{key}{which}{when}{holding}")
        return closed(entry, links)

    async def _links(self, namespace: str, key: str, at: datetime | None) -> list[MemoryLink]:
        """The links of (namespace, key) as they stood at ``at`` (None: now)."""
        if self.links is None:
            return []
        return _as_they_stood(await self.links.of(namespace, key), at)

    async def _closed(
        self, entries: builtins.list[Shown], at: datetime | None = None
    ) -> builtins.list[Shown]:
        """``entries`` with their validity closed by the supersedes links as they stood at
        ``at`` (None: now), as memory_get shows one: the links read once for a page."""
        if self.links is None or not entries:
            return entries
        addresses = list({(entry.namespace, entry.key) for entry in entries})
        by_address: dict[tuple[str, str], builtins.list[MemoryLink]] = {}
        for link in _as_they_stood(await self.links.closing(addresses), at):
            by_address.setdefault((link.to_namespace or "", link.to_key or ""), []).append(link)
        return [closed(e, by_address.get((e.namespace, e.key), [])) for e in entries]

    async def _held(
        self, live: MemoryEntry, links: Sequence[MemoryLink], at: str
    ) -> MemoryEntry | None:
        """The newest version up to ``live`` whose fact held at ``at``."""
        versions = await self.store.history(live.namespace, live.key)
        for entry in reversed([v for v in versions if v.version <= live.version]):
            if _holds(closed(entry, links), at):
                return entry
        return None

    async def history(
        self, principal: Principal, namespace: str, key: str
    ) -> builtins.list[MemoryEntry]:
        """Every version, oldest first, deleted ones included (flagged), values whole."""
        namespace = clean(namespace)
        key = values.check_identifier(key, what="key")
        await self.guard.check(
            principal, namespace, parse(namespace), Access.READ, "read history", key
        )
        versions = await self.store.history(namespace, key)
        if not versions:
            raise NotFound(f"no memory {namespace}/{key} has ever existed")
        return await self._closed(versions)

    async def history_page(
        self,
        principal: Principal,
        namespace: str,
        key: str,
        limit: int = MAX_HISTORY_LIMIT,
        cursor: str | None = None,
    ) -> MemoryPage:
        """A page of the versions, oldest first, for a reply: long values cut and the page
        ended before it passes the reply bound (core/replies.py)."""
        namespace = clean(namespace)
        key = values.check_identifier(key, what="key")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_HISTORY_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_HISTORY_LIMIT}")
        (after,) = cursors.decode(cursor, start=("0",))
        if not after.isdigit():
            raise InvalidInput("cursor is not one this server issued (pass next_cursor back as is)")
        await self.guard.check(
            principal, namespace, parse(namespace), Access.READ, "read history", key
        )
        found = await self.store.history(
            namespace, key, after_version=int(after), limit=limit + 1, cut=self.bounds.field_bytes
        )
        if not found and cursor is None:
            raise NotFound(f"no memory {namespace}/{key} has ever existed")
        shown = await self._closed(found[:limit])
        kept = fitting(shown, self.bounds.reply_bytes)
        page = MemoryPage(shown[:kept])
        if len(found) > kept:
            page.next_cursor = cursors.encode(str(page.entries[-1].version))
        return page

    async def list(
        self,
        principal: Principal,
        prefix: str | None = None,
        memory_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        include_superseded: bool = False,
        as_of: str | None = None,
        valid_at: str | None = None,
    ) -> MemoryPage:
        """Latest live entries under ``prefix`` (on ':' boundaries), by namespace then key;
        with no prefix, everything ``principal`` may read. What no longer holds (superseded,
        a duplicate, validity ended) is left out unless ``include_superseded``. Long values
        are cut, and the page ends before it passes the reply bound (core/replies.py).

        ``as_of``: each key's version live at that time, as memory_get's as_of reads it,
        and what the store then knew no longer held (the links made by then); a future
        time reads as now. ``valid_at``: what held at that time (valid_from <= valid_at <
        valid_to, supersedes links closing it), instead of now. Both look at each key's one
        version (live now, or then): memory_get's valid_at also goes back to older ones."""
        if memory_type is not None and memory_type not in MEMORY_TYPES:
            raise InvalidInput(f"memory_type must be one of {', '.join(MEMORY_TYPES)}")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        known = _past(self._time(as_of, "as_of"))
        held = self._held_at(valid_at, include_superseded)
        after = cursors.decode(cursor, start=("", ""))
        position = (after[0], after[1])
        cut = self.bounds.field_bytes
        if prefix is None:
            found = await self.store.list_readable(
                principal,
                memory_type,
                position,
                limit + 1,
                cut=cut,
                include_superseded=bool(include_superseded),
                as_of=known,
                valid_at=held,
            )
        else:
            if prefix not in SCOPES:
                prefix = clean(prefix)
            segments = validate_prefix(prefix)
            await self.guard.check(principal, prefix, segments, Access.READ, "list")
            found = await self.store.list_prefix(
                prefix,
                memory_type,
                position,
                limit + 1,
                cut=cut,
                include_superseded=bool(include_superseded),
                as_of=known,
                valid_at=held,
            )
        shown = await self._closed(found[:limit], known)
        kept = fitting(shown, self.bounds.reply_bytes)
        page = MemoryPage(shown[:kept])
        if len(found) > kept:
            last = page.entries[-1]
            page.next_cursor = cursors.encode(last.namespace, last.key)
        return page

    async def search(
        self,
        principal: Principal,
        query: str,
        prefix: str | None = None,
        k: int = 10,
        mode: str = "hybrid",
        *,
        context: int = 0,
        max_tokens: int | None = None,
        memory_type: str | None = None,
        after: str | None = None,
        before: str | None = None,
        metadata: dict[str, Any] | None = None,
        include_superseded: bool = False,
        valid_at: str | None = None,
        as_of: str | None = None,
    ) -> MemorySearchResult:
        """Keyword and semantic search over what ``principal`` may read (the policy bounds
        the candidates in the store, so nothing unreadable is even ranked), optionally
        within ``prefix`` (itself checked) and kept by the filters, which apply inside
        candidate selection. ``context`` adds each hit's neighbours; ``max_tokens`` packs
        hits and neighbours into a budget. What no longer holds is left out in candidate
        selection unless ``include_superseded``; with ``valid_at``, what held at that time
        instead of now (of each memory's live version: the index holds those). A hit in
        an unresolved contradiction is marked with the memories it contradicts.

        ``as_of`` (a past time): what the store knew then, each key's version live then
        with the links as they stood, ranked from those versions (search/then.py; at most
        AS_OF_MAX_MEMORIES in scope, no ``context``); a future time reads as now."""
        held = self._held_at(valid_at, include_superseded)
        known = _past(self._time(as_of, "as_of"))
        if known is not None and context:
            raise InvalidInput(
                "context is not available with as_of: the neighbours a memory had then are"
                " not indexed (search without context, then read around a hit)"
            )
        if prefix is not None:
            segments = validate_prefix(prefix)
            await self.guard.check(principal, prefix, segments, Access.READ, "search")
        filters = replace(
            search_filters(memory_type, after, before, metadata),
            include_superseded=bool(include_superseded),
            valid_at=held,
        )
        check_packing(context, max_tokens)
        if known is not None:
            check_query(query)  # checked before the listing, not after it
            check_k(k)
            check_mode(mode)
            listed = await self._live_then(principal, prefix, filters, known)
            result = await search_then(
                self.retrieval,
                query,
                k,
                mode,
                Then(listed, filters, self._as_listed),
                max_tokens=max_tokens,
            )
        else:
            result = await self.retrieval.memories(
                query,
                k,
                mode,
                MemoryScope(principal, prefix, filters),
                context=context,
                max_tokens=max_tokens,
            )
        result.results = await self._closed(result.results, known)
        await self._mark_contradictions(principal, result)
        return result

    async def _live_then(
        self, principal: Principal, prefix: str | None, filters: MemoryFilters, at: datetime
    ) -> builtins.list[MemoryEntry]:
        """Every version live at ``at`` that ``principal`` may read within ``prefix``, of
        the memory type, held as ``filters`` ask (values whole: they are ranked)."""
        found: builtins.list[MemoryEntry] = []
        position = ("", "")
        while True:
            options: dict[str, Any] = {
                "include_superseded": filters.include_superseded,
                "as_of": at,
                "valid_at": filters.valid_at,
            }
            if prefix is None:
                page = await self.store.list_readable(
                    principal, filters.memory_type, position, MAX_LIST_LIMIT, **options
                )
            else:
                page = await self.store.list_prefix(
                    prefix if prefix in SCOPES else clean(prefix),
                    filters.memory_type,
                    position,
                    MAX_LIST_LIMIT,
                    **options,
                )
            found.extend(page)
            if len(found) > AS_OF_MAX_MEMORIES:
                where = f"under {prefix}" if prefix is not None else "that you may read"
                raise InvalidInput(
                    f"as_of search ranks every memory live then in its scope, and more than"
                    f" {AS_OF_MAX_MEMORIES} were live {where}: narrow it with prefix or"
                    " memory_type"
                )
            if len(page) < MAX_LIST_LIMIT:
                return found
            position = (page[-1].namespace, page[-1].key)

    async def _as_listed(self, entries: builtins.list[MemoryEntry]) -> builtins.list[MemoryEntry]:
        """These versions as a listing shows them (long values cut in the store)."""
        shown: builtins.list[MemoryEntry] = []
        for entry in entries:
            read = await self.store.history(
                entry.namespace,
                entry.key,
                after_version=entry.version - 1,
                limit=1,
                cut=self.bounds.field_bytes,
            )
            shown.extend(read[:1])
        return shown

    async def _mark_contradictions(self, principal: Principal, result: MemorySearchResult) -> None:
        if self.links is None or not result.results:
            return
        hits = {(h.namespace, h.key): h for h in result.results}
        found = await self.links.contradicting(list(hits), self.bounds.field_bytes)
        readable: dict[str, bool] = {}
        for address, other in found:
            if other.namespace not in readable:
                rule = await self.guard.rule(principal, parse(other.namespace), Access.READ)
                readable[other.namespace] = rule is None
            if not readable[other.namespace]:
                continue
            hit = hits[address]
            mark = Contradiction(
                namespace=other.namespace,
                key=other.key,
                version=other.version,
                value=other.value,
                truncated=other.truncated,
            )
            hit.contradicts = [*(hit.contradicts or []), mark]
