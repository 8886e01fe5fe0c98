"""Looking at what is stored, for the console: every read checked against the same rules as
the tools (the namespace policy, session and task ownership, root visibility), and the
console's writes (a version restored, a token revoked) allowed and audited as the tools'.

Nothing here holds SQL: the stores answer, this decides who may see which.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from abathur_memory.core.browse import AuditQuery, AuditRecord, DocumentFile, NamespaceCount
from abathur_memory.core.merge_patch import merge_patch
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import Denial, MemoryEntry, PutResult, TokenInfo
from abathur_memory.errors import Forbidden, InvalidInput, NotFound
from abathur_memory.memory.access import audited
from abathur_memory.memory.denials import DenialRecorder
from abathur_memory.memory.memories import MemoryService
from abathur_memory.memory.namespaces import validate_prefix
from abathur_memory.memory.sessions import SessionService
from abathur_memory.memory.tokens import TokenService
from abathur_memory.store.protocols import AuditStore, DocumentStore, MemoryStore, SessionStore

MAX_PAGE = 200
ADMIN_ONLY = "only an admin may do this"


@dataclass(frozen=True)
class VersionStep:
    """One version of a memory beside the one before it: the timeline's entries."""

    entry: MemoryEntry
    diff: list[str]  # unified diff of the pretty JSON value (and type/metadata), from before


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _shown(entry: MemoryEntry) -> list[str]:
    lines = pretty(entry.value).splitlines()
    lines.append(f"# memory_type: {entry.memory_type}")
    if entry.metadata:
        lines.append(f"# metadata: {json.dumps(entry.metadata, sort_keys=True)}")
    if entry.is_deleted:
        lines.append("# deleted")
    return lines


def timeline(versions: list[MemoryEntry]) -> list[VersionStep]:
    """The versions newest first, each with its diff from the previous one."""
    ordered = sorted(versions, key=lambda e: e.version)
    steps = []
    before: list[str] = []
    for entry in ordered:
        now = _shown(entry)
        diff = list(
            difflib.unified_diff(
                before, now, f"v{entry.version - 1}", f"v{entry.version}", lineterm="", n=2
            )
        )
        steps.append(VersionStep(entry, diff))
        before = now
    return list(reversed(steps))


def as_of(versions: list[MemoryEntry], moment: str) -> MemoryEntry | None:
    """The version that was current at ``moment`` (ISO 8601), or None before the first."""
    found = None
    for entry in sorted(versions, key=lambda e: e.version):
        if entry.updated_at <= moment:
            found = entry
    return found


def _limit(limit: int) -> int:
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    return limit


class BrowseService:
    def __init__(
        self,
        memories: MemoryService,
        memory_store: MemoryStore,
        sessions: SessionService,
        session_store: SessionStore,
        audit: AuditStore,
        documents: DocumentStore,
        tokens: TokenService,
        recorder: DenialRecorder,
    ) -> None:
        self.memories = memories
        self.memory_store = memory_store
        self.sessions = sessions
        self.session_store = session_store
        self.audit = audit
        self.documents = documents
        self.tokens = tokens
        self.recorder = recorder

    def _deny(self, principal: Principal, attempted: str, target: str) -> Forbidden:
        self.recorder.record(
            Denial(principal.actor, "console_denied", attempted, target, ADMIN_ONLY)
        )
        return audited(Forbidden(f"{attempted}: {ADMIN_ONLY}"))

    async def namespaces(
        self, principal: Principal, prefix: str | None, after: str = "", limit: int = 100
    ) -> list[NamespaceCount]:
        """The namespaces ``principal`` may read (the policy is applied in the query)."""
        if prefix is not None:
            validate_prefix(prefix)
        return await self.memory_store.namespaces(principal, prefix, after, _limit(limit))

    async def memory_timeline(
        self, principal: Principal, namespace: str, key: str
    ) -> list[VersionStep]:
        return timeline(await self.memories.history(principal, namespace, key))

    async def memory_audit(
        self, principal: Principal, namespace: str, key: str, limit: int = 50
    ) -> list[AuditRecord]:
        """The audit trail of one memory: its versions' rows and the denials naming it
        (readable by whoever may read the memory)."""
        versions = await self.memories.history(principal, namespace, key)
        query = AuditQuery(
            namespace=namespace, key=key, entry_ids=tuple(e.id for e in versions if e.id)
        )
        return await self.audit.page(query, None, _limit(limit))

    async def audit_page(
        self,
        principal: Principal,
        query: AuditQuery,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[AuditRecord]:
        """Audit rows, newest first: an admin's any, anyone else's only their own."""
        if not principal.admin:
            if query.actor is not None and query.actor != principal.actor:
                raise self._deny(principal, "read the audit of another principal", query.actor)
            query = AuditQuery(
                actor=principal.actor,
                action=query.action,
                denied=query.denied,
                namespace=query.namespace,
            )
        return await self.audit.page(query, before_id, _limit(limit))

    async def session_state_at(
        self, principal: Principal, session_id: str, seq: int
    ) -> dict[str, Any]:
        """The state the events' deltas had built by event ``seq`` (the session is
        checked as session_get checks it)."""
        await self.sessions.get(principal, session_id, events_limit=0)
        if not isinstance(seq, int) or seq < 0:
            raise InvalidInput("seq must be a whole number >= 0")
        state: Any = {}
        for delta in await self.session_store.deltas(session_id, seq):
            state = merge_patch(state, delta)
        return state if isinstance(state, dict) else {}

    async def document_files(
        self,
        principal: Principal,
        visible_roots: list[Any],
        root: str,
        status: str | None,
        after: str = "",
        limit: int = 100,
    ) -> list[DocumentFile]:
        """The files of ``root`` (one the principal may see: ``visible_roots``)."""
        found = [r for r in visible_roots if r.name == root]
        if not found:
            raise NotFound(f"no document root {root!r}")
        if status is not None and status not in ("pending", "synced", "failed", "stale"):
            raise InvalidInput("status must be one of pending, synced, failed, stale")
        return await self.documents.files(found[0].id, status, after, _limit(limit))

    async def restore_version(
        self, principal: Principal, namespace: str, key: str, version: int, current: int
    ) -> PutResult:
        """Make ``version``'s value the next version (a write like memory_put, checked and
        audited as one; ``current`` guards against a change made since the page showed)."""
        versions = await self.memories.history(principal, namespace, key)
        old = next((e for e in versions if e.version == version), None)
        if old is None:
            raise NotFound(f"no version {version} of {namespace}/{key}")
        return await self.memories.put(
            principal,
            namespace,
            key,
            old.value,
            old.memory_type,
            old.metadata,
            expected_version=current,
        )

    async def token_list(self, principal: Principal) -> list[TokenInfo]:
        if not principal.admin:
            raise self._deny(principal, "list tokens", "tokens")
        return await self.tokens.list(include_revoked=True)

    async def revoke_token(self, principal: Principal, token_id: str) -> TokenInfo:
        """Revoke a token (admins only), audited as ``token_revoke``."""
        if not principal.admin:
            raise self._deny(principal, "revoke a token", token_id)
        info = await self.tokens.revoke(token_id)
        await self.audit.record(
            principal.actor, "token_revoke", {"token_id": info.id, "name": info.name}
        )
        return info
