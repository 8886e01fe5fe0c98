"""Applying the namespace policy for each call's principal, and auditing every denial
(queued: a denied call never waits for the write lock)."""

from __future__ import annotations

from typing import NoReturn

from abathur_memory.core.principal import Principal
from abathur_memory.core.records import Denial
from abathur_memory.errors import Forbidden
from abathur_memory.memory.denials import DenialRecorder
from abathur_memory.memory.namespaces import Access, rule_for, session_id_of
from abathur_memory.store.protocols import SessionStore


class AccessGuard:
    def __init__(self, sessions: SessionStore, recorder: DenialRecorder) -> None:
        self.sessions = sessions
        self.recorder = recorder

    async def owns_session(self, principal: Principal, session_id: str) -> bool:
        owner = await self.sessions.owner(session_id)  # owners never change: no race
        return owner is not None and principal.may_use_session(*owner)

    async def rule(self, principal: Principal, segments: list[str], access: Access) -> str | None:
        """The rule denying ``access``, or None; a session namespace costs one read."""
        session_id = session_id_of(principal, segments)
        owns = None if session_id is None else await self.owns_session(principal, session_id)
        return rule_for(principal, segments, access, owns_session=owns)

    async def check(
        self,
        principal: Principal,
        namespace: str,
        segments: list[str],
        access: Access,
        attempted: str,
        key: str | None = None,
    ) -> None:
        rule = await self.rule(principal, segments, access)
        if rule is not None:
            self.refuse(principal, namespace, attempted, rule, key)

    def refuse(
        self,
        principal: Principal,
        namespace: str,
        attempted: str,
        rule: str,
        key: str | None = None,
    ) -> NoReturn:
        """Queue the denial's audit row and raise Forbidden naming the rule."""
        target = namespace if key is None else f"{namespace}/{key}"
        self.recorder.record(
            Denial(principal.actor, "memory_denied", attempted, target, rule, namespace, key)
        )
        raise audited(Forbidden(f"{attempted} on {namespace!r} denied: {rule}"))


def audited(exc: Forbidden) -> Forbidden:
    """Mark a denial as already audited (the tool layer audits any other Forbidden)."""
    exc.audited = True  # type: ignore[attr-defined]
    return exc
