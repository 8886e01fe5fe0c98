"""Keyword retrieval quality on both backends, through the project's own indexing and search;
print one JSON object.

Not a test: run it by hand, e.g. ``python -m bench.keyword_backends --dataset vaswani
[--dataset cranfield] [--pg URL] [--out FILE]``. Each BEIR corpus of ../shared/data becomes
markdown files (as bench.retrieval writes them), indexed by ``DocumentService`` into a
SQLite file and into a PostgreSQL schema (a throwaway server unless ``--pg``), with the fake
embedder: only the keyword side is compared. Every judged query runs through
``DocumentService.search(mode="keyword", k=10)`` on each, and nDCG@10 is computed over the
documents of the hits. Also: the search time p50 on each, and how often the two backends
agree on the first hit. The numbers are in bench/results/keyword_backends.json and
docs/benchmarks.md ("PostgreSQL keyword search").
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    emit,
    header,
    markdown_stem,
    ndcg_at,
    postgres_schema,
    read_beir,
    write_markdown,
)


async def ranked_documents(db: str, folder: Path, queries: list[dict[str, Any]]) -> dict:
    from abathur_memory.config import load_settings
    from abathur_memory.runtime import open_runtime

    settings = load_settings(db=db, embedder="fake", user="bench")
    async with open_runtime(settings) as runtime:
        await runtime.documents.add_root(folder)
        report = await runtime.documents.index()
        if db.startswith("postgresql"):  # ANALYZE now, as autovacuum would soon
            import psycopg

            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute("ANALYZE")
        ranked, times = [], []
        for query in queries:
            result = await runtime.documents.search(None, query["text"], 10, "keyword")
            ranked.append([Path(hit.path).stem for hit in result.results])
            times.append(result.search_ms)
    return {"ranked": ranked, "search_ms_p50": round(statistics.median(times), 2), "report": report}


async def evaluate(name: str, pg_url: str, tmp: Path) -> dict[str, Any]:
    corpus, queries, qrels = read_beir(name)
    folder = tmp / name
    folder.mkdir()
    write_markdown(corpus, folder)
    id_of = {markdown_stem(d["_id"]): d["_id"] for d in corpus}
    judged = [qrels[q["_id"]] for q in queries]
    out: dict[str, Any] = {"documents": len(corpus), "queries": len(queries)}
    firsts: dict[str, list[str | None]] = {}
    for backend, db in (("sqlite", str(tmp / f"{name}.db")), ("postgres", pg_url)):
        found = await ranked_documents(db, folder, queries)
        docs = [list(dict.fromkeys(id_of[s] for s in r)) for r in found["ranked"]]
        firsts[backend] = [r[0] if r else None for r in docs]
        ndcg = statistics.mean(ndcg_at(r, j) for r, j in zip(docs, judged, strict=True))
        out[backend] = {"ndcg@10": round(ndcg, 4), "search_ms_p50": found["search_ms_p50"]}
    same = sum(a == b for a, b in zip(firsts["sqlite"], firsts["postgres"], strict=True))
    out["same_first_hit"] = round(same / len(judged), 3)
    return out


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="abathur-keywords-") as name:
        tmp = Path(name)
        for dataset in args.dataset:
            with postgres_schema(args.pg) as (url, about):
                results["postgres"] = about
                results[dataset] = await evaluate(dataset, url, tmp)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", choices=["cranfield", "nfcorpus", "vaswani"])
    parser.add_argument("--pg", help="a PostgreSQL URL with pgvector (default: a throwaway server)")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    args.dataset = args.dataset or ["vaswani"]
    result = {
        **header(),
        **asyncio.run(measure(args)),
    }
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
