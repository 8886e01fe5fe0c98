"""Any glob matched by an automaton: one state per pattern element, run over the path as a
set of states (never by backtracking), the sets met kept as a lazily built DFA.

The cost per character is bounded by the pattern's elements, and repeated sets of states
cost one dictionary lookup. paths.py uses this for the globs that glob_segments.py cannot
take (``**`` inside a name, a '/' inside ``[...]``).
"""

from __future__ import annotations

from collections.abc import Iterable

from abathur_memory.search.glob_parse import (
    ANY,
    FOLDERS,
    IN_FOLDER,
    STAR,
    Element,
)

MAX_CACHED_STATES = 4096  # DFA states kept; beyond, sets of states are stepped uncached
_SKIPPABLE = (STAR, ANY, FOLDERS)


class Automaton:
    """``steps`` counts the element visits made while stepping sets of states."""

    def __init__(self, elements: list[Element]) -> None:
        self._elements = elements
        self._end = len(elements)
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
                position += 2 if self._elements[position].kind == FOLDERS else 1
        return frozenset(found)

    def _step(self, state: frozenset[int], char: str) -> frozenset[int]:
        reached: list[int] = []
        for position in state:
            self.steps += 1
            if position == self._end:
                continue
            element = self._elements[position]
            kind = element.kind
            if kind == STAR:
                if char != "/":
                    reached.append(position)
            elif kind == ANY:
                reached.append(position)
            elif kind == FOLDERS:  # a '/' ends an empty folder name
                reached.append(position if char == "/" else position + 1)
            elif kind == IN_FOLDER:  # a '/' ends the folder's name: back at a boundary
                reached.append(position - 1 if char == "/" else position)
            elif element.accepts(char):
                reached.append(position + 1)
        return self._closure(reached)
