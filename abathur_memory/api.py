"""The Python API: the runtime as a library, acting as one principal, without MCP.

    import abathur_memory

    async with abathur_memory.open(db="agent.db", user="alice", project="site") as mem:
        await mem.memories.put("user:alice:prefs", "editor", {"name": "helix"})
        found = await mem.memories.search("which editor")
        bob = mem.as_principal(user="bob")  # an admin may act for others

Every call goes to the services the MCP tools call (``runtime.py`` builds them), with the
principal filled in, so versions, compare-and-set, the namespace policy, audit and search
are the same as over MCP, on SQLite and on PostgreSQL. The framework adapters
(``abathur_memory.adapters``) are built on this object.

A server keeps the memory search index current in the background; a library has no
background: ``memories.search`` brings the index up to date first (only what changed since
the last search is indexed), so a search sees every write made before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, NoReturn, ParamSpec, TypeVar

from abathur_memory.config import Settings, load_settings
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import Denial
from abathur_memory.errors import Forbidden
from abathur_memory.memory.access import audited
from abathur_memory.runtime import Runtime, open_runtime, principal_of
from abathur_memory.search.results import MemorySearchResult

P = ParamSpec("P")
R = TypeVar("R")


def _bound(
    method: Callable[Concatenate[Principal, P], Awaitable[R]], principal: Principal
) -> Callable[P, Awaitable[R]]:
    """``method`` with its first argument, the principal, filled in (docs kept)."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return await method(principal, *args, **kwargs)

    return call


class Memories:
    """Versioned, namespaced memories (``memory_*`` tools): ``put``, ``put_many``, ``get``,
    ``history``, ``delete``, ``restore``, ``list``, ``search``."""

    def __init__(self, memory: Memory) -> None:
        service, principal = memory.runtime.memories, memory.principal
        self._memory = memory
        self.put = _bound(service.put, principal)
        self.put_many = _bound(service.put_many, principal)
        self.get = _bound(service.get, principal)
        self.history = _bound(service.history, principal)
        self.delete = _bound(service.delete, principal)
        self.restore = _bound(service.restore, principal)
        self.list = _bound(service.list, principal)
        self._search = _bound(service.search, principal)

    async def search(
        self,
        query: str,
        prefix: str | None = None,
        k: int = 10,
        mode: str = "hybrid",
        **options: Any,
    ) -> MemorySearchResult:
        """Keyword and semantic search over what the principal may read (``memory_search``),
        after bringing the index up to date. ``options``: memory_search's other arguments by
        name (``memory_type``, ``after``, ``before``, ``metadata``, ``include_superseded``,
        ``valid_at``, ``as_of``, ``context``, ``max_tokens``)."""
        await self._memory.catch_up()
        return await self._search(query, prefix, k, mode, **options)


class Sessions:
    """Sessions with an event log and a state (``session_*`` tools): ``create``, ``get``,
    ``events``, ``append``, ``update_state``, ``set_status``, ``list``."""

    def __init__(self, memory: Memory) -> None:
        service, principal = memory.runtime.sessions, memory.principal
        self.create = _bound(service.create, principal)
        self.get = _bound(service.get, principal)
        self.events = _bound(service.events, principal)
        self.append = _bound(service.append, principal)
        self.update_state = _bound(service.update_state, principal)
        self.set_status = _bound(service.set_status, principal)
        self.list = _bound(service.list, principal)


class Tasks:
    """Tasks (``task_*`` tools): ``create``, ``get``, ``update``, ``claim``, ``list``."""

    def __init__(self, memory: Memory) -> None:
        service, principal = memory.runtime.tasks, memory.principal
        self.create = _bound(service.create, principal)
        self.get = _bound(service.get, principal)
        self.update = _bound(service.update, principal)
        self.claim = _bound(service.claim, principal)
        self.list = _bound(service.list, principal)


class Checkpoints:
    """A task's checkpoints (``checkpoint_*`` tools): ``save``, ``load``, ``iterations``."""

    def __init__(self, memory: Memory) -> None:
        service, principal = memory.runtime.checkpoints, memory.principal
        self.save = _bound(service.save, principal)
        self.load = _bound(service.load, principal)
        self.iterations = _bound(service.iterations, principal)


class Documents:
    """The indexed document folders the principal may see (``document_*`` and ``index_*``
    tools): ``search``, ``get``, ``status``, ``refresh``."""

    def __init__(self, memory: Memory) -> None:
        service, principal = memory.runtime.documents, memory.principal
        self.search = _bound(service.search, principal)
        self.get = _bound(service.get, principal)
        self.status = _bound(service.status, principal)
        self.refresh = _bound(service.refresh, principal)


@dataclass
class _Shared:
    """What every principal of one opened runtime shares."""

    runtime: Runtime
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    index_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Memory:
    """The services of one opened runtime, acting as ``principal``.

    Made by :func:`open`; :meth:`as_principal` gives another view of the same runtime.
    """

    def __init__(self, shared: _Shared, principal: Principal) -> None:
        self._shared = shared
        self.principal = principal
        self.memories = Memories(self)
        self.sessions = Sessions(self)
        self.tasks = Tasks(self)
        self.checkpoints = Checkpoints(self)
        self.documents = Documents(self)

    @property
    def runtime(self) -> Runtime:
        """The composition root underneath (store, services, settings)."""
        return self._shared.runtime

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the runtime was opened in (its database connections live there)."""
        return self._shared.loop

    def as_principal(
        self,
        user: str | None = None,
        app: str | None = None,
        project: str | None = None,
        admin: bool = False,
    ) -> Memory:
        """The same runtime acting for another principal (fields not given are this one's).

        Only an admin may act for a principal other than itself (the refusal is audited);
        the principal it asks for is not an admin unless ``admin=True``.
        """
        current = self.principal
        wanted = Principal(
            user=current.user if user is None else user,
            app=current.app if app is None else app,
            project=current.project if project is None else project,
            admin=admin,
        )
        if wanted != current and not current.admin:
            target = f"user:{wanted.user} app:{wanted.app}"
            self.refuse("act as", target, "only an admin principal may act for another principal")
        return Memory(self._shared, wanted)

    def refuse(self, attempted: str, target: str, rule: str) -> NoReturn:
        """Audit a denial of this principal (as the services do) and raise Forbidden."""
        self.runtime.recorder.record(
            Denial(self.principal.actor, "principal_denied", attempted, target, rule)
        )
        raise audited(Forbidden(f"{attempted} {target} denied: {rule}"))

    async def catch_up(self) -> None:
        """Bring the memory search index up to date with every change so far (this
        process's and others'); a search does it first, so you rarely need to."""
        async with self._shared.index_lock:
            await self.runtime.memory_indexer.catch_up()


def _settings(db: str | Path | None, overrides: dict[str, Any]) -> Settings:
    if db is not None:
        overrides["db"] = str(db)
    return load_settings(**overrides)


@contextlib.asynccontextmanager
async def open_memory(
    db: str | Path | None = None,
    *,
    user: str | None = None,
    app: str | None = None,
    project: str | None = None,
    admin: bool | None = None,
    embedder: str | None = None,
    create: bool = True,
    settings: Settings | None = None,
    **options: Any,
) -> AsyncIterator[Memory]:
    """Open the database and act as the principal (user, app, project).

    ``db`` is a SQLite file or a ``postgresql://`` URL. What is not given comes from the
    config file and ``ABATHUR_*`` variables, as on the command line (the user defaults to
    the login name); ``options`` are further settings (``ollama_host=...``), and
    ``settings`` replaces all of that with a complete :class:`Settings`. ``create=False``
    refuses to make a database that does not exist yet.
    """
    if settings is None:
        fields = {"user": user, "app": app, "project": project, "admin": admin}
        settings = _settings(db, {**fields, "embedder": embedder, **options})
    async with open_runtime(settings, create=create) as runtime:
        yield Memory(_Shared(runtime), principal_of(settings))
