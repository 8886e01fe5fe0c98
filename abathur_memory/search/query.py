"""A query, checked and turned into keyword terms: the first step of every search."""

from __future__ import annotations

import re
from typing import Any, Literal

from abathur_memory.core.cjk import has_cjk, query_grams
from abathur_memory.errors import InvalidInput

Mode = Literal["hybrid", "keyword", "semantic"]
MODES = ("hybrid", "keyword", "semantic")
MAX_QUERY_CHARS = 2000
MAX_K = 100
MAX_QUERY_TERMS = 32

# Words too common to help a BM25 match (and costly: their posting lists are huge).
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "not",
        "no",
        "we",
        "our",
        "they",
        "them",
        "he",
        "she",
        "his",
        "her",
    ]
)
_WORD = re.compile(r"\w+", re.UNICODE)


def check_query(query: Any) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("query must be a non-empty string")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(
            f"query is {len(query):,} characters; the limit is {MAX_QUERY_CHARS:,}: "
            "search for the key sentence instead"
        )
    if not _WORD.search(query):
        raise InvalidInput("query has no words to search for")
    return query.strip()


def check_k(k: Any) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be between 1 and {MAX_K}")
    return k


def check_mode(mode: Any) -> Mode:
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def keyword_terms(query: str) -> list[str]:
    """Query words worth matching: stopwords dropped (unless nothing else is left). A word
    with CJK characters is followed by its character pairs (core/cjk.py), which find it
    inside the runs of CJK text the engines take for single words."""
    words = [w.lower() for w in _WORD.findall(query)]
    kept = [w for w in words if w not in STOPWORDS] or words
    expanded = [term for w in kept for term in ([w, *query_grams(w)] if has_cjk(w) else [w])]
    unique = list(dict.fromkeys(expanded))
    return unique[:MAX_QUERY_TERMS]
