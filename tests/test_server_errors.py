"""Bad input for every tool: the specific error, as a tool error, and no change in the database."""

from __future__ import annotations

import asyncio
import re

import pytest
from mcp_helpers import connected, snapshot, text_of, wait_for_audit

pytestmark = pytest.mark.anyio

NS = "user:alice:prefs"
BIG = "x" * (1024 * 1024 + 10)
MISSING = "00000000-0000-4000-8000-000000000000"  # well formed, names nothing: not_found


async def _prepared(client):
    """A memory at version 2, a session with one event, a terminated session, a task."""
    for value in ("v1", "v2"):
        await client.call_tool("memory_put", {"namespace": NS, "key": "k", "value": value})
    s = (await client.call_tool("session_create", {})).structured_content
    await client.call_tool(
        "session_append", {"session_id": s["id"], "event_type": "m", "actor": "u", "content": 1}
    )
    done = (await client.call_tool("session_create", {})).structured_content
    await client.call_tool("session_set_status", {"session_id": done["id"], "status": "terminated"})
    t = (await client.call_tool("task_create", {"prompt": "p"})).structured_content
    return {"session": s["id"], "terminated": done["id"], "task": t["id"]}


# An id that is not a UUID cannot name a session or a task: invalid input, on every tool that
# takes one, never not_found.
SESSION_ID = "invalid_input: session_id must be an id as session_create returns it"
TASK_ID = "invalid_input: task_id must be an id as task_create returns it"
MALFORMED_IDS = [
    (tool, {**arguments, key: bad}, expected, False)
    for bad in ("ghost", "{session}x", "x{task}", "../etc/passwd")
    for tool, arguments, key, expected in (
        ("session_get", {}, "session_id", SESSION_ID),
        (
            "session_append",
            {"event_type": "m", "actor": "u", "content": 1},
            "session_id",
            SESSION_ID,
        ),
        ("session_update_state", {"state": {}}, "session_id", SESSION_ID),
        ("session_set_status", {"status": "paused"}, "session_id", SESSION_ID),
        ("task_get", {}, "task_id", TASK_ID),
        ("task_update", {"status": "cancelled"}, "task_id", TASK_ID),
        ("checkpoint_save", {"iteration": 0, "state": 1}, "task_id", TASK_ID),
        ("checkpoint_get", {}, "task_id", TASK_ID),
        ("task_create", {"prompt": "p"}, "session_id", SESSION_ID),
        ("task_create", {"prompt": "p"}, "parent_task_id", "invalid_input: parent_task_id must"),
        ("task_list", {}, "session_id", SESSION_ID),
    )
] + [
    (
        "task_create",
        {"prompt": "p", "dependencies": ["{task}", "ghost"]},
        "invalid_input: a dependency must be an id as task_create returns it",
        False,
    ),
]

# (tool, arguments (ids filled in from _prepared), expected text, denied: a denial is audited)
CASES = [
    # memory_put
    ("memory_put", {"namespace": NS, "key": "k"}, "Field required", False),
    (
        "memory_put",
        {"namespace": NS, "key": "k", "value": 1, "colour": "red"},
        "Extra inputs are not permitted",
        False,
    ),
    ("memory_put", {"namespace": NS, "key": 5, "value": 1}, "valid string", False),
    ("memory_put", {"namespace": NS, "key": "k", "value": BIG}, "invalid_input: value is", False),
    ("memory_put", {"namespace": "", "key": "k", "value": 1}, "at least 3 characters", False),
    (
        "memory_put",
        {"namespace": "private:alice", "key": "k", "value": 1},
        "invalid_input: namespace 'private:alice' must start with one of",
        False,
    ),
    ("memory_put", {"namespace": "user:alice::x", "key": "k", "value": 1}, "empty segment", False),
    (
        "memory_put",
        {"namespace": "user:bob:prefs", "key": "k", "value": 1},
        "forbidden: write on 'user:bob:prefs' denied: other users' namespaces are private",
        True,
    ),
    (
        "memory_put",
        {"namespace": "app:abathur:config", "key": "k", "value": 1},
        "forbidden: write on 'app:abathur:config' denied: app namespaces are read-only",
        True,
    ),
    (
        "memory_put",
        {"namespace": NS, "key": "k", "value": 3, "expected_version": 1},
        "conflict: user:alice:prefs/k is at version 2, not 1",
        False,
    ),
    (
        "memory_put",
        {"namespace": NS, "key": "k", "value": 3, "memory_type": "dreamy"},
        "Input should be 'semantic', 'episodic' or 'procedural'",
        False,
    ),
    (
        "memory_put",
        {"namespace": NS, "key": "k", "value": 3, "metadata": "{not json"},
        "valid dictionary",
        False,
    ),
    (
        "memory_put",
        {"namespace": NS, "key": "k", "value": 3, "expected_version": -1},
        "greater than or equal to 0",
        False,
    ),
    # memory_get / history / list / delete / restore
    ("memory_get", {"namespace": NS}, "Field required", False),
    (
        "memory_get",
        {"namespace": NS, "key": "nope"},
        "not_found: no memory user:alice:prefs/nope",
        False,
    ),
    (
        "memory_get",
        {"namespace": NS, "key": "k", "version": 0},
        "greater than or equal to 1",
        False,
    ),
    ("memory_get", {"namespace": NS, "key": "k", "as_of": "last tuesday"}, "ISO 8601", False),
    (
        "memory_get",
        {"namespace": "project:other:x", "key": "k"},
        "forbidden: read on 'project:other:x' denied",
        True,
    ),
    ("memory_history", {"namespace": NS, "key": "nope"}, "not_found", False),
    ("memory_history", {"namespace": NS, "key": "k", "version": 1}, "Extra inputs", False),
    ("memory_list", {"prefix": "user:alice", "limit": 0}, "greater than or equal to 1", False),
    ("memory_list", {"prefix": "user:alice", "limit": "many"}, "valid integer", False),
    ("memory_list", {"prefix": "user:alice", "cursor": "bogus"}, "invalid_input: cursor", False),
    ("memory_list", {"prefix": "user"}, "forbidden", True),
    ("memory_delete", {"namespace": NS, "key": "nope"}, "not_found: no live memory", False),
    (
        "memory_delete",
        {"namespace": NS, "key": "k", "expected_version": 1},
        "conflict: user:alice:prefs/k is at version 2, not 1",
        False,
    ),
    ("memory_delete", {"namespace": "user:bob:x", "key": "k"}, "forbidden", True),
    (
        "memory_restore",
        {"namespace": NS, "key": "k"},
        "conflict: user:alice:prefs/k is not deleted",
        False,
    ),
    # sessions
    ("session_create", {"state": [1, 2]}, "valid dictionary", False),
    ("session_create", {"user_id": "bob"}, "forbidden: this server acts for user 'alice'", True),
    ("session_create", {"state": {"a": 1}, "extra": True}, "Extra inputs", False),
    ("session_get", {"session_id": MISSING}, f"not_found: no session '{MISSING}'", False),
    ("session_get", {"session_id": "{session}", "events_limit": 5000}, "less than or equal", False),
    (
        "session_append",
        {"session_id": "{session}", "event_type": "m", "actor": "u"},
        "Field required",
        False,
    ),
    (
        "session_append",
        {
            "session_id": "{session}",
            "event_type": "m",
            "actor": "u",
            "content": 1,
            "expected_seq": 0,
        },
        "conflict: session {session} is at seq 1, not 0",
        False,
    ),
    (
        "session_append",
        {"session_id": "{terminated}", "event_type": "m", "actor": "u", "content": 1},
        "conflict: session {terminated} is terminated",
        False,
    ),
    (
        "session_append",
        {
            "session_id": "{session}",
            "event_type": "m",
            "actor": "u",
            "content": 1,
            "state_delta": "oops",
        },
        "valid dictionary",
        False,
    ),
    ("session_update_state", {"session_id": MISSING, "state": {}}, "not_found", False),
    (
        "session_set_status",
        {"session_id": "{session}", "status": "asleep"},
        "Input should be 'created', 'active', 'paused', 'terminated' or 'archived'",
        False,
    ),
    (
        "session_set_status",
        {"session_id": "{session}", "status": "created"},
        "conflict: session {session} cannot go from active to created",
        False,
    ),
    (
        "session_set_status",
        {"session_id": "{terminated}", "status": "active"},
        "cannot go from terminated to active",
        False,
    ),
    ("session_list", {"status": "lost"}, "Input should be", False),
    ("session_list", {"user_id": "bob"}, "forbidden: sessions of user 'bob' are private", True),
    # tasks
    ("task_create", {}, "Field required", False),
    ("task_create", {"prompt": ""}, "at least 1 character", False),
    ("task_create", {"prompt": "p", "priority": 11}, "less than or equal to 10", False),
    (
        "task_create",
        {"prompt": "p", "dependencies": [MISSING]},
        f"not_found: no dependency '{MISSING}'",
        False,
    ),
    (
        "task_create",
        {"prompt": "p", "session_id": MISSING},
        f"not_found: no session '{MISSING}'",
        False,
    ),
    ("task_create", {"prompt": "p", "input": "not an object"}, "valid dictionary", False),
    ("task_get", {"task_id": MISSING}, f"not_found: no task '{MISSING}'", False),
    (
        "task_update",
        {"task_id": "{task}", "status": "completed"},
        "conflict: task {task} cannot go from pending to completed",
        False,
    ),
    ("task_update", {"task_id": "{task}", "status": "exploded"}, "Input should be", False),
    ("task_update", {"task_id": MISSING, "status": "cancelled"}, "not_found", False),
    ("task_list", {"limit": 1000}, "less than or equal to 200", False),
    ("task_claim", {"agent_type": ""}, "invalid_input: agent_type", False),
    ("task_claim", {"agent": "x"}, "Extra inputs", False),
    ("checkpoint_get", {"task_id": "{task}"}, "not_found: task '{task}' has no checkpoint", False),
    (
        "checkpoint_get",
        {"task_id": "{task}", "iteration": 3},
        "not_found: task '{task}' has no checkpoint at iteration 3",
        False,
    ),
    ("checkpoint_get", {"task_id": MISSING}, f"not_found: no task '{MISSING}'", False),
    *MALFORMED_IDS,
]


def _filled(value, ids):
    """``value`` with ``{session}``, ``{task}``, ... replaced by the prepared ids."""
    if isinstance(value, str):
        for name, filled in ids.items():
            value = value.replace(f"{{{name}}}", filled)
        return value
    if isinstance(value, list):
        return [_filled(item, ids) for item in value]
    return value


@pytest.mark.parametrize(
    ("tool", "arguments", "expected", "denied"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
async def test_bad_input(any_db_path, tool, arguments, expected, denied):
    async with connected(any_db_path) as client:
        ids = await _prepared(client)
        arguments = {k: _filled(v, ids) for k, v in arguments.items()}
        before = snapshot(any_db_path)
        result = await client.call_tool(tool, arguments)
        if denied:  # the audit row is written just after the answer, off the caller's path
            await wait_for_audit(any_db_path, int(before["audit"]) + 1)
        else:
            await asyncio.sleep(0.2)  # time for a wrongly queued audit row to show
        after = snapshot(any_db_path)
    message = text_of(result)
    assert result.is_error, message
    assert expected.format(**ids) in message
    assert "Traceback" not in message
    # One error contract: the kind first, argument errors included, no pydantic internals.
    kinds = "invalid_input|not_found|conflict|forbidden|unavailable|read_only"
    assert re.match(rf"^({kinds}): ", message), message
    for leak in ("Error executing tool", "input_value", "pydantic", "errors.pydantic.dev"):
        assert leak not in message, message
    audited = int(after.pop("audit")) - int(before.pop("audit"))
    assert after == before, "the database changed"
    assert audited == (1 if denied else 0)
