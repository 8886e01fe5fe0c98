"""path_glob: globs over paths inside a root, matched in time linear in the path.

A glob is compiled to a small automaton (one state per pattern element) and run over the
path as a set of states, never by backtracking: a regular expression built from ``*`` and
``?`` backtracks, and ``*?*?*?*?Z`` over a long name took seconds per path (minutes for
``*a*a*...b``) while holding the search's read transaction. Sets of states met once are
kept as a lazily built DFA, so matching the thousands of paths of a search costs about one
dictionary lookup per character; the cost per character is bounded by the pattern's
elements, and the pattern is bounded (MAX_GLOB_CHARS, MAX_WILDCARDS).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from abathur_memory.errors import InvalidInput

MAX_GLOB_CHARS = 512
MAX_WILDCARDS = 32  # *, **, ? and [...] together
MAX_CACHED_STATES = 4096  # DFA states kept; beyond, sets of states are stepped uncached

# Kinds of pattern elements.
_LITERAL = 0  # one given character
_ONE = 1  # ``?``: one character other than '/'
_CLASS = 2  # ``[...]`` / ``[!...]``: one character other than '/', in (or not in) the set
_STAR = 3  # ``*``: any run of characters other than '/'
_ANY = 4  # ``**`` not followed by '/': any run of characters, '/' included
_FOLDERS = 5  # ``**/`` (whole folders: ``(?:[^/]*/)*``), at a folder boundary, and
_IN_FOLDER = 6  # ... inside a folder's name: always the element right after a _FOLDERS

_SKIPPABLE = (_STAR, _ANY, _FOLDERS)


@dataclass(frozen=True)
class _Element:
    kind: int
    char: str = ""
    ranges: tuple[tuple[str, str], ...] = ()
    negated: bool = False

    def accepts(self, char: str) -> bool:
        """Whether one character is consumed by a single-character element."""
        if self.kind == _LITERAL:
            return char == self.char
        if char == "/":
            return False
        if self.kind == _ONE:
            return True
        inside = any(low <= char <= high for low, high in self.ranges)
        return inside != self.negated


class PathGlob:
    """A compiled glob: call it with a path inside a root. ``steps`` counts the element
    visits made while stepping sets of states (the work the DFA cache saves)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._elements = _parse(pattern)
        self._end = len(self._elements)
        self.steps = 0
        start = self._closure([0])
        self._start = start
        self._next: dict[frozenset[int], dict[str, frozenset[int]]] = {start: {}}

    def __call__(self, path: str) -> bool:
        state = self._start
        table = self._next[state]
        for char in path:
            following = table.get(char)
            if following is None:
                following = self._step(state, char)
                if len(self._next) < MAX_CACHED_STATES or following in self._next:
                    table[char] = following
                    self._next.setdefault(following, {})
            if not following:
                return False
            state = following
            cached = self._next.get(state)
            table = cached if cached is not None else {}  # a full cache: stepped, not kept
        return self._end in state

    def _closure(self, positions: Iterable[int]) -> frozenset[int]:
        """The positions plus those reached by skipping wildcards that may match nothing."""
        found: set[int] = set()
        for position in positions:
            while position not in found:
                found.add(position)
                if position == self._end or self._elements[position].kind not in _SKIPPABLE:
                    break
                position += 2 if self._elements[position].kind == _FOLDERS else 1
        return frozenset(found)

    def _step(self, state: frozenset[int], char: str) -> frozenset[int]:
        reached: list[int] = []
        for position in state:
            self.steps += 1
            if position == self._end:
                continue
            element = self._elements[position]
            kind = element.kind
            if kind == _STAR:
                if char != "/":
                    reached.append(position)
            elif kind == _ANY:
                reached.append(position)
            elif kind == _FOLDERS:  # a '/' ends an empty folder name
                reached.append(position if char == "/" else position + 1)
            elif kind == _IN_FOLDER:  # a '/' ends the folder's name: back at a boundary
                reached.append(position - 1 if char == "/" else position)
            elif element.accepts(char):
                reached.append(position + 1)
        return self._closure(reached)


def path_matcher(pattern: str) -> PathGlob:
    """A glob matched against the path inside the root, case-sensitive: ``*`` and ``?``
    stay within one folder, ``**`` spans folders (``guides/*.md``, ``**/setup*.md``),
    ``[abc]``, ``[a-z]`` and ``[!abc]`` match one character of (not of) the set, never '/'."""
    if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_GLOB_CHARS:
        raise InvalidInput(f"path_glob must be 1 to {MAX_GLOB_CHARS} characters")
    return PathGlob(pattern)


def _parse(pattern: str) -> list[_Element]:
    elements: list[_Element] = []
    wildcards = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            elements += [_Element(_FOLDERS), _Element(_IN_FOLDER)]
            wildcards += 1
            i += 3
        elif pattern.startswith("**", i):
            elements.append(_Element(_ANY))
            wildcards += 1
            i += 2
        elif char == "*":
            elements.append(_Element(_STAR))
            wildcards += 1
            i += 1
        elif char == "?":
            elements.append(_Element(_ONE))
            wildcards += 1
            i += 1
        elif char == "[" and (parsed := _parse_class(pattern, i)) is not None:
            element, i = parsed
            elements.append(element)
            wildcards += 1
        else:
            elements.append(_Element(_LITERAL, char))
            i += 1
    if wildcards > MAX_WILDCARDS:
        raise InvalidInput(
            f"path_glob has {wildcards} wildcards (*, **, ?, [...]); the limit is {MAX_WILDCARDS}"
        )
    return elements


def _parse_class(pattern: str, start: int) -> tuple[_Element, int] | None:
    """``[...]`` at ``start``: the element and the index after it, or None when the bracket
    is not closed (then it is a literal '['). A ']' right after '[' or '[!' is a member."""
    i = start + 1
    negated = i < len(pattern) and pattern[i] in "!^"
    if negated:
        i += 1
    body_start = i
    end = pattern.find("]", body_start + 1)
    if end == -1:
        return None
    body = pattern[body_start:end]
    ranges: list[tuple[str, str]] = []
    j = 0
    while j < len(body):
        if j + 2 < len(body) and body[j + 1] == "-":
            low, high = body[j], body[j + 2]
            if low > high:
                raise InvalidInput(f"path_glob has a reversed range [{low}-{high}]")
            ranges.append((low, high))
            j += 3
        else:
            ranges.append((body[j], body[j]))
            j += 1
    return _Element(_CLASS, ranges=tuple(ranges), negated=negated), end + 1
