"""Which vectors consolidation should compare: its own or the memory indexer's; prints JSON.

Consolidation embeds each compared version's value text itself (``proposals.texts_for``)
and keeps those vectors (``consolidation_vectors``), although the memory indexer has
normally embedded every live memory with the same model for semantic search. Comparing
the indexer's vectors instead would embed each memory once, not twice, and make a first
run over 100,000 memories minutes instead of 15-80 minutes on 2 cores; it was to be done
only if proposals stay as good. The indexer embeds ``f"{key}: {memory_text(key, value)}"``
(in parts when long, pooled), so its vectors carry the key twice.

This scores both on bench/consolidation.py's real-text workload, with no database (the
proposals are the same as a run's: ``propose`` over each namespace's vectors), for:

- ``value``: what consolidation embeds (``texts_for``);
- ``indexer``: what the memory indexer embeds (``memory_parts`` of the key and the
  indexed text, pooled as the store pools a memory's own parts);

each under the workload's keys (``named``: ``m12``, ``m12-again``, ``event3-0``, which
name what was planted) and under keys that do not (``opaque``, bench/consolidation.py's
``--opaque-keys``). The ``value`` rows are the same whatever the keys: the keys are not
embedded (a text is embedded once and its vector reused).

    python -m bench.consolidation_vectors [--embedder fake|embedded] [--memories 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit
from bench.consolidation import opaque_keys, score, text_workload


def entries_of(puts: list[tuple[Any, ...]]) -> list[Any]:
    """The puts as the live versions a run reads: in put order in time, listed by key."""
    from abathur_memory.core.records import MemoryEntry

    found = []
    for number, (namespace, key, value, memory_type) in enumerate(puts):
        moment = f"2026-01-01T{number // 3600:02d}:{number // 60 % 60:02d}:{number % 60:02d}Z"
        found.append(
            MemoryEntry(
                id=number + 1,
                namespace=namespace,
                key=key,
                version=1,
                value=value,
                memory_type=memory_type,
                metadata={},
                is_deleted=False,
                created_by="bench",
                updated_by="bench",
                created_at=moment,
                updated_at=moment,
            )
        )
    return sorted(found, key=lambda e: (e.namespace, e.key))


async def vectors(
    embedder: Any, entries: list[Any], how: str, cache: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Each namespace's vectors, rows in the order of its entries (``cache``: the vectors
    of texts embedded before, by text, so the same text is embedded once)."""
    from abathur_memory.core import memory_units
    from abathur_memory.core.memory_text import memory_text
    from abathur_memory.memory.proposals import texts_for
    from abathur_memory.search.memory_indexer import memory_parts

    pieces: list[tuple[int, str]] = []
    for entry in entries:
        if how == "value":
            pieces.append((entry.id, texts_for([entry])[0]))
            continue
        text = f"{entry.key}: {memory_text(entry.key, entry.value)}"
        pieces += [(entry.id, part) for part in memory_parts(embedder, text)]
    new = list(dict.fromkeys(text for _, text in pieces if text not in cache))
    for start in range(0, len(new), 64):
        matrix = await embedder.embed_documents(new[start : start + 64])
        cache.update(zip(new[start : start + 64], matrix, strict=True))
    parts: dict[int, list[np.ndarray]] = {}
    for entry_id, text in pieces:
        parts.setdefault(entry_id, []).append(cache[text])
    found = {entry_id: memory_units.pooled(v) for entry_id, v in parts.items()}
    groups: dict[str, list[Any]] = {}
    for entry in entries:
        groups.setdefault(entry.namespace, []).append(entry)
    return {
        namespace: np.vstack([found[e.id] for e in group]).astype(np.float32)
        for namespace, group in groups.items()
    }


async def run(embedder_name: str, memories: int, per_namespace: int, seed: int) -> dict[str, Any]:
    from abathur_memory.config import load_settings
    from abathur_memory.embedders.factory import make_embedder
    from abathur_memory.memory.proposals import propose

    embedder = make_embedder(load_settings(db=":memory:", embedder=embedder_name))
    puts, planted = text_workload(memories, per_namespace, seed)
    workloads = {"named": (puts, planted), "opaque": opaque_keys(puts, planted, seed)}
    runs: dict[str, Any] = {}
    cache: dict[str, np.ndarray] = {}
    for keys, (these, truth) in workloads.items():
        entries = entries_of(these)
        for how in ("value", "indexer"):
            started = time.perf_counter()
            proposals, _ = propose(entries, await vectors(embedder, entries, how, cache))
            runs[f"{keys}/{how}"] = {
                "proposals": score([p.model_dump() for p in proposals], truth),
                "seconds": round(time.perf_counter() - started, 1),
            }
            sys.stderr.write(f"{keys}/{how}: {runs[f'{keys}/{how}']}\n")
    return {"memories": len(puts), "embedder": embedder_name, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--embedder", default="fake")
    parser.add_argument("--memories", type=int, default=5000)
    parser.add_argument("--per-namespace", type=int, default=500)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args.embedder, args.memories, args.per_namespace, args.seed))
    emit(result, args.out)


if __name__ == "__main__":
    main()
