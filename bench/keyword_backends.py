"""Keyword retrieval quality on both backends, through the project's own indexing and search;
print one JSON object.

Not a test: run it by hand, e.g. ``python bench/keyword_backends.py --dataset vaswani
[--dataset cranfield] [--pg URL] [--out FILE]``. Each BEIR corpus of ../shared/data becomes
markdown files (as bench/retrieval.py writes them), indexed by ``DocumentService`` into a
SQLite file and into a PostgreSQL schema (a throwaway server unless ``--pg``), with the fake
embedder: only the keyword side is compared. Every judged query runs through
``DocumentService.search(mode="keyword", k=10)`` on each, and nDCG@10 is computed over the
documents of the hits. Also: the search time p50 on each, and how often the two backends
agree on the first hit.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))  # pg_server: the throwaway PostgreSQL

import retrieval  # noqa: E402  (bench/ is on sys.path when this file is run as a script)
import two_backends  # noqa: E402
from drivers import machine  # noqa: E402


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
    data = retrieval.load(name, None, None)
    folder = tmp / name
    folder.mkdir()
    retrieval.write_markdown(data["corpus"], folder)
    id_of = {
        "".join(c if c.isalnum() or c in "-_." else "_" for c in d["_id"]): d["_id"]
        for d in data["corpus"]
    }
    judged = [data["qrels"][q["_id"]] for q in data["queries"]]
    out: dict[str, Any] = {"documents": len(data["corpus"]), "queries": len(data["queries"])}
    firsts: dict[str, list[str | None]] = {}
    for backend, db in (("sqlite", str(tmp / f"{name}.db")), ("postgres", pg_url)):
        found = await ranked_documents(db, folder, data["queries"])
        docs = [list(dict.fromkeys(id_of[s] for s in r)) for r in found["ranked"]]
        firsts[backend] = [r[0] if r else None for r in docs]
        ndcg = statistics.mean(retrieval.ndcg_at(r, j) for r, j in zip(docs, judged, strict=True))
        out[backend] = {"ndcg@10": round(ndcg, 4), "search_ms_p50": found["search_ms_p50"]}
    same = sum(a == b for a, b in zip(firsts["sqlite"], firsts["postgres"], strict=True))
    out["same_first_hit"] = round(same / len(judged), 3)
    return out


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="abathur-keywords-") as name:
        tmp = Path(name)
        for dataset in args.dataset:
            async with two_backends.postgres(args.pg, tmp) as (url, about):
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
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **asyncio.run(measure(args)),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
