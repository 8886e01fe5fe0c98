"""Keyword query terms for FTS5: quoted so no term is an operator, and the very common
ones left out where rarer ones can answer."""

from __future__ import annotations

from abathur_memory.store.sqlite import driver

# A query term in more rows than both of these is left out when rarer terms remain.
COMMON_TERM_ROWS = 5000
COMMON_TERM_SHARE = 0.05


def fts_match(terms: tuple[str, ...] | list[str]) -> str:
    """An FTS5 query matching any of the terms, each quoted (no operator injection)."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def without_common_terms(
    conn: driver.Connection, fts: str, terms: tuple[str, ...], rows: int | None = None
) -> tuple[str, ...]:
    """The query's terms without those in more than COMMON_TERM_SHARE of the rows (and more
    than COMMON_TERM_ROWS) when rarer ones remain; when every term is that common, the
    rarest one. ``rows``: how many rows the table holds, when the caller knows.

    BM25 scores every posting of every OR-ed term, so a term in a third of the rows costs
    tens of milliseconds at 100,000 rows (ten times that at a million) while its IDF makes
    it count for almost nothing. Counting stops at the limit, so the check stays cheap.
    """
    if len(terms) < 2:
        return terms
    if rows is None:  # (FTS5's own row count: a cheap b-tree count)
        rows = int(conn.execute(f"SELECT count(*) FROM {fts}_docsize").fetchone()[0])
    limit = max(COMMON_TERM_ROWS, int(COMMON_TERM_SHARE * rows))

    def count(term: str, cap: int) -> int:
        return int(
            conn.execute(
                f"SELECT count(*) FROM (SELECT rowid FROM {fts} WHERE {fts} MATCH ? LIMIT ?)",
                (fts_match([term]), cap),
            ).fetchone()[0]
        )

    rare = tuple(term for term in terms if count(term, limit + 1) <= limit)
    return rare or (min(terms, key=lambda term: count(term, rows + 1)),)
