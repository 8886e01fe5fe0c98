"""Snippets: the window of a hit's text around the first query term, terms in bold."""

from __future__ import annotations

import re

from abathur_memory.core.cjk import has_cjk

SNIPPET_CHARS = 280


def snippet(text: str, terms: list[str], width: int = SNIPPET_CHARS) -> str:
    """A window of the chunk around the first query term, terms in **bold**."""
    flat = " ".join(text.split())
    stems = [t[: max(4, len(t) - 2)] for t in terms if len(t) > 1 and not has_cjk(t)]
    # CJK terms (a run and its character pairs) sit inside runs: matched where they are,
    # the longest first so that a whole run is bolded as one.
    cjk = sorted((t for t in terms if has_cjk(t)), key=len, reverse=True)
    parts = [re.escape(t) for t in cjk] + [r"\b" + re.escape(s) + r"\w*" for s in stems]
    pattern = re.compile("|".join(parts), re.IGNORECASE) if parts else None
    start = 0
    if pattern is not None and (match := pattern.search(flat)):
        start = max(0, match.start() - width // 3)
        while start > 0 and flat[start - 1] != " ":
            start -= 1
    window = flat[start : start + width]
    if start + width < len(flat):
        cut = window.rfind(" ")
        window = (window[:cut] if cut > width // 2 else window) + " …"
    if start > 0:
        window = "… " + window
    if pattern is not None:
        window = pattern.sub(lambda m: f"**{m.group(0)}**", window)
    return window
