"""What indexing CJK pairs (core/cjk.py) costs, and what it finds; print one JSON object.

Not a test: run it by hand, ``python -m bench.cjk_keywords [--label L] [--out FILE]``, once
with this release and once with an older one (it uses only the public runtime):
``PYTHONPATH=<old checkout>:. python -P -m bench.cjk_keywords`` (``-P``: the current directory
does not come first, so the old package wins). ``--upgrade`` (this release only) also times
the upgrade of an index made without the pairs. The numbers are in
bench/results/cjk_keywords.json and docs/benchmarks.md ("CJK words inside sentences").

1. English: the abstracts of vaswani, cranfield and nfcorpus (../shared/data, 16,224
   documents) as markdown, indexed by ``DocumentService`` into a SQLite file and into a
   PostgreSQL schema (a throwaway server), with the fake model whose vectors are made cheap
   (one hashed dimension) so the time is the indexer's own. Measured: index seconds, the
   SQLite file and its full-text tables (dbstat), PostgreSQL's chunk table with its indexes,
   and keyword search p50 over 300 of the collections' queries.
2. CJK: 2,000 generated Japanese documents (sentences of common words), indexed the same
   way: the same sizes, search p50, and how many of 50 words taken from inside sentences
   are found in the document that holds them.
3. ``--upgrade``: the index of (1) and (2) on SQLite put back in the previous shape (no
   ``grams``, two-column FTS5) and reopened: how long the migration takes; the same on
   PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from abathur_memory.embedders.fake import FakeEmbedder
from bench.common import emit, machine, postgres_schema, postgres_server, read_beir, write_markdown

_WORD_LIST = """
東京 大阪 京都 会社 学校 電車 自転車 図書館 病院 銀行 郵便局 天気 季節
料理 野菜 果物 魚 肉 お茶 コーヒー ラーメン 寿司 映画 音楽 写真 旅行 仕事
会議 資料 計画 予定 時間 週末 毎朝 今日 明日 昨日 友達 家族 先生 学生
子供 日本語 英語 中国語 新聞 雑誌 手紙 電話 メール 会話 質問 答え 問題
説明 準備 練習 勉強 研究 開発 設計 試験 結果 報告 経済 政治 歴史 文化
社会 自然 環境 技術 情報 記録 番号 住所 名前 部屋 建物 駅 空港 公園 海
山 川 森 雨 雪 風 春 夏 秋 冬
"""
WORDS = tuple(re.split(r"\s+", _WORD_LIST.strip()))
ENDINGS = ("に行きます", "を見ました", "が好きです", "について話しました", "を準備します", "です")


def _cheap_vectors(self: FakeEmbedder, texts: list[str]) -> Any:
    rows = np.zeros((len(texts), self.dim), dtype=np.float32)
    for row, text in enumerate(texts):
        rows[row, hash(text) % self.dim] = 1.0
    return rows


def japanese_corpus(count: int) -> dict[str, str]:
    rng = random.Random(13)
    documents = {}
    for i in range(count):
        sentences = []
        for _ in range(rng.randint(4, 12)):
            words = rng.sample(WORDS, 3)
            sentences.append(f"{words[0]}の{words[1]}と{words[2]}{rng.choice(ENDINGS)}。")
        documents[f"ja{i:05d}.md"] = f"# {rng.choice(WORDS)}のメモ {i}\n\n" + "".join(sentences)
    return documents


async def index_and_search(db: str, folder: Path, queries: list[str]) -> dict[str, Any]:
    from abathur_memory.config import load_settings
    from abathur_memory.runtime import open_runtime

    settings = load_settings(db=db, embedder="fake", user="bench")
    async with open_runtime(settings) as runtime:
        await runtime.documents.add_root(folder)
        started = time.perf_counter()
        report = await runtime.documents.index()
        seconds = time.perf_counter() - started
        if db.startswith("postgresql"):
            import psycopg

            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute("ANALYZE")
        times, found = [], []
        for query in queries:
            result = await runtime.documents.search(None, query, 10, "keyword")
            times.append(result.search_ms)
            found.append([hit.path for hit in result.results])
    assert report.work is not None
    return {
        "documents": report.work.documents_done,
        "index_s": round(seconds, 2),
        "search_ms_p50": round(statistics.median(times), 2),
        "found": found,
    }


def sqlite_sizes(path: Path) -> dict[str, Any]:
    from abathur_memory.store.sqlite import driver

    conn = driver.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        sizes: dict[str, Any] = {"file_mb": round(path.stat().st_size / 1e6, 2)}
        try:
            rows = conn.execute(
                "SELECT name, sum(pgsize) FROM dbstat WHERE name LIKE 'chunks%' GROUP BY name"
            ).fetchall()
            fts = sum(size for name, size in rows if name.startswith("chunks_fts"))
            chunks = sum(size for name, size in rows if not name.startswith("chunks_fts"))
            sizes["fts_mb"] = round(fts / 1e6, 2)
            sizes["chunk_tables_mb"] = round(chunks / 1e6, 2)
        except Exception as exc:  # dbstat not compiled in
            sizes["dbstat"] = str(exc)
        return sizes
    finally:
        conn.close()


def postgres_sizes(url: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)), sum(pg_indexes_size(c.oid))"
            " FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            " AND c.relname LIKE 'chunks_s%'"
        ).fetchone()
    if row is None:
        raise RuntimeError("no size for the chunk tables")
    total, indexes = float(row[0]), float(row[1])
    return {"chunks_total_mb": round(total / 1e6, 2), "chunks_indexes_mb": round(indexes / 1e6, 2)}


async def time_upgrade_sqlite(path: Path) -> dict[str, Any]:
    from abathur_memory.config import load_settings
    from abathur_memory.runtime import open_runtime
    from abathur_memory.store.sqlite import driver, space_tables

    conn = driver.connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for (space_id,) in conn.execute("SELECT id FROM embedding_spaces").fetchall():
            chunks, fts = f"chunks_s{space_id}", f"chunks_fts_s{space_id}"
            for statement in (
                f"DROP TRIGGER {chunks}_ai",
                f"DROP TRIGGER {chunks}_ad",
                f"DROP TABLE {fts}",
                f"ALTER TABLE {chunks} DROP COLUMN grams",
                *space_tables.STEPS[0](space_id),
                f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
            ):
                conn.execute(statement)
        conn.execute("UPDATE embedding_spaces SET ddl_version = 2")
        conn.execute("COMMIT")
        chunks_total = conn.execute("SELECT count(*) FROM chunks_s1").fetchone()[0]
    finally:
        conn.close()
    started = time.perf_counter()
    async with open_runtime(load_settings(db=str(path), embedder="fake", user="bench")):
        seconds = time.perf_counter() - started
    return {"chunks": chunks_total, "upgrade_s": round(seconds, 2)}


async def time_upgrade_postgres(url: str) -> dict[str, Any]:
    import psycopg

    from abathur_memory.config import load_settings
    from abathur_memory.runtime import open_runtime

    with psycopg.connect(url, autocommit=True) as conn:
        for (space_id,) in conn.execute("SELECT id FROM embedding_spaces").fetchall():
            chunks = f"chunks_s{space_id}"
            conn.execute(f"DROP TRIGGER {chunks}_grams ON {chunks}".encode())
            conn.execute(f"ALTER TABLE {chunks} DROP COLUMN grams_tsv, DROP COLUMN grams".encode())
        conn.execute("UPDATE embedding_spaces SET ddl_version = 1")
        counted = conn.execute("SELECT count(*) FROM chunks_s1").fetchone()
        chunks_total = counted[0] if counted else 0
    started = time.perf_counter()
    async with open_runtime(load_settings(db=url, embedder="fake", user="bench")):
        seconds = time.perf_counter() - started
    return {"chunks": chunks_total, "upgrade_s": round(seconds, 2)}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    FakeEmbedder.vectors = _cheap_vectors  # type: ignore[method-assign]
    out: dict[str, Any] = {"label": args.label, "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="abathur-cjk-") as name:
        tmp = Path(name)
        english, queries = tmp / "english", []
        english.mkdir()
        for dataset in ("vaswani", "cranfield", "nfcorpus"):
            corpus, judged, _ = read_beir(dataset)
            write_markdown(corpus, english)
            queries += [q["text"] for q in judged][:100]
        japanese = tmp / "japanese"
        japanese.mkdir()
        notes = japanese_corpus(2000)
        for file, text in notes.items():
            (japanese / file).write_text(text)
        rng = random.Random(5)
        probes = []  # (a word inside a sentence, the files that hold it)
        for word in rng.sample(WORDS, 50):
            holders = {f for f, text in notes.items() if word in text}
            probes.append((word, holders))
        with postgres_server() as admin:
            for label, folder, words in (
                ("english", english, queries),
                ("japanese", japanese, [w for w, _ in probes]),
            ):
                part: dict[str, Any] = {}
                sqlite_path = tmp / f"{label}.db"
                with postgres_schema(admin) as (url, _):
                    for backend, db in (("sqlite", str(sqlite_path)), ("postgres", url)):
                        result = await index_and_search(db, folder, words)
                        found = result.pop("found")
                        if label == "japanese":
                            result["words_found"] = sum(
                                bool(paths) and Path(paths[0]).name in holders
                                for paths, (_, holders) in zip(found, probes, strict=True)
                            )
                            result["words"] = len(probes)
                        sizes = sqlite_sizes(sqlite_path) if backend == "sqlite" else {}
                        result.update(sizes or postgres_sizes(url))
                        part[backend] = result
                    if args.upgrade:
                        part["sqlite"]["upgrade"] = await time_upgrade_sqlite(sqlite_path)
                        part["postgres"]["upgrade"] = await time_upgrade_postgres(url)
                out[label] = part
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="this release")
    parser.add_argument("--upgrade", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    emit(asyncio.run(measure(args)), args.out)


if __name__ == "__main__":
    main()
