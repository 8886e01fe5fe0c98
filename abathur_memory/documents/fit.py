"""How much text fits a token limit, found with token counts over about as much text as the
answer (not the whole remainder): the chunker's splitting is then linear in the document.

Counting tokens is the chunker's cost (the embedded model's tokenizer reads under 1 MB/s
here), and checking a piece against the whole rest of a long line first, as the chunker
once did, made a 1 MB line take minutes and a 10 MB one never finish. Token counts grow
with the text roughly linearly, so the search interpolates between its probes, with
doubling and bisection as the fallback that bounds it.
"""

from __future__ import annotations

from collections.abc import Callable

# A text this long (in characters per token of the limit) is counted by prefixes first.
_PREFIX_CHARS_PER_TOKEN = 16


def longest_fit(
    available: int, measure: Callable[[int], int], limit: int, guess: int = 2
) -> tuple[int, int | None]:
    """The largest n in 1..available with measure(n) <= limit, taking n = 1 as fitting and
    measure as non-decreasing; with measure(n) when it was taken (else None).

    ``guess`` (the size of the previous piece) is probed first. Until a probe is too long,
    the next one aims a little past the edge predicted from the last two measurements,
    growing at least geometrically from the third probe on; then interpolation between the
    bracket's ends narrows it, with bisection whenever it fails to halve the bracket. So
    few probes are made, and none measures much more than twice the answer.
    """
    good, bad = 1, available + 1
    good_tokens: int | None = None
    before: tuple[int, int] | None = None
    probe, probes = guess, 0
    width = bad - good
    while bad - good > 1:
        probe = min(max(probe, good + 1), bad - 1)
        tokens = measure(probe)
        probes += 1
        if tokens <= limit:
            good, good_tokens = probe, tokens
        else:
            bad = probe
        if bad - good <= 1:
            break
        estimate = _secant(before, (probe, tokens), limit)
        before = (probe, tokens)
        if bad > available:  # nothing too long yet: grow
            aim = good * 2 if estimate is None else estimate + max(1, estimate // 8)
            probe = max(aim, good * 2) if probes >= 3 else aim
        elif estimate is None or bad - good > width // 2:
            probe = (good + bad) // 2
        else:
            probe = estimate if estimate > good else good + 1
        width = bad - good
    return good, good_tokens


def _secant(before: tuple[int, int] | None, latest: tuple[int, int], limit: int) -> int | None:
    """The n at which the line through two measurements (or, with one, through the origin)
    reaches ``limit``."""
    n2, t2 = latest
    if before is None or before[1] == t2 or before[0] == n2:
        return n2 * limit // t2 if t2 > 0 else None
    n1, t1 = before
    return int(n1 + (limit - t1) * (n2 - n1) / (t2 - t1))


def capped_count(text: str, count: Callable[[str], int], limit: int) -> int:
    """``count(text)`` when it is at most ``limit``; otherwise some number above ``limit``,
    found by counting prefixes that end at whitespace (the counts of such prefixes do not
    exceed the whole's): a huge block is known to be too long without tokenising all of it."""
    size = max(64, limit * _PREFIX_CHARS_PER_TOKEN)
    while size < len(text):
        cut = _last_space(text, size)
        if cut > 0:
            tokens = count(text[:cut])
            if tokens > limit:
                return tokens
        size *= 4
    return count(text)


def _last_space(text: str, end: int) -> int:
    """The index of the last space, tab or newline before ``end`` (0 when there is none)."""
    return max(0, text.rfind(" ", 0, end), text.rfind("\n", 0, end), text.rfind("\t", 0, end))
