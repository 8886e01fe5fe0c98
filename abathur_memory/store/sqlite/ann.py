"""Approximate nearest neighbours for large vector tables: a faiss HNSW graph per table, kept
as a derived, verified cache of the vectors stored in the database.

Why: the exact path (vector_index.py) reads every 1-bit code per query, so its cost grows with
the table (3 ms at 100k vectors, 56 ms at 1M here), while an HNSW graph answers in well under
a millisecond at either size (bench/ann.py, docs/ann.md). faiss rather than usearch because its
HNSW walk takes an id selector, so filters act inside the candidate step, not after it.

How it stays true to the table:

- a search uses the graph only when the graph's :class:`Stamp` names the space (id and creation
  time) and the generation of the search's own read snapshot; every write of vectors bumps the
  generation (spaces.bump_generation), so a graph that misses a commit is never used;
- otherwise the search takes the exact path and says so (``Answer.note``), and a background
  thread brings the graph up to date: ids added to the table are inserted, ids gone from it are
  skipped at search time (ids are AUTOINCREMENT, never reused, so an id names one vector), a
  sample of vectors is compared with the table, and the graph is rebuilt from scratch when the
  sample differs, the space changed or too many ids are gone;
- the graph is saved beside the database with its stamp (ann_files.py) and, in the next
  process, loaded and checked the same way before it is used.

Filters: the caller passes the ids its SQL allows (``allowed``, the same contract as the exact
path's coarse pass: a new filter is one more SQL condition there). They become a bitmap that the
HNSW walk consults, so only allowed ids become candidates (no top-k cut before the filter);
when the walk still comes back with fewer than the wanted number, it is repeated wider
(efSearch x4, up to MAX_EF) and then left to the exact path. A filter that keeps fewer than
``selective_fraction`` of the vectors takes the exact path at once, which is cheaper there than
walking a graph of mostly excluded nodes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from abathur_memory.core.spaces import Space
from abathur_memory.store.sqlite import ann_files, driver, vector_index, vectors
from abathur_memory.store.sqlite.ann_files import Stamp

log = logging.getLogger(__name__)

# Below this many vectors the exact path is fast enough (about 1 ms at 20k, bench/ann.py).
DEFAULT_MIN_VECTORS = 20_000
SELECTIVE_FRACTION = 0.01  # a filter keeping fewer vectors than this share: exact path
EF_SEARCH = 64
HNSW_M = 32
EF_CONSTRUCTION = 64
ANN_CANDIDATES = 100  # at least this many neighbours go to the exact re-rank
MAX_EF = 4096  # widest filtered walk before the exact path takes over
WEAK_IN_DEGREE = 1  # nodes linked from this few others are also scored exactly
MAX_WEAK = 8192
WEAK_CANDIDATES = 20  # the best weak nodes added to the graph's candidates
REBUILD_REMOVED_FRACTION = 0.2  # skipped ids tolerated before the graph is rebuilt
SAMPLE = 32  # vectors compared with the table when a graph is brought up to date
# efSearch is calibrated on each build: stored vectors as queries (each its own neighbours'
# query, itself left out), their exact top CALIBRATION_K found while the graph is built, and
# the smallest efSearch of CALIBRATION_EFS whose walk hands the re-rank that many of them.
# A fixed efSearch that suits 100,000 vectors loses recall at 1,000,000 (0.98 -> 0.87 at 64).
CALIBRATION_QUERIES = 64
CALIBRATION_K = 10
CALIBRATION_RECALL = 0.99
CALIBRATION_EFS = (EF_SEARCH, 96, 128, 192, 256, 384, 512, 768, 1024)
BATCH = 20_000  # vectors read per query while building
SAVE_EVERY_S = 300.0  # an updated (not rebuilt) graph is saved at most this often
RETRY_S = 30.0

APPROXIMATE = "approximate"
CATCHING_UP = "exact: the approximate index is being built or brought up to date in the background"
SELECTIVE = "exact: the filters keep few vectors"
STARVED = "exact: the filters left the approximate index short of hits"


@dataclass(frozen=True)
class AnnSettings:
    enabled: bool = True
    min_vectors: int = DEFAULT_MIN_VECTORS
    selective_fraction: float = SELECTIVE_FRACTION
    ef_search: int = EF_SEARCH
    persist: bool = True  # save graphs beside the database


@dataclass
class _Graph:
    index: Any  # faiss.IndexIDMap2 over IndexHNSWFlat (inner product)
    stamp: Stamp
    ids: npt.NDArray[np.int64]  # every id in the graph, sorted
    removed: set[int] = field(default_factory=set)
    live_bits: npt.NDArray[np.uint8] | None = None  # None: nothing removed
    # Nodes the graph barely links to (HNSW can leave an outlier all but unreachable): their
    # vectors are scored exactly on every search, so they are never lost (see weak_nodes()).
    weak_ids: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    weak_matrix: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.empty((0, 0), np.float32)
    )
    lock: threading.Lock = field(default_factory=threading.Lock)
    saved_at: float = 0.0

    @property
    def ef_search(self) -> int:
        """The efSearch this graph was calibrated for (saved with it by faiss)."""
        return int(ann_files.faiss_module().downcast_index(self.index.index).hnsw.efSearch)

    def refresh_bits(self) -> None:
        self.weak_ids, self.weak_matrix = weak_nodes(self.index)
        if not self.removed:
            self.live_bits = None
            return
        mask = np.zeros(self.stamp.max_id + 1, dtype=bool)
        mask[self.ids] = True
        mask[np.fromiter(self.removed, dtype=np.int64)] = False
        self.live_bits = np.packbits(mask, bitorder="little")


def weak_nodes(index: Any) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Ids (and vectors) of the nodes at most WEAK_IN_DEGREE other nodes link to on the
    bottom layer, the fewest first, at most MAX_WEAK. A greedy walk reaches such a node only
    through those few links, so a query near it and far from the rest can miss it (measured:
    about 0.5% of the nodes on clustered vectors, bench/ann.py)."""
    faiss = ann_files.faiss_module()
    inner = faiss.downcast_index(index.index)
    hnsw, total = inner.hnsw, inner.ntotal
    if total == 0:
        return np.empty(0, np.int64), np.empty((0, inner.d), np.float32)
    neighbours = faiss.rev_swig_ptr(hnsw.neighbors.data(), hnsw.neighbors.size())
    offsets = faiss.rev_swig_ptr(hnsw.offsets.data(), hnsw.offsets.size()).astype(np.int64)
    bottom = int(faiss.vector_to_array(hnsw.cum_nneighbor_per_level)[1])
    degree = np.zeros(total, dtype=np.int64)
    for start in range(0, total, 65_536):  # in slices: no copy of the whole graph
        stop = min(total, start + 65_536)
        links = neighbours[offsets[start:stop, None] + np.arange(bottom)[None, :]]
        degree += np.bincount(links[links >= 0], minlength=total)
    degree[hnsw.entry_point] = WEAK_IN_DEGREE + 1  # where every walk starts
    weak = np.flatnonzero(degree <= WEAK_IN_DEGREE)
    weak = weak[np.argsort(degree[weak], kind="stable")][:MAX_WEAK]
    id_map = faiss.rev_swig_ptr(index.id_map.data(), index.id_map.size())
    matrix = np.vstack([inner.reconstruct(int(i)) for i in weak]) if len(weak) else None
    if matrix is None:
        matrix = np.empty((0, inner.d), np.float32)
    return np.asarray(id_map[weak], dtype=np.int64), matrix.astype(np.float32)


_searching = threading.local()


def id_column(space: Space | None, table: str) -> str:
    return "chunk_id" if table.startswith("chunk_vectors_") else "id"


class AnnIndexes:
    """The graphs of one database, shared by its reader threads; one background thread
    builds and updates them (started on first need, stopped by :meth:`close`)."""

    def __init__(self, db_path: Path | None, settings: AnnSettings | None = None) -> None:
        self.db_path = db_path
        self.settings = settings or AnnSettings()
        self._graphs: dict[tuple[int, str], _Graph] = {}
        self._lock = threading.Lock()
        self._queued: set[tuple[int, str]] = set()
        self._failed: dict[tuple[int, str], float] = {}
        self._jobs: queue.Queue[tuple[int, str] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self.rounds = 0  # finished background rounds (tests wait on it)
        self.rebuilds = 0

    # -- the search side ------------------------------------------------------------------

    def candidates(
        self,
        conn: driver.Connection,
        codes_of: Callable[[], vector_index.Codes],
        space: Space,
        table: str,
        query: npt.NDArray[np.float32],
        wanted: int,
        allowed: npt.NDArray[np.int64] | None,
        needed: int | None = None,
    ) -> tuple[npt.NDArray[np.int64], str | None]:
        """Ids to re-rank exactly (about ``wanted``; a filtered walk that finds fewer than
        ``needed``, the hits the caller must return, is widened), and how they were found
        (None: the exact path, the table being too small for the approximate index to
        matter)."""
        note: str | None = None
        if self.settings.enabled and self.db_path is not None:
            found, note = self._approximate(
                conn, space, table, query, wanted, allowed, wanted if needed is None else needed
            )
            if found is not None:
                return found, note
        codes = codes_of()
        if note is None and self.usable_size(len(codes.ids)):
            self.schedule(space.id, table)
            note = CATCHING_UP
        pool = vector_index.candidates_for(codes, wanted)
        return vector_index.coarse(codes, query, pool, allowed), note

    def usable_size(self, count: int) -> bool:
        return (
            self.settings.enabled
            and self.db_path is not None
            and count >= max(1, self.settings.min_vectors)
        )

    def _approximate(
        self,
        conn: driver.Connection,
        space: Space,
        table: str,
        query: npt.NDArray[np.float32],
        wanted: int,
        allowed: npt.NDArray[np.int64] | None,
        needed: int,
    ) -> tuple[npt.NDArray[np.int64] | None, str | None]:
        graph = self._graphs.get((space.id, table))
        if graph is None:
            return None, None
        row = conn.execute(
            "SELECT generation, created_at FROM embedding_spaces WHERE id = ?", (space.id,)
        ).fetchone()
        if row is None:
            return None, None
        if graph.stamp.generation != row[0] or graph.stamp.space_created != row[1]:
            self.schedule(space.id, table)
            return None, CATCHING_UP
        if not self.usable_size(graph.stamp.count):
            return None, None
        if allowed is not None and len(allowed) < self.settings.selective_fraction * (
            graph.stamp.count
        ):
            return None, SELECTIVE
        wanted = max(wanted, ANN_CANDIDATES)
        expected = min(needed, wanted, graph.stamp.count if allowed is None else len(allowed))
        ef = max(self.settings.ef_search, graph.ef_search, wanted)
        if allowed is not None and len(allowed) < graph.stamp.count:
            # A walk that skips most nodes needs a wider beam for the same recall (10% of the
            # vectors allowed: 0.94 at ef 100, bench/ann.py): widen by 1/sqrt(share).
            share = max(len(allowed), 1) / graph.stamp.count
            ef = min(MAX_EF, int(ef / share**0.5))
        while True:
            try:
                found = self._search(graph, query, wanted, ef, allowed)
            except Exception as exc:  # never fail a search over a cache: answer exactly
                log.warning(
                    "the approximate index of %s failed (%s): searching exactly", table, exc
                )
                self._drop((space.id, table))
                self.schedule(space.id, table)
                return None, CATCHING_UP
            if len(found) >= expected:
                return found, APPROXIMATE
            if ef >= min(MAX_EF, graph.stamp.count):
                return None, STARVED
            ef = min(ef * 4, MAX_EF)  # the filters left the walk short: look wider

    def _search(
        self,
        graph: _Graph,
        query: npt.NDArray[np.float32],
        wanted: int,
        ef: int,
        allowed: npt.NDArray[np.int64] | None,
    ) -> npt.NDArray[np.int64]:
        faiss = ann_files.faiss_module()
        if not getattr(_searching, "one_thread", False):
            # One query is one walk: OpenMP threads would only spin (per thread, so the
            # background build keeps every core).
            faiss.omp_set_num_threads(1)
            _searching.one_thread = True
        bits = graph.live_bits
        if allowed is not None:
            mask = np.zeros(graph.stamp.max_id + 1, dtype=bool)
            mask[allowed[(allowed >= 0) & (allowed <= graph.stamp.max_id)]] = True
            packed = np.packbits(mask, bitorder="little")
            bits = packed if bits is None else packed & bits
        params = faiss.SearchParametersHNSW(efSearch=ef)
        selector = None
        if bits is not None:
            selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
            params.sel = selector
        matrix = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        with graph.lock:
            _, found = graph.index.search(matrix, wanted, params=params)
            weak_ids, weak_matrix = graph.weak_ids, graph.weak_matrix
        del selector  # (kept alive until the search is done)
        ids = found[0][found[0] >= 0].astype(np.int64)
        if len(weak_ids):
            if bits is not None:
                inside = weak_ids < len(bits) * 8
                keep = np.zeros(len(weak_ids), dtype=bool)
                at = weak_ids[inside]
                keep[inside] = (bits[at >> 3] >> (at & 7)) & 1 == 1
                weak_ids, weak_matrix = weak_ids[keep], weak_matrix[keep]
            scores = weak_matrix @ matrix[0]
            best = np.argsort(-scores)[:WEAK_CANDIDATES]
            ids = np.union1d(ids, weak_ids[best])
        return ids

    # -- the background side --------------------------------------------------------------

    def schedule(self, space_id: int, table: str) -> None:
        """Bring the graph of ``table`` up to date in the background (once per request)."""
        key = (space_id, table)
        with self._lock:
            if key in self._queued or self._stop.is_set():
                return
            if time.monotonic() - self._failed.get(key, -RETRY_S) < RETRY_S:
                return
            self._queued.add(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="abathur-ann", daemon=True)
                self._thread.start()
        self._jobs.put(key)

    def idle(self) -> bool:
        """Nothing queued or running in the background."""
        with self._lock:
            return not self._queued and not self._running

    def graph(self, space_id: int, table: str) -> _Graph | None:
        return self._graphs.get((space_id, table))

    def check_saved(self, conn: driver.Connection) -> None:
        """On open: every live space's tables with a saved graph or enough vectors are
        checked (and loaded, updated or rebuilt) in the background."""
        if not self.settings.enabled or self.db_path is None:
            return
        saved = {path.stem for path in ann_files.saved(self.db_path)}
        live = set()
        for (space_id,) in conn.execute(
            "SELECT id FROM embedding_spaces WHERE status != 'retired'"
        ).fetchall():
            for table in (f"chunk_vectors_s{space_id}", f"memory_vectors_s{space_id}"):
                live.add(table)
                if table in saved or self._large(conn, table):
                    self.schedule(space_id, table)
        for table in saved - live:  # a space that was replaced (another model) or dropped
            ann_files.discard_one(self.db_path, table)

    def _large(self, conn: driver.Connection, table: str) -> bool:
        column = id_column(None, table)
        try:
            row = conn.execute(
                f"SELECT {column} FROM {table} ORDER BY {column} LIMIT 1 OFFSET ?",
                (max(0, self.settings.min_vectors - 1),),
            ).fetchone()
        except driver.DatabaseError:
            return False
        return row is not None

    def close(self) -> None:
        self._stop.set()
        self._jobs.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _work(self) -> None:
        while not self._stop.is_set():
            key = self._jobs.get()
            if key is None:
                return
            with self._lock:
                self._queued.discard(key)
                self._running = True
            try:
                self.sync(*key)
            except _Stopped:
                return
            except Exception as exc:  # a failed round is retried on a later search
                with self._lock:
                    self._failed[key] = time.monotonic()
                log.warning("the approximate index of %s was not updated: %s", key[1], exc)
            finally:
                with self._lock:
                    self._running = False
            self.rounds += 1

    def sync(self, space_id: int, table: str) -> str:
        """Bring the graph of ``table`` to the table's current state; what was done."""
        assert self.db_path is not None
        conn = driver.connect(self.db_path, read_only=True)
        try:
            conn.execute("BEGIN")  # one snapshot: the stamp says exactly what was read
            try:
                return self._sync(conn, space_id, table)
            finally:
                conn.execute("COMMIT")
        finally:
            conn.close()

    def _sync(self, conn: driver.Connection, space_id: int, table: str) -> str:
        assert self.db_path is not None  # (sync() is only scheduled with a file)
        key = (space_id, table)
        space = conn.execute(
            "SELECT created_at, dim, generation FROM embedding_spaces WHERE id = ?", (space_id,)
        ).fetchone()
        column = id_column(None, table)
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        if space is None or not exists:
            self._drop(key)
            ann_files.discard_one(self.db_path, table)
            return "dropped"
        created, dim, generation = space[0], space[1], space[2]
        ids = np.fromiter(
            (r[0] for r in conn.execute(f"SELECT {column} FROM {table} ORDER BY {column}")),
            dtype=np.int64,
        )
        if not self.usable_size(len(ids)):
            self._drop(key)
            ann_files.discard_one(self.db_path, table)
            return "too small"
        graph = self._graphs.get(key)
        loaded = graph is None
        if graph is None:
            graph = self._load(table)
        if graph is not None and (
            graph.stamp.space_id != space_id
            or graph.stamp.space_created != created
            or graph.stamp.dim != dim
        ):
            graph = None
        if (
            graph is not None
            and graph.stamp.generation == generation
            and graph.stamp.digest == ann_files.digest(ids)
            and (not loaded or _sample_matches(conn, graph, table, column, ids))
        ):
            self._graphs[key] = graph
            return "current" if not loaded else "loaded"
        if graph is not None:
            done = self._update(conn, graph, table, column, ids, generation)
            if done is not None:
                self._graphs[key] = graph
                self._maybe_save(graph, force=False)
                return done
        graph = self._build(conn, space_id, created, dim, generation, table, column, ids)
        self._graphs[key] = graph
        self.rebuilds += 1
        self._maybe_save(graph, force=True)
        return "rebuilt"

    def _load(self, table: str) -> _Graph | None:
        if self.db_path is None or not self.settings.persist:
            return None
        path = ann_files.path_for(self.db_path, table)
        if not path.exists():
            return None
        loaded = ann_files.load(path)
        if loaded is None:
            return None
        stamp, removed, index = loaded
        faiss = ann_files.faiss_module()
        ids = np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
        graph = _Graph(index, stamp, ids, set(removed), saved_at=time.monotonic())
        graph.refresh_bits()
        return graph

    def _update(
        self,
        conn: driver.Connection,
        graph: _Graph,
        table: str,
        column: str,
        ids: npt.NDArray[np.int64],
        generation: int,
    ) -> str | None:
        """Insert the new ids and skip the gone ones; None when a rebuild is needed."""
        removed = np.fromiter(graph.removed, dtype=np.int64, count=len(graph.removed))
        live = np.setdiff1d(graph.ids, removed, assume_unique=True)
        gone = np.setdiff1d(live, ids, assume_unique=True)
        added = np.setdiff1d(ids, graph.ids, assume_unique=True)
        if np.intersect1d(removed, ids, assume_unique=True).size:
            return None  # an id came back: the graph cannot say which vector it holds
        if len(removed) + len(gone) > REBUILD_REMOVED_FRACTION * (len(graph.ids) + len(added)):
            return None
        kept = np.setdiff1d(live, gone, assume_unique=True)
        if not _sample_matches(conn, graph, table, column, kept):
            log.warning("the approximate index of %s differs from the table: rebuilding", table)
            return None
        for batch_ids, matrix in _read_vectors(conn, table, column, graph.stamp.dim, added):
            self._check_stop()
            with graph.lock:
                graph.index.add_with_ids(matrix, batch_ids)
        with graph.lock:
            graph.ids = np.union1d(graph.ids, added)
            graph.removed |= {int(i) for i in gone}
            graph.stamp = _stamp_of(graph.stamp, generation, ids)
            graph.refresh_bits()
        return f"updated (+{len(added)}, -{len(gone)})"

    def _build(
        self,
        conn: driver.Connection,
        space_id: int,
        created: str,
        dim: int,
        generation: int,
        table: str,
        column: str,
        ids: npt.NDArray[np.int64],
    ) -> _Graph:
        faiss = ann_files.faiss_module()
        started = time.monotonic()
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = EF_CONSTRUCTION
        index = faiss.IndexIDMap2(inner)
        truth = _Truth(conn, table, column, dim, ids)
        for batch_ids, matrix in _read_vectors(conn, table, column, dim, ids):
            self._check_stop()
            index.add_with_ids(matrix, batch_ids)
            truth.see(batch_ids, matrix)
        inner.hnsw.efSearch = truth.calibrated_ef(index)
        stamp = Stamp(space_id, created, table, dim, generation, 0, 0, "")
        graph = _Graph(index, _stamp_of(stamp, generation, ids), ids)
        graph.refresh_bits()
        log.info(
            "built the approximate index of %s (%d vectors, efSearch %d) in %.1f s",
            table,
            len(ids),
            inner.hnsw.efSearch,
            time.monotonic() - started,
        )
        return graph

    def _maybe_save(self, graph: _Graph, *, force: bool) -> None:
        if self.db_path is None or not self.settings.persist:
            return
        if not force and time.monotonic() - graph.saved_at < SAVE_EVERY_S:
            return
        try:
            with graph.lock:
                ann_files.save(self.db_path, graph.stamp, sorted(graph.removed), graph.index)
            graph.saved_at = time.monotonic()
        except OSError as exc:  # a read-only folder, a full disk: the graph still serves
            log.warning("the approximate index of %s was not saved: %s", graph.stamp.table, exc)

    def _drop(self, key: tuple[int, str]) -> None:
        self._graphs.pop(key, None)

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stopped


class _Stopped(Exception):
    pass


class _Truth:
    """The exact neighbours of a sample of the stored vectors, gathered while the graph is
    built (each batch is scored once, as it is added), to calibrate efSearch on."""

    def __init__(
        self,
        conn: driver.Connection,
        table: str,
        column: str,
        dim: int,
        ids: npt.NDArray[np.int64],
    ) -> None:
        rng = np.random.default_rng(len(ids))  # the same sample for the same table size
        picked = np.sort(rng.choice(ids, size=min(CALIBRATION_QUERIES, len(ids)), replace=False))
        parts = list(_read_vectors(conn, table, column, dim, picked))
        self.query_ids = np.concatenate([p[0] for p in parts]) if parts else picked[:0]
        self.queries = np.vstack([p[1] for p in parts]) if parts else np.empty((0, dim), np.float32)
        self.keep = CALIBRATION_K + 1  # each query finds itself first
        self.best_ids = np.full((len(self.query_ids), 0), -1, dtype=np.int64)
        self.best_scores = np.full((len(self.query_ids), 0), -np.inf, dtype=np.float32)

    def see(self, batch_ids: npt.NDArray[np.int64], matrix: npt.NDArray[np.float32]) -> None:
        if not len(self.query_ids):
            return
        scores = np.hstack([self.best_scores, self.queries @ matrix.T])
        ids = np.hstack(
            [self.best_ids, np.broadcast_to(batch_ids, (len(self.query_ids), len(batch_ids)))]
        )
        top = np.argsort(-scores, axis=1)[:, : self.keep]
        self.best_scores = np.take_along_axis(scores, top, axis=1)
        self.best_ids = np.take_along_axis(ids, top, axis=1)

    def calibrated_ef(self, index: Any) -> int:
        """The smallest efSearch whose walk returns CALIBRATION_RECALL of each query's
        exact neighbours (itself left out) among the ANN_CANDIDATES the re-rank reads."""
        if len(self.query_ids) == 0 or index.ntotal <= ANN_CANDIDATES:
            return EF_SEARCH
        faiss = ann_files.faiss_module()
        truth = [
            set(row[row != own][:CALIBRATION_K].tolist())
            for row, own in zip(self.best_ids, self.query_ids, strict=True)
        ]
        for ef in CALIBRATION_EFS:
            params = faiss.SearchParametersHNSW(efSearch=max(ef, ANN_CANDIDATES))
            _, found = index.search(self.queries, ANN_CANDIDATES + 1, params=params)
            hits = sum(
                len(want & set(row.tolist())) for want, row in zip(truth, found, strict=True)
            )
            if hits >= CALIBRATION_RECALL * sum(len(want) for want in truth):
                return ef
        return CALIBRATION_EFS[-1]


def _stamp_of(stamp: Stamp, generation: int, ids: npt.NDArray[np.int64]) -> Stamp:
    return Stamp(
        stamp.space_id,
        stamp.space_created,
        stamp.table,
        stamp.dim,
        generation,
        len(ids),
        int(ids.max()) if len(ids) else 0,
        ann_files.digest(ids),
    )


def _read_vectors(
    conn: driver.Connection,
    table: str,
    column: str,
    dim: int,
    ids: npt.NDArray[np.int64],
) -> Any:
    """(ids, matrix) batches of the given ids' vectors, in id order."""
    if len(ids) == 0:
        return
    contiguous = len(ids) > BATCH
    if contiguous:  # most of the table: walk it in id order rather than by lists of ids
        wanted = set(ids.tolist())
        after = -1
        while True:
            rows = conn.execute(
                f"SELECT {column}, embedding FROM {table} WHERE {column} > ?"
                f" ORDER BY {column} LIMIT ?",
                (after, BATCH),
            ).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            rows = [r for r in rows if r[0] in wanted]
            if rows:
                yield _batch(rows, dim)
    else:
        for start in range(0, len(ids), 900):
            chunk = [int(i) for i in ids[start : start + 900]]
            rows = conn.execute(
                f"SELECT {column}, embedding FROM {table} WHERE {column} IN"
                f" ({','.join('?' for _ in chunk)}) ORDER BY {column}",
                chunk,
            ).fetchall()
            if rows:
                yield _batch(rows, dim)


def _batch(rows: list[Any], dim: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    batch_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    matrix = np.ascontiguousarray(vectors.decode_many([r[1] for r in rows], dim))
    return batch_ids, matrix


def _sample_matches(
    conn: driver.Connection,
    graph: _Graph,
    table: str,
    column: str,
    live: npt.NDArray[np.int64],
    sample: int = SAMPLE,
) -> bool:
    """Whether a sample of the graph's vectors equals the table's (a graph saved from another
    database, or damaged, is rebuilt rather than trusted)."""
    if len(live) == 0:
        return True
    picks = np.random.default_rng().choice(live, size=min(sample, len(live)), replace=False)
    return vectors_match(conn, graph.index, table, column, graph.stamp.dim, picks)


def vectors_match(
    conn: driver.Connection,
    index: Any,
    table: str,
    column: str,
    dim: int,
    ids: npt.NDArray[np.int64],
) -> bool:
    for batch_ids, matrix in _read_vectors(conn, table, column, dim, np.sort(ids)):
        for key, vector in zip(batch_ids, matrix, strict=True):
            try:
                held = index.reconstruct(int(key))
            except RuntimeError:
                return False
            if not np.allclose(held, vector, atol=1e-6):
                return False
    return True
