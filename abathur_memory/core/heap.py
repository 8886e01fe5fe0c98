"""Giving freed memory back to the system after large, short-lived work.

glibc keeps large freed blocks in its heap, so a process's resident size does not go down
after it drops a model or the batches it read to build an index; ``malloc_trim`` returns
them. Elsewhere (no glibc) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util


def return_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim)."""
    name = ctypes.util.find_library("c")
    if name is None:  # pragma: no cover - not a glibc-like system
        return
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is not None:
        trim(0)
