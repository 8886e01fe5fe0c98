"""Links between memories: the rules, for the principal of each call.

A link changes what a search shows (a superseded memory is left out), so making or removing
one needs write access to the namespaces of both ends. Reading a memory's links shows only
those whose other end the caller may read.
"""

from __future__ import annotations

from typing import Any

from abathur_memory.core import values
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import LINK_TYPES, MemoryLink, NewLink
from abathur_memory.errors import InvalidInput, NotFound
from abathur_memory.memory.access import AccessGuard
from abathur_memory.memory.namespaces import Access, clean, parse
from abathur_memory.store.protocols import LinkStore

MAX_REASON_CHARS = 2000


class LinkService:
    def __init__(self, store: LinkStore, guard: AccessGuard) -> None:
        self.store = store
        self.guard = guard

    async def link(
        self,
        principal: Principal,
        link_type: str,
        from_namespace: str,
        from_key: str,
        to_namespace: str,
        to_key: str,
        reason: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        run_id: str | None = None,
    ) -> tuple[MemoryLink, bool]:
        """Link the live version of (from) to the live version of (to); (link, created)."""
        if link_type not in LINK_TYPES:
            raise InvalidInput(f"link_type must be one of {', '.join(LINK_TYPES)}")
        source = await self._writable(principal, from_namespace, from_key, "link")
        target = await self._writable(principal, to_namespace, to_key, "link")
        if source == target:
            raise InvalidInput("a memory cannot be linked to itself")
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS):
            raise InvalidInput(f"reason must be a string of at most {MAX_REASON_CHARS} characters")
        metadata_text = (
            "{}" if metadata is None else values.encode_object(metadata, what="metadata")
        )
        new = NewLink(link_type, *source, *target, reason, metadata_text, run_id)
        return await self.store.add(new, principal.actor)

    async def unlink(
        self, principal: Principal, link_id: int, *, run_id: str | None = None
    ) -> MemoryLink:
        """Stamp an active link removed (it stays readable in both ends' links)."""
        values.check_integer(link_id, what="link_id", low=1)
        found = await self.store.get(link_id)
        if found is None or found.removed_at is not None:
            raise NotFound(f"no active link {link_id}")
        await self._writable(principal, found.from_namespace, found.from_key, "unlink")
        if found.to_namespace is not None and found.to_key is not None:
            await self._writable(principal, found.to_namespace, found.to_key, "unlink")
        return await self.store.remove(link_id, principal.actor, run_id)

    async def readable_links(
        self, principal: Principal, namespace: str, key: str
    ) -> list[MemoryLink]:
        """The links of (namespace, key) both ways whose other end ``principal`` may read
        (the caller has checked that it may read this end)."""
        namespace = clean(namespace)
        allowed: dict[str, bool] = {namespace: True}
        shown: list[MemoryLink] = []
        for link in await self.store.of(namespace, key):
            other = link.to_namespace if link.from_namespace == namespace else link.from_namespace
            if other is not None and other not in allowed:
                allowed[other] = await self.guard.rule(principal, parse(other), Access.READ) is None
            if other is None or allowed[other]:
                shown.append(link)
        return shown

    async def may_write(self, principal: Principal, namespace: str) -> bool:
        """Whether ``principal`` may link or unlink in ``namespace`` (no denial recorded:
        this only decides which forms a page shows; the write itself is checked again)."""
        return await self.guard.rule(principal, parse(clean(namespace)), Access.WRITE) is None

    async def _writable(
        self, principal: Principal, namespace: str, key: str, attempted: str
    ) -> tuple[str, str]:
        namespace, key = clean(namespace), values.check_identifier(key, what="key")
        await self.guard.check(principal, namespace, parse(namespace), Access.WRITE, attempted, key)
        return namespace, key
