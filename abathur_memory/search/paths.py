"""path_glob: globs over paths inside a root, matched in time linear in the path.

``*`` and ``?`` stay within one folder, ``**`` spans folders, ``[abc]``, ``[a-z]``,
``[!abc]`` match one character (never '/'). The glob used to become one regular expression,
whose backtracking made ``*?*?*?*?Z`` take seconds per path (``*a*a*...b`` never ended)
while holding the search's read transaction. Now a glob whose ``**`` are whole folders is
matched with expressions that cannot backtrack far (glob_segments.py), any other by an
automaton that never backtracks (glob_automaton.py); the pattern itself is bounded
(glob_parse.py: 512 characters, 32 wildcards).
"""

from __future__ import annotations

from collections.abc import Callable

from abathur_memory.search.glob_automaton import Automaton
from abathur_memory.search.glob_parse import MAX_GLOB_CHARS, MAX_WILDCARDS, check, parse
from abathur_memory.search.glob_segments import compile_segments

__all__ = ["MAX_GLOB_CHARS", "MAX_WILDCARDS", "PathGlob", "path_matcher"]


class PathGlob:
    """A compiled glob: call it with a path inside a root. ``automaton=True`` always uses
    the automaton (to compare the two ways); ``steps`` counts the automaton's work."""

    def __init__(self, pattern: str, *, automaton: bool = False) -> None:
        self.pattern = check(pattern)
        elements = parse(pattern)
        segments = None if automaton else compile_segments(pattern, elements)
        self._automaton: Automaton | None = None
        self.match: Callable[[str], bool]
        if segments is not None:
            self.match = segments
        else:
            self._automaton = self.match = Automaton(elements)
        self.uses_automaton = self._automaton is not None

    @property
    def steps(self) -> int:
        return self._automaton.steps if self._automaton is not None else 0

    def __call__(self, path: str) -> bool:
        return self.match(path)


def path_matcher(pattern: str) -> Callable[[str], bool]:
    """A glob matched against the path inside the root, case-sensitive: ``*`` and ``?``
    stay within one folder, ``**`` spans folders (``guides/*.md``, ``**/setup*.md``),
    ``[abc]``, ``[a-z]`` and ``[!abc]`` match one character of (not of) the set, never '/'.
    The matcher itself, without a wrapper: it runs once for every document of a search."""
    return PathGlob(pattern).match
