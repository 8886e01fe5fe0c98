"""memory_consolidate on a planted workload; prints one JSON object.

The workload is synthetic and deterministic (no data files needed): ``--subjects`` people
with facts about them (city, employer, pet, hobby, ...) in one namespace each, plus planted

- exact duplicates: a fact again with other case, spacing and end punctuation;
- near duplicates: a fact again in other words (a second template of the same attribute);
- updates: a newer fact about the same subject, keyed ``<attribute>_v2``;
- episodic events: a few alike walks per person, to be clustered.

``--workload text`` plants the same kinds into real sentences nobody here wrote (LoCoMo's
development turns and sentences of the BEIR abstracts in ../shared/data), in namespaces of
``--per-namespace`` memories, ``--memories`` in all (copies of the sentences fill the
namespaces beyond the distinct ones; a namespace never holds a sentence twice unless
planted):

- exact duplicates: a memory's text again with other case, spacing and end punctuation;
- edited copies (near duplicates): its text again with a tenth of its words dropped and
  its clauses around a comma swapped, which is how a re-stored fact tends to differ;
- updates: its text with one word changed to another sentence's, keyed ``<key>_v2``;
- episodic events: a LoCoMo turn retold three or four times (edited copies), stored as
  episodic memories among other turns, to be clustered.

Measured on either backend (``--backend``), with the embedder given by ``--embedder``
(``fake`` by default, a hashing embedder that knows no paraphrase; ``embedded`` for the
bundled model):

- precision and recall of the proposals per kind against what was planted;
- versions lost: counts and checksums of every version before and after apply and undo
  (nothing is ever deleted or rewritten: they must not change, apart from the memories a
  run adds);
- stale facts among the top 5 of a search for each updated attribute (the person's name
  and the attribute's name), before and after applying every proposal;
- run times of the memory indexer's catch-up after the load, propose, apply, undo and a
  second propose (the vectors kept by the first run: what a scheduled run costs when
  little changed), and the longest write transaction
  while each ran (the write lock on SQLite, a transaction's row locks on PostgreSQL), with
  what it was.

    python -m bench.consolidation [--subjects 200] [--embedder fake|embedded] [--out FILE]
    python -m bench.consolidation --workload text [--memories 5000] [--backend postgres]
                                  [--opaque-keys]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import DATA, emit, postgres_server

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


def sentences() -> tuple[list[str], list[str]]:
    """(LoCoMo turns, BEIR sentences): real text, distinct once normalised."""
    from abathur_memory.memory.proposals import normalised

    turns: list[str] = []
    for conversation in json.loads((DATA / "locomo-dev" / "locomo-dev.json").read_text()):
        talk = conversation["conversation"]
        number = 1
        while f"session_{number}" in talk:
            turns += [f"{t['speaker']}: {t['text']}" for t in talk[f"session_{number}"]]
            number += 1
    found: list[str] = []
    for name in ("cranfield", "vaswani"):
        with (DATA / name / "corpus.jsonl").open() as lines:
            for line in lines:
                text = json.loads(line)["text"]
                found += [x.strip() for x in re.split(r"(?<=[.!?])\s+", text)]
    seen: set[str] = set()
    out: tuple[list[str], list[str]] = ([], [])
    for bucket, texts in zip(out, (turns, found), strict=True):
        for text in texts:
            words = len(text.split())
            if 6 <= words <= 60 and normalised(text) not in seen:
                seen.add(normalised(text))
                bucket.append(text)
    return out


def edited(text: str, rng: random.Random) -> str:
    """The text with a tenth of its words dropped (at least one) and its clauses around
    the first comma swapped."""
    head, comma, tail = text.partition(", ")
    if comma and len(tail.split()) >= 3:
        text = f"{tail.rstrip('.!?')}, {head[0].lower()}{head[1:]}."
    words = text.split()
    drop = set(rng.sample(range(len(words)), max(1, len(words) // 10)))
    return " ".join(w for i, w in enumerate(words) if i not in drop)


def text_workload(
    memories: int, per_namespace: int, seed: int
) -> tuple[list[tuple[Any, ...]], dict[str, set[Any]]]:
    """(namespace, key, value, memory_type) to put in order, and what was planted."""
    from abathur_memory.memory.proposals import normalised

    rng = random.Random(seed)
    turns, beir = sentences()
    told_turns = turns[len(turns) // 2 :]  # events and other turns; the rest are facts
    pool = turns[: len(turns) // 2] + beir
    rng.shuffle(pool)
    told = 0
    planted: dict[str, set[Any]] = {k: set() for k in ("exact_duplicate", "near_duplicate")}
    planted.update(update=set(), episodic_cluster=set())
    puts: list[tuple[Any, ...]] = []
    cursor = 0
    for number in range(max(1, memories // per_namespace)):
        ns = f"user:bench:text{number:04d}"
        base_count = int(per_namespace * 0.8)
        texts = [pool[(cursor + i) % len(pool)] for i in range(base_count)]
        cursor += base_count
        rows = [(ns, f"m{i}", text, "semantic") for i, text in enumerate(texts)]
        planting = rng.sample(range(base_count), int(per_namespace * 0.15))
        third = len(planting) // 3
        for i in planting[:third]:
            rows.append((ns, f"m{i}-copy", "  " + texts[i].upper() + " . ", "semantic"))
            planted["exact_duplicate"].add(frozenset({(ns, f"m{i}"), (ns, f"m{i}-copy")}))
        for i in planting[third : 2 * third]:
            again = edited(texts[i], rng)
            while normalised(again) == normalised(texts[i]):  # a word that was only a mark
                again = edited(texts[i], rng)
            rows.append((ns, f"m{i}-again", again, "semantic"))
            planted["near_duplicate"].add(frozenset({(ns, f"m{i}"), (ns, f"m{i}-again")}))
        for i in planting[2 * third :]:
            words = texts[i].split()
            at = rng.randrange(len(words))
            other = rng.choice(pool[rng.randrange(len(pool))].split())
            same = other.casefold().strip(".,!?;") == words[at].casefold().strip(".,!?;")
            words[at] = other + "s" if same else other
            rows.append((ns, f"m{i}_v2", " ".join(words), "semantic"))
            planted["update"].add(frozenset({(ns, f"m{i}"), (ns, f"m{i}_v2")}))
        for e in range(max(2, per_namespace // 100)):
            event = told_turns[told % len(told_turns)]
            told += 1
            tellings = [event]
            while len(tellings) < 3 + e % 2:  # retold, never word for word
                retold = edited(event, rng)
                if normalised(retold) not in {normalised(t) for t in tellings}:
                    tellings.append(retold)
            members = {(ns, f"event{e}-{t}") for t in range(len(tellings))}
            rows += [(ns, f"event{e}-{t}", text, "episodic") for t, text in enumerate(tellings)]
            planted["episodic_cluster"].add(frozenset(members))
        for t in range(per_namespace - len(rows)):
            rows.append((ns, f"turn{t}", told_turns[told % len(told_turns)], "episodic"))
            told += 1
        puts += rows
    return puts, planted


def opaque_keys(
    puts: list[tuple[Any, ...]], planted: dict[str, set[Any]], seed: int
) -> tuple[list[tuple[Any, ...]], dict[str, set[Any]]]:
    """The same workload under keys that say nothing of what was planted (``k`` and eight
    hex digits; an update keeps its ``_v2`` on its original's key, how updates are found).
    The text workload's keys do: ``m12`` and ``m12-again`` or ``event3-0`` and ``event3-1``
    share words, and a vector of the key with the text (the search index's) sees them."""

    def hidden(key: str) -> str:
        if key.endswith("_v2"):
            return hidden(key[: -len("_v2")]) + "_v2"
        return "k" + hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()[:8]

    renamed = [(ns, hidden(key), *rest) for ns, key, *rest in puts]
    moved = {
        kind: {frozenset((ns, hidden(key)) for ns, key in group) for group in groups}
        for kind, groups in planted.items()
    }
    return renamed, moved


def score(proposals: list[dict[str, Any]], planted: dict[str, set[Any]]) -> dict[str, Any]:
    """Precision and recall per kind of every proposal, and as ``--min-confidence`` would
    apply them: ``precision_at_recall_0_7`` is the best precision of a confidence cut-off
    that keeps recall at 0.7 or more (the usual precision-at-recall; None if none does),
    with the cut-off and its recall."""
    out: dict[str, Any] = {}
    for kind, truth in planted.items():
        confidence: dict[frozenset[Any], float] = {}
        for p in proposals:
            if p["kind"] == kind:
                members = frozenset((m["namespace"], m["key"]) for m in p["members"])
                confidence[members] = max(confidence.get(members, 0.0), float(p["confidence"]))
        found = set(confidence)
        hits = len(found & truth)
        out[kind] = {
            "planted": len(truth),
            "proposed": len(found),
            "precision": round(hits / len(found), 3) if found else None,
            "recall": round(hits / len(truth), 3) if truth else None,
            **at_recall(confidence, truth, 0.7),
        }
    return out


def at_recall(
    confidence: dict[frozenset[Any], float], truth: set[Any], wanted: float
) -> dict[str, Any]:
    """The best precision over confidence cut-offs whose recall is at least ``wanted``."""
    best: dict[str, Any] = {"precision_at_recall_0_7": None}
    if not truth:
        return best
    for cut in sorted(set(confidence.values())):
        kept = {members for members, c in confidence.items() if c >= cut}
        hits = len(kept & truth)
        recall = hits / len(truth)
        if recall < wanted:
            break  # higher cut-offs keep fewer
        precision = hits / len(kept)
        if best["precision_at_recall_0_7"] is None or precision > best["precision_at_recall_0_7"]:
            best = {
                "precision_at_recall_0_7": round(precision, 3),
                "at_min_confidence": round(cut, 4),
                "recall_there": round(recall, 3),
            }
    return best


def database_of(runtime: Any) -> Any:
    """The store's database object (``db`` on SQLite, ``database`` on PostgreSQL)."""
    return getattr(runtime.store, "db", None) or runtime.store.database


async def versions(runtime: Any) -> tuple[int, str]:
    rows = await database_of(runtime).fetchall(
        "SELECT namespace, key, version, value, metadata, created_at FROM memory_entries"
        " WHERE namespace LIKE 'user:bench:%' AND key NOT LIKE 'distilled-%'"
        " ORDER BY namespace, key, version"
    )
    text = json.dumps([list(r) for r in rows], default=str, sort_keys=True)
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


async def stale_text_in_top5(runtime: Any, principal: Any, puts: list[tuple[Any, ...]]) -> int:
    """Old texts (those an update replaced) among the top 5 of a search for their first
    ten words, over every planted update."""
    await runtime.memory_indexer.catch_up()
    text = {(ns, key): value for ns, key, value, _ in puts}
    stale = 0
    for ns, key, _value, _type in puts:
        if key.endswith("_v2"):
            old = key[: -len("_v2")]
            query = " ".join(text[(ns, old)].split()[:10])
            found = await runtime.memories.search(principal, query, prefix=ns, k=5)
            stale += sum(1 for hit in found.results if hit.key == old)
    return stale


class WriteHolds:
    """The longest write transaction while something ran: on SQLite, the time from
    ``BEGIN IMMEDIATE`` to ``COMMIT`` on the one writer (the write lock); on PostgreSQL,
    a transaction of the store's (its row locks)."""

    def __init__(self) -> None:
        self.holds: list[tuple[float, str]] = []

    @contextlib.contextmanager
    def watching(self, runtime: Any) -> Iterator[None]:
        from abathur_memory.store.sqlite import database as sqlite_db

        holds = self.holds
        db = database_of(runtime)
        if hasattr(db, "transaction"):  # PostgreSQL
            original = db.transaction

            async def timed(fn: Any, *, what: str = "writing") -> Any:
                started = time.perf_counter()
                try:
                    return await original(fn, what=what)
                finally:
                    holds.append((time.perf_counter() - started, what))

            db.transaction = timed
            try:
                yield
            finally:
                del db.transaction
            return
        plain = sqlite_db._in_write_transaction

        def timed_sqlite(conn: Any, fn: Any, check: Any, *args: Any) -> Any:
            started = time.perf_counter()
            try:
                return plain(conn, fn, check, *args)
            finally:
                name = getattr(fn, "__qualname__", None) or getattr(fn, "func", fn).__qualname__
                holds.append((time.perf_counter() - started, name))

        sqlite_db._in_write_transaction = timed_sqlite
        try:
            yield
        finally:
            sqlite_db._in_write_transaction = plain

    def longest(self) -> dict[str, Any]:
        if not self.holds:
            return {"transactions": 0}
        seconds, what = max(self.holds)
        return {
            "transactions": len(self.holds),
            "longest_ms": round(seconds * 1000, 1),
            "longest_was": what,
        }


async def run(
    puts: list[tuple[Any, ...]],
    planted: dict[str, set[Any]],
    stale_search: Any,
    db: str,
    embedder: str,
) -> dict[str, Any]:
    from abathur_memory.config import load_settings
    from abathur_memory.core.principal import Principal
    from abathur_memory.memory.memories import PutRequest
    from abathur_memory.runtime import open_runtime

    principal = Principal(user="bench", app="bench")
    settings = load_settings(
        db=db, user="bench", app="bench", embedder=embedder, maintenance_interval_hours=0
    )
    async with open_runtime(settings) as runtime:
        started = time.perf_counter()
        for start in range(0, len(puts), 1000):
            await runtime.memories.put_many(
                principal,
                [PutRequest(ns, k, v, memory_type=t) for ns, k, v, t in puts[start : start + 1000]],
            )
        load_s = time.perf_counter() - started
        # The memory indexer catches up before anything is searched or proposed (a server's
        # runs from the first put on); its time is its own, not the load's or a run's.
        started = time.perf_counter()
        await runtime.memory_indexer.catch_up()
        index_s = time.perf_counter() - started
        before = await versions(runtime)
        stale_before = await stale_search(runtime, principal, puts)
        holds = {name: WriteHolds() for name in ("propose", "apply", "undo")}
        started = time.perf_counter()
        with holds["propose"].watching(runtime):
            proposed = await runtime.consolidation.consolidate(principal, "user:bench")
        propose_s = time.perf_counter() - started
        proposals = [p.model_dump() for p in proposed.proposals]
        started = time.perf_counter()
        with holds["apply"].watching(runtime):
            applied = await runtime.consolidation.consolidate(
                principal, "user:bench", dry_run=False, min_confidence=0.0
            )
        apply_s = time.perf_counter() - started
        after_apply = await versions(runtime)
        stale_after = await stale_search(runtime, principal, puts)
        started = time.perf_counter()
        with holds["undo"].watching(runtime):
            await runtime.consolidation.undo(principal, applied.run.id)
        undo_s = time.perf_counter() - started
        after_undo = await versions(runtime)
        started = time.perf_counter()
        with holds.setdefault("propose_again", WriteHolds()).watching(runtime):
            await runtime.consolidation.consolidate(principal, "user:bench")
        again_s = time.perf_counter() - started
        return {
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
                "load": round(load_s, 1),
                "index_catch_up": round(index_s, 1),
                "propose": round(propose_s, 2),
                "apply": round(apply_s, 2),
                "undo": round(undo_s, 2),
                "propose_again": round(again_s, 2),  # vectors kept: nothing to embed
            },
            "write_transactions": {name: h.longest() for name, h in holds.items()},
        }


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "postgres":
        with postgres_server() as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield str(Path(tmp) / "bench.db")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--workload", choices=["synthetic", "text"], default="synthetic")
    parser.add_argument("--subjects", type=int, default=200, help="synthetic: people")
    parser.add_argument("--memories", type=int, default=5000, help="text: memories in all")
    parser.add_argument("--per-namespace", type=int, default=500, help="text")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--embedder", default="fake")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument(
        "--opaque-keys", action="store_true", help="keys that do not name what was planted"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.workload == "text":
        puts, planted = text_workload(args.memories, args.per_namespace, args.seed)
        stale_search = stale_text_in_top5
    else:
        puts, planted = workload(args.subjects, args.seed)
        stale_search = stale_in_top5
    if args.opaque_keys:
        if args.workload != "text":
            parser.error("--opaque-keys is for --workload text")
        puts, planted = opaque_keys(puts, planted, args.seed)
    with database(args.backend) as db:
        result = asyncio.run(run(puts, planted, stale_search, db, args.embedder))
    result = {"workload": args.workload, "backend": args.backend, **result}
    if args.opaque_keys:
        result["keys"] = "opaque"
    emit(result, args.out)


if __name__ == "__main__":
    main()
