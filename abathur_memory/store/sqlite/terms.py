"""Keyword query terms for FTS5: quoted so no term is an operator, the very common ones
left out where rarer ones can answer, and the rows ranked bounded at scale.

FTS5 ranks by BM25 every row that matches the query, so the cost is the sum of the terms'
posting lists: at 1,000,000 chunks a query of ten terms each in 10,000-50,000 rows ranked
every one of them (86.5 ms p50, 188 ms p95 in bench/sqlite_keyword_scale.py). So the rows
ranked are those holding the rarest terms, about CANDIDATE_ROWS of them, while the score
still counts every kept term: the FTS5 query is ``R OR (R AND C)`` where R are the rarest
terms and C the others. A row matches through R; the C phrases are in the expression, so
``bm25()`` counts them in the rows R found. When R finds fewer rows than the caller wants
(a filter may drop most of them), the caller runs ``KeywordPlan.every``: every kept term.

Counting a term's rows reads its posting list (about 55 ns a row: 3 ms for a term in
50,000 chunks, as long as ranking 2,000 rows), so the counts are remembered per table for
COUNTS_TTL_S (``TermCounts``): like PostgreSQL's statistics, they only guide the plan, and
a plan made on an old count still finds its rows through the fallback.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from abathur_memory.store.sqlite import driver

# A query term in more rows than both of these is left out when rarer terms remain.
COMMON_TERM_ROWS = 5000
COMMON_TERM_SHARE = 0.05
# The rows ranked per query: the rarest terms' rows, up to about this many.
CANDIDATE_ROWS = 10_000
COUNTS_TTL_S = 300.0
COUNTS_KEPT = 50_000  # (table, term) pairs remembered at most


class TermCounts:
    """How many rows hold a term, per FTS table, as counted within the last COUNTS_TTL_S.
    One per store; shared by its reader threads (single dict operations only)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], tuple[int, int, float]] = {}
        self._rows: dict[str, tuple[int, float]] = {}

    def table_rows(self, conn: driver.Connection, fts: str) -> int:
        """The rows of the table (FTS5's own count, a b-tree count: 5 ms at 1,000,000 rows),
        remembered like the terms' counts: it only sets how common is too common."""
        found = self._rows.get(fts)
        if found is not None and time.monotonic() - found[1] <= COUNTS_TTL_S:
            return found[0]
        rows = int(conn.execute(f"SELECT count(*) FROM {fts}_docsize").fetchone()[0])
        self._rows[fts] = (rows, time.monotonic())
        return rows

    def get(self, fts: str, term: str, cap: int) -> int | None:
        """The rows holding ``term`` counted up to ``cap`` (a count past the cap reads as
        cap), or None when not counted that far lately."""
        found = self._counts.get((fts, term))
        if found is None:
            return None
        count, counted_cap, at = found
        if time.monotonic() - at > COUNTS_TTL_S or (count >= counted_cap and counted_cap < cap):
            return None
        return min(count, cap)

    def put(self, fts: str, term: str, count: int, cap: int) -> None:
        if len(self._counts) >= COUNTS_KEPT:
            self._counts.clear()
        self._counts[(fts, term)] = (count, cap, time.monotonic())


@dataclass(frozen=True)
class KeywordPlan:
    """``match``: the FTS5 query to run first; ``every``: the one to run when ``match`` found
    fewer rows than wanted (None: ``match`` already holds every kept term's rows)."""

    match: str
    every: str | None = None


def fts_match(terms: tuple[str, ...] | list[str]) -> str:
    """An FTS5 query matching any of the terms, each quoted (no operator injection)."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def keyword_plan(
    conn: driver.Connection,
    fts: str,
    terms: tuple[str, ...],
    rows: int | None = None,
    counts: TermCounts | None = None,
) -> KeywordPlan:
    """The FTS5 queries for ``terms`` (see the module's docstring). ``rows``: how many rows
    the table holds, when the caller knows; ``counts``: the store's remembered counts."""
    if len(terms) < 2:
        return KeywordPlan(fts_match(terms))
    counted = _row_counts(conn, fts, terms, rows, counts or TermCounts())
    order = sorted(counted, key=lambda term: counted[term])
    rare: list[str] = []
    ranked = 0
    for term in order:
        if rare and ranked + counted[term] > CANDIDATE_ROWS:
            break
        rare.append(term)
        ranked += counted[term]
    every = fts_match(order)
    if len(rare) == len(order):
        return KeywordPlan(every)
    found = f"({fts_match(rare)})"
    scored = f"({fts_match(order[len(rare) :])})"
    return KeywordPlan(f"{found} OR ({found} AND {scored})", every)


def _row_counts(
    conn: driver.Connection, fts: str, terms: tuple[str, ...], rows: int | None, counts: TermCounts
) -> dict[str, int]:
    """{term: rows holding it} for the terms kept: those in at most COMMON_TERM_SHARE of the
    rows (or COMMON_TERM_ROWS), or the rarest one alone when none is.

    BM25 scores every posting of every OR-ed term, so a term in a third of the rows costs
    tens of milliseconds at 100,000 rows (ten times that at a million) while its IDF makes
    it count for almost nothing. Counting stops at the limit, so the check stays cheap.
    """
    if rows is None:
        rows = counts.table_rows(conn, fts)
    limit = max(COMMON_TERM_ROWS, int(COMMON_TERM_SHARE * rows))

    def count(term: str, cap: int) -> int:
        known = counts.get(fts, term, cap)
        if known is not None:
            return known
        found = int(
            conn.execute(
                f"SELECT count(*) FROM (SELECT rowid FROM {fts} WHERE {fts} MATCH ? LIMIT ?)",
                (fts_match([term]), cap),
            ).fetchone()[0]
        )
        counts.put(fts, term, found, cap)
        return found

    counted = {term: count(term, limit + 1) for term in terms}
    rare = {term: n for term, n in counted.items() if n <= limit}
    if rare:
        return rare
    rarest = min(terms, key=lambda term: count(term, rows + 1))
    return {rarest: counted[rarest]}
