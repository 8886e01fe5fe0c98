"""Calling the async API from synchronous framework code.

A runtime's database connections belong to the event loop it was opened in. Synchronous
methods (LangGraph's ``get``/``put``/``batch``, the Anthropic SDK's synchronous memory tool)
send their work to that loop and wait for it, which works from any other thread (a sync
graph run in a worker thread, say). Called on the loop's own thread they would wait for
themselves forever, so they refuse with a clear error instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_blocking(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T], what: str) -> T:
    """Run ``work`` on ``loop`` from another thread and return its result."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        work.close()
        raise asyncio.InvalidStateError(
            f"{what} was called synchronously inside the event loop that opened abathur-memory; "
            "await the async method instead (aget, aput, asearch, ... or the async tool)"
        )
    return asyncio.run_coroutine_threadsafe(work, loop).result()
