"""path_glob: its semantics, and matching that cannot be made to backtrack."""

from __future__ import annotations

import fnmatch
import random
import re
import subprocess
import sys
import textwrap

import pytest
from indexing_helpers import make_docs, write_tree

from abathur_memory.embedders.fake import FakeEmbedder
from abathur_memory.errors import InvalidInput
from abathur_memory.search.paths import path_matcher
from abathur_memory.search.results import Filters

MAX_WILDCARDS = 32  # search/paths.py: the documented limit
HOSTILE = [
    "guides/*?*?*?*?*?*?*?*?Z",
    "*a" * 31 + "b",
    "**a" * 16 + "b",
    "*?" * 16 + "Z",
    "**/" * 10 + "*a" * 10 + "b",
]


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("guides/*.md", "guides/setup.md", True),
        ("guides/*.md", "guides/deep/setup.md", False),  # * stays in one folder
        ("*.md", "top.md", True),
        ("*.md", "a/top.md", False),
        ("**/*.md", "top.md", True),  # **/ may be no folder at all
        ("**/*.md", "a/b/c.md", True),
        ("**/setup*.md", "x/y/setup-linux.md", True),
        ("**/setup*.md", "x/y/other.md", False),
        ("docs/**", "docs/a/b.md", True),
        ("docs/**", "doc/a.md", False),
        ("a**b", "a/x/yb", True),  # ** spans folders
        ("a*b", "a/b", False),
        ("?.md", "a.md", True),
        ("?.md", "ab.md", False),
        ("?", "/", False),  # ? stays in one folder
        ("[ab].md", "b.md", True),
        ("[ab].md", "c.md", False),
        ("[!ab].md", "c.md", True),
        ("[!ab].md", "a.md", False),
        ("[^ab].md", "c.md", True),
        ("a[!x]b", "a/b", False),  # a class never matches '/'
        ("[a-c]x", "bx", True),
        ("[a-c]x", "dx", False),
        ("[]]x", "]x", True),
        ("[!]]x", "ax", True),
        ("[!]]x", "]x", False),
        ("[a-]", "-", True),
        ("[x", "[x", True),  # an unclosed bracket is a literal
        ("a.md", "a.md", True),
        ("a.md", "aXmd", False),  # '.' is not a wildcard
        ("A.md", "a.md", False),  # case-sensitive
        ("ノート/*.md", "ノート/メモ.md", True),
        ("ünï/??.md", "ünï/çé.md", True),
    ],
)
def test_glob_semantics(pattern, path, expected):
    assert path_matcher(pattern)(path) is expected


def _reference(pattern: str) -> re.Pattern[str]:
    """The documented semantics as a regular expression (fine for short benign inputs)."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern.startswith("[!", i):
            out, i = out + f"[^/{re.escape(pattern[i + 2])}]", i + 4
        elif pattern[i] == "[":
            out, i = out + f"(?!/)[{re.escape(pattern[i + 1])}]", i + 3
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def test_glob_agrees_with_the_reference_on_random_patterns():
    rng = random.Random(13)
    pieces = ["a", "b", "/", ".", "*", "**", "**/", "?", "[a]", "[!a]", "[b]"]
    checked = 0
    for _ in range(600):
        pattern = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 7)))
        if pattern.count("*") + pattern.count("?") + pattern.count("[") > MAX_WILDCARDS:
            continue
        matcher, reference = path_matcher(pattern), _reference(pattern)
        for _ in range(25):
            path = "".join(rng.choice("ab/.") for _ in range(rng.randint(0, 9)))
            assert matcher(path) == bool(reference.match(path)), (pattern, path)
            checked += 1
    assert checked > 10_000


def test_glob_agrees_with_fnmatch_within_one_folder():
    """Without '/', our * ? [..] [!..] are fnmatch's."""
    rng = random.Random(7)
    pieces = ["a", "b", "c", ".", "*", "?", "[ab]", "[!a]", "[a-c]"]
    for _ in range(400):
        pattern = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        matcher = path_matcher(pattern)
        for _ in range(25):
            name = "".join(rng.choice("abc.") for _ in range(rng.randint(0, 8)))
            assert matcher(name) == fnmatch.fnmatchcase(name, pattern), (pattern, name)


@pytest.mark.parametrize("pattern", HOSTILE)
def test_hostile_globs_cost_linear_work_in_the_automaton(pattern):
    """Every character of a path costs at most one visit per pattern element (and repeated
    sets of states cost nothing): counted, not timed."""
    from abathur_memory.search.paths import PathGlob

    matcher = PathGlob(pattern, automaton=True)
    for length in (100, 1_000, 20_000):
        path = "guides/" + "a" * length + ".md"
        before = matcher.steps
        assert matcher(path) is False
        assert matcher.steps - before <= len(path) * (len(pattern) + 1)
    # The sets of states repeat: a second long path costs no new steps at all.
    before = matcher.steps
    matcher("guides/" + "a" * 50_000 + ".md")
    assert matcher.steps == before


def test_the_two_ways_of_matching_agree():
    """Folder by folder (most globs) and the automaton (any glob) give the same answers."""
    from abathur_memory.search.paths import PathGlob

    rng = random.Random(21)
    pieces = ["a", "b", "/", ".", "*", "**", "**/", "?", "[a]", "[!a]", "[a-b]", "[/]"]
    by_folder = 0
    for _ in range(800):
        pattern = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        fast, automaton = PathGlob(pattern), PathGlob(pattern, automaton=True)
        by_folder += not fast.uses_automaton
        for _ in range(25):
            path = "".join(rng.choice("ab/.") for _ in range(rng.randint(0, 10)))
            assert fast(path) == automaton(path), (pattern, path)
    assert by_folder > 200  # both ways were exercised
    assert PathGlob("**/setup*.md").uses_automaton is False
    assert PathGlob("a**b").uses_automaton is True


def test_hostile_globs_finish_in_a_fresh_process():
    """A guard against backtracking: in the regex version these took minutes (or forever);
    run where a hang cannot take the test session with it. Paths of 200,000 characters:
    quadratic work would not end either."""
    script = textwrap.dedent(
        f"""
        from abathur_memory.errors import InvalidInput
        from abathur_memory.search.paths import path_matcher
        for pattern in {[*HOSTILE, "*a" * 100 + "b"]!r}:
            try:
                matcher = path_matcher(pattern)
            except InvalidInput:
                continue
            for n in (60, 200, 2000, 200_000):
                assert not matcher("guides/" + "a" * n + ".md")
                assert not matcher("guides/" + "a/" * (n // 2) + "x.md")
        print("done")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "1 to 512 characters"),
        ("a" * 513, "1 to 512 characters"),
        ("*a" * 100 + "b", "100 wildcards"),
        ("?" * (MAX_WILDCARDS + 1), f"the limit is {MAX_WILDCARDS}"),
        ("[z-a].md", r"reversed range \[z-a\]"),
    ],
)
def test_bad_globs_are_invalid_input(pattern, message):
    with pytest.raises(InvalidInput, match=message):
        path_matcher(pattern)


@pytest.mark.anyio
async def test_document_search_with_hostile_globs(store, tmp_path):
    """Both backends filter by the same matcher: a hostile glob answers (nothing matches),
    an over-long one is refused as invalid input, a benign one still filters."""
    files = {
        f"guides/{'a' * 70}{i}.md": f"# Guide {i}\n\nalpha guide number {i}\n" for i in range(5)
    }
    files["guides/setupZ"] = "not markdown"
    files["guides/short.md"] = "# Short\n\nalpha in a short guide\n"
    docs = make_docs(store, FakeEmbedder(dim=64))
    await docs.add_root(write_tree(tmp_path / "docs", files))
    await docs.index()
    for pattern in HOSTILE:
        found = await docs.search(None, "alpha", mode="keyword", filters=Filters(path_glob=pattern))
        assert found.results == []
    with pytest.raises(InvalidInput, match="wildcards"):
        await docs.search(None, "alpha", filters=Filters(path_glob="?" * 40))
    short = await docs.search(
        None, "alpha", mode="keyword", filters=Filters(path_glob="guides/s*.md")
    )
    assert [hit.path for hit in short.results] == ["docs/guides/short.md"]
