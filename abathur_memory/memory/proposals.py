"""Consolidation proposals, found deterministically: no model, nothing written here.

Four kinds, each with its evidence and a confidence in [0, 1]:

- ``exact_duplicate``: the same content once normalised (Unicode NFKC, case, spacing, end
  punctuation with or without a space before it); the others duplicate the oldest.
- ``near_duplicate``: mutual nearest neighbours whose similarity is above a threshold taken
  from the namespace's own similarity distribution (half way from its 99th percentile to
  1, or mean + 4 standard deviations if higher), never a constant: a model whose unrelated
  texts already score 0.5 gets a higher bar. Mutual pairs only, so nothing chains into one cluster.
  Episodic memories are events: alike ones are clustered, not called duplicates; two
  memories of one subject (below) are an update, however alike.
- ``update``: a newer memory about the same subject, the same key family (``city``,
  ``city_v2``, ``city-2024-03``; episodic memories are events, never updates) or the same
  ``entity`` + ``attribute`` in metadata: the newer one supersedes the older.
- ``episodic_cluster``: episodic memories around one centre (a star, not a chain) above
  a bar 40% of the way from the namespace's 95th percentile to 1; the proposal is one
  semantic memory holding the most central text and the union of the members' texts,
  derived from each member.

A configured chat model may then judge the updates and write the clusters' text
(memory/model_review.py); only its verdict makes a ``contradiction``.

A proposal's id is a digest of its kind and the versions it names: the same proposal has
the same id in every run, and a memory changed since makes the old id stale.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from abathur_memory.core.records import MemoryEntry

MIN_FOR_DISTRIBUTION = 8  # fewer memories in a namespace: no similarity-based proposals
MAX_SIMILARITY_NAMESPACE = 20_000  # larger namespaces get exact and update proposals only
MIN_CLUSTER = 3
MAX_CLUSTER = 50
TEXT_WORDS = 200  # the beginning of a memory's text that is embedded
# A version marker after a separator: city_v2, city-2024-03, city.latest (a bare number is
# not one: note_1 and note_2 are more often two notes than two versions of one).
_FAMILY_SUFFIX = re.compile(
    r"(?:[_\-.:](?:v\d+|\d{4}(?:-\d{2}){0,2}|latest|new|old|updated|current|prev|previous))+$"
)
_SPACE = re.compile(r"\s+")
_END = re.compile(r"[\s.!?;…]+$")  # end punctuation, spaced or not: "fact .", "why?!"


class Member(BaseModel):
    namespace: str
    key: str
    version: int


class ProposedLink(BaseModel):
    link_type: str
    from_namespace: str
    from_key: str
    to_namespace: str
    to_key: str


class NewMemory(BaseModel):
    namespace: str
    key: str
    value: Any
    memory_type: str = "semantic"


class Proposal(BaseModel):
    id: str
    kind: str
    confidence: float
    members: list[Member]
    links: list[ProposedLink] = Field(description="The links applying it writes.")
    new_memory: NewMemory | None = Field(
        default=None, description="The memory applying it writes (a cluster's distillate)."
    )
    evidence: dict[str, Any]


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def normalised(value: Any) -> str:
    text = unicodedata.normalize("NFKC", text_of(value)).casefold()
    return _END.sub("", _SPACE.sub(" ", text).strip())


def key_family(key: str) -> str:
    return _FAMILY_SUFFIX.sub("", key.casefold()) or key.casefold()


def proposal_id(kind: str, members: Sequence[MemoryEntry | Member], answer: str = "") -> str:
    """The digest of ``kind`` and the versions named, and of the model's ``answer`` when a
    model changed the proposal (so an apply run whose model answers otherwise, or not at
    all, finds it no longer proposed rather than applying something else)."""
    names = sorted(f"{m.namespace}\x00{m.key}\x00{m.version}" for m in members)
    parts = [kind, *names, *([answer] if answer else [])]
    digest = hashlib.sha256("\x01".join(parts).encode()).hexdigest()
    return f"{kind[:3]}-{digest[:12]}"


def _member(entry: MemoryEntry) -> Member:
    return Member(namespace=entry.namespace, key=entry.key, version=entry.version)


def _link(link_type: str, source: MemoryEntry, target: MemoryEntry) -> ProposedLink:
    return ProposedLink(
        link_type=link_type,
        from_namespace=source.namespace,
        from_key=source.key,
        to_namespace=target.namespace,
        to_key=target.key,
    )


def age(entry: MemoryEntry) -> tuple[str, str, str]:
    return (entry.valid_from or entry.created_at, entry.created_at, entry.key)


def exact_duplicates(entries: Sequence[MemoryEntry]) -> list[Proposal]:
    groups: dict[tuple[str, str], list[MemoryEntry]] = defaultdict(list)
    for entry in entries:
        groups[(entry.namespace, normalised(entry.value))].append(entry)
    proposals = []
    for (_, text), group in groups.items():
        if len(group) < 2:
            continue
        keep, *others = sorted(group, key=age)
        for other in others:
            proposals.append(
                Proposal(
                    id=proposal_id("exact_duplicate", [other, keep]),
                    kind="exact_duplicate",
                    confidence=1.0,
                    members=[_member(other), _member(keep)],
                    links=[_link("duplicates", other, keep)],
                    evidence={"normalised": text[:200], "kept": keep.key},
                )
            )
    return proposals


def subject_of(entry: MemoryEntry) -> tuple[str, str, str] | None:
    """What a memory is about, when that can be told without reading it: its metadata's
    ``entity`` and ``attribute``, else its key family (episodic memories are events: none)."""
    entity, attribute = entry.metadata.get("entity"), entry.metadata.get("attribute")
    if isinstance(entity, str) and isinstance(attribute, str):
        return (entry.namespace, "metadata", f"{entity}\x00{attribute}")
    if entry.memory_type != "episodic":
        return (entry.namespace, "key_family", key_family(entry.key))
    return None


def updates(entries: Sequence[MemoryEntry], taken: set[tuple[str, str]]) -> list[Proposal]:
    """The newest memory of each subject supersedes the older ones of it."""
    subjects: dict[tuple[str, str, str], list[MemoryEntry]] = defaultdict(list)
    for entry in entries:
        about = subject_of(entry)
        if about is not None and (entry.namespace, entry.key) not in taken:
            subjects[about].append(entry)
    proposals = []
    for (_, how, subject), group in subjects.items():
        if len(group) < 2:
            continue
        *older, newest = sorted(group, key=age)
        for old in older:
            proposals.append(
                Proposal(
                    id=proposal_id("update", [newest, old]),
                    kind="update",
                    confidence=0.95 if how == "metadata" else 0.85,
                    members=[_member(newest), _member(old)],
                    links=[_link("supersedes", newest, old)],
                    evidence={
                        "same": how,
                        "subject": subject.replace("\x00", "/"),
                        "newer": newest.valid_from or newest.created_at,
                        "older": old.valid_from or old.created_at,
                    },
                )
            )
    return proposals


def thresholds(similarity: npt.NDArray[np.float32]) -> tuple[float, float, dict[str, float]]:
    """(near-duplicate, cluster) thresholds from the off-diagonal similarities."""
    n = similarity.shape[0]
    values = similarity[np.triu_indices(n, k=1)]
    mean, std = float(values.mean()), float(values.std())
    q95, q99 = (float(q) for q in np.quantile(values, [0.95, 0.99]))
    # Above the 99th percentile by half the way left to identical: the top percent of any
    # namespace's pairs are not duplicates merely for being its top percent.
    near = min(0.999, max(q99 + (1 - q99) / 2, mean + 4 * std))
    cluster = min(near, max(q95 + 0.4 * (1 - q95), mean + 3 * std))
    stats = {"mean": round(mean, 4), "std": round(std, 4), "q95": round(q95, 4)}
    stats["q99"] = round(q99, 4)
    return near, cluster, stats


def near_duplicates(
    entries: Sequence[MemoryEntry],
    similarity: npt.NDArray[np.float32],
    near: float,
    stats: dict[str, float],
    taken: set[tuple[str, str]],
) -> list[Proposal]:
    n = len(entries)
    masked = similarity.copy()
    np.fill_diagonal(masked, -np.inf)
    nearest = masked.argmax(axis=1)
    proposals = []
    for i in range(n):
        j = int(nearest[i])
        if i >= j or int(nearest[j]) != i or masked[i, j] < near:
            continue
        a, b = entries[i], entries[j]
        if (a.namespace, a.key) in taken or (b.namespace, b.key) in taken:
            continue
        if "episodic" in (a.memory_type, b.memory_type):  # alike events: a cluster's work
            continue
        if subject_of(a) == subject_of(b):  # a newer fact of one subject: an update's work
            continue
        keep, other = sorted([a, b], key=age)
        score = float(masked[i, j])
        proposals.append(
            Proposal(
                id=proposal_id("near_duplicate", [other, keep]),
                kind="near_duplicate",
                confidence=round(0.5 + 0.5 * (score - near) / max(1e-6, 1 - near), 4),
                members=[_member(other), _member(keep)],
                links=[_link("duplicates", other, keep)],
                evidence={"similarity": round(score, 4), "threshold": round(near, 4), **stats},
            )
        )
    return proposals


def episodic_clusters(
    entries: Sequence[MemoryEntry],
    similarity: npt.NDArray[np.float32],
    cluster: float,
    stats: dict[str, float],
    taken: set[tuple[str, str]],
) -> list[Proposal]:
    episodic = [
        i
        for i, e in enumerate(entries)
        if e.memory_type == "episodic" and (e.namespace, e.key) not in taken
    ]
    if len(episodic) < MIN_CLUSTER:
        return []
    sub = similarity[np.ix_(episodic, episodic)]
    above = sub >= cluster
    np.fill_diagonal(above, False)
    free = set(range(len(episodic)))
    proposals = []
    for centre in np.argsort(-above.sum(axis=1), kind="stable"):
        centre = int(centre)
        if centre not in free:
            continue
        members = [centre, *(int(j) for j in np.flatnonzero(above[centre]) if int(j) in free)]
        if len(members) < MIN_CLUSTER:
            continue
        members = members[:MAX_CLUSTER]
        free -= set(members)
        chosen = [entries[episodic[m]] for m in members]
        inner = sub[np.ix_(members, members)]
        central = chosen[int(inner.mean(axis=1).argmax())]
        facts = list(dict.fromkeys(text_of(e.value) for e in sorted(chosen, key=age)))
        pid = proposal_id("episodic_cluster", chosen)
        distilled = NewMemory(
            namespace=central.namespace,
            key=f"distilled-{pid[4:]}",
            value={"text": text_of(central.value), "facts": facts},
        )
        proposals.append(
            Proposal(
                id=pid,
                kind="episodic_cluster",
                confidence=round(float(inner[np.triu_indices(len(members), k=1)].mean()), 4),
                members=[_member(e) for e in chosen],
                links=[
                    ProposedLink(
                        link_type="derived_from",
                        from_namespace=distilled.namespace,
                        from_key=distilled.key,
                        to_namespace=e.namespace,
                        to_key=e.key,
                    )
                    for e in chosen
                ],
                new_memory=distilled,
                evidence={"threshold": round(cluster, 4), "central": central.key, **stats},
            )
        )
    return proposals


def propose(
    entries: Sequence[MemoryEntry], vectors: dict[str, npt.NDArray[np.float32]]
) -> tuple[list[Proposal], dict[str, Any]]:
    """Every proposal for ``entries`` (latest live versions that still hold), with the
    vectors of each namespace's entries (rows in the order of ``entries`` filtered to that
    namespace); and notes on what was skipped."""
    proposals = exact_duplicates(entries)
    taken = {(m.namespace, m.key) for p in proposals for m in p.members[:1]}
    by_namespace: dict[str, list[MemoryEntry]] = defaultdict(list)
    for entry in entries:
        by_namespace[entry.namespace].append(entry)
    notes: dict[str, Any] = {"namespaces": len(by_namespace), "too_few": [], "too_many": []}
    similar: list[Proposal] = []
    for namespace, group in sorted(by_namespace.items()):
        if namespace not in vectors:
            continue
        if len(group) < MIN_FOR_DISTRIBUTION:
            notes["too_few"].append(namespace)
            continue
        matrix = vectors[namespace]
        similarity = matrix @ matrix.T
        # the distribution of what is not already an exact duplicate
        rest = [i for i, e in enumerate(group) if (e.namespace, e.key) not in taken]
        if len(rest) < MIN_FOR_DISTRIBUTION:
            notes["too_few"].append(namespace)
            continue
        near, cluster, stats = thresholds(similarity[np.ix_(rest, rest)])
        pairs = near_duplicates(group, similarity, near, stats, taken)
        taken |= {(m.namespace, m.key) for p in pairs for m in p.members[:1]}
        similar += pairs
        similar += episodic_clusters(group, similarity, cluster, stats, taken)
    proposals += similar
    proposals += updates(entries, taken)
    return proposals, notes


def texts_for(group: Sequence[MemoryEntry]) -> list[str]:
    """What is embedded of each memory: the beginning of its value's text."""
    return [" ".join(text_of(e.value).split()[:TEXT_WORDS]) for e in group]
