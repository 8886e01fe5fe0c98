"""The chat model's help on consolidation proposals, after the deterministic pass.

- An ``update`` (a newer memory about the same subject) is judged: ``updates`` keeps it as
  it is; ``contradicts`` turns it into a ``contradiction`` (a ``contradicts`` link: both
  memories stay and are shown together until one supersedes the other); ``compatible``
  (both hold) keeps it at a quarter of its confidence, so that applying by confidence
  leaves it alone. Only this verdict makes a contradiction: no word of a text does.
- An ``episodic_cluster``'s distilled memory gets the model's text; the union of the
  members' texts stays beside it.

The model's verdict or text, or why there is none (the deterministic proposal then stands
unchanged), goes into each proposal's ``evidence["model"]``. A proposal the model changed
gets an id that includes its answer (proposals.proposal_id).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from abathur_memory.core.records import MemoryEntry
from abathur_memory.memory.model_help import ModelRound, NoAnswer, Said
from abathur_memory.memory.proposals import (
    NewMemory,
    Proposal,
    ProposedLink,
    age,
    proposal_id,
    text_of,
)

COMPATIBLE_FACTOR = 0.25  # an update the model says is compatible keeps this share


def said(entry: MemoryEntry) -> Said:
    return Said(entry.key, entry.valid_from or entry.created_at, text_of(entry.value))


async def review(
    proposals: Sequence[Proposal],
    entries: Sequence[MemoryEntry],
    asking: ModelRound,
    progress: Callable[[int, int], None],
) -> list[Proposal]:
    """``proposals`` with the model's help where it applies (the others as they are)."""
    by_name = {(e.namespace, e.key): e for e in entries}
    wanted = sum(p.kind in ("update", "episodic_cluster") for p in proposals)
    reviewed: list[Proposal] = []
    done = 0
    for proposal in proposals:
        members = [by_name[(m.namespace, m.key)] for m in proposal.members]
        if proposal.kind == "update":
            progress(done, wanted)
            reviewed.append(await _judged(proposal, members, asking))
            done += 1
        elif proposal.kind == "episodic_cluster":
            progress(done, wanted)
            reviewed.append(await _distilled(proposal, members, asking))
            done += 1
        else:
            reviewed.append(proposal)
    progress(done, wanted)
    return reviewed


def _fell_back(proposal: Proposal, asking: ModelRound, why: str) -> Proposal:
    model = {"model": asking.model_id, "fell_back": why}
    return proposal.model_copy(update={"evidence": {**proposal.evidence, "model": model}})


async def _judged(proposal: Proposal, members: list[MemoryEntry], asking: ModelRound) -> Proposal:
    newer, older = members
    subject = f"{proposal.evidence.get('subject')} (same {proposal.evidence.get('same')})"
    answer = await asking.judge(subject, said(older), said(newer))
    if isinstance(answer, NoAnswer):
        return _fell_back(proposal, asking, answer.why)
    model = {"model": asking.model_id, "verdict": answer.verdict, "reason": answer.reason}
    evidence = {**proposal.evidence, "model": model}
    if answer.verdict == "updates":  # the same links: the same id
        return proposal.model_copy(update={"evidence": evidence})
    if answer.verdict == "contradicts":
        (supersedes,) = proposal.links
        return Proposal(
            id=proposal_id("contradiction", proposal.members, "contradicts"),
            kind="contradiction",
            confidence=proposal.confidence,
            members=proposal.members,
            links=[supersedes.model_copy(update={"link_type": "contradicts"})],
            evidence=evidence,
        )
    return proposal.model_copy(
        update={
            "id": proposal_id("update", proposal.members, "compatible"),
            "confidence": round(proposal.confidence * COMPATIBLE_FACTOR, 4),
            "evidence": evidence,
        }
    )


async def _distilled(
    proposal: Proposal, members: list[MemoryEntry], asking: ModelRound
) -> Proposal:
    answer = await asking.distil([said(e) for e in sorted(members, key=age)])
    if isinstance(answer, NoAnswer):
        return _fell_back(proposal, asking, answer.why)
    assert proposal.new_memory is not None
    digest = hashlib.sha256(answer.encode()).hexdigest()[:16]
    pid = proposal_id(proposal.kind, proposal.members, f"text:{digest}")
    old = proposal.new_memory
    value = {**old.value, "text": answer, "written_by": asking.model_id}
    new = NewMemory(namespace=old.namespace, key=f"distilled-{pid[4:]}", value=value)
    return proposal.model_copy(
        update={
            "id": pid,
            "new_memory": new,
            "links": [
                ProposedLink(
                    link_type=link.link_type,
                    from_namespace=new.namespace,
                    from_key=new.key,
                    to_namespace=link.to_namespace,
                    to_key=link.to_key,
                )
                for link in proposal.links
            ],
            "evidence": {**proposal.evidence, "model": {"model": asking.model_id, "wrote": "text"}},
        }
    )
