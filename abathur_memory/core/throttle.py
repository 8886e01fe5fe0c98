"""A limit on how often something is said: a warning that an attacker (or an outage) could
trigger on every request is logged once per period, with the count of those held back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Throttle:
    """Lets one event through per ``every`` seconds and counts the others. Thread-safe."""

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._next = float("-inf")
        self._held = 0
        self._lock = threading.Lock()

    def ready(self) -> int | None:
        """None to stay quiet; else how many events were held back since the last one that
        got through (0 for the first)."""
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._held += 1
                return None
            self._next = now + self.every
            held, self._held = self._held, 0
            return held
