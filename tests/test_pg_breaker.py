"""The PostgreSQL circuit breaker on its own (a scripted probe, no server): the probe decides
whether a failure opens the circuit, calls wait for its verdict, and it closes when the probe
connects again."""

from __future__ import annotations

import asyncio

import pytest

from abathur_memory.errors import Unavailable
from abathur_memory.store.postgres import breaker as breaker_module
from abathur_memory.store.postgres.breaker import CircuitBreaker

pytestmark = pytest.mark.anyio


class Script:
    def __init__(self) -> None:
        self.down = False
        self.probes = 0
        self.recovered = 0

    async def probe(self) -> None:
        self.probes += 1
        await asyncio.sleep(0)
        if self.down:
            raise OSError("connection refused\n\tIs the server running?")

    async def refresh(self) -> None:
        self.recovered += 1


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(breaker_module, "FIRST_BACKOFF_S", 0.01)
    monkeypatch.setattr(breaker_module, "MAX_BACKOFF_S", 0.02)


async def test_a_failure_while_the_server_answers_does_not_open_it():
    script = Script()
    breaker = CircuitBreaker("db", script.probe, script.refresh)
    breaker.failed()  # e.g. every pooled connection busy: the probe still connects
    await breaker.check()
    assert not breaker.is_open and script.probes == 1 and breaker.trips == 0
    await breaker.close()


async def test_it_opens_when_the_probe_fails_and_closes_when_it_connects():
    script = Script()
    script.down = True
    breaker = CircuitBreaker("db", script.probe, script.refresh)
    breaker.failed()
    breaker.failed()  # one probe at a time
    with pytest.raises(Unavailable, match=r"unreachable \(connection refused\)"):
        await breaker.check()  # waited for the verdict, not for a pool
    for _ in range(5):
        with pytest.raises(Unavailable):
            await breaker.check()
    assert breaker.rejected == 6 and breaker.trips == 1
    script.down = False
    for _ in range(500):
        if not breaker.is_open:
            break
        await asyncio.sleep(0.01)
    await breaker.check()
    assert script.recovered == 1 and breaker.rejected == 6
    await breaker.close()


async def test_closing_stops_the_probe():
    script = Script()
    script.down = True
    breaker = CircuitBreaker("db", script.probe, script.refresh)
    breaker.failed()
    with pytest.raises(Unavailable):
        await breaker.check()
    await breaker.close()
    probes = script.probes
    await asyncio.sleep(0.1)
    assert script.probes == probes
