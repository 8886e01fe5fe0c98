"""Consolidation that proposes, and an agent or a person that decides.

A run reads the live memories under a prefix that still hold, and proposes
(memory/proposals.py). Applying proposals, by id or all above a confidence, writes links
and new memories only: nothing is deleted or rewritten in place, every version stays
readable. Each run leaves a record (mode, counts, duration, who) and its applied proposals
with what they wrote, so that an undo can take exactly that back: it stamps the run's links
removed and soft-deletes the memories the run wrote (both stay readable in history).
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, Field

from abathur_memory.core.principal import Principal
from abathur_memory.core.records import ConsolidationRun, MemoryEntry, StoredProposal
from abathur_memory.core.spaces import EmbeddingIdentity
from abathur_memory.errors import AbathurError, Conflict, InvalidInput, NotFound
from abathur_memory.memory.access import AccessGuard
from abathur_memory.memory.links import LinkService
from abathur_memory.memory.memories import MemoryService
from abathur_memory.memory.model_help import ModelHelp
from abathur_memory.memory.model_review import review
from abathur_memory.memory.namespaces import SCOPES, Access, clean, validate_prefix
from abathur_memory.memory.proposals import (
    MAX_SIMILARITY_NAMESPACE,
    MIN_FOR_DISTRIBUTION,
    Proposal,
    propose,
    texts_for,
)
from abathur_memory.store.protocols import ConsolidationStore


class Embedder(Protocol):
    """What consolidation needs of an embedding model (embedders/base.py)."""

    @property
    def identity(self) -> EmbeddingIdentity: ...

    async def embed_documents(self, texts: list[str]) -> Any: ...


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


PAGE = 1000
EMBED_BATCH = 256
MAX_APPLY_IDS = 1000
SAVE_BATCH = 500  # proposals written per transaction


class Skipped(BaseModel):
    id: str
    reason: str


class ConsolidationReport(BaseModel):
    run: ConsolidationRun
    proposals: list[Proposal] = Field(description="What the run proposed (dry run) or applied.")
    applied: list[str] = Field(description="Ids of the proposals applied.")
    skipped: list[Skipped] = Field(description="Proposals asked for that were not applied.")
    notes: dict[str, Any] = Field(
        description="Namespaces left out of similarity and why; what the chat model did."
    )


# Scheduled runs (the lifecycle policy's consolidation_frequency), and who they run as.
FREQUENCY_DAYS = {"daily": 1, "weekly": 7, "monthly": 30}
SCHEDULED = Principal(user="system-consolidation", app="abathur", admin=True)


class ScheduledRun(BaseModel):
    prefix: str
    run_id: str | None = Field(description="None in a dry run: the run is only due.")
    mode: str  # propose | apply | due
    counts: dict[str, Any] = Field(default_factory=dict)


def schedule_of(policy: dict[str, Any]) -> tuple[int | None, list[str], float | None]:
    """(days between runs or None, prefixes, min_confidence) from the lifecycle policy,
    checked: a mistake is a clear error, never a silent no-op."""
    frequency = policy.get("consolidation_frequency", "off")
    prefixes = policy.get("consolidation_namespaces", [])
    confidence = policy.get("consolidation_min_confidence")
    if frequency not in (*FREQUENCY_DAYS, "off", None):
        raise InvalidInput("consolidation_frequency must be one of daily, weekly, monthly, off")
    if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
        raise InvalidInput("consolidation_namespaces must be a list of namespace prefixes")
    if confidence is not None and (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not 0 <= confidence <= 1
    ):
        raise InvalidInput("consolidation_min_confidence must be between 0 and 1")
    days = FREQUENCY_DAYS.get(frequency) if isinstance(frequency, str) else None
    return days, prefixes, confidence


# How far a run is: (phase, done, total or None when not known yet).
Progress = Callable[[str, int, int | None], None]


def _silent(phase: str, done: int, total: int | None) -> None:
    """No one is listening."""


class ConsolidationService:
    def __init__(
        self,
        runs: ConsolidationStore,
        memories: MemoryService,
        links: LinkService,
        guard: AccessGuard,
        embedder: Embedder | None,
        model: ModelHelp | None = None,
    ) -> None:
        self.runs = runs
        self.memories = memories
        self.links = links
        self.guard = guard
        self.embedder = embedder
        self.model = model or ModelHelp(None)

    async def consolidate(
        self,
        principal: Principal,
        prefix: str,
        *,
        dry_run: bool = True,
        apply: Sequence[str] | None = None,
        min_confidence: float | None = None,
        progress: Progress | None = None,
    ) -> ConsolidationReport:
        """Propose (``dry_run``), or apply the proposals named in ``apply`` and/or all
        those of at least ``min_confidence``. ``progress(phase, done, total)`` hears how
        far the run is (the command line's bar)."""
        report = progress or _silent
        prefix = self._prefix(prefix)
        applying = not dry_run
        wanted = list(dict.fromkeys(apply or []))
        if applying and not wanted and min_confidence is None:
            raise InvalidInput("to apply, name proposals (apply) or give min_confidence")
        if not applying and (wanted or min_confidence is not None):
            raise InvalidInput("apply and min_confidence need dry_run=false")
        if len(wanted) > MAX_APPLY_IDS:
            raise InvalidInput(f"at most {MAX_APPLY_IDS} proposal ids per run")
        if any(not isinstance(i, str) or not 0 < len(i) <= 64 for i in wanted):
            raise InvalidInput("apply takes proposal ids (strings of at most 64 characters)")
        if min_confidence is not None and not (
            isinstance(min_confidence, int | float) and 0 <= min_confidence <= 1
        ):
            raise InvalidInput("min_confidence must be between 0 and 1")
        access = Access.WRITE if applying else Access.READ
        await self.guard.check(principal, prefix, validate_prefix(prefix), access, "consolidate")
        run_id = uuid.uuid4().hex
        mode = "apply" if applying else "propose"
        await self.runs.start_run(run_id, prefix, principal.actor, mode, None)
        started = time.monotonic()
        try:
            report("reading memories", 0, None)
            entries = await self._entries(prefix)
            report("reading memories", len(entries), len(entries))
            vectors = await self._vectors(entries, report)
            report("comparing memories", 0, None)
            proposals, notes = propose(entries, vectors)
            asking = self.model.round()
            if self.model.configured:
                proposals = await review(
                    proposals, entries, asking, lambda d, t: report("asking the chat model", d, t)
                )
                notes["model"] = asking.notes()
            counts: dict[str, Any] = {"memories": len(entries), "proposed": len(proposals)}
            for proposal in proposals:
                counts[proposal.kind] = counts.get(proposal.kind, 0) + 1
            if not applying:
                stored = [
                    StoredProposal(p.id, p.kind, p.confidence, p.model_dump()) for p in proposals
                ]
                await self._save(run_id, stored)
                counts["seconds"] = round(time.monotonic() - started, 3)
                await self.runs.finish_run(run_id, "done", counts)
                return await self._report(run_id, proposals, [], [], notes)
            by_id = {p.id: p for p in proposals}
            gone = "no longer proposed"
            if asking.errors:  # the model's own proposals cannot be made again without it
                gone += f" (no answer from the chat model: {asking.errors[0]})"
            skipped = [Skipped(id=i, reason=gone) for i in wanted if i not in by_id]
            chosen = [by_id[i] for i in wanted if i in by_id]
            if min_confidence is not None:
                chosen += [
                    p for p in proposals if p.confidence >= min_confidence and p.id not in wanted
                ]
            applied, done = await self._apply(principal, run_id, chosen, skipped, report)
            await self._save(run_id, applied)
            counts.update(applied=len(done), skipped=len(skipped))
            counts["links_written"] = sum(len(a.applied["links"]) for a in applied if a.applied)
            counts["memories_written"] = sum(
                len(a.applied["memories"]) for a in applied if a.applied
            )
            counts["seconds"] = round(time.monotonic() - started, 3)
            await self.runs.finish_run(run_id, "done", counts)
            return await self._report(run_id, done, [p.id for p in done], skipped, notes)
        except BaseException:
            await self.runs.finish_run(run_id, "failed", {"seconds": time.monotonic() - started})
            raise

    async def undo(self, principal: Principal, run_id: str) -> ConsolidationReport:
        """Take back what an apply run wrote: its links stamped removed, its memories
        soft-deleted (each stays readable). A memory changed since is left as it is."""
        if not isinstance(run_id, str) or not run_id:
            raise InvalidInput("undo needs the id of an apply run")
        run = await self.runs.run(run_id)
        if run is None:
            raise NotFound(f"no consolidation run {run_id}")
        if run.mode != "apply" or run.status != "done":
            raise InvalidInput(f"run {run_id} is a {run.status} {run.mode} run: nothing to undo")
        if run.undone_by is not None:
            raise Conflict(f"run {run_id} was already undone by run {run.undone_by}")
        await self.guard.check(
            principal, run.prefix, validate_prefix(run.prefix), Access.WRITE, "consolidate"
        )
        undo_id = uuid.uuid4().hex
        await self.runs.start_run(undo_id, run.prefix, principal.actor, "undo", run_id)
        started = time.monotonic()
        skipped: list[Skipped] = []
        counts: dict[str, Any] = {"links_removed": 0, "memories_deleted": 0}
        try:
            for stored in reversed(await self.runs.applied(run_id)):
                assert stored.applied is not None
                for link_id in stored.applied["links"]:
                    try:
                        await self.links.unlink(principal, link_id, run_id=undo_id)
                        counts["links_removed"] += 1
                    except NotFound:
                        skipped.append(Skipped(id=stored.id, reason=f"link {link_id} was removed"))
                for namespace, key, version in stored.applied["memories"]:
                    try:
                        await self.memories.delete(principal, namespace, key, version)
                        counts["memories_deleted"] += 1
                    except (Conflict, NotFound) as exc:
                        skipped.append(Skipped(id=stored.id, reason=str(exc)))
            counts["skipped"] = len(skipped)
            counts["seconds"] = round(time.monotonic() - started, 3)
            await self.runs.finish_run(undo_id, "done", counts)
        except BaseException:
            await self.runs.finish_run(undo_id, "failed", {"seconds": time.monotonic() - started})
            raise
        return await self._report(undo_id, [], [], skipped, {})

    async def recent_runs(
        self, principal: Principal, prefix: str, limit: int = 20
    ) -> list[ConsolidationRun]:
        """The newest runs on ``prefix``, for whoever may read it (the console's list)."""
        prefix = self._prefix(prefix)
        await self.guard.check(
            principal, prefix, validate_prefix(prefix), Access.READ, "consolidate"
        )
        return await self.runs.recent_runs(prefix, limit)

    async def may_apply(self, principal: Principal, prefix: str) -> bool:
        """Whether ``principal`` may apply or undo on ``prefix`` (no denial recorded: this
        only decides which buttons a page shows; the write itself is checked again)."""
        prefix = self._prefix(prefix)
        return await self.guard.rule(principal, validate_prefix(prefix), Access.WRITE) is None

    async def scheduled(
        self, policy: dict[str, Any], *, dry_run: bool = False
    ) -> list[ScheduledRun]:
        """The runs the lifecycle policy asks for and that are due: one per prefix of
        ``consolidation_namespaces`` (opt-in: none without it) whose last scheduled run is
        older than ``consolidation_frequency``. They propose only, unless
        ``consolidation_min_confidence`` is set: then they apply what reaches it."""
        days, prefixes, confidence = schedule_of(policy)
        if days is None or not prefixes:
            return []
        now = time.time()
        done: list[ScheduledRun] = []
        for prefix in prefixes:
            prefix = self._prefix(prefix)
            last = await self.runs.last_run(prefix, SCHEDULED.actor)
            if last is not None and now - _epoch(last.started_at) < days * 86400:
                continue
            if dry_run:
                done.append(ScheduledRun(prefix=prefix, run_id=None, mode="due"))
                continue
            report = await self.consolidate(
                SCHEDULED, prefix, dry_run=confidence is None, min_confidence=confidence
            )
            done.append(
                ScheduledRun(
                    prefix=prefix,
                    run_id=report.run.id,
                    mode=report.run.mode,
                    counts=report.run.counts,
                )
            )
        return done

    # -- steps ----------------------------------------------------------------------------

    def _prefix(self, prefix: str) -> str:
        if not isinstance(prefix, str):
            raise InvalidInput("prefix must be a namespace prefix such as 'user:alice'")
        return prefix if prefix in SCOPES else clean(prefix)

    async def _entries(self, prefix: str) -> list[MemoryEntry]:
        """Every live memory under ``prefix`` that still holds, whole."""
        found: list[MemoryEntry] = []
        after = ("", "")
        while True:
            page = await self.memories.store.list_prefix(prefix, None, after, PAGE)
            found += page
            if len(page) < PAGE:
                return found
            after = (page[-1].namespace, page[-1].key)

    async def _vectors(
        self, entries: Sequence[MemoryEntry], report: Progress
    ) -> dict[str, np.ndarray]:
        """Each compared namespace's vectors, in the order of its entries. A version's
        vector is kept between runs (its text never changes), so a scheduled run embeds
        only what changed since the last one: embedding 100,000 memories again each time
        took longer than a run may. Its own vectors, of the value's text: the memory
        indexer's embed the key with it, and comparing those lost planted near duplicates
        and episodic clusters (bench/consolidation_vectors.py, docs/benchmarks.md)."""
        if self.embedder is None:
            return {}
        groups: dict[str, list[MemoryEntry]] = defaultdict(list)
        for entry in entries:
            groups[entry.namespace].append(entry)
        compared = {
            namespace: group
            for namespace, group in groups.items()
            if MIN_FOR_DISTRIBUTION <= len(group) <= MAX_SIMILARITY_NAMESPACE
        }
        model = self.embedder.identity.key()
        wanted = [entry for group in compared.values() for entry in group]
        await self.runs.forget_vectors()
        found = await self.runs.vectors(model, [entry.id for entry in wanted])
        missing = [entry for entry in wanted if entry.id not in found]
        for start in range(0, len(missing), EMBED_BATCH):
            report("embedding memories", start, len(missing))
            batch = missing[start : start + EMBED_BATCH]
            matrix = await self.embedder.embed_documents(texts_for(batch))
            made = {entry.id: matrix[i] for i, entry in enumerate(batch)}
            await self.runs.keep_vectors(model, made)
            found.update(made)
        report("embedding memories", len(missing), len(missing))
        return {
            namespace: np.vstack([found[entry.id] for entry in group]).astype(np.float32)
            for namespace, group in compared.items()
        }

    async def _apply(
        self,
        principal: Principal,
        run_id: str,
        chosen: Sequence[Proposal],
        skipped: list[Skipped],
        report: Progress,
    ) -> tuple[list[StoredProposal], list[Proposal]]:
        applied: list[StoredProposal] = []
        done: list[Proposal] = []
        for number, proposal in enumerate(chosen):
            report("applying proposals", number, len(chosen))
            wrote: dict[str, list[Any]] = {"links": [], "memories": []}
            try:
                if proposal.new_memory is not None:
                    new = proposal.new_memory
                    result = await self.memories.put(
                        principal,
                        new.namespace,
                        new.key,
                        new.value,
                        new.memory_type,
                        {"consolidation_run": run_id, "proposal": proposal.id},
                    )
                    if result.created:
                        wrote["memories"].append([new.namespace, new.key, result.version])
                for link in proposal.links:
                    made, created = await self.links.link(
                        principal,
                        link.link_type,
                        link.from_namespace,
                        link.from_key,
                        link.to_namespace,
                        link.to_key,
                        f"consolidation {proposal.kind} {proposal.id}",
                        run_id=run_id,
                    )
                    if created:
                        wrote["links"].append(made.id)
            except AbathurError as exc:
                skipped.append(Skipped(id=proposal.id, reason=f"{exc.code}: {exc}"))
            if wrote["links"] or wrote["memories"]:
                stored = StoredProposal(
                    proposal.id, proposal.kind, proposal.confidence, proposal.model_dump(), wrote
                )
                applied.append(stored)
                done.append(proposal)
        report("applying proposals", len(chosen), len(chosen))
        return applied, done

    async def _save(self, run_id: str, proposals: Sequence[StoredProposal]) -> None:
        """The run's proposals, SAVE_BATCH per write transaction: a run of thousands never
        holds the write lock for longer than one short batch."""
        for start in range(0, len(proposals), SAVE_BATCH):
            await self.runs.save_proposals(run_id, proposals[start : start + SAVE_BATCH])

    async def _report(
        self,
        run_id: str,
        proposals: list[Proposal],
        applied: list[str],
        skipped: list[Skipped],
        notes: dict[str, Any],
    ) -> ConsolidationReport:
        run = await self.runs.run(run_id)
        assert run is not None
        return ConsolidationReport(
            run=run, proposals=proposals, applied=applied, skipped=skipped, notes=notes
        )
