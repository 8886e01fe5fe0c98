"""Applying the namespace policy where it needs the database (session ownership) and
auditing every denial (queued: a denied call never waits for the write lock)."""

from __future__ import annotations

from typing import Any, NoReturn

from abathur_memory.errors import Forbidden
from abathur_memory.memory.denials import Denial, DenialRecorder
from abathur_memory.memory.namespaces import Access, NamespacePolicy, Principal
from abathur_memory.store.sqlite import driver
from abathur_memory.store.sqlite.database import Database


class AccessGuard:
    def __init__(
        self, db: Database, policy: NamespacePolicy, recorder: DenialRecorder | None = None
    ) -> None:
        self.db = db
        self.policy = policy
        self.recorder = recorder or DenialRecorder(db)

    @property
    def actor(self) -> str:
        return self.policy.principal.actor

    def needs_lookup(self, segments: list[str]) -> bool:
        """True when the decision depends on who owns a session (a database read)."""
        return self.policy.session_id_of(segments) is not None

    def denial(self, segments: list[str], access: Access) -> str | None:
        """The denying rule, decided without the database (not for session namespaces)."""
        return self.policy.rule_for(segments, access)

    def denial_in(self, conn: driver.Connection, segments: list[str], access: Access) -> str | None:
        """The denying rule, decided inside a transaction (looks up session ownership)."""
        session_id = self.policy.session_id_of(segments)
        owns = (
            owns_session(conn, session_id, self.policy.principal)
            if session_id is not None
            else None
        )
        return self.policy.rule_for(segments, access, owns_session=owns)

    async def refuse(
        self, namespace: str, attempted: str, rule: str, key: str | None = None
    ) -> NoReturn:
        """Queue the denial's audit row and raise Forbidden naming the rule."""
        target = namespace if key is None else f"{namespace}/{key}"
        self.recorder.record(
            Denial(self.actor, "memory_denied", attempted, target, rule, namespace, key)
        )
        raise audited(Forbidden(f"{attempted} on {namespace!r} denied: {rule}"))


def audited(exc: Forbidden) -> Forbidden:
    """Mark a denial as already audited (the tool layer audits any other Forbidden)."""
    exc.audited = True  # type: ignore[attr-defined]
    return exc


def owns_session(conn: driver.Connection, session_id: str, principal: Principal) -> bool:
    row = conn.execute(
        "SELECT user_id, app_name FROM sessions WHERE id = ?", (session_id,)
    ).fetchone()
    return row is not None and principal.may_use_session(row["user_id"], row["app_name"])


def readable_sql(
    principal: Principal, prefix: str | None, column: str = "k.namespace"
) -> tuple[str, list[Any]]:
    """A condition on ``column`` (a namespace) that holds exactly for what the principal
    may read, optionally within ``prefix`` (on ':' boundaries). Positional parameters."""
    clauses: list[str] = []
    params: list[Any] = []

    def subtree(root: str) -> None:
        clauses.append(f"({column} = ? OR ({column} > ? AND {column} < ?))")
        params.extend([root, root + ":", root + ";"])

    if principal.admin:
        clauses.append("1")
    else:
        subtree(f"user:{principal.user}")
        subtree(f"app:{principal.app}")
        if principal.project:
            subtree(f"project:{principal.project}")
        clauses.append(f"({column} > 'temp:' AND {column} < 'temp;')")
        clauses.append(
            f"({column} > 'session:' AND {column} < 'session;' AND EXISTS ("
            " SELECT 1 FROM sessions AS s WHERE s.user_id = ? AND s.app_name = ?"
            f" AND ({column} = 'session:' || s.id"
            f"      OR substr({column}, 1, length(s.id) + 9) = 'session:' || s.id || ':')))"
        )
        params.extend([principal.user, principal.app])
    condition = "(" + " OR ".join(clauses) + ")"
    if prefix is not None:
        if prefix in ("app", "user", "project", "session", "temp"):
            condition += f" AND {column} > ? AND {column} < ?"
            params.extend([prefix + ":", prefix + ";"])
        else:
            condition += f" AND ({column} = ? OR ({column} > ? AND {column} < ?))"
            params.extend([prefix, prefix + ":", prefix + ";"])
    return condition, params
