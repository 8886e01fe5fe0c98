"""Failing fast while PostgreSQL is down: a circuit breaker in front of the pool.

Without it, every call during an outage waits for a pooled connection until the pool's
timeout (``pg_pool_timeout_s``) and only then says ``unavailable``: ten calls, ten full
waits. After a call loses its connection or gets none, one background probe connects on its
own, and calls wait for its verdict (a few seconds at most) rather than for the pool. If the
probe fails, the server is known to be down: the circuit opens, and every call fails at once
with ``unavailable`` while the probe retries with backoff (``FIRST_BACKOFF_S`` doubling to
``MAX_BACKOFF_S``). When a probe connects, the pool drops its dead connections, the circuit
closes, and calls go through again.

The probe decides, not the failure itself: a pool exhausted by load, or one connection
killed while the server is up, does not open the circuit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from abathur_memory.errors import Unavailable

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 5.0
PROBE_TIMEOUT_S = 5.0  # a probe that connects but never answers counts as down


class CircuitBreaker:
    """Open while the server is known to be down. Event-loop only (not thread-safe).

    ``probe`` connects once and raises when it cannot; ``recovered`` runs when the circuit
    closes again. ``rejected`` counts the calls failed at once, ``trips`` the outages seen.
    """

    def __init__(
        self,
        label: str,
        probe: Callable[[], Awaitable[None]],
        recovered: Callable[[], Awaitable[None]],
    ) -> None:
        self.label = label
        self._probe = probe
        self._recovered = recovered
        self._down: str | None = None  # why, while the circuit is open
        self._watch: asyncio.Task[None] | None = None
        self._verdict: asyncio.Event | None = None  # set once the first probe has answered
        self.rejected = 0
        self.trips = 0

    @property
    def is_open(self) -> bool:
        return self._down is not None

    async def check(self) -> None:
        """Raise Unavailable at once while the server is known to be down; while a probe
        is deciding, wait for its verdict (at most its connect timeout) rather than the pool."""
        if self._verdict is not None:
            await self._verdict.wait()
        if self._down is not None:
            self.rejected += 1
            raise Unavailable(
                f"PostgreSQL at {self.label} is unreachable ({self._down}); calls fail at once "
                "until it answers again (it is checked every few seconds); try again shortly"
            )

    def failed(self) -> None:
        """A call lost its connection or got none in time: have one probe find out why."""
        if self._watch is None or self._watch.done():
            self._verdict = asyncio.Event()
            self._watch = asyncio.get_running_loop().create_task(
                self._watch_server(), name="postgres-probe"
            )

    async def _watch_server(self) -> None:
        try:
            await self._probe_until_up()
        finally:
            self._verdict_given()

    def _verdict_given(self) -> None:
        if self._verdict is not None:
            self._verdict.set()
            self._verdict = None

    async def _probe_until_up(self) -> None:
        delay = FIRST_BACKOFF_S
        while True:
            try:
                await asyncio.wait_for(self._probe(), PROBE_TIMEOUT_S)
            except Exception as exc:
                if self._down is None:
                    self.trips += 1
                    log.warning(
                        "PostgreSQL at %s is unreachable (%s); calls fail at once until it is back",
                        self.label,
                        _one_line(exc),
                    )
                self._down = _one_line(exc)
                self._verdict_given()
                await asyncio.sleep(delay)
                delay = min(MAX_BACKOFF_S, delay * 2)
                continue
            if self._down is not None:
                try:  # drop the pool's dead connections before calls use them again
                    await asyncio.wait_for(self._recovered(), PROBE_TIMEOUT_S)
                except Exception as exc:  # the next call finds out what is wrong
                    log.debug("refreshing the pool after the outage failed: %s", exc)
                self._down = None
                log.warning("PostgreSQL at %s answers again", self.label)
            return

    async def close(self) -> None:
        if self._watch is not None and not self._watch.done():
            self._watch.cancel()
            await asyncio.wait([self._watch])


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
