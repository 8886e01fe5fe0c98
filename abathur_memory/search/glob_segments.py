"""Most globs matched with regular expressions that cannot backtrack far.

When ``**`` appears only as a whole folder (``**/setup*.md``, ``docs/**``) and no ``[...]``
holds a '/', the pattern's folders match the path's folders one for one, ``**`` standing
for any number of them. Inside one name, a name is matched as Python's fnmatch matches it:
the text up to the first ``*`` is fixed; each further ``*`` takes the shortest run before the
next fixed piece, in an atomic group (the leftmost place for a fixed piece is always as good
as any other: the next ``*`` can take what follows it); only the last ``*`` backtracks, and
only within its name, since no wildcard of a name matches '/'. So:

- with at most one ``**`` the whole path is one expression: the names before it match
  without choices; ``**/`` becomes any number of whole folders, each taken possessively, so
  the only choice is how many, and each try of the names after it stops at the first name
  that fails: work linear in the path for each name of the pattern;
- with more, the names are matched folder by folder, keeping the set of positions the
  ``**`` allow (at most one per folder of the path, for each part of the pattern).

All run in the regular expression engine; the automaton (glob_automaton.py) steps every
character in Python, several times slower over the paths of a large index.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from abathur_memory.search.glob_parse import (
    ANY,
    CLASS,
    FOLDERS,
    IN_FOLDER,
    LITERAL,
    STAR,
    Element,
    parse,
)

ZERO_OR_MORE = "**/"  # any number of whole folders
ONE_OR_MORE = "**"  # a final ``**``: the rest of the path, after the '/' before it
Part = re.Pattern[str] | str
Matcher = Callable[[str], bool]


def compile_segments(pattern: str, elements: list[Element]) -> Matcher | None:
    """A matcher of ``pattern`` by its folders, or None when it needs the automaton."""
    if any(element.slash for element in elements):
        return None
    raw = pattern.split("/")
    names: list[str | None] = []  # the expression of each name; None for a ``**``
    for text in raw:
        if text == "**":
            names.append(None)
            continue
        elements_of_name = parse(text)
        if any(element.kind in (ANY, FOLDERS, IN_FOLDER) for element in elements_of_name):
            return None
        names.append(_name_expression(elements_of_name))
    stars = [index for index, name in enumerate(names) if name is None]
    if len(stars) <= 1:
        pieces = []
        for index, expression in enumerate(names):
            if expression is not None:
                pieces.append(expression + ("" if index == len(names) - 1 else "/"))
            elif index < len(names) - 1:
                pieces.append("(?:[^/]*+/)*")  # any number of whole folders
            else:
                pieces.append(".*")  # a final ``**``: the rest of the path
        whole = _compile("".join(pieces))
        return lambda path: whole.match(path) is not None
    parts: list[Part] = []
    for index, expression in enumerate(names):
        if expression is not None:
            parts.append(_compile(expression))
        else:
            parts.append(ZERO_OR_MORE if index < len(names) - 1 else ONE_OR_MORE)
    return _Folders(parts)


class _Folders:
    def __init__(self, parts: list[Part]) -> None:
        self._parts = parts
        # After part k, how many names must still follow when no ``**`` comes later.
        self._names_after: list[int | None] = []
        names: int | None = 0
        for part in reversed(parts):
            self._names_after.append(names)
            if names is not None:
                names = names + 1 if isinstance(part, re.Pattern) else None
        self._names_after.reverse()

    def __call__(self, path: str) -> bool:
        names = path.split("/")
        count = len(names)
        positions = {0}  # how many of the path's names the parts so far can have taken
        for index, part in enumerate(self._parts):
            if part is ZERO_OR_MORE:
                positions = set(range(min(positions), count + 1))
            elif part is ONE_OR_MORE:
                positions = set(range(min(positions) + 1, count + 1))
            else:
                assert isinstance(part, re.Pattern)
                positions = {
                    at + 1 for at in positions if at < count and part.match(names[at]) is not None
                }
            left = self._names_after[index]
            if left is not None:  # no ``**`` later: only one position can still end the path
                positions &= {count - left}
            if not positions:
                return False
        return count in positions


def _compile(expression: str, *, whole: bool = True) -> re.Pattern[str]:
    return re.compile(f"(?s:{expression})" + ("\\Z" if whole else ""))


def _name_expression(elements: list[Element]) -> str:
    pieces: list[str | None] = []  # None: a ``*``
    for element in elements:
        if element.kind == STAR:
            if not pieces or pieces[-1] is not None:
                pieces.append(None)
        else:
            pieces.append(_atom(element))
    out: list[str] = []
    i = 0
    while i < len(pieces) and pieces[i] is not None:
        out.append(pieces[i] or "")
        i += 1
    while i < len(pieces):
        i += 1  # the ``*``
        fixed = ""
        while i < len(pieces) and pieces[i] is not None:
            fixed += pieces[i] or ""
            i += 1
        out.append(f"[^/]*{fixed}" if i == len(pieces) else f"(?>[^/]*?{fixed})")
    return "".join(out)


def _atom(element: Element) -> str:
    if element.kind == LITERAL:
        return re.escape(element.char)
    if element.kind != CLASS:
        return "[^/]"  # ``?``
    members = "".join(
        _escape(low) if low == high else f"{_escape(low)}-{_escape(high)}"
        for low, high in element.ranges
    )
    # A class never matches '/' (none of these holds one: those go to the automaton).
    return f"[^/{members}]" if element.negated else f"[{members}]"


def _escape(char: str) -> str:
    return "\\" + char if char in "\\]^-[" else char
