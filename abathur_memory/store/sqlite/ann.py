"""Approximate nearest neighbours for large vector tables: a faiss inverted-file index
(IVF, flat vectors) per table, kept as a derived, verified cache of the vectors stored in the
database.

Why: the exact path (vector_index.py) reads every 1-bit code per query, so its cost grows with
the table (3 ms at 100k vectors, 56 ms at 1M here). An IVF index splits the vectors into
lists around k-means centroids and a query reads only the lists of its nearest centroids:
at 1,000,000 clustered vectors it built in 2 minutes and answered in 2-3 ms at recall@10
0.99-1.0, where an HNSW graph took 18 minutes to build and 25 ms for 0.955 (bench/ann.py,
docs/ann.md). faiss because its search takes an id selector, so filters act inside the
candidate step, not after it.

How it stays true to the table:

- a search uses the index only when the index's :class:`Stamp` names the space (id and
  creation time) and the generation of the search's own read snapshot; every write of vectors
  bumps the generation (spaces.bump_generation), so an index that misses a commit is never
  used;
- otherwise the search takes the exact path and says so (``Answer.note``), and a background
  thread brings the index up to date: ids added to the table are added (to the list of their
  nearest centroid), ids gone from it are skipped at search time (ids are AUTOINCREMENT, never
  reused, so an id names one vector), a sample of vectors is compared with the table, and the
  index is rebuilt from scratch when the sample differs, the space changed, too many ids are
  gone or the table outgrew the centroids it was trained with;
- the index is saved beside the database with its stamp (ann_files.py) and, in the next
  process, loaded and checked the same way before it is used.

Filters: the caller passes the ids its SQL allows (``allowed``, the same contract as the exact
path's coarse pass: a new filter is one more SQL condition there). They become a bitmap the
list scan consults, so only allowed ids become candidates (no top-k cut before the filter);
when the scan still comes back with fewer than the wanted number, it is repeated wider
(nprobe x4, up to every list) and then left to the exact path. A filter that keeps fewer than
``selective_fraction`` of the vectors takes the exact path at once, which is cheaper there.
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

from abathur_memory.core.heap import return_freed_memory
from abathur_memory.core.spaces import Space
from abathur_memory.store.sqlite import ann_files, driver, vector_index, vectors
from abathur_memory.store.sqlite.ann_files import Stamp

log = logging.getLogger(__name__)

# Below this many vectors the exact path is fast enough (about 1 ms at 20k, bench/ann.py).
DEFAULT_MIN_VECTORS = 20_000
SELECTIVE_FRACTION = 0.01  # a filter keeping fewer vectors than this share: exact path
NPROBE = 8  # the narrowest scan; each build calibrates its own (below)
LISTS_PER_SQRT = 4  # lists: about 4 x sqrt(vectors), a power of two (faiss's rule of thumb)
TRAIN_PER_LIST = 64  # k-means training vectors per list (a random sample of the table)
REBUILD_GROWTH = 2  # the lists a table's size calls for, over the index's: retrain
ANN_CANDIDATES = 100  # at least this many neighbours go to the exact re-rank
REBUILD_REMOVED_FRACTION = 0.2  # skipped ids tolerated before the index is rebuilt
SAMPLE = 32  # vectors compared with the table when an index is brought up to date
# nprobe is calibrated on each build: stored vectors as queries (each its own neighbours'
# query, itself left out), their exact top CALIBRATION_K found while the index is built, and
# the smallest nprobe of CALIBRATION_PROBES whose scan hands the re-rank that many of them.
CALIBRATION_QUERIES = 64
CALIBRATION_K = 10
CALIBRATION_RECALL = 0.99
CALIBRATION_PROBES = (NPROBE, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
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
    nprobe: int = NPROBE  # the narrowest scan (a build's calibration may widen it)
    persist: bool = True  # save indexes beside the database


def lists_for(count: int) -> int:
    """The number of IVF lists for ``count`` vectors: about LISTS_PER_SQRT x sqrt(count),
    rounded to a power of two, and at most count / 39 (faiss's k-means wants 39 training
    vectors per centroid) unless that leaves fewer than 16 lists; never more lists than
    vectors."""
    wanted = 2 ** round(np.log2(max(1.0, LISTS_PER_SQRT * count**0.5)))
    return int(max(1, min(count, max(16, min(wanted, count // 39)))))


@dataclass
class _Graph:
    """One table's index (named for what it is to a search: the structure walked)."""

    index: Any  # faiss.IndexIDMap2 over IndexIVFFlat (inner product)
    stamp: Stamp
    ids: npt.NDArray[np.int64]  # every id in the index, sorted
    removed: set[int] = field(default_factory=set)
    live_bits: npt.NDArray[np.uint8] | None = None  # None: nothing removed
    lock: threading.Lock = field(default_factory=threading.Lock)
    saved_at: float = 0.0

    @property
    def ivf(self) -> Any:
        return ann_files.faiss_module().extract_index_ivf(self.index)

    @property
    def nprobe(self) -> int:
        """The nprobe this index was calibrated for (saved with it by faiss)."""
        return int(self.ivf.nprobe)

    @property
    def nlist(self) -> int:
        return int(self.ivf.nlist)

    def refresh_bits(self) -> None:
        if not self.removed:
            self.live_bits = None
            return
        mask = np.zeros(self.stamp.max_id + 1, dtype=bool)
        mask[self.ids] = True
        mask[np.fromiter(self.removed, dtype=np.int64)] = False
        self.live_bits = np.packbits(mask, bitorder="little")


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
        nlist = graph.nlist
        nprobe = min(nlist, max(self.settings.nprobe, graph.nprobe))
        if allowed is not None and len(allowed) < graph.stamp.count:
            # A scan that skips most vectors needs more lists for the same recall: widen by
            # 1/sqrt(share of the vectors allowed), as the tests and bench/ann.py measure.
            share = max(len(allowed), 1) / graph.stamp.count
            nprobe = min(nlist, int(np.ceil(nprobe / share**0.5)))
        while True:
            try:
                found = self._search(graph, query, wanted, nprobe, allowed)
            except Exception as exc:  # never fail a search over a cache: answer exactly
                log.warning(
                    "the approximate index of %s failed (%s): searching exactly", table, exc
                )
                self._drop((space.id, table))
                self.schedule(space.id, table)
                return None, CATCHING_UP
            if len(found) >= expected:
                return found, APPROXIMATE
            if nprobe >= nlist:
                return None, STARVED
            nprobe = min(nprobe * 4, nlist)  # the filters left the scan short: look wider

    def _search(
        self,
        graph: _Graph,
        query: npt.NDArray[np.float32],
        wanted: int,
        nprobe: int,
        allowed: npt.NDArray[np.int64] | None,
    ) -> npt.NDArray[np.int64]:
        faiss = ann_files.faiss_module()
        if not getattr(_searching, "one_thread", False):
            # One query is one scan: OpenMP threads would only spin (per thread, so the
            # background build keeps every core).
            faiss.omp_set_num_threads(1)
            _searching.one_thread = True
        bits = graph.live_bits
        if allowed is not None:
            mask = np.zeros(graph.stamp.max_id + 1, dtype=bool)
            mask[allowed[(allowed >= 0) & (allowed <= graph.stamp.max_id)]] = True
            packed = np.packbits(mask, bitorder="little")
            bits = packed if bits is None else packed & bits
        params = faiss.SearchParametersIVF(nprobe=nprobe)
        selector = None
        if bits is not None:
            selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
            params.sel = selector
        matrix = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        with graph.lock:
            _, found = graph.index.search(matrix, wanted, params=params)
        del selector  # (kept alive until the search is done)
        return found[0][found[0] >= 0].astype(np.int64)

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
        return_freed_memory()  # the read batches: the heap would keep them
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
        if lists_for(len(ids)) >= REBUILD_GROWTH * graph.nlist:
            return None  # the table outgrew its centroids: lists too long to scan quickly
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
        nlist = lists_for(len(ids))
        quantizer = faiss.IndexFlatIP(dim)
        inner = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(len(ids))  # the same sample for the same table size
        training = np.sort(
            rng.choice(ids, size=min(len(ids), nlist * TRAIN_PER_LIST), replace=False)
        )
        sample = [matrix for _, matrix in _read_vectors(conn, table, column, dim, training)]
        self._check_stop()
        inner.train(np.vstack(sample))
        del sample
        index = faiss.IndexIDMap2(inner)
        truth = _Truth(conn, table, column, dim, ids)
        for batch_ids, matrix in _read_vectors(conn, table, column, dim, ids):
            self._check_stop()
            index.add_with_ids(matrix, batch_ids)
            truth.see(batch_ids, matrix)
        inner.make_direct_map()  # reconstruct(): the checks compare vectors with the table
        inner.nprobe = truth.calibrated_nprobe(index, nlist)
        stamp = Stamp(space_id, created, table, dim, generation, 0, 0, "")
        graph = _Graph(index, _stamp_of(stamp, generation, ids), ids)
        graph.refresh_bits()
        log.info(
            "built the approximate index of %s (%d vectors, %d lists, nprobe %d) in %.1f s",
            table,
            len(ids),
            nlist,
            inner.nprobe,
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
    """The exact neighbours of a sample of the stored vectors, gathered while the index is
    built (each batch is scored once, as it is added), to calibrate nprobe on."""

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

    def calibrated_nprobe(self, index: Any, nlist: int) -> int:
        """The smallest nprobe whose scan returns CALIBRATION_RECALL of each query's exact
        neighbours (itself left out) among the ANN_CANDIDATES the re-rank reads."""
        if index.ntotal <= ANN_CANDIDATES:
            return nlist  # the re-rank reads the whole table anyway: scan every list
        if len(self.query_ids) == 0:
            return min(NPROBE, nlist)
        faiss = ann_files.faiss_module()
        truth = [
            set(row[row != own][:CALIBRATION_K].tolist())
            for row, own in zip(self.best_ids, self.query_ids, strict=True)
        ]
        for nprobe in [p for p in CALIBRATION_PROBES if p < nlist] + [nlist]:
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            _, found = index.search(self.queries, ANN_CANDIDATES + 1, params=params)
            hits = sum(
                len(want & set(row.tolist())) for want, row in zip(truth, found, strict=True)
            )
            if hits >= CALIBRATION_RECALL * sum(len(want) for want in truth):
                return nprobe
        return nlist


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
