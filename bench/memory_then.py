"""memory_search at a past time (``as_of``) against the same search now, in one run; prints
one JSON object.

An ``as_of`` search cannot use the indexes (they hold the live versions): it lists every
version live then in its scope and ranks them (search/then.py), so its cost grows with the
scope. This measures by how much, on either backend: ``--memories`` memories in one user's
namespaces (LoCoMo's development turns when ../shared/data is there, else numbered
sentences), a moment taken, then 10% of them changed and 2% deleted (so the versions live
then are partly not live now: those are embedded at search time); then a live search and an
as_of search, interleaved, in each mode, within a prefix holding all of them. The embedder
is the deterministic fake, so the times are the search's own.

    python -m bench.memory_then [--memories 5000] [--backend sqlite|postgres] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import DATA, emit, header, locomo, percentiles, postgres_schema

PREFIX = "user:alice"
QUERIES = ("where did they go sailing", "a new job offer", "birthday party plans", "paint")


def texts(count: int) -> list[str]:
    """``count`` texts: LoCoMo's turns (cycled) when the data is there."""
    found: list[str] = []
    if DATA.exists():
        turns = [str(value) for _, _, value in locomo(False).memories]
        found = [turns[i % len(turns)] + f" ({i})" for i in range(count)]
    return found or [f"sentence {i} about sailing, jobs and paint" for i in range(count)]


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "postgres":
        with postgres_schema() as (url, _):
            yield url
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield str(Path(tmp) / "then.db")


async def measure(db: str, count: int) -> dict[str, Any]:
    from abathur_memory.config import load_settings
    from abathur_memory.memory.memories import PutRequest
    from abathur_memory.runtime import open_runtime

    settings = load_settings(db=db, user="alice", embedder="fake", maintenance_interval_hours=0)
    async with open_runtime(settings) as runtime:
        me = runtime.principal
        written = texts(count)
        for start in range(0, count, 1000):
            await runtime.memories.put_many(
                me,
                [
                    PutRequest(f"{PREFIX}:chat{i // 500}", f"t{i}", text)
                    for i, text in enumerate(written[start : start + 1000], start)
                ],
            )
        await asyncio.sleep(0.01)
        moment = datetime.now(UTC).isoformat()
        await asyncio.sleep(0.01)
        changed = [
            PutRequest(f"{PREFIX}:chat{i // 500}", f"t{i}", f"changed: {written[i]}")
            for i in range(0, count, 10)
        ]
        for start in range(0, len(changed), 1000):
            await runtime.memories.put_many(me, changed[start : start + 1000])
        for i in range(5, count, 50):
            await runtime.memories.delete(me, f"{PREFIX}:chat{i // 500}", f"t{i}")
        await runtime.memory_indexer.catch_up()
        out: dict[str, Any] = {}
        for mode in ("keyword", "semantic", "hybrid"):
            samples: dict[str, list[float]] = {"now": [], "as_of": []}
            for round_ in range(3):
                for query in QUERIES:
                    for name in ("now", "as_of") if round_ % 2 == 0 else ("as_of", "now"):
                        then = moment if name == "as_of" else None
                        started = time.perf_counter()
                        await runtime.memories.search(me, query, PREFIX, 10, mode, as_of=then)
                        samples[name].append((time.perf_counter() - started) * 1000)
            now, past = percentiles(samples["now"]), percentiles(samples["as_of"])
            out[mode] = {
                "now": now,
                "as_of": past,
                "as_of_over_now_p50": round(past["p50_ms"] / max(now["p50_ms"], 1e-6), 1),
            }
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memories", type=int, default=5000)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result: dict[str, Any] = {
        **header(),
        "memories": args.memories,
        "changed_since": args.memories // 10,
        "deleted_since": len(range(5, args.memories, 50)),
        "backend": args.backend,
    }
    with database(args.backend) as db:
        result["search_ms"] = asyncio.run(measure(db, args.memories))
    emit(result, args.out)


if __name__ == "__main__":
    main()
