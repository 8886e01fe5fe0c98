"""The bytes a scan read, handed to the worker so one indexing run reads each file once.

A scan must read a changed file to hash it (a touch, a move or a real change?); the worker
must read it to chunk it. Within one run the scan keeps what it read, up to a byte budget,
and the worker takes a file's bytes from here when the document it claimed still has the
hash those bytes have; anything else (over the budget, changed meanwhile, left by an earlier
run) it reads from disk as before. A file taken is dropped, so memory falls as work is done.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

# What one run keeps at most: every changed file of a watcher's batch (50 files) or of a
# walk that found a few thousand notes changed; past it, the worker reads the rest again, so
# the first index of a large root costs little more memory (measured: 10,000 notes, 16 MB,
# peaked 5 MB higher; keeping all of them, 21 MB).
BUDGET_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ReadFile:
    data: bytes
    content_hash: str
    size: int
    mtime_ns: int


class Reads:
    """``file_path`` ("<root>/<rel>") -> what the scan read, within ``budget`` bytes."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = BUDGET_BYTES if budget is None else budget
        self._files: dict[str, ReadFile] = {}
        self._held = 0
        self._lock = threading.Lock()  # the scan and the worker read files in threads

    def keep(self, file_path: str, read: ReadFile) -> bool:
        """Keep ``read`` if it fits in what is left of the budget; whether it was kept."""
        with self._lock:
            self._drop(file_path)
            if self._held + len(read.data) > self.budget:
                return False
            self._files[file_path] = read
            self._held += len(read.data)
            return True

    def take(self, file_path: str, content_hash: str) -> ReadFile | None:
        """The bytes of ``file_path`` if they hash to ``content_hash`` (and forget them)."""
        with self._lock:
            read = self._drop(file_path)
        return read if read is not None and read.content_hash == content_hash else None

    def _drop(self, file_path: str) -> ReadFile | None:
        read = self._files.pop(file_path, None)
        if read is not None:
            self._held -= len(read.data)
        return read
