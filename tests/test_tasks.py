"""Tasks: creation rules, claiming by priority and dependencies, timeouts, retries."""

from __future__ import annotations

import asyncio

import pytest

from abathur_memory.errors import Conflict, InvalidInput, NotFound

MISSING = "00000000-0000-4000-8000-000000000000"  # a well-formed id that names nothing

pytestmark = pytest.mark.anyio


async def test_create_and_get(services):
    t = await services.tasks.create("summarise the notes", priority=7, input={"doc": 1})
    assert (t.status, t.priority, t.input, t.created_by) == ("pending", 7, {"doc": 1}, "user:alice")
    assert (await services.tasks.get(t.id)).prompt == "summarise the notes"


async def test_claim_takes_highest_priority_then_oldest(services):
    tasks = services.tasks
    low = await tasks.create("low", priority=1)
    high_old = await tasks.create("high old", priority=9)
    await tasks.create("high new", priority=9)
    first = await tasks.claim()
    assert (
        first.id == high_old.id and first.status == "running" and first.claimed_by == "user:alice"
    )
    assert (await tasks.claim()).prompt == "high new"
    assert (await tasks.claim()).id == low.id
    assert await tasks.claim() is None


async def test_dependencies_gate_claims(services):
    tasks = services.tasks
    first = await tasks.create("first", priority=1)
    second = await tasks.create("second", priority=9, dependencies=[first.id])
    claimed = await tasks.claim()
    assert claimed.id == first.id  # the high-priority one waits for its dependency
    assert await tasks.claim() is None
    await tasks.update(first.id, status="completed", result={"ok": True})
    assert (await tasks.claim()).id == second.id


async def test_claim_filters_by_agent_type(services):
    await services.tasks.create("code", agent_type="coder")
    review = await services.tasks.create("review", agent_type="reviewer")
    assert (await services.tasks.claim(agent_type="reviewer")).id == review.id
    assert await services.tasks.claim(agent_type="reviewer") is None


async def test_two_claimers_never_get_the_same_task(services):
    for i in range(30):
        await services.tasks.create(f"t{i}")
    claims = await asyncio.gather(*(services.tasks.claim(claimant=f"w{i}") for i in range(40)))
    got = [c.id for c in claims if c is not None]
    assert len(got) == 30 and len(set(got)) == 30


async def test_timed_out_task_is_reclaimable_and_retries_are_counted(services, raw):
    t = await services.tasks.create("slow", timeout_seconds=1, max_retries=1)
    await services.tasks.claim()
    # Pretend the worker went quiet long ago.
    await raw.execute_write(
        "UPDATE tasks SET last_updated_at = '2000-01-01 00:00:00.000' WHERE id = ?", (t.id,)
    )
    again = await services.tasks.claim()
    assert again.id == t.id and again.retry_count == 1
    await raw.execute_write(
        "UPDATE tasks SET last_updated_at = '2000-01-01 00:00:00.000' WHERE id = ?", (t.id,)
    )
    assert await services.tasks.claim() is None  # retries used up
    final = await services.tasks.get(t.id)
    assert (final.status, final.retry_count) == ("failed", 2)
    assert "timed out" in final.error


async def test_a_heartbeat_update_keeps_a_task_alive(services, raw):
    t = await services.tasks.create("busy", timeout_seconds=3600)
    await services.tasks.claim()
    beat = await services.tasks.update(t.id)
    assert beat.status == "running"
    assert await services.tasks.claim() is None


async def test_update_transitions(services):
    tasks = services.tasks
    t = await tasks.create("x", max_retries=1)
    with pytest.raises(Conflict, match="cannot go from pending to completed"):
        await tasks.update(t.id, status="completed")
    await tasks.claim()
    failed = await tasks.update(t.id, status="failed", error="boom")
    assert (failed.status, failed.error) == ("failed", "boom") and failed.completed_at
    retried = await tasks.update(t.id, status="pending")
    assert (retried.status, retried.retry_count) == ("pending", 1)
    await tasks.claim()
    await tasks.update(t.id, status="failed")
    with pytest.raises(Conflict, match="used all 1 retries"):
        await tasks.update(t.id, status="pending")
    await tasks.update(t.id, status="cancelled")
    with pytest.raises(Conflict, match="final"):
        await tasks.update(t.id, status="pending")


async def test_list_filters_and_pages(services):
    made = [
        await services.tasks.create(f"t{i}", agent_type="a" if i % 2 else "b") for i in range(5)
    ]
    page = await services.tasks.list(limit=2)
    seen = [t.id for t in page.tasks]
    while page.next_cursor:
        page = await services.tasks.list(limit=2, cursor=page.next_cursor)
        seen += [t.id for t in page.tasks]
    assert seen == [t.id for t in reversed(made)]
    assert {t.agent_type for t in (await services.tasks.list(agent_type="a")).tasks} == {"a"}


async def test_tasks_are_private_to_their_creator(services, as_principal):
    mine = await services.tasks.create("mine")
    bob = as_principal(user="bob")
    with pytest.raises(NotFound):
        await bob.tasks.get(mine.id)
    assert await bob.tasks.claim() is None
    assert (await bob.tasks.list()).tasks == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"prompt": ""}, InvalidInput, "prompt"),
        ({"prompt": "x", "priority": 11}, InvalidInput, "priority"),
        ({"prompt": "x", "priority": True}, InvalidInput, "priority"),
        ({"prompt": "x", "input": [1]}, InvalidInput, "input must be a JSON object"),
        ({"prompt": "x", "dependencies": [MISSING]}, NotFound, "no dependency"),
        ({"prompt": "x", "dependencies": ["ghost"]}, InvalidInput, "a dependency must be an id"),
        ({"prompt": "x", "dependencies": [MISSING, MISSING]}, InvalidInput, "twice"),
        ({"prompt": "x", "session_id": MISSING}, NotFound, "no session"),
        ({"prompt": "x", "session_id": "ghost"}, InvalidInput, "session_id must be an id"),
        ({"prompt": "x", "parent_task_id": MISSING}, NotFound, "no parent task"),
        ({"prompt": "x", "parent_task_id": "ghost"}, InvalidInput, "parent_task_id must be"),
        ({"prompt": "x", "timeout_seconds": 0}, InvalidInput, "timeout_seconds"),
        ({"prompt": "x", "agent_type": ""}, InvalidInput, "agent_type"),
    ],
)
async def test_bad_input_creates_nothing(services, raw, kwargs, error, message):
    with pytest.raises(error, match=message):
        await services.tasks.create(**kwargs)
    assert (await raw.fetchone("SELECT count(*) FROM tasks"))[0] == 0


async def test_bad_updates_change_nothing(services, raw):
    t = await services.tasks.create("x")
    before = dict(await raw.fetchone("SELECT * FROM tasks WHERE id = ?", (t.id,)))
    with pytest.raises(InvalidInput, match="status"):
        await services.tasks.update(t.id, status="exploded")
    with pytest.raises(InvalidInput, match="NaN"):
        await services.tasks.update(t.id, result=float("nan"))
    with pytest.raises(NotFound):
        await services.tasks.update(MISSING, status="cancelled")
    with pytest.raises(InvalidInput, match="task_id must be an id as task_create returns it"):
        await services.tasks.update("ghost", status="cancelled")
    assert dict(await raw.fetchone("SELECT * FROM tasks WHERE id = ?", (t.id,))) == before
