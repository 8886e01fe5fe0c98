"""abathur-memory: a local-first memory and document-search server for AI agents (MCP)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from abathur_memory.api import Memory
    from abathur_memory.config import Settings

__version__ = "0.1.0"


def open(
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
) -> AbstractAsyncContextManager[Memory]:
    """``async with abathur_memory.open(db=..., user=...) as mem``: the Python API
    (:mod:`abathur_memory.api`). Imported on first use, so the command line stays fast."""
    from abathur_memory.api import open_memory

    return open_memory(
        db,
        user=user,
        app=app,
        project=project,
        admin=admin,
        embedder=embedder,
        create=create,
        settings=settings,
        **options,
    )
