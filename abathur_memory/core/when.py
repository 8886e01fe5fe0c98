"""Times in text: when a memory happened, and what span of time a question asks about.

Memories are often dated events ("1:56 pm on 8 May, 2023"), and questions often name a time
("on October 13, 2023", "in July 2023", "last week"). Both are read here with a small set of
patterns rather than a general date parser: a general parser guesses the missing parts of a
date from today (``July 2023`` becomes the 6th of July when run on the 6th), and what search
needs is the *span* a phrase covers (the whole of July). Anything not recognised is simply no
time: the time only ever adds to a match, it never removes one.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

MONTHS = {
    name.lower(): number
    for number in range(1, 13)
    for name in (calendar.month_name[number], calendar.month_abbr[number])
}
MONTHS["sept"] = 9
_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"

# Most specific first: a day, then a month, then a year.
_ABSOLUTE = [
    ("day", re.compile(r"\b(?P<year>(?:19|20)\d\d)-(?P<month>[01]\d)-(?P<day>[0-3]\d)\b")),
    ("day", re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b", re.I)),
    ("day", re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b", re.I)),
    ("month", re.compile(rf"\b{_MONTH},?\s+(?:of\s+)?{_YEAR}\b", re.I)),
    ("year", re.compile(rf"\b(?:in|during|of|since|before|after|by)\s+{_YEAR}\b", re.I)),
]
_RELATIVE = re.compile(
    r"\b(?:(?P<yesterday>yesterday)|(?P<today>today)|last\s+(?P<last>week|month|year)"
    r"|(?P<count>\d+|a|one|two|three|four|five|six|seven|eight|nine|ten)\s+"
    r"(?P<unit>day|week|month|year)s?\s+ago)\b",
    re.I,
)
_COUNTS = {
    "a": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}

# Fields of a memory's value that say when it happened, most telling first.
TIME_FIELDS = (
    "date",
    "datetime",
    "timestamp",
    "time",
    "when",
    "occurred_at",
    "happened_at",
    "created_at",
    "date_time",
)


class Span:
    """A half-open span of time [start, end), in UTC."""

    __slots__ = ("end", "start")

    def __init__(self, start: dt.datetime, end: dt.datetime) -> None:
        self.start, self.end = start, end

    def __contains__(self, moment: dt.datetime) -> bool:
        return self.start <= moment < self.end

    def __repr__(self) -> str:
        return f"Span({self.start.isoformat()}, {self.end.isoformat()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Span) and (self.start, self.end) == (other.start, other.end)

    def __hash__(self) -> int:
        return hash((self.start, self.end))


def _utc(year: int, month: int = 1, day: int = 1) -> dt.datetime:
    return dt.datetime(year, month, day, tzinfo=dt.UTC)


def _span(kind: str, match: re.Match[str]) -> Span | None:
    try:
        year = int(match.group("year"))
        if kind == "year":
            return Span(_utc(year), _utc(year + 1))
        month_text = match.group("month")
        month = int(month_text) if month_text.isdigit() else MONTHS[month_text.lower()]
        if kind == "month":
            following = _utc(year + 1) if month == 12 else _utc(year, month + 1)
            return Span(_utc(year, month), following)
        start = _utc(year, month, int(match.group("day")))
        return Span(start, start + dt.timedelta(days=1))
    except (ValueError, KeyError):  # 31 February, month 13: not a date
        return None


def spans_in(text: str, now: dt.datetime | None = None) -> list[Span]:
    """The spans of time ``text`` names, most specific first; relative phrases ("last
    week", "3 days ago") are read against ``now`` (default: the current time)."""
    found: list[Span] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in _ABSOLUTE:
        for match in pattern.finditer(text):
            if any(a < match.end() and match.start() < b for a, b in taken):
                continue  # part of a more specific date already read
            span = _span(kind, match)
            if span is not None:
                found.append(span)
                taken.append(match.span())
    now = now or dt.datetime.now(dt.UTC)
    today = dt.datetime(now.year, now.month, now.day, tzinfo=dt.UTC)
    for match in _RELATIVE.finditer(text):
        if match.group("yesterday"):
            found.append(Span(today - dt.timedelta(days=1), today))
        elif match.group("today"):
            found.append(Span(today, today + dt.timedelta(days=1)))
        elif match.group("last"):
            days = _UNIT_DAYS[match.group("last").lower()]
            found.append(Span(today - dt.timedelta(days=days), today))
        else:
            count_text = match.group("count").lower()
            count = _COUNTS.get(count_text) or int(count_text)
            days = count * _UNIT_DAYS[match.group("unit").lower()]
            centre = today - dt.timedelta(days=days)
            slack = dt.timedelta(days=max(1, days // 4))
            found.append(Span(centre - slack, centre + slack + dt.timedelta(days=1)))
    return found


def moment_in(text: str) -> dt.datetime | None:
    """The start of the most specific date written in ``text`` (its day, or the first day
    of its month or year), or None."""
    for kind, pattern in _ABSOLUTE[:4]:
        match = pattern.search(text)
        if match is not None:
            span = _span(kind, match)
            if span is not None:
                return span.start
    return None


def memory_moment(value: Any) -> dt.datetime | None:
    """When a memory's value says it happened: the first date in one of its TIME_FIELDS
    (at the top level of an object), or None."""
    if not isinstance(value, dict):
        return None
    fields = {str(name).lower(): item for name, item in value.items()}
    for name in TIME_FIELDS:
        item = fields.get(name)
        if isinstance(item, str) and item:
            moment = moment_in(item)
            if moment is not None:
                return moment
    return None


def overlaps(moment: dt.datetime | None, spans: Iterable[Span]) -> bool:
    return moment is not None and any(moment in span for span in spans)
