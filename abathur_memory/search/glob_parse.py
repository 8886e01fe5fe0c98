"""A path_glob cut into elements: literal characters, ``?``, ``[...]``, ``*``, ``**``."""

from __future__ import annotations

from dataclasses import dataclass

from abathur_memory.errors import InvalidInput

MAX_GLOB_CHARS = 512
MAX_WILDCARDS = 32  # *, **, ? and [...] together

# Kinds of pattern elements.
LITERAL = 0  # one given character
ONE = 1  # ``?``: one character other than '/'
CLASS = 2  # ``[...]`` / ``[!...]``: one character other than '/', in (or not in) the set
STAR = 3  # ``*``: any run of characters other than '/'
ANY = 4  # ``**`` not followed by '/': any run of characters, '/' included
FOLDERS = 5  # ``**/`` (whole folders: ``(?:[^/]*/)*``), at a folder boundary, and
IN_FOLDER = 6  # ... inside a folder's name: always the element right after a FOLDERS


@dataclass(frozen=True)
class Element:
    kind: int
    char: str = ""
    ranges: tuple[tuple[str, str], ...] = ()
    negated: bool = False
    slash: bool = False  # a class whose text holds a '/' (it still never matches one)

    def accepts(self, char: str) -> bool:
        """Whether one character is consumed by a single-character element."""
        if self.kind == LITERAL:
            return char == self.char
        if char == "/":
            return False
        if self.kind == ONE:
            return True
        inside = any(low <= char <= high for low, high in self.ranges)
        return inside != self.negated


def check(pattern: object) -> str:
    if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_GLOB_CHARS:
        raise InvalidInput(f"path_glob must be 1 to {MAX_GLOB_CHARS} characters")
    wildcards = sum(e.kind in (ONE, CLASS, STAR, ANY, FOLDERS) for e in parse(pattern))
    if wildcards > MAX_WILDCARDS:
        raise InvalidInput(
            f"path_glob has {wildcards} wildcards (*, **, ?, [...]); the limit is {MAX_WILDCARDS}"
        )
    return pattern


def parse(pattern: str) -> list[Element]:
    elements: list[Element] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            elements += [Element(FOLDERS), Element(IN_FOLDER)]
            i += 3
        elif pattern.startswith("**", i):
            elements.append(Element(ANY))
            i += 2
        elif char == "*":
            elements.append(Element(STAR))
            i += 1
        elif char == "?":
            elements.append(Element(ONE))
            i += 1
        elif char == "[" and (parsed := _parse_class(pattern, i)) is not None:
            element, i = parsed
            elements.append(element)
        else:
            elements.append(Element(LITERAL, char))
            i += 1
    return elements


def _parse_class(pattern: str, start: int) -> tuple[Element, int] | None:
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
    element = Element(CLASS, ranges=tuple(ranges), negated=negated, slash="/" in body)
    return element, end + 1
