"""A study of what memory_search should index and how it should fuse, outside the server.

bench.memory_retrieval measures the product through MCP; this script measures the
*choices* behind it, quickly enough to compare dozens of them: what text of a memory is
indexed (its key, field names, speaker, date), whether windows of neighbouring memories are
indexed as units, and how the keyword and vector lists are fused. It builds each candidate
list once per workload (BM25 from FTS5 with the product's tokenizer and query terms; cosine
with the embedded model, embeddings cached under --cache), then scores every variant.

    python -m bench.memory_fusion_study --workload locomo --workload cranfield   # round 1
    python -m bench.memory_fusion_study --round refine --workload locomo         # round 2

What was tried, what was measured and what ships: docs/retrieval.md. Data comes from
../shared/data (not in the repo). Nothing here is tuned to particular names or
texts: variants are generic rules, and the kept-aside half of LoCoMo checks that they carry.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from abathur_memory.core.memory_text import memory_text
from abathur_memory.search.query import keyword_terms
from abathur_memory.store.sqlite import driver
from abathur_memory.store.sqlite.terms import fts_match
from bench.common import Workload, emit, mean_scores, scores, workload

POOL = 100
List = list[tuple[int, float]]  # (unit id, score), best first


# ---------------------------------------------------------------------------- renderings


def render_current(key: str, value: Any) -> str:
    return memory_text(key, value)


def render_values(key: str, value: Any) -> str:
    """Only the scalars of the value (no key, no field names)."""
    words: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif node is not None:
            words.append(str(node))

    walk(value)
    return " ".join(words) or key


RENDERINGS: dict[str, Callable[[str, Any], str]] = {
    "current": render_current,
    "values": render_values,
}


# ---------------------------------------------------------------------------- indexes


class Bm25:
    """FTS5 with the product's tokenizer over a list of texts; rowid = position."""

    def __init__(self, texts: list[str]) -> None:
        self.conn = driver.connect(":memory:")
        self.conn.execute(
            "CREATE VIRTUAL TABLE t USING fts5(text,"
            " tokenize='porter unicode61 remove_diacritics 2')"
        )
        self.conn.executemany("INSERT INTO t (rowid, text) VALUES (?, ?)", list(enumerate(texts)))

    def search(self, query: str, allowed: tuple[int, int], limit: int = POOL) -> List:
        terms = keyword_terms(query)
        if not terms:
            return []
        rows = self.conn.execute(
            "SELECT rowid, bm25(t) AS s FROM t WHERE t MATCH ? AND rowid BETWEEN ? AND ?"
            " ORDER BY s LIMIT ?",
            (fts_match(terms), allowed[0], allowed[1] - 1, limit),
        ).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]


class Embeddings:
    def __init__(self, cache: Path) -> None:
        from abathur_memory.embedders.embedded import EmbeddedEmbedder

        self.model = EmbeddedEmbedder()
        self.cache = cache
        cache.mkdir(parents=True, exist_ok=True)

    def _limit(self, text: str) -> str:
        ids = self.model._tokenizer.encode(text).ids
        if len(ids) <= 256:
            return text
        return self.model._tokenizer.decode(ids[1:254])

    def matrix(self, texts: list[str], label: str) -> np.ndarray:
        digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
        path = self.cache / f"{label}-{digest}.npy"
        if path.exists():
            return np.load(path)
        print(f"  embedding {len(texts)} texts ({label})", file=sys.stderr)
        out = asyncio.run(self.model.embed_documents([self._limit(t) for t in texts]))
        np.save(path, out)
        return out

    def queries(self, texts: list[str]) -> np.ndarray:
        digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
        path = self.cache / f"queries-{digest}.npy"
        if path.exists():
            return np.load(path)
        out = np.stack([asyncio.run(self.model.embed_query(t)) for t in texts])
        np.save(path, out)
        return out


def cosine(matrix: np.ndarray, vector: np.ndarray, allowed: tuple[int, int]) -> List:
    lo, hi = allowed
    scores = matrix[lo:hi] @ vector
    top = np.argsort(-scores)[:POOL]
    return [(int(lo + i), float(scores[i])) for i in top]


# ---------------------------------------------------------------------------- fusion


def rrf(lists: list[List], weights: list[float] | None = None, k: int = 60) -> List:
    weights = weights or [1.0] * len(lists)
    out: dict[int, float] = defaultdict(float)
    for weight, ranked in zip(weights, lists, strict=True):
        for rank, (cid, _) in enumerate(ranked, start=1):
            out[cid] += weight / (k + rank)
    return sorted(out.items(), key=lambda x: -x[1])


def normalised(ranked: List, how: str) -> dict[int, float]:
    if not ranked:
        return {}
    values = np.array([s for _, s in ranked])
    if how == "max":
        top = values.max() or 1.0
        scaled = values / top
    elif how == "minmax":
        span = (values.max() - values.min()) or 1.0
        scaled = (values - values.min()) / span
    elif how == "z":
        sd = values.std() or 1.0
        scaled = (values - values.mean()) / sd
    else:
        raise ValueError(how)
    return {cid: float(s) for (cid, _), s in zip(ranked, scaled, strict=True)}


def convex(keyword: List, semantic: List, alpha: float, how: str) -> List:
    kn, sn = normalised(keyword, how), normalised(semantic, how)
    floor_k = min(kn.values(), default=0.0) if how == "z" else 0.0
    floor_s = min(sn.values(), default=0.0) if how == "z" else 0.0
    out = {
        cid: alpha * sn.get(cid, floor_s) + (1 - alpha) * kn.get(cid, floor_k) for cid in {*kn, *sn}
    }
    return sorted(out.items(), key=lambda x: -x[1])


# ---------------------------------------------------------------------------- windows


@dataclass
class Corpus:
    keys: list[str]
    namespaces: list[str]
    ranges: dict[str, tuple[int, int]]  # namespace -> [lo, hi)
    windows: list[list[int]]  # member memory positions per window


def make_windows(corpus_ns: list[str], size: int) -> list[list[int]]:
    """Windows of ``size`` consecutive memories of a namespace, one centred on each."""
    windows: list[list[int]] = []
    by_ns: dict[str, list[int]] = defaultdict(list)
    for i, ns in enumerate(corpus_ns):
        by_ns[ns].append(i)
    for members in by_ns.values():
        for c in range(len(members)):
            lo = max(0, c - size // 2)
            hi = min(len(members), lo + size)
            lo = max(0, hi - size)
            windows.append(members[lo:hi])
    return windows


def spread(window_list: List, windows: list[list[int]], how: str = "max") -> List:
    """Window scores handed to their members (the best window of each member)."""
    out: dict[int, float] = {}
    for wid, score in window_list:
        for member in windows[wid]:
            if how == "max":
                out[member] = max(out.get(member, -1e9), score)
    return sorted(out.items(), key=lambda x: -x[1])


def combine(a: List, b: List, weight_b: float) -> List:
    """Each memory's own score plus ``weight_b`` times its window's (both max-normalised)."""
    an, bn = normalised(a, "max"), normalised(b, "max")
    out = {cid: an.get(cid, 0.0) + weight_b * bn.get(cid, 0.0) for cid in {*an, *bn}}
    return sorted(out.items(), key=lambda x: -x[1])


# ---------------------------------------------------------------------------- study


def evaluate(ranked_per_question: list[list[str]], work: Workload) -> dict[str, Any]:
    rows = [
        scores(r[:10], q.relevant) for r, q in zip(ranked_per_question, work.questions, strict=True)
    ]
    out: dict[str, Any] = dict(mean_scores(rows))
    cats: dict[str, list[dict[str, float]]] = defaultdict(list)
    for row, q in zip(rows, work.questions, strict=True):
        if q.category:
            cats[q.category].append(row)
    if cats:
        out["by_category_R@10"] = {
            c: round(statistics.fmean(r["R@10"] for r in v), 4) for c, v in cats.items()
        }
    return out


def layout(work: Workload) -> tuple[list[str], list[str], dict[str, tuple[int, int]]]:
    """The memories' keys and namespaces in order, and each namespace's range of positions."""
    keys = [key for _, key, _ in work.memories]
    namespaces = [ns for ns, _, _ in work.memories]
    ranges: dict[str, tuple[int, int]] = {}
    for i, ns in enumerate(namespaces):
        lo, _ = ranges.get(ns, (i, i))
        ranges[ns] = (lo, i + 1)
    return keys, namespaces, ranges


def study(work: Workload, emb: Embeddings, window_sizes: list[int]) -> dict[str, Any]:
    keys, namespaces, ranges = layout(work)
    questions = [q.text for q in work.questions]
    qvec = emb.queries(questions)
    results: dict[str, Any] = {}

    def record(name: str, per_q: list[List]) -> None:
        results[name] = evaluate([[keys[c] for c, _ in r] for r in per_q], work)
        print(
            f"  {name}: R@5 {results[name].get('R@5')} R@10 {results[name].get('R@10')}",
            file=sys.stderr,
        )

    lists: dict[str, list[List]] = {}
    for rname, render in RENDERINGS.items():
        texts = [render(key, value) for _, key, value in work.memories]
        bm = Bm25(texts)
        lists[f"kw:{rname}"] = [bm.search(q.text, ranges[q.namespace]) for q in work.questions]
        embedded_texts = (
            [f"{key}: {t}" for key, t in zip(keys, texts, strict=True)]
            if rname == "current"
            else texts
        )
        matrix = emb.matrix(embedded_texts, f"{work.name}-{rname}")
        lists[f"sem:{rname}"] = [
            cosine(matrix, qvec[i], ranges[q.namespace]) for i, q in enumerate(work.questions)
        ]
        for size in window_sizes:
            windows = make_windows(namespaces, size)
            wtexts = [" ".join(texts[m] for m in members) for members in windows]
            # window ranges per namespace: windows are built namespace by namespace in order
            wbm = Bm25(wtexts)
            wranges: dict[str, tuple[int, int]] = {}
            for wid, members in enumerate(windows):
                ns = namespaces[members[0]]
                lo, _ = wranges.get(ns, (wid, wid))
                wranges[ns] = (lo, wid + 1)
            lists[f"kw:{rname}:w{size}"] = [
                spread(wbm.search(q.text, wranges[q.namespace]), windows) for q in work.questions
            ]
            wmatrix = emb.matrix(wtexts, f"{work.name}-{rname}-w{size}")
            lists[f"sem:{rname}:w{size}"] = [
                spread(cosine(wmatrix, qvec[i], wranges[q.namespace]), windows)
                for i, q in enumerate(work.questions)
            ]
        # Windows whose vector is pooled from their members' vectors: no extra model call.
        for size in window_sizes:
            windows = make_windows(namespaces, size)
            pooled = np.stack([matrix[members].sum(axis=0) for members in windows])
            pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
            # one window per memory, in memory order: window i is centred on memory i
            lists[f"sem:{rname}:pool{size}"] = [
                cosine(pooled, qvec[i], ranges[q.namespace]) for i, q in enumerate(work.questions)
            ]
            wtexts = [" ".join(texts[m] for m in members) for members in windows]
            cbm = Bm25(wtexts)
            lists[f"kw:{rname}:ctx{size}"] = [
                cbm.search(q.text, ranges[q.namespace]) for q in work.questions
            ]
    for name, per_q in lists.items():
        record(name, per_q)
    n = len(work.questions)
    for rname in RENDERINGS:
        kw, sem = lists[f"kw:{rname}"], lists[f"sem:{rname}"]
        record(f"rrf:{rname}", [rrf([kw[i], sem[i]]) for i in range(n)])
        for how in ("max", "minmax", "z"):
            for alpha in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
                record(
                    f"convex-{how}-{alpha}:{rname}",
                    [convex(kw[i], sem[i], alpha, how) for i in range(n)],
                )
        for size in window_sizes:
            kw_windows, sem_windows = lists[f"kw:{rname}:w{size}"], lists[f"sem:{rname}:w{size}"]
            # Neighbours' words and vectors added to each list: windows really embedded, then
            # context words and pooled vectors (the labels name which).
            for kw_name, sem_name, pair in (
                (f"kw+w{size}", f"sem+w{size}", f"(kw+w,sem+w){size}"),
                (f"kw+ctx{size}", f"sem+pool{size}", f"(kw+ctx,sem+pool){size}"),
            ):
                kw_more = lists[f"kw:{rname}:{kw_name.removeprefix('kw+')}"]
                sem_more = lists[f"sem:{rname}:{sem_name.removeprefix('sem+')}"]
                for wb in (0.5, 1.0, 1.5, 2.0):
                    kwc = [combine(kw[i], kw_more[i], wb) for i in range(n)]
                    semc = [combine(sem[i], sem_more[i], wb) for i in range(n)]
                    record(f"{kw_name}x{wb}:{rname}", kwc)
                    record(f"{sem_name}x{wb}:{rname}", semc)
                    record(f"rrf{pair}x{wb}:{rname}", [rrf([kwc[i], semc[i]]) for i in range(n)])
                    for how in ("max", "z"):
                        for alpha in (0.2, 0.3, 0.4, 0.5):
                            record(
                                f"convex-{how}-{alpha}{pair}x{wb}:{rname}",
                                [convex(kwc[i], semc[i], alpha, how) for i in range(n)],
                            )
            record(
                f"rrf4-w{size}:{rname}",
                [rrf([kw[i], sem[i], kw_windows[i], sem_windows[i]]) for i in range(n)],
            )
    return results


def refine(work: Workload, emb: Embeddings) -> dict[str, Any]:
    """The second round, on the winner of the first (windows of context beside each memory,
    z-score convex fusion): window shapes, a two-column keyword index (own words and the
    neighbours' words weighted), windows kept within one moment, the fusion weight, and
    boosts for a time or a speaker the question names. What ships is the last line."""
    import datetime as dt
    import re

    from abathur_memory.core.when import memory_moment, overlaps, spans_in
    from abathur_memory.search.query import keyword_terms as terms_of

    keys, namespaces, ranges = layout(work)
    texts = [render_current(key, value) for _, key, value in work.memories]
    matrix = emb.matrix(
        [f"{k}: {t}" for k, t in zip(keys, texts, strict=True)], f"{work.name}-current"
    )
    qvec = emb.queries([q.text for q in work.questions])
    moments = [memory_moment(value) for _, _, value in work.memories]
    speakers = [str(value.get("speaker", "")).lower() for _, _, value in work.memories]
    n = len(work.questions)
    record_first = Bm25(texts)
    kw = [record_first.search(q.text, ranges[q.namespace]) for q in work.questions]
    sem = [cosine(matrix, qvec[i], ranges[q.namespace]) for i, q in enumerate(work.questions)]
    results: dict[str, Any] = {}

    def record(name: str, per_q: list[List]) -> None:
        results[name] = evaluate([[keys[c] for c, _ in r] for r in per_q], work)
        print(f"  {name}: R@5 {results[name]['R@5']} R@10 {results[name]['R@10']}", file=sys.stderr)

    def windows_of(before: int, after: int, same_moment: bool) -> list[list[int]]:
        out = []
        for i, ns in enumerate(namespaces):
            lo, hi = ranges[ns]
            members = [j for j in range(max(lo, i - before), min(hi, i + after + 1)) if j != i]
            if same_moment:
                members = [j for j in members if moments[j] == moments[i]]
            out.append(members)
        return out

    def two_columns(context: list[list[int]], weight: float) -> list[List]:
        conn = driver.connect(":memory:")
        conn.execute(
            "CREATE VIRTUAL TABLE t USING fts5(text, ctx,"
            " tokenize='porter unicode61 remove_diacritics 2')"
        )
        conn.executemany(
            "INSERT INTO t (rowid, text, ctx) VALUES (?, ?, ?)",
            [(i, texts[i], " ".join(texts[j] for j in context[i])) for i in range(len(texts))],
        )
        out = []
        for q in work.questions:
            lo, hi = ranges[q.namespace]
            rows = conn.execute(
                "SELECT rowid, bm25(t, 1.0, ?) AS s FROM t WHERE t MATCH ?"
                " AND rowid BETWEEN ? AND ? ORDER BY s LIMIT ?",
                (weight, fts_match(terms_of(q.text)), lo, hi - 1, POOL),
            ).fetchall()
            out.append([(int(r[0]), -float(r[1])) for r in rows])
        return out

    def pooled(context: list[list[int]]) -> list[List]:
        vectors = np.stack([matrix[i] + matrix[context[i]].sum(axis=0) for i in range(len(texts))])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return [cosine(vectors, qvec[i], ranges[q.namespace]) for i, q in enumerate(work.questions)]

    def boosted(base: list[List], gain: Any) -> list[List]:
        return [
            sorted(((c, s + gain(i, c)) for c, s in base[i]), key=lambda x: -x[1]) for i in range(n)
        ]

    record("keyword, own words", kw)
    record("semantic, own vectors", sem)
    for before, after in [(1, 1), (2, 1), (2, 2), (3, 1), (3, 2), (4, 2)]:
        context = windows_of(before, after, same_moment=False)
        keyword, meaning = two_columns(context, 0.3), pooled(context)
        semantic = [combine(sem[i], meaning[i], 2.0) for i in range(n)]
        record(
            f"window {before} before {after} after",
            [convex(keyword[i], semantic[i], 0.3, "z") for i in range(n)],
        )
    context = windows_of(2, 2, same_moment=True)
    meaning = pooled(context)
    semantic = [combine(sem[i], meaning[i], 2.0) for i in range(n)]
    for weight in (0.3, 0.5, 1.0):
        keyword = two_columns(context, weight)
        record(f"keyword: neighbours' words at {weight}", keyword)
    keyword = two_columns(context, 0.3)
    record("semantic: own and pooled context vectors (x2.0)", semantic)
    for alpha in (0.2, 0.3, 0.4, 0.5):
        record(
            f"same-moment windows, z fusion, semantic weight {alpha}",
            [convex(keyword[i], semantic[i], alpha, "z") for i in range(n)],
        )
    base = [convex(keyword[i], semantic[i], 0.4, "z") for i in range(n)]
    now = dt.datetime.now(dt.UTC)
    spans = [spans_in(q.text, now) for q in work.questions]
    for gain in (0.25, 1.0):
        record(
            f"time boost {gain}",
            boosted(base, lambda i, c, g=gain: g if overlaps(moments[c], spans[i]) else 0.0),
        )
    named = [q.text.lower() for q in work.questions]

    def speaks(i: int, c: int) -> bool:
        return (
            bool(speakers[c]) and re.search(rf"\b{re.escape(speakers[c])}\b", named[i]) is not None
        )

    for gain in (0.5, 1.0, 1.5, 2.0, 3.0):
        record(
            f"speaker boost {gain}", boosted(base, lambda i, c, g=gain: g if speaks(i, c) else 0.0)
        )
    record(
        "shipped: time boost 0.25 + speaker boost 1.5",
        boosted(
            base,
            lambda i, c: (
                (0.25 if overlaps(moments[c], spans[i]) else 0.0) + (1.5 if speaks(i, c) else 0.0)
            ),
        ),
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workload", action="append", choices=["locomo", "cranfield", "vaswani", "nfcorpus", "all"]
    )
    parser.add_argument("--window", action="append", type=int, help="window sizes (default 3, 5)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/abathur-study-cache"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--round",
        choices=["first", "refine"],
        default="first",
        help="first: renderings, windows and fusions; refine: the second round on its winner",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    names = args.workload or ["locomo"]
    if "all" in names:
        names = ["locomo", "cranfield", "vaswani", "nfcorpus"]
    emb = Embeddings(args.cache)
    out: dict[str, Any] = {}
    for name in names:
        work = workload(name, args.quick)
        print(
            f"{name}: {len(work.memories)} memories, {len(work.questions)} questions",
            file=sys.stderr,
        )
        if args.round == "refine":
            out[name] = refine(work, emb)
        else:
            out[name] = study(work, emb, args.window or [3, 5])
    emit(out, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
