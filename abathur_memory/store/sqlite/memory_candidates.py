"""Memory candidates on SQLite, within what a search's scope may read: BM25 over
``memory_fts`` and the vectors of a space.

A scope (the namespaces a principal may read, a prefix, the filters) is a condition on
each memory's index row and entry. Evaluating it over every memory costs a pass over the
whole table on every search (0.35 s for the vectors of 100,000 memories), so a broad scope
ranks everything and keeps what passes, which gives the same candidates whenever enough
of them pass (the best ones it may read are the best ones that passed); only a scope that
keeps few memories, or a ranking where too few passed, lists what it may read first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from abathur_memory.core.memory_units import CONTEXT_KEYWORD_WEIGHT
from abathur_memory.core.search import CONTEXT_PART, CandidateFacts, MemoryScope
from abathur_memory.core.spaces import Space
from abathur_memory.store.sqlite import ann, driver, timestamps, vector_index
from abathur_memory.store.sqlite.readable import memory_filter_sql, prefix_sql, readable_sql
from abathur_memory.store.sqlite.terms import TermCounts, keyword_plan

# A scope holding less than this share of the memories is listed before ranking; a broader
# one is applied to what the ranking found.
SELECTIVE_SHARE = 0.1
_SCOPED = (
    "JOIN memory_fts_keys AS k ON k.entry_id = {id} JOIN memory_entries AS m ON m.id = k.entry_id"
)


@dataclass(frozen=True)
class ScopeSql:
    """A scope as one condition on ``k`` (memory_fts_keys) and ``m`` (memory_entries)."""

    where: str
    params: list[Any]
    narrow: bool  # few memories: list them before ranking

    @classmethod
    def of(cls, conn: driver.Connection, scope: MemoryScope, memories: int) -> ScopeSql:
        where, params = readable_sql(scope.principal, scope.prefix)
        narrowed, narrowed_params = memory_filter_sql(scope.filters)
        return cls(
            f"{where} {narrowed}",
            [*params, *narrowed_params],
            _few_under_prefix(conn, scope.prefix, memories),
        )

    def passing(self, conn: driver.Connection, entry_ids: list[int]) -> set[int]:
        """The entries among ``entry_ids`` the scope keeps."""
        if not entry_ids:
            return set()
        marks = ",".join("?" for _ in entry_ids)
        return {
            row[0]
            for row in conn.execute(
                f"SELECT k.entry_id FROM memory_fts_keys AS k"
                " JOIN memory_entries AS m ON m.id = k.entry_id"
                f" WHERE k.entry_id IN ({marks}) AND {self.where}",
                [*entry_ids, *self.params],
            )
        }


def memory_count(conn: driver.Connection) -> int:
    """How many memories are indexed (FTS5's own row count: a cheap b-tree count)."""
    return int(conn.execute("SELECT count(*) FROM memory_fts_docsize").fetchone()[0])


def _few_under_prefix(conn: driver.Connection, prefix: str | None, memories: int) -> bool:
    """Whether fewer than SELECTIVE_SHARE of the memories lie under ``prefix`` (counted
    through the namespace index, stopping there)."""
    if prefix is None:
        return False
    cap = max(1, int(SELECTIVE_SHARE * memories))
    sql, params = prefix_sql(prefix, "namespace")
    count = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM memory_fts_keys WHERE {sql} LIMIT ?)",
        [*params, cap],
    ).fetchone()[0]
    return bool(count < cap)


def keywords(
    conn: driver.Connection,
    terms: tuple[str, ...],
    scope: ScopeSql,
    pool: int,
    memories: int,
    counts: TermCounts,
) -> list[tuple[int, float]]:
    """The ``pool`` best (entry id, BM25 relevance) the scope keeps, best first."""
    plan = keyword_plan(conn, "memory_fts", terms, memories, counts)
    best = _keywords(conn, plan.match, scope, pool)
    if len(best) < pool and plan.every is not None:  # the rarest terms' rows were too few
        best = _keywords(conn, plan.every, scope, pool)
    return best


def _keywords(
    conn: driver.Connection, match: str, scope: ScopeSql, pool: int
) -> list[tuple[int, float]]:
    # bm25() is lower-is-better (negative); reported as a positive relevance.
    rank = f"bm25(memory_fts, 0.0, 2.0, 1.0, {CONTEXT_KEYWORD_WEIGHT})"
    if not scope.narrow:
        best = conn.execute(
            f"SELECT rowid, -{rank} AS score FROM memory_fts WHERE memory_fts MATCH ?"
            " ORDER BY score DESC LIMIT ?",
            (match, pool),
        ).fetchall()
        kept = scope.passing(conn, [row[0] for row in best])
        if len(kept) == len(best) or len(best) < pool:  # every one passed, or all were seen
            return [(row[0], row[1]) for row in best if row[0] in kept]
    return [
        (row[0], row[1])
        for row in conn.execute(
            f"SELECT f.rowid, -{rank} AS score FROM memory_fts AS f"
            f" {_SCOPED.format(id='f.rowid')}"
            f" WHERE memory_fts MATCH ? AND {scope.where} ORDER BY score DESC LIMIT ?",
            [match, *scope.params, pool],
        )
    ]


def vector_rows(
    conn: driver.Connection,
    graphs: ann.AnnIndexes,
    codes: Callable[[], vector_index.Codes],
    space: Space,
    vector: npt.NDArray[np.float32],
    scope: ScopeSql,
    wanted: int,
    needed: int,
) -> tuple[list[Any], str | None]:
    """The vector rows (entry id, part, embedding) to re-rank exactly, among those the scope
    keeps, and how they were found (as ``AnnIndexes.candidates`` says).

    A broad scope searches every vector and keeps what passes: when as many passed as the
    search returned, they are what a search over the kept vectors alone would return; when
    fewer passed, the search is widened once by the share that passed. The kept vectors are
    listed first only when the scope is narrow, the share small or the widened search short.
    """
    table = space.memory_vectors
    if not scope.narrow:
        found, path = graphs.candidates(conn, codes, space, table, vector, wanted, None, needed)
        rows = _kept_rows(conn, space, found, scope)
        if len(rows) == len(found):
            return rows, path
        if len(rows) >= SELECTIVE_SHARE * len(found):
            wider = math.ceil(1.25 * len(found) ** 2 / len(rows))
            more, path = graphs.candidates(conn, codes, space, table, vector, wider, None, needed)
            rows = _kept_rows(conn, space, more, scope)
            if len(rows) >= len(found):
                return rows, path
    allowed = np.fromiter(
        (
            row[0]
            for row in conn.execute(
                f"SELECT v.id FROM {table} AS v {_SCOPED.format(id='v.entry_id')}"
                f" WHERE {scope.where}",
                scope.params,
            )
        ),
        dtype=np.int64,
    )
    found, path = graphs.candidates(conn, codes, space, table, vector, wanted, allowed, needed)
    return _kept_rows(conn, space, found, scope), path


def _kept_rows(
    conn: driver.Connection, space: Space, candidates: npt.NDArray[np.int64], scope: ScopeSql
) -> list[Any]:
    id_list = [int(i) for i in candidates]
    if not id_list:
        return []
    return conn.execute(
        f"SELECT v.entry_id, v.part, v.embedding FROM {space.memory_vectors} AS v"
        f" {_SCOPED.format(id='v.entry_id')}"
        f" WHERE v.id IN ({','.join('?' for _ in id_list)}) AND {scope.where}",
        [*id_list, *scope.params],
    ).fetchall()


def rerank_entries(
    space: Space, vector: npt.NDArray[np.float32], rows: list[Any], limit: int
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """Exact similarity of candidate rows: each memory's own score (its best part) and its
    context vector's score, each list best first."""
    if not rows:
        return [], []
    matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(
        len(rows), space.dim
    )
    scores = matrix @ vector
    own: dict[int, float] = {}
    around: dict[int, float] = {}
    for (entry_id, part, _), score in zip(rows, scores, strict=True):
        if part == CONTEXT_PART:
            around[entry_id] = float(score)
        elif score > own.get(entry_id, -2.0):
            own[entry_id] = float(score)
    return (
        sorted(own.items(), key=lambda item: -item[1])[:limit],
        sorted(around.items(), key=lambda item: -item[1])[:limit],
    )


def candidate_facts(conn: driver.Connection, ids: set[int]) -> dict[int, CandidateFacts]:
    """When each candidate happened and who said it, for the fusion's boosts."""
    if not ids:
        return {}
    id_list = sorted(ids)
    rows = conn.execute(
        "SELECT entry_id, moment, speaker FROM memory_fts_keys"
        f" WHERE entry_id IN ({','.join('?' for _ in id_list)})",
        id_list,
    ).fetchall()
    return {row[0]: CandidateFacts(timestamps.from_db(row[1]), row[2]) for row in rows}
