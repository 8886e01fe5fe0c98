"""Evidence packed into a token budget: whole memories, the best first.

An agent asks memory_search for what it needs to answer and has a context window to fill.
Cutting the list at k, or cutting text at a byte count, keeps the wrong things: a study of
memory retrieval found 98.6% of the evidence in the candidates but 22.5% left after
truncation. So packing goes by score: each hit in order, then its neighbours nearest first,
each memory whole or not at all (a memory that does not fit is skipped and smaller ones
after it still get their chance), and nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from abathur_memory.embedders.tokens import bert_tokenizer
from abathur_memory.search.results import MemoryHit, MemoryNeighbour, Packing

# What a memory costs besides its value: its key, version and the reply's punctuation.
OVERHEAD_TOKENS = 8


def value_tokens(value: object) -> int:
    """Tokens of a value as the agent reads it (its compact JSON), counted with the bundled
    WordPiece vocabulary: close to what a language model's tokenizer makes of it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(bert_tokenizer().encode(text, add_special_tokens=False).ids) + OVERHEAD_TOKENS


def pack(
    hits: list[MemoryHit],
    max_tokens: int,
    tokens: Callable[[object], int] = value_tokens,
) -> tuple[list[MemoryHit], Packing]:
    used = 0
    kept: list[MemoryHit] = []
    shown: set[tuple[str, str]] = set()
    hits_left_out = neighbours_left_out = 0
    for hit in hits:
        address = (hit.namespace, hit.key)
        cost = tokens(hit.value)
        if used + cost > max_tokens:
            hits_left_out += 1
            neighbours_left_out += len(hit.context or [])
            continue
        used += cost
        shown.add(address)
        context: list[MemoryNeighbour] | None = None
        if hit.context is not None:
            context = []
            for neighbour in sorted(hit.context, key=lambda n: (abs(n.offset), n.offset)):
                if (hit.namespace, neighbour.key) in shown:
                    continue  # already in the reply, as a hit or another hit's neighbour
                cost = tokens(neighbour.value)
                if used + cost > max_tokens:
                    neighbours_left_out += 1
                    continue
                used += cost
                shown.add((hit.namespace, neighbour.key))
                context.append(neighbour)
            context.sort(key=lambda n: n.offset)
        kept.append(hit.model_copy(update={"context": context}))
    return kept, Packing(
        max_tokens=max_tokens,
        used_tokens=used,
        hits_left_out=hits_left_out,
        neighbours_left_out=neighbours_left_out,
    )
