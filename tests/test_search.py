"""Search modes, filters, degradation, result fields; reading documents back safely."""

from __future__ import annotations

import os

import pytest
from indexing_helpers import DownEmbedder, make_docs, write_tree

from abathur_memory.embedders.fake import FakeEmbedder
from abathur_memory.errors import Forbidden, InvalidInput, NotFound
from abathur_memory.search.fusion import fuse
from abathur_memory.search.query import keyword_terms
from abathur_memory.search.results import Filters
from abathur_memory.search.snippets import snippet

pytestmark = pytest.mark.anyio


@pytest.fixture
async def indexed(store, tmp_path):
    docs = make_docs(store, FakeEmbedder(dim=64))
    await docs.add_root(write_tree(tmp_path / "docs"))
    await docs.add_root(
        write_tree(tmp_path / "more", {"extra.md": "# Extra\n\nWrite-ahead logging again.\n"})
    )
    await docs.index()
    return docs


async def test_hybrid_keyword_and_semantic(indexed):
    for mode in ("hybrid", "keyword", "semantic"):
        result = await indexed.search(None, "write-ahead logging readers", mode=mode, k=3)
        assert result.mode_used == mode and result.degraded is None
        assert result.results, mode
        top = result.results[0]
        assert top.path in ("docs/notes/beta.md", "more/extra.md")
    hybrid = await indexed.search(None, "write-ahead logging readers", k=5)
    top = hybrid.results[0]
    assert top.path == "docs/notes/beta.md" and top.heading == ["Beta", "WAL"]
    assert (top.start_line, top.end_line) == (10, 12)
    assert top.keyword_rank is not None and top.semantic_rank is not None
    assert "**logging**" in top.snippet
    assert top.title == "Beta notes" and top.tags == ["db", "sqlite"]
    assert top.changed_since_indexed is False


async def test_filters(indexed):
    only_more = await indexed.search(None, "logging", filters=Filters(root="more"))
    assert {h.path for h in only_more.results} == {"more/extra.md"}
    # Globs match the path inside the root: * stays in one folder, ** spans folders.
    by_glob = await indexed.search(None, "logging", filters=Filters(path_glob="notes/*"))
    assert {h.path for h in by_glob.results} == {"docs/notes/beta.md", "docs/notes/gamma.markdown"}
    assert by_glob.results[0].path == "docs/notes/beta.md"

    async def keyword_paths(glob):
        found = await indexed.search(
            None, "logging", mode="keyword", filters=Filters(path_glob=glob)
        )
        return {h.path for h in found.results}

    assert await keyword_paths("*.md") == {"more/extra.md"}  # top level of each root only
    assert await keyword_paths("**/*.md") == {"docs/notes/beta.md", "more/extra.md"}
    assert await keyword_paths("docs/notes/*") == set()  # the root's name is not in the path
    by_tag = await indexed.search(None, "file", filters=Filters(tags=["SQLite"]))
    assert {h.path for h in by_tag.results} == {"docs/notes/beta.md"}
    by_type = await indexed.search(None, "fox", filters=Filters(document_type="design"))
    assert {h.path for h in by_type.results} == {"docs/notes/beta.md"}
    with pytest.raises(InvalidInput, match="no root named 'nope'; roots: docs, more"):
        await indexed.search(None, "x", filters=Filters(root="nope"))


async def test_each_semantic_hit_carries_its_similarity_filtered_or_not(indexed):
    """PostgreSQL's unfiltered walk reads ids alone, and the fused hits' scores come with
    their rows; a filtered walk scores its candidates. Both give every semantic hit its
    cosine similarity, best rank highest, and the same score for the same chunk."""
    query = "write-ahead logging readers"
    scores: dict[tuple[str, int], float] = {}
    for filters in (None, Filters(root="docs")):
        for mode in ("semantic", "hybrid"):
            result = await indexed.search(None, query, mode=mode, k=8, filters=filters)
            semantic = [h for h in result.results if h.semantic_rank is not None]
            assert semantic, (mode, filters)
            for hit in result.results:
                assert (hit.semantic_score is None) == (hit.semantic_rank is None)
            by_rank = sorted(semantic, key=lambda h: h.semantic_rank)
            ordered = [h.semantic_score for h in by_rank]
            assert ordered == sorted(ordered, reverse=True), (mode, filters)
            for hit in semantic:
                assert -1.0 <= hit.semantic_score <= 1.0
                seen = scores.setdefault((hit.path, hit.start_line), hit.semantic_score)
                assert seen == pytest.approx(hit.semantic_score, abs=1e-4), hit.path
    assert any(path.startswith("docs/") for path, _ in scores)


async def test_degrades_to_keyword_when_the_model_is_down(store, indexed):
    down = make_docs(store, DownEmbedder(dim=64))
    result = await down.search(None, "write-ahead logging")
    assert result.mode_used == "keyword"
    assert "ollama serve" in result.degraded
    assert result.results and result.results[0].semantic_rank is None


async def test_changed_files_are_flagged(indexed, tmp_path):
    path = tmp_path / "docs" / "alpha.md"
    path.write_text(path.read_text() + "\nA new line.\n")
    os.utime(path, ns=(1, 1))
    result = await indexed.search(None, "quick brown fox", mode="keyword")
    assert result.results[0].path == "docs/alpha.md"
    assert result.results[0].changed_since_indexed is True


@pytest.mark.parametrize(
    ("query", "k", "mode", "message"),
    [
        ("", 10, "hybrid", "non-empty"),
        ("   ", 10, "hybrid", "non-empty"),
        ("x" * 10_000, 10, "hybrid", "limit is 2,000"),
        ("?!", 10, "hybrid", "no words"),
        ("fox", 0, "hybrid", "k must be between 1 and 100"),
        ("fox", 101, "hybrid", "k must be"),
        ("fox", 10, "fuzzy", "mode must be one of"),
    ],
)
async def test_bad_queries(indexed, query, k, mode, message):
    with pytest.raises(InvalidInput, match=message):
        await indexed.search(None, query, k=k, mode=mode)


async def test_search_before_anything_is_indexed(store):
    empty = make_docs(store, FakeEmbedder(dim=64))
    result = await empty.search(None, "anything")
    assert result.results == [] and "nothing is indexed" in result.degraded


async def test_document_get_reads_ranges(indexed):
    whole = await indexed.get(None, "docs/notes/beta.md")
    assert whole.total_lines == 12 and whole.text.startswith("---")
    part = await indexed.get(None, "docs/notes/beta.md", 10, 12)
    assert part.text == "## WAL\n\nWrite-ahead logging lets readers and a writer work at once."
    assert (part.start_line, part.end_line, part.title) == (10, 12, "Beta notes")
    clipped = await indexed.get(None, "docs/notes/beta.md", 11, 500)
    assert clipped.end_line == 12


async def test_document_get_refuses_paths_outside_the_roots(indexed, tmp_path):
    secret = tmp_path / "secret.md"
    secret.write_text("# Secret\n")
    os.symlink(secret, tmp_path / "docs" / "escape.md")
    (tmp_path / "docs" / "notes.txt").write_text("not markdown")
    with pytest.raises(Forbidden, match=r"'\.\.' is not allowed"):
        await indexed.get(None, "docs/../secret.md")
    with pytest.raises(Forbidden, match="absolute"):
        await indexed.get(None, str(secret))
    with pytest.raises(NotFound, match=r"not in the index|no document"):
        await indexed.get(None, "docs/escape.md")  # links are never indexed, so never read
    with pytest.raises(Forbidden, match="only markdown"):
        await indexed.get(None, "docs/notes.txt")
    with pytest.raises(NotFound, match="roots: docs, more"):
        await indexed.get(None, "elsewhere/x.md")
    with pytest.raises(NotFound):
        await indexed.get(None, "docs/missing.md")
    with pytest.raises(InvalidInput, match="past the end"):
        await indexed.get(None, "docs/alpha.md", 999)
    with pytest.raises(InvalidInput, match="start_line"):
        await indexed.get(None, "docs/alpha.md", 0)


def test_keyword_terms_drop_stopwords_unless_nothing_is_left():
    assert keyword_terms("How do I restore a deleted memory?") == ["restore", "deleted", "memory"]
    assert keyword_terms("the and of") == ["the", "and", "of"]
    assert keyword_terms('quote " injection') == ["quote", "injection"]


def test_rrf_rewards_agreement():
    fused = fuse([(1, 9.0), (2, 5.0)], [(2, 0.9), (3, 0.8)], 10)
    assert [hit.id for hit in fused] == [2, 1, 3]
    assert (fused[0].keyword_rank, fused[0].semantic_rank) == (2, 1)
    assert (fused[1].keyword_score, fused[1].semantic_score) == (9.0, None)


def test_snippet_highlights_terms():
    text = "word " * 100 + "the restore command brings it back " + "tail " * 100
    out = snippet(text, ["restore"])
    assert "**restore**" in out and out.startswith("… ") and out.endswith(" …")


async def test_very_common_terms_are_dropped_when_rarer_ones_remain(
    store, raw, tmp_path, monkeypatch
):
    """SQLite drops a term found in more than COMMON_TERM_ROWS chunks (and COMMON_TERM_SHARE
    of them) when rarer ones remain, and keeps only the rarest when none does; when the
    rarest terms' rows (CANDIDATE_ROWS) are too few, it ranks every kept term's rows;
    PostgreSQL finds the rows by the rarest terms within CANDIDATE_ROWS estimated rows (from
    ANALYZE's lexeme frequencies) and ranks them against every term, and when those are too
    few, scans every term but one estimated in more than COMMON_ROWS rows, as SQLite."""
    from abathur_memory.store.postgres import keywords
    from abathur_memory.store.sqlite import terms as sqlite_terms

    files = {f"d{i}.md": f"# D{i}\n\ncommon words everywhere number {i}\n" for i in range(6)}
    files["special.md"] = "# Special\n\ncommon words and a unicorn\n"
    docs = make_docs(store, FakeEmbedder(dim=64))
    await docs.add_root(write_tree(tmp_path / "c", files))
    await docs.index()
    both = await docs.search(None, "common unicorn", mode="keyword", k=20)
    assert len(both.results) == 7  # every chunk matches "common"
    if store.kind == "postgres":
        await raw.execute_write("ANALYZE")
        store.search.term_stats.clear()  # read before ANALYZE: none yet
        monkeypatch.setattr(keywords, "CANDIDATE_ROWS", 3)
        short = await docs.search(None, "common unicorn", mode="keyword", k=20)
        assert len(short.results) == 7  # the rarest term alone found too few: every term
        monkeypatch.setattr(keywords, "COMMON_ROWS", 3)
    else:
        monkeypatch.setattr(sqlite_terms, "CANDIDATE_ROWS", 1)
        short = await docs.search(None, "common unicorn", mode="keyword", k=20)
        assert len(short.results) == 7  # the rarest term's rows were too few: every term
        monkeypatch.setattr(sqlite_terms, "COMMON_TERM_ROWS", 3)
    pruned = await docs.search(None, "common unicorn", mode="keyword", k=20)
    assert [h.path for h in pruned.results] == ["c/special.md"]
    only_common = await docs.search(None, "common", mode="keyword", k=20)
    assert len(only_common.results) == 7  # nothing rarer: the term is kept
    # every term common: SQLite keeps the rarest ("everywhere": 6 of 7) alone; PostgreSQL
    # ranks the rows holding the rarest terms together (the same 6 here)
    rarest = await docs.search(None, "common everywhere", mode="keyword", k=20)
    assert sorted(h.path for h in rarest.results) == [f"c/d{i}.md" for i in range(6)]


def test_when_every_term_is_common_postgres_ranks_rows_holding_the_rarest_together():
    """A query of common words over a large table (the rarest term in more than COMMON_ROWS
    rows): the rows ranked are those holding the rarest terms together, as many terms as it
    takes to expect about CANDIDATE_ROWS rows; too few found, the two rarest together. Before,
    every row holding the rarest term was ranked: over 30 s at 1,000,000 chunks."""
    from abathur_memory.store.postgres import keywords

    estimate = {"a": 60_000.0, "b": 80_000.0, "c": 100_000.0, "d": 200_000.0, "e": 300_000.0}
    order = sorted(estimate, key=lambda t: estimate[t])
    planned = keywords._all_common(order, estimate, 1_000_000.0, (('"a"', 1.0),))
    # 60,000 x 0.08 x 0.1 x 0.2 = 96 expected rows hold a, b, c and d: e is not needed
    assert planned.scan == '"a" "b" "c" "d"'
    assert planned.every == '"a" "b"' and planned.pruned
    two = keywords._all_common(["a", "b"], estimate, 1_000_000.0, ())
    assert (two.scan, two.every) == ('"a" "b"', '"a"')


def test_sqlite_ranks_the_rarest_terms_rows_and_scores_them_with_every_term(tmp_path, monkeypatch):
    """At scale, SQLite ranks only the rows holding the rarest terms (about CANDIDATE_ROWS),
    scored with every kept term, so a row holding the rare and the other terms comes first;
    when those rows are fewer than wanted, the plan's ``every`` ranks every kept term's rows.
    Before, BM25 ranked every row of every term: 73 ms p50 at 1,000,000 chunks."""
    from abathur_memory.store.sqlite import driver
    from abathur_memory.store.sqlite import terms as sqlite_terms

    conn = driver.connect(tmp_path / "fts.db")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(text)")
    texts = ["rare alone"] * 2 + ["rare mid common"] + ["mid common"] * 9 + ["common"] * 10
    conn.executemany("INSERT INTO f(rowid, text) VALUES (?, ?)", enumerate(texts, 1))
    monkeypatch.setattr(sqlite_terms, "CANDIDATE_ROWS", 5)
    monkeypatch.setattr(sqlite_terms, "COMMON_TERM_ROWS", 100)  # no term left out here

    def ranked(match: str, limit: int) -> list[int]:
        rows = conn.execute(
            "SELECT rowid FROM f WHERE f MATCH ? ORDER BY bm25(f) LIMIT ?", (match, limit)
        )
        return [row[0] for row in rows]

    plan = sqlite_terms.keyword_plan(conn, "f", ("common", "mid", "rare"))
    # rare: 3 rows; mid (10 rows) would pass the 5 rows ranked
    assert plan.match == '("rare") OR (("rare") AND ("mid" OR "common"))'
    assert plan.every == '"rare" OR "mid" OR "common"'
    assert ranked(plan.match, 10) == [3, 1, 2]  # only rare's rows; the one with mid first
    assert len(ranked(plan.every, 30)) == 22
    small = sqlite_terms.keyword_plan(conn, "f", ("rare", "alone"))  # 5 rows in all
    assert small == sqlite_terms.KeywordPlan('"alone" OR "rare"')
    counts = sqlite_terms.TermCounts()  # a store's: the table's rows and terms remembered
    assert sqlite_terms.keyword_plan(conn, "f", ("common", "mid", "rare"), counts=counts) == plan
    conn.execute("INSERT INTO f(rowid, text) VALUES (23, 'rare')")
    assert counts.table_rows(conn, "f") == 22 and counts.get("f", "rare", 101) == 3
    monkeypatch.setattr(sqlite_terms, "COUNTS_TTL_S", -1.0)
    assert counts.table_rows(conn, "f") == 23 and counts.get("f", "rare", 101) is None


def test_sqlite_term_counts_are_remembered_up_to_their_cap_and_for_a_while(monkeypatch):
    """A count is reused only as far as it was counted (a count that reached its cap says
    nothing about a higher cap), and only for COUNTS_TTL_S."""
    from abathur_memory.store.sqlite import terms as sqlite_terms

    counts = sqlite_terms.TermCounts()
    counts.put("f", "exact", 40, 101)  # 40 rows: fewer than the cap, so exact
    counts.put("f", "capped", 101, 101)  # counting stopped at the cap
    assert counts.get("f", "exact", 5001) == 40 and counts.get("f", "exact", 10) == 10
    assert counts.get("f", "capped", 51) == 51 and counts.get("f", "capped", 5001) is None
    assert counts.get("g", "exact", 101) is None  # another table
    monkeypatch.setattr(sqlite_terms, "COUNTS_TTL_S", -1.0)
    assert counts.get("f", "exact", 101) is None


async def test_a_rare_term_outranks_a_common_term_repeated(store, raw, tmp_path):
    """Keyword scores weigh a term by how rare it is (BM25 on SQLite; on PostgreSQL the sum of
    each term's IDF times its ts_rank): one mention of the rare term beats six of a term that
    every document holds. Without the IDF (plain ts_rank_cd), the repeated term wins."""
    files = {f"d{i}.md": f"# Note {i}\n\napple orchard notes for week {i}\n" for i in range(12)}
    files["apples.md"] = "# Fruit\n\napple apple apple apple apple apple\n"
    files["zebra.md"] = "# Animal\n\nthe zebra stood still\n"
    docs = make_docs(store, FakeEmbedder(dim=64))
    await docs.add_root(write_tree(tmp_path / "c", files))
    await docs.index()
    if store.kind == "postgres":
        await raw.execute_write("ANALYZE")
        store.search.term_stats.clear()
    found = await docs.search(None, "apple zebra", mode="keyword", k=5)
    assert [h.path for h in found.results][:2] == ["c/zebra.md", "c/apples.md"]
