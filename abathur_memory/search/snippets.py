"""Snippets: the window of a hit's text around the first query term, terms in bold."""

from __future__ import annotations

import re

SNIPPET_CHARS = 280


def snippet(text: str, terms: list[str], width: int = SNIPPET_CHARS) -> str:
    """A window of the chunk around the first query term, terms in **bold**."""
    flat = " ".join(text.split())
    stems = [t[: max(4, len(t) - 2)] for t in terms if len(t) > 1]
    pattern = (
        re.compile(r"\b(" + "|".join(re.escape(s) for s in stems) + r")\w*", re.IGNORECASE)
        if stems
        else None
    )
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
