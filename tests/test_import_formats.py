"""Importing the formats people come from: the MCP reference memory server's JSONL, mem0
exports (mem0's own get_all and the platform's list), and a .claude/ folder. Samples are in
tests/data/transfer (their shapes are documented in docs/import-export.md)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from acting import Acting
from backends import Raw
from transfer_helpers import ADMIN, ALICE

from abathur_memory.core.principal import Principal
from abathur_memory.errors import InvalidInput, NotFound
from abathur_memory.runtime import Runtime
from abathur_memory.transfer import sources
from abathur_memory.transfer.claude import stored_session_id
from abathur_memory.transfer.report import ImportReport

pytestmark = pytest.mark.anyio

DATA = Path(__file__).parent / "data" / "transfer"


async def _import(
    runtime: Runtime, path: Path, principal: Principal = ALICE, **options: Any
) -> ImportReport:
    return await runtime.transfer.import_path(principal, path, **options)


async def _versions(runtime: Runtime) -> int:
    return (await Raw(runtime.store).fetchone("SELECT count(*) FROM memory_entries"))[0]


def test_the_format_is_told_by_the_first_line(tmp_path):
    assert sources.detect(DATA / "mcp-memory.jsonl") == "mcp-memory"
    assert sources.detect(DATA / "mem0-get-all.json") == "mem0"
    assert sources.detect(DATA / "mem0-platform.json") == "mem0"
    assert sources.detect(DATA / "claude-project") == "claude"
    assert sources.detect(DATA / "claude-project" / ".claude") == "claude"
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    with pytest.raises(InvalidInput, match="cannot tell the format"):
        sources.detect(other)
    with pytest.raises(InvalidInput, match=r"not a \.claude folder"):
        sources.detect(tmp_path)


async def test_mcp_memory_entities_and_relations(runtime, tmp_path):
    report = await _import(runtime, DATA / "mcp-memory.jsonl")
    assert report.ok and report.files[0].verified
    assert report.files[0].kinds["memory"].new == 5
    alice = Acting(runtime, ALICE)
    john = await alice.memories.get("user:alice:mcp-memory", "John_Smith")
    assert john.value == {
        "name": "John_Smith",
        "entityType": "person",
        "observations": ["Speaks fluent Spanish", "Graduated in 2019"],
    }
    assert john.metadata == {"source": "mcp-memory", "type": "entity", "entityType": "person"}
    assert john.created_by == "user:alice"
    works = await alice.memories.get(
        "user:alice:mcp-memory:relations", "John_Smith --works_at--> Anthropic"
    )
    assert works.value == {"from": "John_Smith", "to": "Anthropic", "relationType": "works_at"}
    # Again: nothing new. An entity that gained an observation: a new version of it.
    count = await _versions(runtime)
    again = await _import(runtime, DATA / "mcp-memory.jsonl")
    assert again.files[0].kinds["memory"].present == 5 and await _versions(runtime) == count
    changed = tmp_path / "memory.jsonl"
    changed.write_text(
        (DATA / "mcp-memory.jsonl")
        .read_text()
        .replace('"Makes Claude"]', '"Makes Claude","Based in San Francisco"]')
    )
    report = await _import(runtime, changed)
    assert report.files[0].kinds["memory"].new == 1
    history = await alice.memories.history("user:alice:mcp-memory", "Anthropic")
    assert [len(v.value["observations"]) for v in history] == [1, 2]


async def test_mcp_memory_bad_line_is_named(runtime, tmp_path):
    broken = tmp_path / "memory.jsonl"
    lines = (DATA / "mcp-memory.jsonl").read_text().splitlines()
    lines.insert(2, '{"type":"entity","name":"","entityType":"x","observations":[]}')
    broken.write_text("\n".join(lines))
    count = await _versions(runtime)
    report = await _import(runtime, broken, fmt="mcp-memory")
    assert report.files[0].problems == [f"{broken}:3: bad: name must be a non-empty string"]
    assert not report.files[0].written and await _versions(runtime) == count
    report = await _import(runtime, broken, fmt="mcp-memory", skip_bad=True)
    assert report.files[0].written and await _versions(runtime) == count + 5


async def test_mem0_get_all_keeps_ids_times_and_metadata(runtime):
    report = await _import(runtime, DATA / "mem0-get-all.json", principal=ADMIN)
    assert report.ok and report.files[0].kinds["memory"].new == 3
    admin = Acting(runtime, ADMIN)
    food = await admin.memories.get("user:alice:mem0", "1f3a7c52-8d44-4e0b-9b6f-3c2f1f0a9e11")
    assert food.value == "Is a vegetarian and allergic to nuts"
    assert food.memory_type == "semantic"
    assert food.created_at == "2024-07-26T06:57:00.108Z"  # -07:00 in UTC, to the millisecond
    assert food.updated_at == "2024-07-26T17:02:11.500Z"
    assert food.metadata == {
        "category": "food",
        "source": "mem0",
        "mem0": {
            "id": "1f3a7c52-8d44-4e0b-9b6f-3c2f1f0a9e11",
            "hash": "6c0f3cb2b5a6e3e1b1c2d3e4f5a6b7c8",
            "user_id": "alice",
        },
    }
    trip = await admin.memories.get(
        "user:alice:mem0:run:trip-planning", "5b9d2e10-4f61-47a8-a1c3-7e8f9a0b1c22"
    )
    assert trip.value == "Plans to visit Japan in the spring"
    rule = await admin.memories.get(
        "user:root:mem0:agent:helper", "9c8b7a65-4321-4fed-8cba-987654321000"
    )
    assert rule.memory_type == "procedural"
    assert rule.metadata["mem0"]["role"] == "assistant"


async def test_mem0_platform_list_and_namespace_map(runtime):
    refused = await _import(runtime, DATA / "mem0-platform.json")
    assert refused.files[0].problems == [
        f"{DATA / 'mem0-platform.json'}: item 1: refused: user:bob:mem0: 1 records refused: "
        "other users' namespaces are private"
    ]
    report = await _import(
        runtime, DATA / "mem0-platform.json", namespace_map=["user:bob:mem0=user:alice:from-bob"]
    )
    assert report.ok
    memory = await Acting(runtime, ALICE).memories.get(
        "user:alice:from-bob", "d0c4a1b2-3e4f-5a6b-7c8d-9e0f1a2b3c4d"
    )
    assert memory.value == "Works as a data engineer in Berlin"
    assert "score" not in memory.metadata["mem0"]  # a search's score is not the memory's
    assert memory.metadata["mem0"]["categories"] == ["professional_details"]


async def test_mem0_jsonl_one_memory_per_line(runtime, tmp_path):
    path = tmp_path / "mem0.jsonl"
    path.write_text(
        '{"id": "m1", "memory": "Likes tea", "user_id": "alice"}\n'
        '{"id": "m2", "memory": "Dislikes coffee", "user_id": "alice", "created_at": "nope"}\n'
    )
    report = await _import(runtime, path)
    assert report.files[0].problems[0].startswith(f"{path}:2: bad: 'nope' is not an ISO 8601")
    assert not report.files[0].written


async def test_a_claude_folder(runtime, tmp_path):
    project = tmp_path / "site"
    shutil.copytree(DATA / "claude-project", project)
    report = await _import(runtime, project)
    by_file = {f.file: f for f in report.files}
    # Configuration goes to app: memories, which only an admin may write: that file is
    # refused (and listed); every other file is written.
    assert not by_file[".claude/settings.json"].written
    assert "app:abathur:claude: 1 records refused" in by_file[".claude/settings.json"].problems[0]
    assert all(
        f.written
        for name, f in by_file.items()
        if name not in (".claude/settings.json", ".claude/commands/review.md")
    )
    assert ".claude/settings.local.json" not in by_file
    assert any(
        "skipped 2 files" in n and ".claude/todos/todo.json" in n for n in report.files[0].notes
    )
    alice = Acting(runtime, ALICE)
    guide = await alice.memories.get("project:website:claude", "CLAUDE.md")
    assert guide.value.startswith("# Website")
    facts = await alice.memories.get("project:website:claude", ".claude/context/facts.json")
    assert facts.value == {"release_day": "friday", "owners": ["alice", "carol"]}
    context = await alice.sessions.get(stored_session_id("ctx-2025-01-10"), events_after=0)
    assert context.state == {"step": "review"} and context.status == "terminated"
    assert context.metadata["source_id"] == "ctx-2025-01-10"
    assert [(e.actor, e.created_at) for e in context.events] == [
        ("user", "2025-01-10T09:00:00.000Z"),
        ("assistant", "2025-01-10T09:00:05.000Z"),
    ]
    transcript = await alice.sessions.get("7d1e0c4a-5b6f-4a8e-9c2d-0e1f2a3b4c5d", events_after=0)
    assert [(e.event_type, e.actor) for e in transcript.events] == [
        ("user", "user"),
        ("assistant", "assistant"),
        ("summary", "log"),
    ]
    assert transcript.events[2].created_at == "2025-01-11T10:00:03.250Z"  # the time before
    logs = await alice.sessions.list(limit=10)
    text_log = next(s for s in logs.sessions if s.metadata.get("path") == ".claude/logs/agent.log")
    got = await alice.sessions.get(text_log.id, events_after=0)
    assert [e.content for e in got.events][1] == "2025-01-10T09:01:07Z INFO build finished in 7 s"
    assert got.created_at == "2025-01-10T09:01:00.000Z"
    run = next(s for s in logs.sessions if s.metadata.get("path") == ".claude/logs/run.json")
    steps = await alice.sessions.get(run.id, events_after=0)
    assert [(e.event_type, e.actor) for e in steps.events] == [
        ("step", "planner"),
        ("step", "builder"),
    ]
    # Again: nothing new.
    again = await _import(runtime, project)
    assert all(k.new == 0 for f in again.files for k in f.kinds.values())
    # An admin may write the configuration; the sessions are alice's, not the admin's.
    admin = {f.file: f for f in (await _import(runtime, project, principal=ADMIN)).files}
    assert admin[".claude/settings.json"].written
    assert "exists here for user alice" in admin[".claude/logs/agent.log"].problems[0]
    root = Acting(runtime, ADMIN)
    settings = await root.memories.get("app:abathur:claude", ".claude/settings.json")
    assert settings.memory_type == "procedural" and settings.value["model"] == "claude-sonnet-4-5"
    with pytest.raises(NotFound):
        await root.memories.get("app:abathur:claude", ".claude/settings.local.json")


async def test_a_grown_log_appends_only_its_new_lines(runtime, tmp_path):
    project = tmp_path / "site"
    shutil.copytree(DATA / "claude-project", project)
    await _import(runtime, project)
    log = project / ".claude" / "logs" / "agent.log"
    log.write_text(log.read_text() + "2025-01-10T09:05:00Z INFO deployed\nno time here\n")
    report = {f.file: f for f in (await _import(runtime, project)).files}
    grown = report[".claude/logs/agent.log"]
    assert grown.written and grown.verified
    assert (grown.kinds["event"].new, grown.kinds["event"].present) == (2, 3)
    assert grown.kinds["session"].changed == 1
    sessions = (await Acting(runtime, ALICE).sessions.list(limit=10)).sessions
    session = next(s for s in sessions if s.metadata.get("path") == ".claude/logs/agent.log")
    got = await Acting(runtime, ALICE).sessions.get(session.id, events_after=0)
    assert [e.seq for e in got.events] == [1, 2, 3, 4, 5]
    assert got.last_update_time == "2025-01-10T09:05:00.000Z"
