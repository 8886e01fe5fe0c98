"""The read rule is decided once (core/read_rule.py) and rendered by each store: the rule
agrees with the guard's one-namespace answers (memory/namespaces.py), and each backend's
rendering keeps exactly what the rule admits (issue 18, part 5)."""

from __future__ import annotations

import pytest

from abathur_memory.core.principal import SCOPES, Principal
from abathur_memory.core.read_rule import read_rule
from abathur_memory.memory.namespaces import Access, parse, rule_for

pytestmark = pytest.mark.anyio

PRINCIPALS = (
    Principal(user="alice", app="abathur", project="website"),
    Principal(user="alice", app="abathur"),  # no project
    Principal(user="bob", app="other", project="website"),
    Principal(user="root", app="abathur", admin=True),
)
NAMESPACES = (
    "user:alice",
    "user:alice:notes",
    "user:alice:notes:deep",
    "user:alicex",  # a longer id is another user, not a child
    "user:bob:x",
    "app:abathur",
    "app:abathur:rules",
    "app:other:rules",
    "project:website",
    "project:website:plan",
    "project:websites:plan",
    "temp:scratch",
    "temp:scratch:more",
    "session:s1",
    "session:s1:notes",
    "session:s2:notes",
    "session:s10:notes",
)
OWNED = {"alice": frozenset({"s1"}), "bob": frozenset({"s2"}), "root": frozenset()}
PREFIXES = (None, "user", "user:alice", "session", "session:s1", "temp", "app:abathur")


def _under(namespace: str, prefix: str | None) -> bool:
    if prefix is None:
        return True
    if prefix in SCOPES:
        return namespace.startswith(prefix + ":")
    return namespace == prefix or namespace.startswith(prefix + ":")


@pytest.mark.parametrize("principal", PRINCIPALS, ids=lambda p: f"{p.user}-{p.project}")
def test_the_rule_admits_what_the_guard_lets_read(principal):
    owned = OWNED[principal.user]
    for prefix in PREFIXES:
        rule = read_rule(principal, prefix)
        for namespace in NAMESPACES:
            segments = parse(namespace)
            session = segments[1] if segments[0] == "session" else None
            guard = rule_for(principal, segments, Access.READ, owns_session=session in owned)
            expected = guard is None and _under(namespace, prefix)
            assert rule.admits(namespace, owned) == expected, (principal, prefix, namespace)


async def test_each_backend_renders_exactly_what_the_rule_admits(runtime, raw):
    """Memories in every namespace above (their sessions made real: alice owns one, bob
    another), stored by an admin; each backend's rendering of each principal's rule, with
    and without a prefix, keeps exactly the namespaces the rule admits."""
    if raw.postgres:
        from abathur_memory.store.postgres.readable import render
    else:
        from abathur_memory.store.sqlite.readable import render
    admin = Principal(user="root", app="abathur", admin=True)
    alice = await runtime.sessions.create(PRINCIPALS[0])
    bob = await runtime.sessions.create(PRINCIPALS[2])
    real = {"s1": alice.id, "s2": bob.id, "s10": alice.id + "0"}  # s10: not a child of s1
    namespaces = [
        ":".join(real.get(part, part) for part in namespace.split(":")) for namespace in NAMESPACES
    ]
    owned = {"alice": frozenset({alice.id}), "bob": frozenset({bob.id}), "root": frozenset()}
    for namespace in namespaces:
        await runtime.memories.put(admin, namespace, "k", f"a memory in {namespace}")
    # with the seeded app memories
    stored = {row[0] for row in await raw.fetchall("SELECT DISTINCT namespace FROM memory_entries")}
    assert set(namespaces) <= stored
    for principal in PRINCIPALS:
        for prefix in PREFIXES:
            prefix = ":".join(real.get(p, p) for p in prefix.split(":")) if prefix else None
            rule = read_rule(principal, prefix)
            condition, params = render(rule, "k.namespace")
            rows = await raw.fetchall(
                "SELECT DISTINCT k.namespace FROM memory_entries AS k WHERE "
                + condition.replace("%s", "?"),
                params,
            )
            wanted = {ns for ns in stored if rule.admits(ns, owned[principal.user])}
            assert {row[0] for row in rows} == wanted, (principal, prefix)
