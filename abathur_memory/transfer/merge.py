"""What an import writes: the file's records against what the database holds (pure).

The rules (docs/import-export.md#merging), chosen so that importing is idempotent and
never rewrites what the database knows better:

- memory versions with numbers (our JSONL): a version the database holds must have the
  same value, type and metadata (times and actors may differ: the seed memories every
  database makes itself); versions after the database's newest are added with their
  times and actors; a version missing below it is a conflict. Deletion only ever spreads:
  a version the file says is deleted is deleted here too, never the other way round.
- memory records without numbers (the other formats) are puts: a new version when the
  live one differs, nothing when it is the same.
- sessions: events the database holds must be the same; later events are appended and the
  session row follows the file when the file's is newer. Tasks and checkpoints follow the
  file when its copy is newer; what cannot change (a task's prompt, owner) must agree.
- links: a link the database holds (same type, ends, versions and created_at) is present;
  so is an active one with the same type and ends made here. Others are added, with their
  times and actors, when both ends are here or in the file (any version of the memory; the
  session for a link to a session's events); else they are a conflict. Removal only
  spreads, like deletion. Adding or removing a link needs write access to both ends.
- what the principal may not read is refused without being compared; what it may read but
  not write is refused only when something would be written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from abathur_memory.core.principal import Principal
from abathur_memory.core.records import (
    Checkpoint,
    Denial,
    MemoryEntry,
    MemoryLink,
    Session,
    SessionEvent,
    Task,
)
from abathur_memory.core.transfer import (
    Deletion,
    Held,
    ImportedLink,
    LinkRemoval,
    NewVersion,
    Wanted,
    Writes,
)
from abathur_memory.memory import sessions as session_rules
from abathur_memory.memory import tasks as task_rules
from abathur_memory.memory.namespaces import Access, parse, rule_for
from abathur_memory.transfer.records import Problem, Unit, VersionRecord, Where, iso
from abathur_memory.transfer.records import canonical_line as _canonical

KINDS = ("memory", "link", "session", "event", "task", "checkpoint")


@dataclass
class Outcome:
    new: int = 0
    changed: int = 0
    present: int = 0  # the database holds it already (or a later state of it)
    refused: int = 0
    conflict: int = 0


@dataclass
class Plan:
    writes: Writes
    outcomes: dict[str, Outcome]
    problems: list[Problem] = field(default_factory=list)
    denials: list[Denial] = field(default_factory=list)


def dedupe(unit: Unit) -> None:
    """A (namespace, key, version) given twice, or a key without versions given twice, is
    bad (namespace mapping can make two names one)."""
    seen: dict[tuple[str, str, int | None], Where] = {}
    kept: list[VersionRecord] = []
    for record in unit.versions:
        identity = (record.namespace, record.key, record.version)
        if identity in seen:
            what = f"{record.namespace}/{record.key}" + (
                f" version {record.version}" if record.version is not None else ""
            )
            unit.fail(record.where, f"{what} is also at {seen[identity]}", "memory")
            continue
        seen[identity] = record.where
        kept.append(record)
    unit.versions = kept


def _static_read_rule(principal: Principal, namespace: str) -> str | None:
    """The rule refusing to read ``namespace`` that needs no database (a session's owner
    does: those are decided in the transaction)."""
    segments = parse(namespace)
    if segments[0] == "session" and not principal.admin:
        return None
    return rule_for(principal, segments, Access.READ)


def wanted(unit: Unit, principal: Principal) -> Wanted:
    """What to read of the database for ``unit``: its records and what they refer to."""
    ends = [(v.namespace, v.key) for v in unit.versions]
    for record in unit.links:
        link = record.link
        ends.append((link.from_namespace, link.from_key))
        if link.to_namespace is not None and link.to_key is not None:
            ends.append((link.to_namespace, link.to_key))
    keys = dict.fromkeys(end for end in ends if _static_read_rule(principal, end[0]) is None)
    link_keys = dict.fromkeys(
        (r.link.from_namespace, r.link.from_key)
        for r in unit.links
        if _static_read_rule(principal, r.link.from_namespace) is None
    )
    sessions: dict[str, None] = {}
    tasks: dict[str, None] = {}
    for s in unit.sessions:
        sessions[s.session.id] = None
    for namespace, _ in keys:
        segments = parse(namespace)
        if segments[0] == "session":
            sessions[segments[1]] = None
    for t in unit.tasks:
        tasks[t.task.id] = None
        if t.task.parent_task_id:
            tasks[t.task.parent_task_id] = None
        if t.task.session_id:
            sessions[t.task.session_id] = None
    for c in unit.checkpoints:
        tasks[c.checkpoint.task_id] = None
        if c.checkpoint.session_id:
            sessions[c.checkpoint.session_id] = None
    for r in unit.links:
        if r.link.to_session is not None:
            sessions[r.link.to_session] = None
    return Wanted(
        keys=tuple(keys),
        session_ids=tuple(sessions),
        task_ids=tuple(tasks),
        checkpoints=tuple(
            dict.fromkeys((c.checkpoint.task_id, c.checkpoint.iteration) for c in unit.checkpoints)
        ),
        link_keys=tuple(link_keys),
    )


def plan(unit: Unit, held: Held, principal: Principal, now: str) -> Plan:
    """The writes that bring ``held`` up to ``unit``, with what is refused or in conflict."""
    return _Planner(unit, held, principal, now).run()


def _same(a: Any, b: Any) -> bool:
    return _canonical({"v": a}) == _canonical({"v": b})


def _same_text(a: Any, text: str) -> bool:
    """Whether a stored value (decoded) and a record's JSON text are the same value: the
    same text (the usual case: an export is written as values are stored), or the same
    canonical form."""
    compact = json.dumps(a, ensure_ascii=False, separators=(",", ":"))
    return compact == text or _same(a, json.loads(text))


def _same_content(held: MemoryEntry, record: VersionRecord) -> bool:
    return (
        held.memory_type == record.memory_type
        and _same_text(held.value, record.value_text)
        and _same_text(held.metadata, record.metadata_text)
    )


def _same_event(a: SessionEvent, b: SessionEvent) -> bool:
    return (a.event_type, a.actor) == (b.event_type, b.actor) and _same(
        [a.content, a.state_delta], [b.content, b.state_delta]
    )


def _t(time: str | None) -> str:
    """A time as comparable text (older rows may lack the milliseconds)."""
    return "" if time is None else iso(time, what="time")


def _row(model: Session | Task | Checkpoint) -> dict[str, Any]:
    fields = model.model_dump(exclude={"events"})
    return {
        name: _t(value) if name.endswith(("_at", "_time")) else value
        for name, value in fields.items()
    }


class _Planner:
    def __init__(self, unit: Unit, held: Held, principal: Principal, now: str) -> None:
        self.unit = unit
        self.held = held
        self.p = principal
        self.now = now
        self.writes = Writes()
        self.outcomes = {kind: Outcome() for kind in KINDS}
        self.problems: list[Problem] = []
        self.denials: dict[tuple[str, str], Denial] = {}
        self.file_sessions = {s.session.id: s.session for s in unit.sessions}
        self.sessions_after: set[str] = set(held.sessions)
        self.tasks_after: set[str] = set(held.tasks)
        self.refused_tasks: set[str] = set()

    def run(self) -> Plan:
        self._sessions()
        self._memories()
        self._links()
        self._tasks()
        self._checkpoints()
        self.writes.summary = {
            "file": self.unit.name,
            "format": self.unit.format,
            "written": {
                kind: {"new": o.new, "changed": o.changed}
                for kind, o in self.outcomes.items()
                if o.new or o.changed
            },
        }
        return Plan(self.writes, self.outcomes, self.problems, list(self.denials.values()))

    # -- outcomes -------------------------------------------------------------------------

    def _refuse(
        self, where: Where, kind: str, count: int, message: str, denial: Denial | None = None
    ) -> None:
        self.outcomes[kind].refused += count
        self.problems.append(Problem(where, "refused", kind, message))
        if denial is not None:
            self.denials.setdefault((denial.action, denial.target), denial)

    def _conflict(self, where: Where, kind: str, count: int, message: str) -> None:
        self.outcomes[kind].conflict += count
        self.problems.append(Problem(where, "conflict", kind, message))

    def _deny(self, action: str, target: str, rule: str, namespace: str | None = None) -> Denial:
        return Denial(self.p.actor, action, "import", target, rule, namespace)

    # -- sessions -------------------------------------------------------------------------

    def _sessions(self) -> None:
        for record in self.unit.sessions:
            s, events = record.session, record.events
            held = self.held.sessions.get(s.id)
            owner = (s.user_id, s.app_name) if held is None else (held.user_id, held.app_name)
            refusal = None
            if not self.p.may_use_session(s.user_id, s.app_name):
                refusal = f"session {s.id} belongs to user {s.user_id} in app {s.app_name}"
            elif not self.p.may_use_session(*owner):
                refusal = f"session id {s.id} is taken by another principal's session"
            if refusal is not None:
                denial = self._deny("session_denied", s.id, session_rules.NOT_YOURS)
                self._refuse(record.where, "session", 1, refusal, denial)
                self.outcomes["event"].refused += len(events)
            elif held is None:
                self.writes.sessions.append(s)
                self.writes.events += [(s.id, event) for _, event in events]
                self.sessions_after.add(s.id)
                self.outcomes["session"].new += 1
                self.outcomes["event"].new += len(events)
            elif owner != (s.user_id, s.app_name):
                message = f"session {s.id} exists here for user {owner[0]} in app {owner[1]}"
                self._conflict(record.where, "session", 1, message)
                self.outcomes["event"].conflict += len(events)
            else:
                self._merge_session(record.where, s, events, held)

    def _merge_session(
        self,
        where: Where,
        s: Session,
        events: Sequence[tuple[Where, SessionEvent]],
        held: Session,
    ) -> None:
        held_events = {e.seq: e for e in self.held.events.get(s.id, [])}
        for event_where, event in events:
            known = held_events.get(event.seq)
            if known is not None and not _same_event(known, event):
                self._conflict(
                    event_where,
                    "session",
                    1,
                    f"session {s.id}: event {event.seq} differs from the database's",
                )
                self.outcomes["event"].conflict += len(events)
                return
        appended = [e for _, e in events if e.seq > held.last_seq]
        newer = _t(s.last_update_time) > _t(held.last_update_time)
        same_row = _row(s) == _row(held)
        if appended and _t(s.last_update_time) < _t(held.last_update_time):
            self._conflict(
                where,
                "session",
                1,
                f"session {s.id} changed here after the file's events began to differ",
            )
            self.outcomes["event"].conflict += len(events)
            return
        if appended or (newer and s.last_seq >= held.last_seq and not same_row):
            self.writes.session_updates.append(s)
            self.writes.events += [(s.id, e) for e in appended]
            self.outcomes["session"].changed += 1
        elif same_row or not newer or s.last_seq < held.last_seq:
            self.outcomes["session"].present += 1
        else:  # pragma: no cover - every case is above; kept as the safe answer
            self._conflict(where, "session", 1, f"session {s.id} differs from the database's")
            return
        self.outcomes["event"].new += len(appended)
        self.outcomes["event"].present += len(events) - len(appended)

    # -- memories -------------------------------------------------------------------------

    def _rules(self, namespace: str) -> tuple[str | None, str | None]:
        """(the rule refusing to read, the rule refusing to write) ``namespace``."""
        segments = parse(namespace)
        owns: bool | None = None
        if segments[0] == "session" and not self.p.admin:
            session = self.held.sessions.get(segments[1])
            if session is None and segments[1] in self.sessions_after:
                session = self.file_sessions.get(segments[1])
            owns = session is not None and self.p.may_use_session(session.user_id, session.app_name)
        return (
            rule_for(self.p, segments, Access.READ, owns_session=owns),
            rule_for(self.p, segments, Access.WRITE, owns_session=owns),
        )

    def _memories(self) -> None:
        groups: dict[tuple[str, str], list[VersionRecord]] = {}
        for record in self.unit.versions:
            groups.setdefault((record.namespace, record.key), []).append(record)
        rules: dict[str, tuple[str | None, str | None]] = {}
        refused: dict[str, list[VersionRecord]] = {}
        for (namespace, key), records in groups.items():
            if namespace not in rules:
                rules[namespace] = self._rules(namespace)
            read_rule, write_rule = rules[namespace]
            if read_rule is not None:
                refused.setdefault(namespace, []).extend(records)
                continue
            held = self.held.versions.get((namespace, key), [])
            if records[0].version is None:
                news, deletions, present, conflicts = self._put(records[0], held)
            else:
                news, deletions, present, conflicts = self._versions(records, held)
            if conflicts:
                for where, message in conflicts:
                    self._conflict(where, "memory", 0, message)
                self.outcomes["memory"].conflict += len(records)
            elif (news or deletions) and write_rule is not None:
                refused.setdefault(namespace, []).extend(records)
            else:
                self.writes.versions += news
                self.writes.deletions += deletions
                outcome = self.outcomes["memory"]
                outcome.new += len(news)
                outcome.changed += len(deletions)
                outcome.present += present
        for namespace, records in refused.items():
            read_rule, write_rule = rules[namespace]
            rule = read_rule or write_rule or ""
            self._refuse(
                records[0].where,
                "memory",
                len(records),
                f"{namespace}: {len(records)} records refused: {rule}",
                self._deny("memory_denied", namespace, rule, namespace),
            )

    def _versions(
        self, records: list[VersionRecord], held: list[MemoryEntry]
    ) -> tuple[list[NewVersion], list[Deletion], int, list[tuple[Where, str]]]:
        by_version = {entry.version: entry for entry in held}
        top = max(by_version, default=0)
        news: list[NewVersion] = []
        deletions: list[Deletion] = []
        conflicts: list[tuple[Where, str]] = []
        present = 0
        for r in sorted(records, key=lambda r: r.version or 0):
            assert r.version is not None
            name = f"{r.namespace}/{r.key} version {r.version}"
            known = by_version.get(r.version)
            if known is not None:
                if not _same_content(known, r):
                    conflicts.append((r.where, f"{name} differs from the database's"))
                elif r.is_deleted and not known.is_deleted:
                    deletions.append(
                        Deletion(
                            r.namespace, r.key, r.version, r.updated_at or self.now, r.updated_by
                        )
                    )
                else:
                    present += 1
            elif r.version < top:
                conflicts.append(
                    (r.where, f"the database holds versions up to {top} but not {name}")
                )
            else:
                news.append(
                    NewVersion(
                        r.namespace,
                        r.key,
                        r.version,
                        r.value_text,
                        r.memory_type,
                        r.metadata_text,
                        r.is_deleted,
                        r.created_by,
                        r.updated_by,
                        r.created_at or self.now,
                        r.updated_at or r.created_at or self.now,
                        "create" if not held and not news else "update",
                    )
                )
        return news, deletions, present, conflicts

    def _put(
        self, r: VersionRecord, held: list[MemoryEntry]
    ) -> tuple[list[NewVersion], list[Deletion], int, list[tuple[Where, str]]]:
        latest = held[-1] if held else None
        if latest is not None and not latest.is_deleted and _same_content(latest, r):
            return [], [], 1, []
        created = r.created_at or self.now
        updated = r.updated_at or created
        if latest is not None:
            after = max(_t(latest.created_at), _t(latest.updated_at))
            if _t(updated) <= after:
                created = updated = self.now
            else:
                created = updated
        actor = r.created_by or self.p.actor
        version = NewVersion(
            r.namespace,
            r.key,
            latest.version + 1 if latest is not None else 1,
            r.value_text,
            r.memory_type,
            r.metadata_text,
            False,
            actor,
            r.updated_by or actor,
            created,
            updated,
            "update" if latest is not None else "create",
        )
        return [version], [], 0, []

    # -- links ----------------------------------------------------------------------------

    def _links(self) -> None:
        held = self.held.links
        by_identity = {_link_identity(link): link for link in held}
        active = {_link_ends(link): link for link in held if link.removed_at is None}
        added: set[tuple[Any, ...]] = set()
        here = {key for key, versions in self.held.versions.items() if versions}
        here |= {(v.namespace, v.key) for v in self.writes.versions}
        rules: dict[str, tuple[str | None, str | None]] = {}
        refused: dict[str, list[Where]] = {}
        outcome = self.outcomes["link"]
        for record in self.unit.links:
            link = record.link
            namespaces = [link.from_namespace]
            if link.to_namespace is not None:
                namespaces.append(link.to_namespace)
            for namespace in namespaces:
                if namespace not in rules:
                    rules[namespace] = self._rules(namespace)
            unreadable = [n for n in namespaces if rules[n][0] is not None]
            if unreadable:
                refused.setdefault(unreadable[0], []).append(record.where)
                continue
            known = by_identity.get(_link_identity(link))
            if known is None and link.removed_at is None:
                known = active.get(_link_ends(link))
                if known is None and _link_ends(link) in added:
                    message = f"{_link_name(link)}: the file has another active link like it"
                    self._conflict(record.where, "link", 1, message)
                    continue
            removal: LinkRemoval | None = None
            if known is not None:
                if link.removed_at is None or known.removed_at is not None:
                    outcome.present += 1
                    continue
                removal = LinkRemoval(known.id, link.removed_at, link.removed_by)
            else:
                missing = self._missing_end(link, here)
                if missing is not None:
                    self._conflict(record.where, "link", 1, f"{_link_name(link)}: {missing}")
                    continue
            unwritable = [n for n in namespaces if rules[n][1] is not None]
            if not unwritable and link.to_session is not None and not self._owns(link.to_session):
                message = f"{_link_name(link)}: session {link.to_session} is not yours"
                self._refuse(record.where, "link", 1, message)
                continue
            if unwritable:
                refused.setdefault(unwritable[0], []).append(record.where)
            elif removal is not None:
                self.writes.link_removals.append(removal)
                outcome.changed += 1
            else:
                self.writes.links.append(link)
                if link.removed_at is None:
                    added.add(_link_ends(link))
                outcome.new += 1
        for namespace, places in refused.items():
            read_rule, write_rule = rules[namespace]
            rule = read_rule or write_rule or ""
            self._refuse(
                places[0],
                "link",
                len(places),
                f"{namespace}: {len(places)} links refused: {rule}",
                self._deny("memory_denied", namespace, rule, namespace),
            )

    def _missing_end(self, link: ImportedLink, here: set[tuple[str, str]]) -> str | None:
        """Why the link cannot be made here: an end that is neither here nor in the file."""
        if (link.from_namespace, link.from_key) not in here:
            return f"no memory {link.from_namespace}/{link.from_key} here or in the file"
        if link.to_session is not None:
            if link.to_session not in self.sessions_after:
                return f"no session {link.to_session} here or in the file"
        elif (link.to_namespace, link.to_key) not in here:
            return f"no memory {link.to_namespace}/{link.to_key} here or in the file"
        return None

    def _owns(self, session_id: str) -> bool:
        if self.p.admin:
            return True
        session = self.held.sessions.get(session_id) or self.file_sessions.get(session_id)
        return session is not None and self.p.may_use_session(session.user_id, session.app_name)

    # -- tasks and checkpoints ------------------------------------------------------------

    def _tasks(self) -> None:
        waiting: list[tuple[Where, Task]] = []
        for record in self.unit.tasks:
            t = record.task
            held = self.held.tasks.get(t.id)
            owner = held.created_by if held is not None else t.created_by
            if not self.p.admin and (t.created_by != self.p.actor or owner != self.p.actor):
                self.refused_tasks.add(t.id)
                self._refuse(
                    record.where,
                    "task",
                    1,
                    f"task {t.id} belongs to {owner or 'nobody'}",
                    self._deny("task_denied", t.id, task_rules.NOT_YOURS),
                )
            elif held is None:
                waiting.append((record.where, t))
            else:
                self._merge_task(record.where, t, held)
        self._insert_tasks(waiting)

    def _merge_task(self, where: Where, t: Task, held: Task) -> None:
        fixed = ("created_by", "prompt", "agent_type", "input", "dependencies", "parent_task_id")
        mine, theirs = _row(t), _row(held)
        different = [name for name in fixed if not _same(mine[name], theirs[name])]
        if different:
            self._conflict(
                where, "task", 1, f"task {t.id}: {', '.join(different)} differ from the database's"
            )
        elif mine == theirs or mine["last_updated_at"] < theirs["last_updated_at"]:
            self.outcomes["task"].present += 1
        elif mine["last_updated_at"] == theirs["last_updated_at"]:
            self._conflict(where, "task", 1, f"task {t.id} differs from the database's")
        elif t.session_id is not None and t.session_id not in self.sessions_after:
            self._conflict(where, "task", 1, f"task {t.id}: no session {t.session_id} here")
        else:
            self.writes.task_updates.append(t)
            self.outcomes["task"].changed += 1

    def _insert_tasks(self, waiting: list[tuple[Where, Task]]) -> None:
        """New tasks, each after its parent (the file lists them oldest first already)."""
        pending = {t.id for _, t in waiting}
        progress = True
        while waiting and progress:
            progress = False
            later: list[tuple[Where, Task]] = []
            for where, t in waiting:
                parent = t.parent_task_id
                if parent is not None and parent in pending and parent not in self.tasks_after:
                    later.append((where, t))
                    continue
                pending.discard(t.id)
                progress = True
                if parent is not None and parent not in self.tasks_after:
                    self._conflict(
                        where, "task", 1, f"task {t.id}: its parent task {parent} is not here"
                    )
                elif t.session_id is not None and t.session_id not in self.sessions_after:
                    self._conflict(where, "task", 1, f"task {t.id}: no session {t.session_id} here")
                else:
                    self.writes.tasks.append(t)
                    self.tasks_after.add(t.id)
                    self.outcomes["task"].new += 1
            waiting = later
        for where, t in waiting:  # pragma: no cover - parents always come before children
            self._conflict(where, "task", 1, f"task {t.id}: its parent task is not here")

    def _checkpoints(self) -> None:
        owners = {t.task.id: t.task.created_by for t in self.unit.tasks}
        owners.update({task_id: t.created_by for task_id, t in self.held.tasks.items()})
        for record in self.unit.checkpoints:
            c = record.checkpoint
            name = f"checkpoint {c.iteration} of task {c.task_id}"
            owner = owners.get(c.task_id)
            if c.task_id in self.refused_tasks or (
                not self.p.admin and owner is not None and owner != self.p.actor
            ):
                self._refuse(record.where, "checkpoint", 1, f"{name}: the task is not yours")
                continue
            if c.task_id not in self.tasks_after:
                self._conflict(record.where, "checkpoint", 1, f"{name}: the task is not here")
                continue
            if c.session_id is not None and c.session_id not in self.sessions_after:
                self._conflict(record.where, "checkpoint", 1, f"{name}: no session {c.session_id}")
                continue
            held = self.held.checkpoints.get((c.task_id, c.iteration))
            if held is None:
                self.writes.checkpoints.append(c)
                self.outcomes["checkpoint"].new += 1
            elif _row(c) == _row(held) or _t(c.created_at) <= _t(held.created_at):
                self.outcomes["checkpoint"].present += 1
            else:
                self.writes.checkpoints.append(c)
                self.outcomes["checkpoint"].changed += 1


def _link_ends(link: ImportedLink | MemoryLink) -> tuple[Any, ...]:
    """What makes two active links the same link (the stores keep one active per ends)."""
    return (
        link.link_type,
        link.from_namespace,
        link.from_key,
        link.to_namespace,
        link.to_key,
        link.to_session,
        link.seq_start,
        link.seq_end,
    )


def _link_identity(link: ImportedLink | MemoryLink) -> tuple[Any, ...]:
    return (*_link_ends(link), link.from_version, link.to_version, _t(link.created_at))


def _link_name(link: ImportedLink) -> str:
    target = (
        f"session {link.to_session} events {link.seq_start}..{link.seq_end}"
        if link.to_session is not None
        else f"{link.to_namespace}/{link.to_key}"
    )
    return f"{link.link_type} link {link.from_namespace}/{link.from_key} -> {target}"
