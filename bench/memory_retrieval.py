"""How well memory_search finds what agents stored, through the real MCP tools.

Workloads:

- ``locomo``: the development half of LoCoMo (../shared/data/locomo-dev). Every turn of a
  conversation is stored with ``memory_put`` (key = its ``dia_id``, value = speaker, text (a
  shared photo's caption appended) and the session's date), one namespace per conversation;
  then every question of categories 1-4 with evidence is asked with
  ``memory_search(question, prefix=<conversation>, k=10)``. Recall@k is the share of the
  question's evidence turns among the first k keys, averaged over questions.
- ``cranfield``, ``vaswani``, ``nfcorpus``: BEIR collections stored as memories (one memory per
  document, key = its id, value = title and text), every judged query asked with
  ``memory_search``; graded relevance from qrels.

Each workload is measured in every mode (hybrid, keyword, semantic) after the background
embeddings have caught up (the time they took is reported). Prints one JSON object: R@1, R@5,
R@10, MRR and nDCG@10 per workload and mode (and per LoCoMo question category: 1 multi-hop,
2 temporal, 3 open-domain, 4 single-hop), and latency p50/p95 of the calls.

    python -m bench.memory_retrieval                           # locomo on SQLite
    python -m bench.memory_retrieval --workload all --backend both \
        --out bench/results/memory_retrieval.json
    python -m bench.memory_retrieval --quick                   # 2 conversations, 60 questions
    python -m bench.memory_retrieval --db postgresql://...     # an existing, empty database

The server runs in this process (``mcp.Client(server)``): the same tools, arguments and
results as over stdio, without the pipe. Data comes from ../shared/data (not in the repo).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.common import (
    CATEGORIES,
    DATA,
    WORKLOAD_USER,
    Question,
    Workload,
    emit,
    mean_scores,
    percentiles,
    postgres_server,
    scores,
    structured,
    workload,
)

MODES = ("hybrid", "keyword", "semantic")
K = 10


@contextlib.asynccontextmanager
async def client_for(db: str, embedder: str) -> AsyncIterator[Any]:
    from mcp import Client

    from abathur_memory.config import load_settings
    from abathur_memory.server.app import create_server

    settings = load_settings(
        db=db, user=WORKLOAD_USER, app="bench", embedder=embedder, maintenance_interval_hours=0
    )
    async with Client(create_server(settings)) as client:
        yield client


async def store(client: Any, work: Workload) -> float:
    """Put every memory: each namespace's in order (as the agent of a conversation would),
    the namespaces side by side (several agents at once); returns seconds."""
    by_namespace: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for namespace, key, value in work.memories:
        by_namespace[namespace].append((key, value))

    async def agent(namespace: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        for key, value in items:
            # The default memory type, as an agent that does not say would store them: what
            # makes a turn part of a sequence is its value (it names a speaker).
            result = await client.call_tool(
                "memory_put", {"namespace": namespace, "key": key, "value": value}
            )
            structured(result, "memory_put")

    started = time.perf_counter()
    await asyncio.gather(*(agent(ns, items) for ns, items in by_namespace.items()))
    return time.perf_counter() - started


async def caught_up(client: Any, namespace: str, timeout_s: float) -> float:
    """Seconds until memory_search reports nothing pending for the background indexer."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        result = await client.call_tool(
            "memory_search", {"query": "catch up", "prefix": namespace, "k": 1}
        )
        if structured(result, "memory_search").get("pending", 0) == 0:
            return time.perf_counter() - started
        await asyncio.sleep(0.25)
    raise TimeoutError(f"background embeddings not caught up after {timeout_s:.0f}s")


async def ask(client: Any, work: Workload, mode: str, k: int) -> dict[str, Any]:
    rows: list[dict[str, float]] = []
    by_category: dict[str, list[dict[str, float]]] = defaultdict(list)
    latencies: list[float] = []
    degraded: set[str] = set()
    for question in work.questions:
        started = time.perf_counter()
        result = await client.call_tool(
            "memory_search",
            {"query": question.text, "prefix": question.namespace, "k": k, "mode": mode},
        )
        latencies.append(time.perf_counter() - started)
        found = structured(result, "memory_search")
        if found.get("degraded"):
            degraded.add(found["degraded"])
        ranked = [hit["key"] for hit in found["results"]]
        row = scores(ranked, question.relevant)
        rows.append(row)
        if question.category:
            by_category[question.category].append(row)
    out: dict[str, Any] = {
        "questions": len(rows),
        **mean_scores(rows),
        **percentiles(latencies, scale=1000, digits=2),
    }
    if by_category:
        out["by_category"] = {
            name: {"questions": len(by_category[name]), **mean_scores(by_category[name])}
            for name in CATEGORIES.values()
            if by_category[name]
        }
    if degraded:
        out["degraded"] = sorted(degraded)
    return out


BUDGETS = (250, 500, 1000, 2000)


def hits_first(hits: list[Any], max_tokens: int) -> list[Any]:
    """The other packing policy measured: every hit that fits first, then neighbours."""
    from abathur_memory.search.packing import value_tokens

    used, kept = 0, []
    for hit in hits:
        cost = value_tokens(hit.value)
        if used + cost <= max_tokens:
            used += cost
            kept.append(hit.model_copy(update={"context": []}))
    shown = {(h.namespace, h.key) for h in kept}
    by_key = {(h.namespace, h.key): h for h in hits}
    for hit in kept:
        for near in sorted(
            by_key[(hit.namespace, hit.key)].context or [], key=lambda n: abs(n.offset)
        ):
            cost = value_tokens(near.value)
            if (hit.namespace, near.key) not in shown and used + cost <= max_tokens:
                used += cost
                shown.add((hit.namespace, near.key))
                hit.context.append(near)
    return kept


async def packing(client: Any, work: Workload) -> dict[str, Any]:
    """Evidence that reaches the agent within a token budget: the share of each question's
    evidence turns present in the packed reply (as hits or neighbours), per budget, number
    of neighbours and packing policy, against plain k=10 and its tokens."""
    from abathur_memory.search.packing import pack, value_tokens
    from abathur_memory.search.results import MemoryHit

    found: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    plain_tokens: list[int] = []
    for question in work.questions:
        result = await client.call_tool(
            "memory_search",
            {"query": question.text, "prefix": question.namespace, "k": 30, "context": 2},
        )
        hits = [MemoryHit.model_validate(h) for h in structured(result, "memory_search")["results"]]
        plain = hits[:10]
        plain_tokens.append(sum(value_tokens(h.value) for h in plain))
        found[("k=10, no context", 0, "")].append(_evidence(plain, question, context=False))
        for around in (0, 1, 2):
            trimmed = [
                h.model_copy(
                    update={"context": [n for n in h.context or [] if abs(n.offset) <= around]}
                )
                for h in hits
            ]
            for budget in BUDGETS:
                kept, _ = pack(trimmed, budget)
                found[("score order, each hit with its neighbours", around, str(budget))].append(
                    _evidence(kept, question)
                )
                if around:
                    found[("every hit first, then neighbours", around, str(budget))].append(
                        _evidence(hits_first(trimmed, budget), question)
                    )
    table: dict[str, float] = {"k=10 tokens p50": int(statistics.median(plain_tokens))}
    for (policy, around, tokens), values in sorted(found.items()):
        name = policy if not tokens else f"{policy}; context {around}; {tokens} tokens"
        table[name] = round(statistics.fmean(values), 4)
    return table


def _evidence(hits: list[Any], question: Question, *, context: bool = True) -> float:
    keys = {h.key for h in hits}
    if context:
        keys |= {n.key for h in hits for n in h.context or []}
    return len(keys & set(question.relevant)) / len(question.relevant)


async def measure(db: str, work: Workload, embedder: str, modes: list[str]) -> dict[str, Any]:
    async with client_for(db, embedder) as client:
        put_s = await store(client, work)
        namespaces = sorted({ns for ns, _, _ in work.memories})
        catch_up_s = 0.0
        if embedder != "none":
            catch_up_s = await caught_up(client, namespaces[0], timeout_s=3600)
            for namespace in namespaces[1:]:
                await caught_up(client, namespace, timeout_s=600)
        results: dict[str, Any] = {
            "memories": len(work.memories),
            "questions": len(work.questions),
            "put_s": round(put_s, 2),
            "puts_per_s": round(len(work.memories) / put_s, 1),
            "embeddings_caught_up_s": round(catch_up_s, 2),
        }
        for mode in modes:
            print(f"  {work.name}: {mode}", file=sys.stderr)
            results[mode] = await ask(client, work, mode, K)
        if work.name == "locomo" and "hybrid" in modes:
            print(f"  {work.name}: packing", file=sys.stderr)
            results["evidence_within_budget"] = await packing(client, work)
        best_half = max(results[m]["R@10"] for m in ("keyword", "semantic") if m in results)
        if "hybrid" in results and ("keyword" in results or "semantic" in results):
            results["hybrid_minus_best_half_R@10"] = round(results["hybrid"]["R@10"] - best_half, 4)
        return results


async def run(args: argparse.Namespace) -> dict[str, Any]:
    names = (
        ["locomo", "cranfield", "vaswani", "nfcorpus"] if "all" in args.workload else args.workload
    )
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    modes = args.mode or list(MODES)
    out: dict[str, Any] = {
        "benchmark": "memory_retrieval",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "embedder": args.embedder,
        "k": K,
        "quick": args.quick,
        "results": {},
    }
    for backend in backends:
        out["results"][backend] = {}
        for name in names:
            work = workload(name, args.quick)
            print(f"{backend}: {name} ({len(work.memories)} memories)", file=sys.stderr)
            with tempfile.TemporaryDirectory(prefix="abathur-bench-") as tmp:
                if args.db:
                    db = args.db
                    result = await measure(db, work, args.embedder, modes)
                elif backend == "postgres":
                    with postgres_server() as db:
                        result = await measure(db, work, args.embedder, modes)
                else:
                    result = await measure(str(Path(tmp) / "bench.db"), work, args.embedder, modes)
            out["results"][backend][name] = result
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workload",
        action="append",
        choices=["locomo", "cranfield", "vaswani", "nfcorpus", "all"],
        help="repeatable; default locomo",
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--db", help="an existing empty database (path or postgresql:// URL)")
    parser.add_argument("--mode", action="append", choices=MODES, help="repeatable; default all")
    parser.add_argument("--embedder", default="embedded", help="embedded (default), fake, ...")
    parser.add_argument("--quick", action="store_true", help="a small sample, for a smoke run")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    args.workload = args.workload or ["locomo"]
    if not DATA.is_dir():
        print(f"error: the evaluation data is not at {DATA}", file=sys.stderr)
        return 2
    emit(asyncio.run(run(args)), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
