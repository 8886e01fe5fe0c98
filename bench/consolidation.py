"""memory_consolidate on a planted workload; prints one JSON object.

The workload is synthetic and deterministic (no data files needed): ``--subjects`` people
with facts about them (city, employer, pet, hobby, ...) in one namespace each, plus planted

- exact duplicates: a fact again with other case, spacing and end punctuation;
- near duplicates: a fact again in other words (a second template of the same attribute);
- updates: a newer fact about the same subject, keyed ``<attribute>_v2``;
- episodic events: a few alike walks per person, to be clustered.

Measured (SQLite, the embedder given by ``--embedder``: ``fake`` by default, a hashing
embedder that knows no paraphrase; ``embedded`` for the bundled model):

- precision and recall of the proposals per kind against what was planted;
- versions lost: counts and checksums of every version before and after apply and undo
  (nothing is ever deleted or rewritten: they must not change, apart from the memories a
  run adds);
- stale facts among the top 5 of a search for each updated attribute (the person's name
  and the attribute's name), before and after applying every proposal;
- run times of propose, apply and undo.

    python bench/consolidation.py [--subjects 200] [--embedder fake|embedded] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CITIES = ["Berlin", "Lisbon", "Oslo", "Lyon", "Porto", "Quito", "Osaka", "Tunis", "Perth"]
EMPLOYERS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne"]
PETS = ["a cat", "a parrot", "two dogs", "a tortoise", "goldfish", "a ferret", "a rabbit"]
HOBBIES = ["climbing", "chess", "pottery", "sailing", "birding", "fencing", "baking"]
ATTRIBUTES: dict[str, tuple[list[str], list[str]]] = {
    # attribute: (values, (template, paraphrase template))
    "city": (CITIES, ["{name} lives in {v}", "{name}'s home is in the city of {v}"]),
    "employer": (EMPLOYERS, ["{name} works at {v}", "{name} is employed by {v}"]),
    "pet": (PETS, ["{name} has {v} at home", "at home {name} keeps {v}"]),
    "hobby": (HOBBIES, ["{name} enjoys {v} on weekends", "on weekends {name} goes {v}"]),
}
DAYS = ["monday", "tuesday", "thursday", "saturday"]


def workload(subjects: int, seed: int) -> tuple[list[tuple[Any, ...]], dict[str, set[Any]]]:
    """(namespace, key, value, memory_type) to put in order, and what was planted."""
    rng = random.Random(seed)
    puts: list[tuple[Any, ...]] = []
    planted: dict[str, set[Any]] = {
        "exact_duplicate": set(),
        "near_duplicate": set(),
        "update": set(),
        "episodic_cluster": set(),
    }
    for n in range(subjects):
        name = f"Person{n}"
        ns = "user:bench:people"
        p = f"p{n}_"
        chosen: dict[str, str] = {}
        for attribute, (values, templates) in ATTRIBUTES.items():
            chosen[attribute] = rng.choice(values)
            puts.append(
                (ns, p + attribute, templates[0].format(name=name, v=chosen[attribute]), "semantic")
            )
        kind = n % 4
        attribute = rng.choice(list(ATTRIBUTES))
        values, templates = ATTRIBUTES[attribute]
        first = templates[0].format(name=name, v=chosen[attribute])
        if kind == 0:  # an exact duplicate
            puts.append((ns, f"{p}{attribute}_copy", "  " + first.upper() + ". ", "semantic"))
            planted["exact_duplicate"].add(
                frozenset({(ns, p + attribute), (ns, f"{p}{attribute}_copy")})
            )
        elif kind == 1:  # a paraphrase
            text = templates[1].format(name=name, v=chosen[attribute])
            puts.append((ns, f"{p}{attribute}_said", text, "semantic"))
            planted["near_duplicate"].add(
                frozenset({(ns, p + attribute), (ns, f"{p}{attribute}_said")})
            )
        elif kind == 2:  # an update
            newer = rng.choice([v for v in values if v != chosen[attribute]])
            text = templates[0].format(name=name, v=newer)
            puts.append((ns, f"{p}{attribute}_v2", text, "semantic"))
            planted["update"].add(frozenset({(ns, p + attribute), (ns, f"{p}{attribute}_v2")}))
        walks = []
        for day in DAYS[: 3 + (n % 2)]:
            key = f"{p}walk_{day}"
            puts.append((ns, key, f"{name} walked the dog in the park on {day}", "episodic"))
            walks.append((ns, key))
        planted["episodic_cluster"].add(frozenset(walks))
    return puts, planted


def score(proposals: list[dict[str, Any]], planted: dict[str, set[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, truth in planted.items():
        found = {
            frozenset((m["namespace"], m["key"]) for m in p["members"])
            for p in proposals
            if p["kind"] == kind
        }
        hits = len(found & truth)
        out[kind] = {
            "planted": len(truth),
            "proposed": len(found),
            "precision": round(hits / len(found), 3) if found else None,
            "recall": round(hits / len(truth), 3) if truth else None,
        }
    return out


async def versions(runtime: Any) -> tuple[int, str]:
    rows = await runtime.store.db.fetchall(
        "SELECT namespace, key, version, value, metadata, created_at FROM memory_entries"
        " WHERE namespace LIKE 'user:bench:%' AND key NOT LIKE 'distilled-%'"
        " ORDER BY namespace, key, version"
    )
    text = json.dumps([list(r) for r in rows])
    return len(rows), hashlib.sha256(text.encode()).hexdigest()


async def stale_in_top5(runtime: Any, principal: Any, puts: list[tuple[Any, ...]]) -> int:
    """Old facts (those an update replaced) among the top 5 of a search for the subject's
    attribute, over every planted update."""
    await runtime.memory_indexer.catch_up()
    stale = 0
    for ns, key, _value, _type in puts:
        if not key.endswith("_v2"):
            continue
        old = key[: -len("_v2")]
        person, attribute = old.split("_", 1)
        query = f"Person{person[1:]} {attribute}"
        found = await runtime.memories.search(principal, query, prefix=ns, k=5)
        stale += sum(1 for hit in found.results if hit.key == old)
    return stale


async def run(subjects: int, embedder: str, seed: int) -> dict[str, Any]:
    from abathur_memory.config import load_settings
    from abathur_memory.core.principal import Principal
    from abathur_memory.memory.memories import PutRequest
    from abathur_memory.runtime import open_runtime

    principal = Principal(user="bench", app="bench")
    puts, planted = workload(subjects, seed)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            db=str(Path(tmp) / "bench.db"),
            user="bench",
            app="bench",
            embedder=embedder,
            maintenance_interval_hours=0,
        )
        async with open_runtime(settings) as runtime:
            for start in range(0, len(puts), 1000):
                await runtime.memories.put_many(
                    principal,
                    [
                        PutRequest(ns, k, v, memory_type=t)
                        for ns, k, v, t in puts[start : start + 1000]
                    ],
                )
            before = await versions(runtime)
            stale_before = await stale_in_top5(runtime, principal, puts)
            started = time.perf_counter()
            proposed = await runtime.consolidation.consolidate(principal, "user:bench")
            propose_s = time.perf_counter() - started
            proposals = [p.model_dump() for p in proposed.proposals]
            started = time.perf_counter()
            applied = await runtime.consolidation.consolidate(
                principal, "user:bench", dry_run=False, min_confidence=0.0
            )
            apply_s = time.perf_counter() - started
            after_apply = await versions(runtime)
            stale_after = await stale_in_top5(runtime, principal, puts)
            started = time.perf_counter()
            await runtime.consolidation.undo(principal, applied.run.id)
            undo_s = time.perf_counter() - started
            after_undo = await versions(runtime)
            return {
                "subjects": subjects,
                "memories": len(puts),
                "embedder": embedder,
                "proposals": score(proposals, planted),
                "versions": {
                    "before": before[0],
                    "after_apply": after_apply[0],
                    "after_undo": after_undo[0],
                    "unchanged_after_apply": before == after_apply,
                    "unchanged_after_undo": before == after_undo,
                },
                "stale_in_top5": {"before": stale_before, "after_apply": stale_after},
                "applied": applied.run.counts,
                "seconds": {
                    "propose": round(propose_s, 2),
                    "apply": round(apply_s, 2),
                    "undo": round(undo_s, 2),
                },
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=200)
    parser.add_argument("--embedder", default="fake")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args.subjects, args.embedder, args.seed))
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
