"""memory_search at 100,000 memories, on SQLite and PostgreSQL; prints one JSON object.

Half the memories are conversation turns (LoCoMo's development half, copied into many
namespaces: utterances, so they carry context), half are documents (BEIR abstracts), all
real text from ../shared/data. They are stored with ``put_many`` through the memory service,
indexed by the background indexer's own catch-up, then searched through the service in
hybrid, keyword and semantic mode, interleaved, with LoCoMo questions and BEIR queries,
over everything the principal may read (no prefix) and within one conversation.

The embedder is the deterministic fake at 384 dimensions (the embedded model's), so the
100,000 vectors take seconds to make and the times exclude the query's embedding: what is
measured is the search itself. On SQLite the approximate index is used as configured
(``ABATHUR_ANN=false`` measures the exact path); its background build after the catch-up is
waited for and timed. Run it against two checkouts to compare (the other one first on the
path: ``PYTHONPATH=<checkout>:. python -P -m bench.memory_search_scale``):

    python -m bench.memory_search_scale [--memories 100000] [--backend both] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import DIM, beir_memories, emit, locomo, percentiles, postgres_server

BATCH = 1000
QUERIES = 150


def corpus(count: int) -> tuple[list[tuple[str, str, Any]], list[tuple[str, str | None]]]:
    """(namespace, key, value) for ``count`` memories, and (query, namespace) pairs."""
    turns = locomo(False)
    documents = beir_memories("vaswani", False)
    memories: list[tuple[str, str, Any]] = []
    copy = 0
    while len(memories) < count // 2:
        for namespace, key, value in turns.memories:
            memories.append((f"{namespace}:copy{copy}", key, value))
        copy += 1
    memories = memories[: count // 2]
    copy = 0
    while len(memories) < count:
        for namespace, key, value in documents.memories:
            memories.append((f"{namespace}:copy{copy}", key, value))
            if len(memories) == count:
                break
        copy += 1
    queries: list[tuple[str, str | None]] = []
    for question in turns.questions[: QUERIES // 2]:
        queries.append((question.text, None))
        queries.append((question.text, f"{question.namespace}:copy0"))
    for question in documents.questions[: QUERIES // 2]:
        queries.append((question.text, None))
    return memories, queries[:QUERIES]


async def measure(db: str, memories: list[Any], queries: list[Any]) -> dict[str, Any]:
    import abathur_memory.runtime as runtime_module
    from abathur_memory.config import load_settings
    from abathur_memory.core.principal import Principal
    from abathur_memory.embedders.fake import FakeEmbedder
    from abathur_memory.memory.memories import PutRequest

    runtime_module.make_embedder = lambda settings: FakeEmbedder(dim=DIM)
    settings = load_settings(
        db=db, user="bench", app="bench", embedder="fake", maintenance_interval_hours=0
    )
    principal = Principal(user="bench", app="bench")
    out: dict[str, Any] = {"memories": len(memories)}
    async with runtime_module.open_runtime(settings) as runtime:
        started = time.perf_counter()
        for start in range(0, len(memories), BATCH):
            await runtime.memories.put_many(
                principal,
                [PutRequest(ns, key, value) for ns, key, value in memories[start : start + BATCH]],
            )
        out["put_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        while True:
            done = await runtime.memory_indexer.catch_up()
            if not done.keywords and not done.embedded:
                break
        out["index_s"] = round(time.perf_counter() - started, 1)
        graphs = getattr(runtime.store, "ann", None)  # SQLite's approximate index
        out["ann"] = bool(graphs is not None and graphs.settings.enabled)
        if graphs is not None and out["ann"]:
            started = time.perf_counter()
            await runtime.memories.search(principal, queries[0][0], None, 10, "semantic")
            while not graphs.idle():  # built in the background from the first search on
                await asyncio.sleep(0.5)
            out["ann_build_s"] = round(time.perf_counter() - started, 1)
        times: dict[str, list[float]] = {}
        for round_number in range(2):  # the first round warms caches; the second is kept
            for query, prefix in queries:
                for mode in ("hybrid", "keyword", "semantic"):
                    started = time.perf_counter()
                    await runtime.memories.search(principal, query, prefix, 10, mode)
                    elapsed = time.perf_counter() - started
                    if round_number:
                        name = f"{mode}, {'one conversation' if prefix else 'everything'}"
                        times.setdefault(name, []).append(elapsed)
        out["search"] = {
            name: percentiles(values, scale=1000, digits=2) for name, values in times.items()
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    memories, queries = corpus(args.memories)
    import abathur_memory

    out: dict[str, Any] = {
        "benchmark": "memory_search_scale",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code": str(Path(abathur_memory.__file__).parent.parent),
        "commit": subprocess.run(
            ["git", "-C", str(Path(abathur_memory.__file__).parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "queries": len(queries),
        "results": {},
    }
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        print(f"{backend}: {len(memories)} memories", file=sys.stderr)
        if backend == "postgres":
            with postgres_server() as url:
                out["results"][backend] = asyncio.run(measure(url, memories, queries))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                db = str(Path(tmp) / "scale.db")
                out["results"][backend] = asyncio.run(measure(db, memories, queries))
    emit(out, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
