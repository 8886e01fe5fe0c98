"""How PostgreSQL runs a keyword query: which rows it ranks, and the score it ranks them by.

Two problems with the obvious ``WHERE tsv @@ q ORDER BY ts_rank_cd(tsv, q)``, both measured
(docs/benchmarks.md, "PostgreSQL keyword search"):

- Cost. Ranking reads each matching row's tsvector, and a natural-language query of ten
  OR-ed terms matches most of a corpus: 0.5 to 1.3 s a query at 100,000 chunks. So the rows
  to rank are found by the query's rarest terms, each alone (adding terms from the rarest
  while their estimated matches stay within CANDIDATE_ROWS, at least one always) and then
  by pairs of the next rarest terms together (a row holding two of them ranks well under
  BM25), again within the estimate. GIN answers that OR of terms and pairs from its posting
  lists; only the candidates are read. When even the rarest term is in more than
  COMMON_ROWS rows (common words over a million chunks), the rows ranked are those holding
  the rarest terms together (``_all_common``): ranking every row of the rarest term took up
  to 5.9 s at 1,000,000 chunks (bench/pg_keyword_scale.py). GIN's own work grows with
  the pairs' posting lists and the number of pairs: on vaswani (11,429 abstracts) 15 pairs
  of 6 terms took 13 ms in the index scan alone; 6 pairs of 4 keep the search at 15 ms with
  the same nDCG@10, and no pairs lose 0.05 of it.
- Quality. ``ts_rank_cd`` and ``ts_rank`` know nothing of how rare a term is: on vaswani,
  nDCG@10 of ``ts_rank_cd`` over OR queries is 0.21 where SQLite's BM25 gets 0.43. The score
  here is BM25's shape instead: the sum over the query's terms of the term's IDF times
  ``ts_rank`` of that term alone (its weighted frequency in the row, normalised by the row's
  length): 0.450 on the same data, and 0.362 on cranfield where BM25 gets 0.360
  (bench/keyword_backends.py).

How common a lexeme is comes from ANALYZE: ``pg_stats.most_common_elems`` of the tsvector
column holds the most frequent lexemes (1,000 at the default statistics target) with their
frequencies; a lexeme not among them is at most as common as the least frequent one listed.
Without statistics (a table never analyzed, such as a new small one) every term is scanned
and weighs the same. The statistics are cached per table for STATS_TTL_S: they only guide.

Those statistics are the whole table's, not what the caller may see: in a big shared
database the rarest terms can all sit in rows the caller's filter excludes (another
owner's root, another user's memories), and a small corpus can hold its matches in the
terms left out. So a pruned scan that finds fewer rows than the caller wants is run again
over every term (``KeywordPlan.every``): the rows holding only the common terms then rank
after the others, as on SQLite. Like SQLite's, that full scan leaves out a term estimated
in more than COMMON_ROWS rows while rarer ones remain.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from abathur_memory.store.postgres.connection import Conn

CANDIDATE_ROWS = 300  # estimated rows ranked per query
COMMON_ROWS = 5000  # a term in more rows than this is left out when rarer ones remain
PAIR_TERMS = 4  # pairs are formed among this many of the next rarest terms
STATS_TTL_S = 300.0
# Heading (A) counts twice the text (B), as SQLite's bm25 weights (2.0, 1.0); D, C unused.
RANK_WEIGHTS = "{0.1, 0.2, 0.5, 1.0}"
# Memories: the key (A) twice the text (B), the neighbours' words (C, core/memory_units.py)
# at 0.6 of the text. SQLite weighs them 0.3 in BM25, which normalises each column by its
# own length; ts_rank normalises by the whole row's, so the context needs more here: on
# LoCoMo's development half keyword R@10 was 0.737 at 0.15, 0.762 at 0.3, 0.767 at 0.45
# (R@5 0.651, 0.694, 0.678; bench/memory_retrieval.py --backend postgres --mode keyword).
MEMORY_RANK_WEIGHTS = "{0.1, 0.3, 0.5, 1.0}"
# A chunk's CJK pairs (unweighted, so D) count as its text does.
GRAMS_RANK_WEIGHTS = "{0.5, 0.2, 0.5, 1.0}"


@dataclass(frozen=True)
class TermStats:
    rows: float  # the table's estimated rows (pg_class.reltuples)
    frequency: dict[str, float]  # lexeme -> share of rows that hold it
    floor: float  # the least frequency listed: an unlisted lexeme is at most this common

    def estimate(self, lexemes: Sequence[str]) -> float:
        """Estimated rows holding any of ``lexemes`` (one term can stem to several)."""
        return self.rows * min(1.0, sum(self.frequency.get(x, self.floor) for x in lexemes))


StatsCache = dict[str, tuple[float, "TermStats | None"]]  # table -> (when read, stats)


async def term_stats(conn: Conn, table: str, cache: StatsCache) -> TermStats | None:
    """The table's lexeme statistics; ``cache`` belongs to one store (one database and
    schema), so tables of the same name elsewhere never share an entry."""
    now = time.monotonic()
    cached = cache.get(table)
    if cached is not None and now - cached[0] < STATS_TTL_S:
        return cached[1]
    row = await (
        await conn.execute(
            "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs,"
            " (SELECT c.reltuples FROM pg_class AS c"
            "  WHERE c.oid = to_regclass(quote_ident(current_schema()) || '.' || %s))"
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
    cache[table] = (now, stats)
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


@dataclass(frozen=True)
class KeywordPlan:
    scan: str  # websearch_to_tsquery text: the rows to rank (terms and pairs, OR-ed)
    weights: tuple[tuple[str, float], ...]  # (one term's websearch text, its IDF)
    every: str = ""  # the scan over every term (but the commonest): when ``scan`` finds too few

    @property
    def pruned(self) -> bool:
        """``scan`` leaves out rows that ``every`` would rank."""
        return bool(self.every) and self.every != self.scan

    def score_sql(self, column: str, weights: str = RANK_WEIGHTS) -> tuple[str, list[Any]]:
        """The score expression over ``column`` (a tsvector) and its parameters."""
        parts = [
            f"{idf:.6f} * ts_rank('{weights}', {column}, websearch_to_tsquery('english', %s), 1)"
            for _, idf in self.weights
        ]
        return " + ".join(parts), [text for text, _ in self.weights]


def quoted(terms: Sequence[str]) -> str:
    """Terms as websearch_to_tsquery text, each quoted (no operator reaches the parser)."""
    return " ".join('"' + term.replace('"', " ") + '"' for term in terms)


async def plan(
    conn: Conn, table: str, terms: Sequence[str], cache: StatsCache
) -> KeywordPlan | None:
    """The plan for ``terms`` on ``table``; None when no term has a lexeme (only stopwords:
    nothing can match)."""
    lexemes = await lexemes_of(conn, terms)
    kept = list(dict.fromkeys(term for term in terms if lexemes.get(term)))
    if not kept:
        return None
    stats = await term_stats(conn, table, cache)
    if stats is None:
        weights = tuple((quoted([t]), 1.0) for t in kept)
        every = " or ".join(quoted([t]) for t in kept)
        return KeywordPlan(every, weights, every)
    estimate = {term: stats.estimate(lexemes[term]) for term in kept}
    rows_total = max(stats.rows, 1.0)
    order = sorted(kept, key=lambda t: (estimate[t], t))
    weights = tuple(
        (quoted([t]), math.log(1 + (rows_total - estimate[t] + 0.5) / (estimate[t] + 0.5)))
        for t in kept
    )
    if estimate[order[0]] > COMMON_ROWS:
        return _all_common(order, estimate, rows_total, weights)
    scan: list[list[str]] = []
    rows = 0.0
    for term in order:
        if scan and rows + estimate[term] > CANDIDATE_ROWS:
            break
        scan.append([term])
        rows += estimate[term]
    rest = order[len(scan) : len(scan) + PAIR_TERMS]
    pairs = sorted(
        (estimate[a] * estimate[b] / rows_total, a, b)
        for i, a in enumerate(rest)
        for b in rest[i + 1 :]
    )
    for size, a, b in pairs:
        if rows + size > CANDIDATE_ROWS:
            break
        scan.append([a, b])
        rows += size
    full = [t for t in order if estimate[t] <= COMMON_ROWS] or order
    return KeywordPlan(
        " or ".join(quoted(group) for group in scan),
        weights,
        " or ".join(quoted([t]) for t in full),
    )


def _all_common(
    order: Sequence[str],
    estimate: dict[str, float],
    rows_total: float,
    weights: tuple[tuple[str, float], ...],
) -> KeywordPlan:
    """The plan when even the rarest term is in more than COMMON_ROWS rows (a query of
    common words over a million chunks): ranking every row that holds one of
    them reads hundreds of thousands of tsvectors (over 30 s at 1,000,000 chunks), so the
    rows ranked are those holding the rarest terms together, as many of them as it takes
    to expect about CANDIDATE_ROWS rows (BM25 ranks a row holding several query terms above
    one holding one). Too few found: the rows holding the two rarest (from a pair, the
    rarest alone)."""
    group = [order[0]]
    size = estimate[order[0]]
    for term in order[1:]:
        if size <= CANDIDATE_ROWS:
            break
        group.append(term)
        size *= estimate[term] / rows_total
    wider = group[:2] if len(group) > 2 else group[:1]
    return KeywordPlan(quoted(group), weights, quoted(wider))
