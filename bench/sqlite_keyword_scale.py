"""SQLite keyword search at a million chunks: the rows BM25 ranks, with and without the
candidate budget (store/sqlite/terms.py), against ranking every term; print one JSON object.

Not a test: run it by hand, ``python -m bench.sqlite_keyword_scale [--chunks 1000000]
[--queries 150] [--candidate-rows N] [--out FILE]`` (about 5 minutes at 1M: a minute to build
the table, most of the rest ranking every term for the reference).

One SQLite file holds a space's chunk table and its FTS5 index (the project's tokenizer) with
``--chunks`` rows: the 100-word chunks bench/two_backends.py indexes (real text from
../shared/data, cycled, so every term is about 80 times as common as in its own collection),
each under a heading as the indexer writes it. Each of the first ``--queries`` BEIR query
texts runs through the store's own keyword step (``search._bm25``, 100 rows, no filter) in
turn under these settings:

- ``budget_first``: the code as it is (the rarest terms' rows, about CANDIDATE_ROWS, ranked
  with every kept term), on the first pass over the queries: the counts of the terms that
  earlier queries held are remembered (``terms.TermCounts``), as in a server that just
  started;
- ``budget_again``: the same, on a second pass: every count remembered;
- ``no_budget``: CANDIDATE_ROWS unbounded and nothing remembered, the code before this
  change (every row of every kept term ranked);
- ``every_term``: no term left out either; the reference for quality.

Quality against ``every_term``: ``score_share``, the BM25 (every term) of a setting's ten
best over that of the reference's ten best; and ``overlap``, the share of the reference's
ten found. The cycled text repeats each passage about 80 times, so many rows tie; the
score share is the measure that ties do not blur.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from abathur_memory.core.spaces import Space
from abathur_memory.search.query import keyword_terms
from abathur_memory.store.sqlite import driver, search, terms
from abathur_memory.store.sqlite.space_tables import FTS_TOKENIZER
from bench.common import (
    chunk_texts,
    corpus_docs,
    corpus_queries,
    emit,
    header,
    percentiles,
    synthetic_identity,
)

POOL = 100
SETTINGS: dict[str, dict[str, int]] = {
    "budget_first": {},
    "budget_again": {},
    "no_budget": {"CANDIDATE_ROWS": 10**12},
    "every_term": {"CANDIDATE_ROWS": 10**12, "COMMON_TERM_ROWS": 10**12},
}


def build(path: Path, chunks: int) -> tuple[driver.Connection, Space, float]:
    space = Space(1, synthetic_identity(), "active", 1)
    words = [w for doc in corpus_docs() for w in doc["text"].split()]
    texts = chunk_texts(words, chunks)
    started = time.perf_counter()
    conn = driver.connect(path)
    conn.execute(f"CREATE TABLE {space.chunks} (id INTEGER PRIMARY KEY, heading TEXT, text TEXT)")
    conn.execute(
        f"CREATE VIRTUAL TABLE {space.fts} USING fts5(heading, text,"
        f" content='{space.chunks}', content_rowid='id', tokenize='{FTS_TOKENIZER}')"
    )
    conn.execute("BEGIN")
    for first in range(0, chunks, 20):  # 20 chunks per document, as two_backends
        title = " ".join(texts[first].split()[:6]).capitalize()
        rows = [
            (first + i + 1, f"{title} > Part {i + 1}", text)
            for i, text in enumerate(texts[first : first + 20])
        ]
        conn.executemany(f"INSERT INTO {space.chunks} VALUES (?, ?, ?)", rows)
        conn.executemany(f"INSERT INTO {space.fts}(rowid, heading, text) VALUES (?, ?, ?)", rows)
    conn.execute("COMMIT")
    return conn, space, time.perf_counter() - started


@contextmanager
def setting(values: dict[str, int]) -> Iterator[None]:
    kept = {name: getattr(terms, name) for name in values}
    for name, value in values.items():
        setattr(terms, name, value)
    try:
        yield
    finally:
        for name, value in kept.items():
            setattr(terms, name, value)


def exact_scores(
    conn: driver.Connection, space: Space, query: tuple[str, ...], ids: list[int]
) -> float:
    if not ids:
        return 0.0
    rows = conn.execute(
        f"SELECT bm25({space.fts}, 2.0, 1.0, 1.0) FROM {space.fts}"
        f" WHERE {space.fts} MATCH ? AND rowid IN ({','.join('?' for _ in ids)})",
        [terms.fts_match(query), *ids],
    )
    return -sum(row[0] for row in rows)


def measure(conn: driver.Connection, space: Space, queries: list[str]) -> dict[str, Any]:
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    share: dict[str, list[float]] = {name: [] for name in SETTINGS}
    overlap: dict[str, list[float]] = {name: [] for name in SETTINGS}
    remembered = terms.TermCounts()  # the store's: kept over both budget passes
    split = [tuple(keyword_terms(text)) for text in queries]
    tops: dict[str, dict[tuple[str, ...], list[int]]] = {name: {} for name in SETTINGS}
    for name, values in SETTINGS.items():
        for query in filter(None, split):
            counts = remembered if name.startswith("budget") else terms.TermCounts()
            with setting(values):
                started = time.perf_counter()
                found = search._bm25(conn, space, query, "1", [], POOL, counts)
                times[name].append((time.perf_counter() - started) * 1000)
            tops[name][query] = [row_id for row_id, _ in found[:10]]
    for query, reference in tops["every_term"].items():
        best = exact_scores(conn, space, query, reference)
        for name in SETTINGS:
            top = tops[name][query]
            share[name].append(exact_scores(conn, space, query, top) / best if best else 1.0)
            overlap[name].append(len(set(top) & set(reference)) / max(1, len(reference)))
    out: dict[str, Any] = {}
    for name, spent in times.items():
        out[name] = {
            **percentiles(spent, digits=1, top=True),
            "score_share_mean": round(statistics.mean(share[name]), 3),
            "score_share_p50": round(statistics.median(share[name]), 3),
            "score_share_min": round(min(share[name]), 3),
            "overlap_mean": round(statistics.mean(overlap[name]), 3),
            "queries": len(spent),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=150)
    parser.add_argument(
        "--candidate-rows", type=int, default=terms.CANDIDATE_ROWS, help="the budget to measure"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    terms.CANDIDATE_ROWS = args.candidate_rows
    with tempfile.TemporaryDirectory() as tmp:
        conn, space, seconds = build(Path(tmp) / "keywords.db", args.chunks)
        try:
            measured = measure(conn, space, corpus_queries()[: args.queries])
        finally:
            conn.close()
    emit(
        {
            "benchmark": "sqlite_keyword_scale",
            **header(),
            "chunks": args.chunks,
            "candidate_rows": terms.CANDIDATE_ROWS,
            "build_s": round(seconds, 1),
            **measured,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
