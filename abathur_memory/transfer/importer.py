"""Import: read a file whole, decide against the database, write it in one transaction.

Each file is a unit (transfer/records.py): read and checked entirely first; then what the
database holds of its records is read, and the merge (transfer/merge.py) says what to
write, what the principal may not write, and what disagrees with the database. A unit
with any problem writes nothing, unless ``skip_bad``: then the rest of it is written. The
write decides again inside its transaction (the store's ``apply``), so a change made in
between is never overwritten; afterwards the database is read back and decided a third
time, which must find nothing left to write (``verified``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from abathur_memory.core.principal import Principal
from abathur_memory.core.transfer import Held, Writes
from abathur_memory.errors import Conflict, InvalidInput
from abathur_memory.memory.denials import DenialRecorder
from abathur_memory.memory.namespaces import clean
from abathur_memory.store.protocols import Store
from abathur_memory.transfer import merge, sources
from abathur_memory.transfer.records import LinkRecord, Problem, Unit, iso
from abathur_memory.transfer.report import (
    MAX_PROBLEMS_SHOWN,
    FileReport,
    ImportReport,
    KindCounts,
)

ImportProgress = Callable[[str, int, int | None], None]  # phase, done, total


def parse_namespace_map(pairs: Sequence[str]) -> list[tuple[str, str]]:
    """``FROM=TO`` pairs, each side a namespace; the longest FROM is tried first."""
    mapping = []
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep:
            raise InvalidInput(
                f"--namespace-map {pair!r}: expected FROM=TO, e.g. user:bob=user:alice"
            )
        mapping.append((clean(source), clean(target)))
    return sorted(mapping, key=lambda pair: -len(pair[0]))


def _mapped(namespace: str, mapping: list[tuple[str, str]]) -> str:
    for source, target in mapping:
        if namespace == source or namespace.startswith(source + ":"):
            return target + namespace[len(source) :]
    return namespace


def _renamed(unit: Unit, mapping: list[tuple[str, str]]) -> None:
    if not mapping:
        return
    kept = []
    for record in unit.versions:
        namespace = _mapped(record.namespace, mapping)
        if namespace != record.namespace:
            try:
                namespace = clean(namespace)
            except InvalidInput as exc:
                unit.fail(record.where, f"mapped namespace: {exc}", "memory")
                continue
            record = record.renamed(namespace)
        kept.append(record)
    unit.versions = kept
    links = []
    for link_record in unit.links:
        link = link_record.link
        ends = (link.from_namespace, link.to_namespace)
        mapped = tuple(None if n is None else _mapped(n, mapping) for n in ends)
        if mapped != ends:
            try:
                source, target = (None if n is None else clean(n) for n in mapped)
            except InvalidInput as exc:
                unit.fail(link_record.where, f"mapped namespace: {exc}", "link")
                continue
            assert source is not None
            link_record = LinkRecord(link_record.where, link.renamed(source, target))
        links.append(link_record)
    unit.links = links


class Importer:
    def __init__(self, store: Store, recorder: DenialRecorder, *, max_value_bytes: int) -> None:
        self.store = store
        self.recorder = recorder
        self.max_value_bytes = max_value_bytes

    async def run(
        self,
        principal: Principal,
        path: Path,
        *,
        fmt: str = "auto",
        dry_run: bool = False,
        namespace_map: Sequence[str] = (),
        skip_bad: bool = False,
        progress: ImportProgress | None = None,
    ) -> ImportReport:
        mapping = parse_namespace_map(namespace_map)
        units = await asyncio.to_thread(
            sources.read,
            path,
            fmt,
            principal,
            max_value_bytes=self.max_value_bytes,
            progress=None
            if progress is None
            else lambda done, total: progress("reading", done, total),
        )
        report = ImportReport(source=str(path), dry_run=dry_run, skip_bad=skip_bad)
        for number, unit in enumerate(units, 1):
            if progress is not None:
                progress(f"importing {unit.name}", number - 1, len(units))
            _renamed(unit, mapping)
            merge.dedupe(unit)
            report.files.append(await self._unit(principal, unit, dry_run, skip_bad))
            if progress is not None:
                progress("imported", number, len(units))
        return report

    async def _unit(
        self, principal: Principal, unit: Unit, dry_run: bool, skip_bad: bool
    ) -> FileReport:
        wanted = merge.wanted(unit, principal)
        now = iso(datetime.now(UTC).isoformat(), what="now")
        planned = merge.plan(unit, await self.store.transfer.held(wanted), principal, now)
        for denial in planned.denials:
            self.recorder.record(denial)
        problems = [*unit.bad, *planned.problems]
        report = _file_report(unit, planned, problems)
        if dry_run or (problems and not skip_bad):
            return report
        if not planned.writes.empty:
            final: list[merge.Plan] = []

            def decide(held: Held) -> Writes:
                again = merge.plan(unit, held, principal, now)
                if again.problems and not skip_bad:
                    raise Conflict(
                        f"{unit.name}: the database changed while importing it "
                        f"({again.problems[0]}); import it again"
                    )
                final.append(again)
                return again.writes

            await self.store.transfer.apply(wanted, decide, principal.actor)
            report = _file_report(unit, final[-1], [*unit.bad, *final[-1].problems])
            check = merge.plan(unit, await self.store.transfer.held(wanted), principal, now)
            report.verified = check.writes.empty
        else:
            report.verified = True
        report.written = True
        report.roots = await self._roots(principal, unit, report)
        if "root" in report.kinds:
            report.kinds["root"].new = len(report.roots)
        return report

    async def _roots(self, principal: Principal, unit: Unit, report: FileReport) -> list[str]:
        """Register the file's document roots whose folder is on this machine (indexing
        them is `abathur-memory index`'s job)."""
        registered = []
        for root in unit.roots:
            owner = root.owner or principal.user
            if not principal.admin and owner != principal.user:
                report.notes.append(f"root {root.name}: owned by {owner}, not registered")
                continue
            folder = Path(root.path)
            if not folder.is_dir():
                report.notes.append(
                    f"root {root.name}: no folder {folder} here; register it with "
                    f"`abathur-memory index {root.name}=DIR`"
                )
                continue
            try:
                done = await self.store.roots.ensure(
                    folder.resolve(),
                    root.name,
                    root.excludes,
                    Principal(user=owner, app=principal.app, project=root.project),
                    root.visibility,
                )
            except InvalidInput as exc:
                report.notes.append(f"root {root.name}: {exc}")
                continue
            report.notes += done.notes
            registered.append(done.root.name)
        return registered


def _file_report(unit: Unit, planned: merge.Plan, problems: list[Problem]) -> FileReport:
    kinds: dict[str, KindCounts] = {}
    for kind in ("root", "memory", "link", "session", "event", "task", "checkpoint"):
        outcome = planned.outcomes.get(kind)
        counts = KindCounts(records=unit.records(kind))
        if outcome is not None:
            counts.new, counts.changed, counts.present = (
                outcome.new,
                outcome.changed,
                outcome.present,
            )
            counts.refused, counts.conflict = outcome.refused, outcome.conflict
        counts.bad = sum(1 for p in unit.bad if p.record == kind)
        counts.unsupported = sum(
            1 for p in problems if p.kind == "unsupported" and p.record == kind
        )
        if kind in unit.digests:
            counts.checksum = unit.digests[kind].checksum
        if counts.records or counts.new or counts.present or counts.bad:
            kinds[kind] = counts
    return FileReport(
        file=unit.name,
        format=unit.format,
        written=False,
        footer_checked=unit.expected is not None
        and not any("footer" in p.message for p in unit.bad),
        kinds=kinds,
        problems=[str(p) for p in problems[:MAX_PROBLEMS_SHOWN]],
        problem_count=len(problems),
        notes=list(unit.notes),
    )
