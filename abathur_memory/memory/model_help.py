"""Asking the optional chat model (chat/): three jobs, each a prompt and a checked JSON
answer, and a deterministic answer whenever the model gives none.

- ``judge``: two memories about one subject, newer and older: does the newer update the
  older, contradict it, or can both hold? Only this verdict ever makes a contradiction:
  no word in a text ("but", "however") is read as one.
- ``distil``: the text of one semantic memory distilled from a cluster of episodic ones.
- ``summarise``: a summary of session events being promoted.

A model that is down, slow, or answers garbage never fails the caller: the answer is None
and the reason is recorded (a :class:`ModelRound` per run counts calls within the run's
budget and stops asking once the endpoint is down). Good answers are remembered per process
(same model, same prompt), so a dry run and the apply after it see the same text.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from abathur_memory.errors import Unavailable

log = logging.getLogger(__name__)

VERDICTS = ("updates", "contradicts", "compatible")
MAX_MEMORY_CHARS = 2000  # of one memory's text in a prompt
MAX_PROMPT_CHARS = 30_000  # of all the texts of one prompt
MAX_REASON_CHARS = 500
MAX_TEXT_CHARS = 4000  # of a distilled text or summary
CACHE_SIZE = 4096

T = TypeVar("T")

JUDGE = """You compare two memories an assistant keeps about the same subject: an older one
and a newer one. Decide how the newer relates to the older:
- "updates": the newer replaces the older (the fact changed over time, or was corrected);
- "contradicts": both cannot be true, and nothing says the newer replaces the older;
- "compatible": both can hold at once (different aspects, or one adds detail).
Judge the facts stated. Words such as "but" or "however" are not a contradiction by
themselves. Answer with one JSON object and nothing else:
{"verdict": "updates" | "contradicts" | "compatible", "reason": "<one short sentence>"}"""

DISTIL = """You distil related episodic memories (events an assistant recorded) into one
semantic memory: a few plain sentences stating what they establish, using only facts in
them; invent nothing. Answer with one JSON object and nothing else: {"text": "..."}"""

SUMMARISE = """You summarise events of a work session an assistant took part in: the
decisions, facts learned and open questions, in a few plain sentences, using only what the
events say; invent nothing. Answer with one JSON object and nothing else: {"text": "..."}"""


class ChatModel(Protocol):
    """What model help needs of a chat model (chat/base.py)."""

    @property
    def model_id(self) -> str: ...

    async def complete(self, system: str, user: str) -> str: ...

    async def close(self) -> None: ...


class Garbage(ValueError):
    """The model answered, but not what was asked."""


@dataclass(frozen=True)
class Verdict:
    verdict: str  # updates | contradicts | compatible
    reason: str


@dataclass(frozen=True)
class NoAnswer:
    """Why the model gave no usable answer: the deterministic pass stands."""

    why: str


@dataclass(frozen=True)
class Said:
    """One memory as a prompt shows it."""

    key: str
    when: str
    text: str


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _object(reply: str) -> dict[str, Any]:
    """The one JSON object of a reply (code fences and words around it tolerated)."""
    start, end = reply.find("{"), reply.rfind("}")
    if start < 0 or end < start:
        raise Garbage(f"no JSON object in the answer: {_cut(' '.join(reply.split()), 120)!r}")
    try:
        found = json.loads(reply[start : end + 1])
    except ValueError:
        raise Garbage(f"not JSON: {_cut(' '.join(reply.split()), 120)!r}") from None
    if not isinstance(found, dict):
        raise Garbage("the answer is not a JSON object")
    return found


def parse_verdict(reply: str) -> Verdict:
    found = _object(reply)
    verdict = found.get("verdict")
    if not isinstance(verdict, str) or verdict.strip().lower() not in VERDICTS:
        raise Garbage(f"verdict {verdict!r} is none of {', '.join(VERDICTS)}")
    reason = found.get("reason")
    reason = " ".join(reason.split()) if isinstance(reason, str) else ""
    return Verdict(verdict.strip().lower(), _cut(reason, MAX_REASON_CHARS))


def parse_text(reply: str) -> str:
    text = _object(reply).get("text")
    if not isinstance(text, str) or not text.strip():
        raise Garbage("no text in the answer")
    return _cut(text.strip(), MAX_TEXT_CHARS)


def _listing(items: list[Said]) -> str:
    """Each memory on its own lines, all within MAX_PROMPT_CHARS (later ones cut first)."""
    lines, room = [], MAX_PROMPT_CHARS
    for n, item in enumerate(items, 1):
        line = f"{n}. ({item.key}, {item.when}) {_cut(item.text, MAX_MEMORY_CHARS)}"
        if len(line) > room:
            lines.append(f"({len(items) - n + 1} more not shown)")
            break
        lines.append(line)
        room -= len(line)
    return "\n".join(lines)


class ModelHelp:
    """The configured chat model (or none), with its answers remembered per process."""

    def __init__(self, model: ChatModel | None, max_calls: int = 100) -> None:
        self.model = model
        self.max_calls = max_calls
        self.answers: OrderedDict[str, object] = OrderedDict()  # digest of a prompt -> answer

    @property
    def configured(self) -> bool:
        return self.model is not None

    def round(self) -> ModelRound:
        """The model's help for one run (one budget of calls)."""
        return ModelRound(self)

    async def close(self) -> None:
        if self.model is not None:
            await self.model.close()

    def remember(self, digest: str, answer: object) -> None:
        self.answers[digest] = answer
        while len(self.answers) > CACHE_SIZE:
            self.answers.popitem(last=False)


class ModelRound:
    """Asks for one run: counts, stops once the endpoint is down or the budget is spent."""

    def __init__(self, help: ModelHelp) -> None:
        self.help = help
        self.asked = 0
        self.answered = 0
        self.fell_back = 0
        self.down: str | None = None
        self.errors: list[str] = []

    @property
    def model_id(self) -> str | None:
        return self.help.model.model_id if self.help.model is not None else None

    async def judge(self, subject: str, older: Said, newer: Said) -> Verdict | NoAnswer:
        user = (
            f"Subject: {subject}\n"
            f"Older memory ({older.key}, {older.when}): {_cut(older.text, MAX_MEMORY_CHARS)}\n"
            f"Newer memory ({newer.key}, {newer.when}): {_cut(newer.text, MAX_MEMORY_CHARS)}"
        )
        return await self._ask(JUDGE, user, parse_verdict)

    async def distil(self, members: list[Said]) -> str | NoAnswer:
        return await self._ask(DISTIL, "Memories, oldest first:\n" + _listing(members), parse_text)

    async def summarise(self, events: list[Said]) -> str | NoAnswer:
        return await self._ask(SUMMARISE, "Events, in order:\n" + _listing(events), parse_text)

    def notes(self) -> dict[str, Any]:
        """What the model did in this run (for the run's notes)."""
        notes: dict[str, Any] = {
            "model": self.model_id,
            "asked": self.asked,
            "answered": self.answered,
            "fell_back": self.fell_back,
        }
        if self.errors:
            notes["errors"] = self.errors[:5]
        return notes

    async def _ask(self, system: str, user: str, parse: Callable[[str], T]) -> T | NoAnswer:
        model = self.help.model
        if model is None:
            return self._no("no chat model is configured")
        digest = hashlib.sha256("\x00".join([model.model_id, system, user]).encode()).hexdigest()
        if digest in self.help.answers:
            self.help.answers.move_to_end(digest)
            self.answered += 1
            return cast(T, self.help.answers[digest])
        if self.down is not None:
            return self._no(f"not asked: {self.down}")
        if self.asked >= self.help.max_calls:
            spent = f"the run's {self.help.max_calls} calls (chat_max_calls) are spent"
            return self._no(f"not asked: {spent}")
        self.asked += 1
        try:
            reply = await model.complete(system, user)
        except Unavailable as exc:
            self.down = str(exc)
            return self._failed(self.down)
        except Exception as exc:  # a failing model must never fail the run
            self.down = f"chat model {model.model_id} failed: {type(exc).__name__}: {exc}"
            return self._failed(self.down)
        try:
            answer = parse(reply)
        except Garbage as exc:
            return self._failed(f"chat model {model.model_id} answered garbage: {exc}")
        self.answered += 1
        self.help.remember(digest, answer)
        return answer

    def _no(self, why: str) -> NoAnswer:
        self.fell_back += 1
        return NoAnswer(why)

    def _failed(self, why: str) -> NoAnswer:
        why = _cut(" ".join(why.split()), 500)  # one line
        log.warning("%s", why)
        if why not in self.errors:
            self.errors.append(why)
        return self._no(why)
