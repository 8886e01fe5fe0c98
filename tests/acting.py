"""The runtime's services bound to one principal, for tests and worker processes."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

from abathur_memory.config import Settings
from abathur_memory.core.principal import Principal
from abathur_memory.runtime import Runtime, open_runtime, principal_of


class Bound:
    """A service with the principal of every call filled in."""

    def __init__(self, service: object, principal: Principal) -> None:
        self._service = service
        self._principal = principal

    def __getattr__(self, name):
        attribute = getattr(self._service, name)
        if callable(attribute) and not name.startswith("_"):
            return functools.partial(attribute, self._principal)
        return attribute


class Acting:
    """The runtime's services acting as one principal (tests read like the old
    per-principal services; the services themselves take the principal per call)."""

    PER_CALL = ("memories", "sessions", "tasks", "checkpoints")

    def __init__(self, runtime: Runtime, principal: Principal) -> None:
        self.runtime = runtime
        self.principal = principal
        self.db = getattr(runtime.store, "db", None)  # SQLite's Database, for SQLite tests

    @property
    def raw(self):
        from backends import Raw

        return Raw(self.runtime.store)

    def __getattr__(self, name):
        service = getattr(self.runtime, name)
        return Bound(service, self.principal) if name in self.PER_CALL else service


@contextlib.asynccontextmanager
async def open_acting(
    settings: Settings, principal: Principal | None = None
) -> AsyncIterator[Acting]:
    """Open a runtime over ``settings`` and act as ``principal`` (default: the configured one)."""
    async with open_runtime(settings) as runtime:
        yield Acting(runtime, principal or principal_of(settings))
