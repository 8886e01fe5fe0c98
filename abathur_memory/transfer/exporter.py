"""Export: what a principal may read, as abathur-memory's JSONL (transfer/jsonl.py).

A link is exported when both its ends are in the export: its from memory and its to
memory (or, for a link to events of a session, that session). With ``--prefix``, or
without ``--with-history`` when the other end is deleted, a link leaving the export is
left out and counted (``links_left_out``): an import could not make it.

Records are read in pages, never all at once, and each is written as it is read; so an
export taken while servers write holds every record as it was when read (each session
with exactly the events its row counts). Stop the writers for one instant's snapshot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from abathur_memory import __version__
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import Session, Task
from abathur_memory.core.search import MemoryScope
from abathur_memory.memory.access import AccessGuard
from abathur_memory.memory.namespaces import SCOPES, Access, clean, validate_prefix
from abathur_memory.memory.tasks import owner_filter
from abathur_memory.store.protocols import Store
from abathur_memory.transfer import jsonl
from abathur_memory.transfer.records import Digest, iso
from abathur_memory.transfer.report import ExportReport, KindCounts

PAGE = 1000
T = TypeVar("T")
ExportProgress = Callable[[str, int, int | None], None]  # phase, done, total


def covering(prefixes: list[str]) -> list[str]:
    """The prefixes without those inside another (on ':' boundaries), sorted."""
    kept: list[str] = []
    for prefix in sorted(set(prefixes)):
        if not any(prefix == k or prefix.startswith(k + ":") for k in kept):
            kept.append(prefix)
    return kept


class Exporter:
    def __init__(self, store: Store, guard: AccessGuard) -> None:
        self.store = store
        self.guard = guard

    async def export(
        self,
        principal: Principal,
        write: Callable[[str], object],
        *,
        prefixes: list[str] | None = None,
        with_history: bool = False,
        progress: ExportProgress | None = None,
        output: str = "-",
    ) -> ExportReport:
        """Write every record ``principal`` may read (memories within ``prefixes`` only,
        when given: then no sessions, tasks or roots) as lines through ``write``."""
        chosen = None if not prefixes else await self._prefixes(principal, prefixes)
        scopes = [MemoryScope(principal, p) for p in chosen] if chosen else [MemoryScope(principal)]
        digests: dict[str, Digest] = {}
        total = 0
        for scope in scopes:
            total += await self.store.transfer.count_memory_versions(scope, with_history)
        done = 0

        def emit(record: dict[str, Any]) -> None:
            nonlocal done
            digests.setdefault(record["kind"], Digest()).add(record)
            write(jsonl.line(record))
            done += 1
            if progress is not None and done % 500 == 0:
                progress("exporting", done, total)

        now = datetime.now(UTC)
        write(
            jsonl.line(
                jsonl.header(
                    exported_by=principal.actor,
                    source=self.store.kind,
                    with_history=with_history,
                    prefixes=chosen,
                    exported_at=iso(now.isoformat(), what="now"),
                    version=__version__,
                )
            )
        )
        if chosen is None:
            for root in await self.store.roots.all():
                if root.visible_to(principal):
                    emit(jsonl.root_record(root))
        exported: set[tuple[str, str]] = set()
        session_ids: set[str] = set()
        for scope in scopes:
            after: tuple[str, str, int] = ("", "", 0)
            while True:
                page = await self.store.transfer.memory_versions(scope, with_history, after, PAGE)
                for entry in page:
                    emit(jsonl.memory_record(entry))
                    exported.add((entry.namespace, entry.key))
                if len(page) < PAGE:
                    break
                after = (page[-1].namespace, page[-1].key, page[-1].version)
        if chosen is None:
            sessions = await self._sessions(principal)
            tasks = await self._tasks(principal)
            total = done + len(sessions) + sum(s.last_seq for s in sessions) + len(tasks)
            for session in sessions:
                await self._session(session, emit)
                session_ids.add(session.id)
            for task in tasks:
                emit(jsonl.task_record(task))
            for task in tasks:
                for iteration in await self.store.checkpoints.iterations(task.id):
                    checkpoint = await self.store.checkpoints.load(task.id, iteration)
                    if checkpoint is not None:
                        emit(jsonl.checkpoint_record(checkpoint))
        left_out = await self._links(exported, session_ids, emit)
        write(jsonl.line(jsonl.footer(digests)))
        if progress is not None:
            progress("exported", done, done)
        return ExportReport(
            output=output,
            with_history=with_history,
            prefixes=chosen,
            links_left_out=left_out,
            kinds={
                kind: KindCounts(records=d.count, checksum=d.checksum)
                for kind, d in digests.items()
            },
        )

    async def _links(
        self,
        exported: set[tuple[str, str]],
        session_ids: set[str],
        emit: Callable[[dict[str, Any]], None],
    ) -> int:
        """Emit the links from exported memories whose other end is exported too, oldest
        first; return how many were left out for their other end."""
        left_out = 0
        after = 0
        while True:
            page = await self.store.transfer.links(after, PAGE)
            for link in page:
                if (link.from_namespace, link.from_key) not in exported:
                    continue
                if link.to_session is not None:
                    inside = link.to_session in session_ids
                else:
                    inside = (link.to_namespace, link.to_key) in exported
                if inside:
                    emit(jsonl.link_record(link))
                else:
                    left_out += 1
            if len(page) < PAGE:
                return left_out
            after = page[-1].id

    async def _prefixes(self, principal: Principal, prefixes: list[str]) -> list[str]:
        checked = []
        for prefix in prefixes:
            if prefix not in SCOPES:
                prefix = clean(prefix)
            segments = validate_prefix(prefix)
            await self.guard.check(principal, prefix, segments, Access.READ, "export")
            checked.append(prefix)
        return covering(checked)

    async def _sessions(self, principal: Principal) -> list[Session]:
        """The principal's sessions (an admin's: all), oldest first."""
        return await _oldest_first(
            lambda before: self.store.sessions.page(
                user_id=None if principal.admin else principal.user,
                app_name=None if principal.admin else principal.app,
                status=None,
                project_id=None,
                before=before,
                limit=200,
            )
        )

    async def _session(self, session: Session, emit: Callable[[dict[str, Any]], None]) -> None:
        emit(jsonl.session_record(session))
        start = 1
        while start <= session.last_seq:
            events = await self.store.sessions.events(session.id, start, session.last_seq, PAGE)
            if not events:
                break
            for event in events:
                emit(jsonl.event_record(session.id, event))
            start = events[-1].seq + 1

    async def _tasks(self, principal: Principal) -> list[Task]:
        """The principal's tasks (an admin's: all), oldest first (parents first)."""
        return await _oldest_first(
            lambda before: self.store.tasks.page(
                owner=owner_filter(principal),
                status=None,
                agent_type=None,
                session_id=None,
                before=before,
                limit=200,
            )
        )


async def _oldest_first(
    page: Callable[[tuple[str, str]], Awaitable[tuple[list[T], tuple[str, str] | None]]],
) -> list[T]:
    """Every row of a newest-first listing, oldest first."""
    found: list[T] = []
    before = ("", "")
    while True:
        rows, position = await page(before)
        found += rows
        if position is None:
            return found[::-1]
        before = position
