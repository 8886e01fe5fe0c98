"""What the memory indexes hold for one memory, beyond its own words: the same on every
backend.

Memories are not documents. A turn of a conversation ("Three times a week; it keeps us on
track.") means little alone: the question it answers is in the turn before it. So a memory
that is part of a sequence (an episodic memory, or an utterance: a value naming its speaker)
is indexed with its *context*, the neighbouring memories of its namespace in the order they
were stored: their words in a second, lighter keyword column, and a context vector pooled
from their vectors (no extra model call). A fact or a document stands alone and has none.

Neighbours are taken from the same moment when both memories say when they happened (the
same dated session of a conversation), and from the same thread when both name the session,
conversation or thread they belong to, so a window never spans two conversations held on
different days, nor two sessions of one user held the same day.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from abathur_memory.core.when import memory_moment

# Neighbours on each side whose words and vectors make a memory's context (measured on the
# development half of LoCoMo with bench/memory_fusion_study.py: 2 and 2 beat 1/1, 3/1, 3/2, 4/1
# and 4/2; see docs/retrieval.md).
CONTEXT_BEFORE = 2
CONTEXT_AFTER = 2
# How much the neighbours' words count beside a memory's own in keyword ranking (0.3 beat
# 0.5 and 0.7 there).
CONTEXT_KEYWORD_WEIGHT = 0.3

# Fields whose presence makes a value an utterance: someone said or wrote it.
SPEAKER_FIELDS = frozenset(("speaker", "role", "actor", "author", "sender", "from", "participant"))


MAX_SPEAKER_CHARS = 100

# Fields naming the session, conversation or thread an utterance belongs to: a window never
# takes a neighbour from another one (an agent framework keeps the sessions of one user in
# one namespace, often on the same day).
THREAD_FIELDS = frozenset(
    ("session_id", "session", "conversation_id", "conversation", "thread_id", "thread", "chat_id")
)
MAX_THREAD_CHARS = 200


@dataclass(frozen=True)
class Placement:
    """Where a memory sits among its namespace's memories, and whether it takes context."""

    contextual: bool
    moment: dt.datetime | None  # when its value says it happened
    speaker: str | None  # who said it (lower case), for utterances
    thread: str | None  # the session, conversation or thread its value names


def is_contextual(value: Any, memory_type: str) -> bool:
    """Episodic memories and utterances are read with their neighbours."""
    if memory_type == "episodic":
        return True
    if isinstance(value, dict):
        return any(str(name).lower() in SPEAKER_FIELDS for name in value)
    return False


def speaker_of(value: Any) -> str | None:
    """Who said an utterance: the first speaker field holding a short string."""
    if not isinstance(value, dict):
        return None
    for name, item in value.items():
        if str(name).lower() in SPEAKER_FIELDS and isinstance(item, str):
            spoken = " ".join(item.split()).lower()
            if 0 < len(spoken) <= MAX_SPEAKER_CHARS:
                return spoken
    return None


def thread_of(value: Any) -> str | None:
    """The session, conversation or thread a value names: the first such field holding a
    short string or a number."""
    if not isinstance(value, dict):
        return None
    for name, item in value.items():
        if str(name).lower() not in THREAD_FIELDS or isinstance(item, bool):
            continue
        if isinstance(item, str | int) and 0 < len(str(item)) <= MAX_THREAD_CHARS:
            return str(item)
    return None


def placement(value: Any, memory_type: str) -> Placement:
    return Placement(
        is_contextual(value, memory_type),
        memory_moment(value),
        speaker_of(value),
        thread_of(value),
    )


def named_in(query: str, speakers: set[str]) -> set[str]:
    """The speakers a query names (whole words, any case): "What did Nora say about the
    trip?" names nora."""
    lowered = query.lower()
    return {
        speaker
        for speaker in speakers
        if re.search(r"(?<!\w)" + re.escape(speaker) + r"(?!\w)", lowered) is not None
    }


def moment_text(moment: dt.datetime | None) -> str | None:
    """A moment as stored in the indexes (ISO 8601, UTC, to the second)."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def same_window(own: str | None, other: str | None) -> bool:
    """Whether a neighbour's moment lets it into a memory's window: same day, or either
    undated."""
    return own is None or other is None or own[:10] == other[:10]


def same_thread(own: str | None, other: str | None) -> bool:
    """Whether a neighbour's thread lets it into a memory's window: the same one, or either
    names none."""
    return own is None or other is None or own == other


def pooled(vectors: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    """The context vector: the normalised sum of the window's vectors (the memory's own
    included), which for a mean-pooled model is close to the embedding of their text."""
    total: npt.NDArray[np.float32] = np.stack(vectors).sum(axis=0, dtype=np.float32)
    norm = float(np.linalg.norm(total))
    return (total / norm).astype(np.float32) if norm > 0 else total


@dataclass(frozen=True)
class Neighbour:
    """A memory near another in its namespace, as the window rule needs it."""

    entry_id: int
    moment: str | None  # the stored form of when it happened (its day is the first 10 chars)
    contextual: bool
    thread: str | None


def window_of(own: Neighbour, before: list[Neighbour], after: list[Neighbour]) -> list[int]:
    """The entry ids of a contextual memory's window, in stored order: up to CONTEXT_BEFORE
    of the nearest memories before it (``before`` is nearest first) and CONTEXT_AFTER after
    it, each contextual, of the same moment and of the same thread."""

    def belongs(near: Neighbour) -> bool:
        return (
            near.contextual
            and same_window(own.moment, near.moment)
            and same_thread(own.thread, near.thread)
        )

    chosen = [n.entry_id for n in reversed(before[:CONTEXT_BEFORE]) if belongs(n)]
    chosen += [n.entry_id for n in after[:CONTEXT_AFTER] if belongs(n)]
    return chosen


def window_signature(entry_id: int, window: list[int]) -> str:
    """What a context vector was pooled from: it is pooled again when this changes."""
    return f"{entry_id}:" + ",".join(str(member) for member in window)
