"""Which terms of a keyword query PostgreSQL scans, chosen from the planner's statistics.

``ts_rank_cd`` reads each matching row's tsvector, about 10-20 µs a row on these hosts, and
there is no index that returns rows in rank order. A natural-language query OR-ing ten terms
matches most of a corpus (3,800 of 5,000 chunks for one query here), so ranking every match
costs seconds at 100,000 chunks. Instead the rows are found by the query's rarest terms,
adding terms from the rarest up while their estimated matches stay within CANDIDATE_ROWS (at
least one term is always kept), and ranked against the whole query, so a row that also
holds the common terms still ranks higher. Rows matching only common terms are left out:
they are the ones BM25 (SQLite's scoring) ranks lowest, because common terms weigh least.

How common a lexeme is comes from ANALYZE: ``pg_stats.most_common_elems`` of the tsvector
column holds the most frequent lexemes (1,000 at the default statistics target) with their
frequencies; a lexeme not among them is rarer than the least frequent one listed. Without
statistics (a table never analyzed, such as a new small one) every term is scanned. The
statistics are cached per table for STATS_TTL_S: they only guide the choice of terms.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from abathur_memory.store.postgres.connection import Conn

CANDIDATE_ROWS = 1000
STATS_TTL_S = 300.0


@dataclass(frozen=True)
class TermStats:
    rows: float  # the table's estimated rows (pg_class.reltuples)
    frequency: dict[str, float]  # lexeme -> share of rows that hold it
    floor: float  # the least frequency listed: an unlisted lexeme is at most this common

    def estimate(self, lexemes: Sequence[str]) -> float:
        """Estimated rows holding any of ``lexemes`` (one term can stem to several)."""
        return self.rows * min(1.0, sum(self.frequency.get(x, self.floor) for x in lexemes))


_cache: dict[str, tuple[float, TermStats | None]] = {}


async def term_stats(conn: Conn, table: str) -> TermStats | None:
    now = time.monotonic()
    cached = _cache.get(table)
    if cached is not None and now - cached[0] < STATS_TTL_S:
        return cached[1]
    row = await (
        await conn.execute(
            "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs,"
            " (SELECT c.reltuples FROM pg_class AS c WHERE c.oid = to_regclass(%s))"
            " FROM pg_stats AS s WHERE s.schemaname = current_schema()"
            " AND s.tablename = %s AND s.attname = 'tsv'",
            (table, table),
        )
    ).fetchone()
    stats = None
    if row is not None and row[0] and row[1] and row[2] and row[2] > 0:
        elements, frequencies = row[0], row[1][: len(row[0])]
        stats = TermStats(
            rows=float(row[2]),
            frequency=dict(zip(elements, frequencies, strict=True)),
            floor=min(frequencies),
        )
    _cache[table] = (now, stats)
    return stats


async def lexemes_of(conn: Conn, terms: Sequence[str]) -> dict[str, list[str]]:
    """Each term's lexemes under the english configuration; stopwords have none."""
    found = await (
        await conn.execute(
            "SELECT t, ARRAY(SELECT lexeme FROM unnest(to_tsvector('english', t)))"
            " FROM unnest(%s::text[]) AS t",
            (list(terms),),
        )
    ).fetchall()
    return {row[0]: list(row[1]) for row in found}


async def scanned_terms(conn: Conn, table: str, terms: Sequence[str]) -> tuple[str, ...]:
    """The terms whose matches are ranked: the rarest, within CANDIDATE_ROWS estimated rows.
    Empty when no term has a lexeme (only stopwords: nothing can match)."""
    lexemes = await lexemes_of(conn, terms)
    kept = [term for term in terms if lexemes.get(term)]
    if len(kept) < 2:
        return tuple(kept)
    stats = await term_stats(conn, table)
    if stats is None:
        return tuple(kept)
    estimate = {term: stats.estimate(lexemes[term]) for term in kept}
    chosen: list[str] = []
    rows = 0.0
    for term in sorted(kept, key=lambda t: (estimate[t], t)):
        if chosen and rows + estimate[term] > CANDIDATE_ROWS:
            break
        chosen.append(term)
        rows += estimate[term]
    return tuple(chosen)
