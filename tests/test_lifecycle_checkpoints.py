"""Lifecycle maintenance and checkpoints."""

from __future__ import annotations

import pytest

from abathur_memory.errors import InvalidInput, NotFound

MISSING = "00000000-0000-4000-8000-000000000000"  # a well-formed id that names nothing

pytestmark = pytest.mark.anyio

OLD = "2001-01-01 00:00:00.000"


async def test_maintenance_expires_old_episodic_memories_and_archives_old_sessions(services, raw):
    m = services.memories
    await m.put("user:alice:log", "old", "yesterday's chat", memory_type="episodic")
    await m.put("user:alice:log", "fresh", "today's chat", memory_type="episodic")
    await m.put("user:alice:facts", "old-fact", "kept", memory_type="semantic")
    await m.put("user:alice:log", "renewed", "v1", memory_type="episodic")
    await raw.execute_write(
        "UPDATE memory_entries SET updated_at = ?, created_at = ? WHERE key IN ('old', 'old-fact')",
        (OLD, OLD),
    )
    renewed = "UPDATE memory_entries SET updated_at = ? WHERE key = 'renewed'"
    await raw.execute_write(renewed, (OLD,))
    await m.put("user:alice:log", "renewed", "v2", memory_type="episodic")  # new version: fresh
    s_old = await services.sessions.create()
    s_new = await services.sessions.create()
    for s in (s_old, s_new):
        await services.sessions.set_status(s.id, "terminated")
    await raw.execute_write("UPDATE sessions SET terminated_at = ? WHERE id = ?", (OLD, s_old.id))

    plan = await services.lifecycle.run(dry_run=True)
    expired = [e.model_dump() for e in plan.expired_memories]
    assert expired == [{"namespace": "user:alice:log", "key": "old", "version": 1}]
    assert plan.archived_sessions == [s_old.id]
    await m.get("user:alice:log", "old")  # a dry run changes nothing

    done = await services.lifecycle.run()
    assert done.expired_memories == plan.expired_memories
    assert done.archived_sessions == [s_old.id]
    with pytest.raises(NotFound):
        await m.get("user:alice:log", "old")
    for key in ("fresh", "renewed"):
        await m.get("user:alice:log", key)
    await m.get("user:alice:facts", "old-fact")
    assert (await services.sessions.get(s_old.id)).status == "archived"
    assert (await services.sessions.get(s_new.id)).status == "terminated"
    audit = await raw.fetchone(
        "SELECT actor, memory_operation_type, action_type FROM audit"
        " WHERE action_type = 'memory_expire'"
    )
    assert tuple(audit) == ("system:lifecycle", "delete", "memory_expire")
    again = await services.lifecycle.run()
    assert again.expired_memories == [] and again.archived_sessions == []


async def test_the_policy_is_data(services, as_principal):
    root = as_principal(user="root", admin=True)
    await root.memories.put(
        "app:abathur:config", "memory_lifecycle_policies", {"episodic_ttl_days": 0.0001}
    )
    policy = await services.lifecycle.policy()
    assert policy["episodic_ttl_days"] == 0.0001 and policy["archival_after_days"] == 365
    await root.memories.put(
        "app:abathur:config", "memory_lifecycle_policies", {"episodic_ttl_days": "soon"}
    )
    with pytest.raises(InvalidInput, match="positive number"):
        await services.lifecycle.run()


async def test_checkpoints_save_and_load(services):
    cp = services.checkpoints
    task = await services.tasks.create("loop")
    await cp.save(task.id, 0, {"step": "start"})
    await cp.save(task.id, 1, {"step": "middle"})
    await cp.save(task.id, 1, {"step": "middle, retried"})
    assert (await cp.load(task.id)).state == {"step": "middle, retried"}
    assert (await cp.load(task.id, 0)).state == {"step": "start"}
    assert await cp.iterations(task.id) == [0, 1]
    with pytest.raises(NotFound):
        await cp.load(task.id, 7)
    with pytest.raises(NotFound):
        await cp.save(MISSING, 0, {})
    with pytest.raises(InvalidInput, match="task_id must be an id as task_create returns it"):
        await cp.save("ghost", 0, {})
    with pytest.raises(InvalidInput):
        await cp.save(task.id, -1, {})
    with pytest.raises(NotFound, match="session"):
        await cp.save(task.id, 2, {}, session_id=MISSING)
    with pytest.raises(InvalidInput, match="session_id must be an id"):
        await cp.save(task.id, 2, {}, session_id="no-such-session")
    assert await cp.iterations(task.id) == [0, 1]


async def test_checkpoints_follow_the_task_ownership_rule(services, as_principal):
    task = await services.tasks.create("mine")
    await services.checkpoints.save(task.id, 0, {"step": 1})
    bob = as_principal(user="bob")
    with pytest.raises(NotFound, match="no task"):
        await bob.checkpoints.save(task.id, 1, {"step": "stolen"})
    with pytest.raises(NotFound, match="no task"):
        await bob.checkpoints.load(task.id)
    await bob.recorder.flush()
    rows = await services.raw.fetchall(
        "SELECT actor, action_type FROM audit WHERE result = 'denied' ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [("user:bob", "task_denied")]
    assert (await services.checkpoints.load(task.id)).state == {"step": 1}
