"""What a principal may read, as one value: the read side of the namespace policy
(memory/namespaces.py decides one namespace at a time; a search or a listing needs it for
every namespace at once), which each store renders as one SQL condition on a namespace
column (store/sqlite/readable.py, store/postgres/readable.py). Deciding it here, once, keeps
the two backends' listings and the guard's answers the same."""

from __future__ import annotations

from dataclasses import dataclass

from abathur_memory.core.principal import SCOPES, Principal


@dataclass(frozen=True)
class ReadRule:
    everything: bool = False  # an admin
    subtrees: tuple[str, ...] = ()  # each namespace here, and every one under it
    scopes: tuple[str, ...] = ()  # every namespace of these scopes (not the bare scope)
    # (user, app): the namespaces of the sessions they own (session:<id> and under it)
    sessions_of: tuple[str, str] | None = None
    within: str | None = None  # a prefix: this namespace and those under it
    within_scope: str | None = None  # a bare scope prefix: every namespace of that scope

    def admits(self, namespace: str, owned_sessions: frozenset[str] = frozenset()) -> bool:
        """The rule evaluated in Python (what the rendered SQL keeps): for the tests that
        hold it to the guard, and the stores' renderings to it."""
        if self.within is not None and not _under(namespace, self.within):
            return False
        if self.within_scope is not None and not namespace.startswith(self.within_scope + ":"):
            return False
        if self.everything:
            return True
        if any(_under(namespace, root) for root in self.subtrees):
            return True
        if any(namespace.startswith(scope + ":") for scope in self.scopes):
            return True
        if self.sessions_of is not None and namespace.startswith("session:"):
            return any(_under(namespace, f"session:{sid}") for sid in owned_sessions)
        return False


def _under(namespace: str, root: str) -> bool:
    return namespace == root or namespace.startswith(root + ":")


def read_rule(principal: Principal, prefix: str | None = None) -> ReadRule:
    """What ``principal`` may read (its own user, app and project subtrees, every ``temp``
    namespace, the sessions it owns; everything for an admin), optionally within
    ``prefix`` (a namespace, or a bare scope)."""
    within = None if prefix is None or prefix in SCOPES else prefix
    within_scope = prefix if prefix in SCOPES else None
    if principal.admin:
        return ReadRule(everything=True, within=within, within_scope=within_scope)
    subtrees = [f"user:{principal.user}", f"app:{principal.app}"]
    if principal.project:
        subtrees.append(f"project:{principal.project}")
    return ReadRule(
        subtrees=tuple(subtrees),
        scopes=("temp",),
        sessions_of=(principal.user, principal.app),
        within=within,
        within_scope=within_scope,
    )
