"""What measuring one call costs on the caller's path: timing it, counting its rows and
queueing its metric (MetricsRecorder.record), as AbathurTool.run does. Prints one JSON object.

Not a test: ``python -m bench.metrics_record [--calls N]``. The batch write happens later,
on the event loop; here it goes to a store that does nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from abathur_memory.core.records import MemoryEntry
from abathur_memory.memory.metrics import MetricsRecorder
from abathur_memory.server.registry import rows_of
from bench.common import emit, percentiles


class NoStore:
    async def write(self, calls: object) -> None:
        return None


async def measure(calls: int) -> dict[str, float]:
    recorder = MetricsRecorder(NoStore())  # type: ignore[arg-type]
    entry = MemoryEntry(
        id=1,
        namespace="user:alice:notes",
        key="editor",
        version=1,
        value={"name": "helix"},
        memory_type="semantic",
        metadata={},
        is_deleted=False,
        created_by="user:alice",
        updated_by="user:alice",
        created_at="2026-12-07T00:00:00.000Z",
        updated_at="2026-12-07T00:00:00.000Z",
    )
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        started = time.perf_counter()
        rows = rows_of(entry)
        recorder.record(
            "memory_get", "user:alice", "ok", (time.perf_counter() - started) * 1000, rows
        )
        samples.append(time.perf_counter_ns() - start)
    await recorder.close()
    return {"calls": calls, **percentiles(samples, "us", scale=1e-3, digits=2, mean=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    emit(asyncio.run(measure(args.calls)))


if __name__ == "__main__":
    main()
