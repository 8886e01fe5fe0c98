"""Export/import tests' shared parts: a database with every kind of record, everything the
tools read back from one, a markdown corpus, and files to import."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from acting import Acting

from abathur_memory.core.principal import Principal
from abathur_memory.core.search import MemoryScope
from abathur_memory.errors import NotFound

ALICE = Principal(user="alice", app="abathur", project="website")
BOB = Principal(user="bob", app="abathur")
ADMIN = Principal(user="root", app="abathur", admin=True)
QUERIES = ("borrow a value mutably", "trait objects dynamic dispatch", "cargo workspace")


async def fill(runtime: Any) -> dict[str, str]:
    """Memories with history, deletions, a restore, every type, odd values and metadata;
    sessions in several states with events and state deltas; tasks with a parent,
    dependencies, a claim, a result and an error; checkpoints; and another user's data."""
    alice, bob, admin = Acting(runtime, ALICE), Acting(runtime, BOB), Acting(runtime, ADMIN)
    for n in range(3):
        await alice.memories.put(
            "user:alice:notes", "plan", {"step": n, "text": "ship the release"}, metadata={"n": n}
        )
    await alice.memories.put("user:alice:notes", "diary", "went hiking", memory_type="episodic")
    await alice.memories.put("project:website:rules", "style", {"indent": 4}, "procedural")
    await alice.memories.put("user:alice:notes", "gone", "temporary")
    await alice.memories.delete("user:alice:notes", "gone")
    await alice.memories.put("user:alice:notes", "back", "first")
    await alice.memories.delete("user:alice:notes", "back")
    await alice.memories.restore("user:alice:notes", "back")
    await alice.memories.put("user:alice:notes", "back", "third")
    await alice.memories.put("temp:scratch", "mixed", [1, 2.5, True, None, "ü", {"a": []}])
    await alice.memories.put("user:alice:notes", "unicode", {"text": "café ☕", "f": 1.0, "i": 1})
    await admin.memories.put("app:abathur:config", "extra", {"admin": True})
    await bob.memories.put("user:bob:notes", "secret", "bob's own")

    session = await alice.sessions.create(state={"mood": "calm"}, metadata={"topic": "release"})
    for i in range(5):
        actor = "user" if i % 2 == 0 else "assistant"
        await alice.sessions.append(
            session.id, "message", actor, {"text": f"turn {i}"}, state_delta={"turn": i}
        )
    await alice.sessions.set_status(session.id, "paused")
    ended = await alice.sessions.create()
    await alice.sessions.append(ended.id, "note", "user", "the end")
    await alice.sessions.set_status(ended.id, "terminated")
    empty = await alice.sessions.create(state={"blank": True})
    await alice.memories.put(f"session:{session.id}:facts", "decision", "ship on friday")
    bob_session = await bob.sessions.create()

    parent = await alice.tasks.create(
        "parent task", priority=7, input={"a": 1}, session_id=session.id
    )
    child = await alice.tasks.create(
        "child task", parent_task_id=parent.id, dependencies=[parent.id]
    )
    claimed = await alice.tasks.claim()
    assert claimed is not None and claimed.id == parent.id
    await alice.tasks.update(parent.id, status="completed", result={"ok": True})
    failing = await alice.tasks.create("failing task", priority=6, agent_type="worker")
    await alice.tasks.claim(agent_type="worker")
    await alice.tasks.update(failing.id, status="failed", error="boom")
    await alice.checkpoints.save(parent.id, 0, {"progress": 0.5})
    await alice.checkpoints.save(parent.id, 1, {"progress": 1.0})
    bob_task = await bob.tasks.create("bob's task")
    return {
        "session": session.id,
        "ended": ended.id,
        "empty": empty.id,
        "bob_session": bob_session.id,
        "parent": parent.id,
        "child": child.id,
        "failing": failing.id,
        "bob_task": bob_task.id,
    }


def _entry(entry: Any) -> dict[str, Any]:
    """An entry as compared: without its row id; the seed memories every database writes
    itself keep their own database's times."""
    shown = entry.model_dump(exclude={"id"})
    if entry.created_by == "system":
        shown.pop("created_at")
        shown.pop("updated_at")
    return shown


async def reads(runtime: Any, ids: dict[str, str]) -> dict[str, Any]:
    """Everything memory_get, memory_history, memory_list, session_get, session_list,
    task_get, task_list and checkpoint_get answer for the filled database (as admin)."""
    admin = Acting(runtime, ADMIN)
    out: dict[str, Any] = {}
    versions = await runtime.store.transfer.memory_versions(
        MemoryScope(ADMIN), True, ("", "", 0), 10_000
    )
    for key in sorted({(v.namespace, v.key) for v in versions}):
        history = await admin.memories.history(*key)
        out[f"history {key}"] = [_entry(v) for v in history]
        try:
            out[f"get {key}"] = _entry(await admin.memories.get(*key))
        except NotFound:
            out[f"get {key}"] = None
        for v in history:
            if v.created_by != "system":
                try:
                    found = await admin.memories.get(*key, as_of=v.created_at)
                    out[f"as_of {key} {v.version}"] = found.version
                except NotFound:
                    out[f"as_of {key} {v.version}"] = None
    for prefix in ("user:alice", "project:website", "temp", "app:abathur", "user:bob", None):
        pages, cursor = [], None
        while True:
            page = await admin.memories.list(prefix, limit=2, cursor=cursor)
            pages.append([_entry(e) for e in page.entries])
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        out[f"list {prefix}"] = pages
    for name in ("session", "ended", "empty", "bob_session"):
        got = await admin.sessions.get(ids[name], events_after=0, events_limit=1000)
        out[f"session {name}"] = got.model_dump()
    out["session_list"] = [s.model_dump() for s in (await admin.sessions.list(limit=200)).sessions]
    for name in ("parent", "child", "failing", "bob_task"):
        out[f"task {name}"] = (await admin.tasks.get(ids[name])).model_dump()
    out["task_list"] = [t.model_dump() for t in (await admin.tasks.list(limit=200)).tasks]
    for iteration in (0, 1):
        checkpoint = await admin.checkpoints.load(ids["parent"], iteration)
        out[f"checkpoint {iteration}"] = checkpoint.model_dump()
    return out


async def export_text(runtime: Any, principal: Principal = ADMIN, **options: Any) -> str:
    out = io.StringIO()
    await runtime.transfer.export(principal, out.write, **options)
    return out.getvalue()


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


_WORDS = [
    *("apple", "basil", "cedar", "delta", "ember", "fjord", "glade", "harbor", "iris"),
    *("juniper", "kestrel", "lagoon", "meadow", "nectar", "orchid", "pebble", "quartz"),
    *("river", "saffron", "tundra", "umber", "violet", "willow", "xenon", "yarrow"),
    *("zephyr", "amber", "birch", "cobalt", "dune"),
]


def write_corpus(root: Path, files: int = 24) -> Path:
    """Markdown on the queries' topics, each file a little different (no ties)."""
    topics = {
        QUERIES[0]: "To borrow a value mutably, take `&mut value`: one mutable borrow at a time.",
        QUERIES[1]: "Trait objects (`dyn Trait`) use dynamic dispatch through a vtable.",
        QUERIES[2]: "A cargo workspace shares one lock file; members list their dependencies.",
    }
    for n in range(files):
        parts = [f"# Notes {n}\n"]
        for t, (query, text) in enumerate(topics.items()):
            # Words of this file's own (not numbers): no two sections embed alike, so no
            # ranking rests on a tie (PostgreSQL's HNSW orders exact ties arbitrarily).
            own = [_WORDS[(n * 5 + t * 3 + k) % len(_WORDS)] for k in range(1 + (n + t) % 4)]
            filler = " ".join(f"Remark on {word} {_WORDS[n % len(_WORDS)]}." for word in own)
            parts.append(f"## {query.capitalize()} ({n})\n\n{text} {filler}\n")
        path = root / f"part{n % 3}" / f"notes-{n:02d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(parts), encoding="utf-8")
    return root


async def search_answers(runtime: Any) -> dict[str, Any]:
    out = {}
    for query in QUERIES:
        for mode in ("keyword", "hybrid", "semantic"):
            found = await runtime.documents.search(None, query, k=5, mode=mode)
            out[f"{mode} {query}"] = [
                (h.path, h.heading, h.start_line, h.end_line, round(h.score, 9))
                for h in found.results
            ]
    return out


NOTES = "user:alice:notes"


async def fill_links(runtime: Any, ids: dict[str, str]) -> None:
    """Links of every kind: with reason, metadata and a run id; a supersedes link (which
    closes the older memory's validity); a removed one; one to a memory deleted since; a
    derived_from link to events of a session; another user's."""
    links = runtime.links
    await links.link(ALICE, "related", NOTES, "plan", NOTES, "diary", "same trip", {"w": 1})
    await links.link(ALICE, "supersedes", NOTES, "back", NOTES, "unicode", "newer text")
    gone, _ = await links.link(
        ALICE, "contradicts", NOTES, "diary", "project:website:rules", "style"
    )
    await links.unlink(ALICE, gone.id)
    await links.link(ALICE, "duplicates", "temp:scratch", "mixed", NOTES, "unicode", run_id="r1")
    await runtime.memories.put(ALICE, NOTES, "gone", "again")
    await links.link(ALICE, "related", NOTES, "plan", NOTES, "gone")
    await runtime.memories.delete(ALICE, NOTES, "gone")
    await runtime.store.links.add_session_link(
        f"session:{ids['session']}:facts", "decision", ids["session"], 1, 3, "user:alice"
    )
    await links.link(BOB, "related", "user:bob:notes", "secret", "user:bob:notes", "secret2")


async def fill_with_links(runtime: Any) -> dict[str, str]:
    """``fill``, and links between its memories (``fill_links``)."""
    ids = await fill(runtime)
    await runtime.memories.put(BOB, "user:bob:notes", "secret2", "bob's other")
    await fill_links(runtime, ids)
    return ids


async def link_reads(runtime: Any, ids: dict[str, str]) -> dict[str, Any]:
    """Every read of the filled database, and the links memory_get and memory_history
    show for each memory (as admin), without row ids."""
    out = await reads(runtime, ids)
    versions = await runtime.store.transfer.memory_versions(
        MemoryScope(ADMIN), True, ("", "", 0), 10_000
    )
    for key in sorted({(v.namespace, v.key) for v in versions}):
        shown = await runtime.links.readable_links(ADMIN, *key)
        out[f"links {key}"] = [link.model_dump(exclude={"id"}) for link in shown]
    return out
