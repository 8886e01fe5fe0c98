"""Consolidation that proposes, and an agent or a person that decides (issue 15): proposals
with evidence, applying that writes links and new memories only (nothing deleted or
rewritten), a run record per run, undo, the tool and the command."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import numpy as np
import pytest
from acting import Acting, Bound
from backends import Raw
from cli_helpers import run_cli
from mcp_helpers import call, connected

from abathur_memory.core.principal import Principal
from abathur_memory.core.records import MemoryEntry
from abathur_memory.errors import InvalidInput
from abathur_memory.memory.consolidation import ConsolidationReport
from abathur_memory.memory.proposals import near_duplicates, thresholds

pytestmark = pytest.mark.anyio

NS = "user:alice:life"


def _word(n: int) -> str:
    """A made-up word (letters from a digest): fillers share neither words nor trigrams."""
    digest = hashlib.sha256(str(n).encode()).digest()
    return "".join("bcdfghjklmnpqrstvwxz"[b % 20] + "aeiou"[b % 5] for b in digest[:4])


def fillers(n: int = 30) -> list[tuple[str, str]]:
    """Unrelated facts: three made-up words each."""
    return [(f"fact{i}", " ".join(_word(3 * i + j) for j in range(3))) for i in range(n)]


async def seed(memories: Bound) -> None:
    for key, text in fillers():
        await memories.put(NS, key, text)
    await memories.put(NS, "pref", "Prefers dark mode.")
    await memories.put(NS, "pref_again", "  prefers DARK   mode ")  # an exact duplicate
    await memories.put(NS, "theme", "likes dark themes in the code editor")
    await memories.put(NS, "theme2", "likes dark themes in the editor")  # a near duplicate
    await memories.put(NS, "city", "lives in Berlin")
    await memories.put(NS, "city_v2", "moved to Lisbon")  # an update (same key family)
    for day in ("monday", "tuesday", "friday"):
        await memories.put(
            NS, f"walk_{day}", f"walked the dog Biscuit in the park on {day}", "episodic"
        )


async def versions_digest(raw: Raw) -> tuple[int, str]:
    rows = await raw.fetchall(
        "SELECT namespace, key, version, value FROM memory_entries ORDER BY namespace, key, version"
    )
    text = json.dumps([[r[0], r[1], r[2], str(r[3])] for r in rows])
    return len(rows), hashlib.sha256(text.encode()).hexdigest()


def kinds(report: ConsolidationReport) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for p in report.proposals:
        out.setdefault(p.kind, []).append(sorted(m.key for m in p.members))
    return out


async def test_dry_run_proposes_each_kind_with_evidence_and_writes_nothing(services, raw):
    await seed(services.memories)
    before = await versions_digest(raw)
    report = await services.consolidation.consolidate(services.principal, NS)
    found = kinds(report)
    assert found["exact_duplicate"] == [["pref", "pref_again"]]
    assert found["near_duplicate"] == [["theme", "theme2"]]
    assert found["update"] == [["city", "city_v2"]]
    assert found["episodic_cluster"] == [["walk_friday", "walk_monday", "walk_tuesday"]]
    assert len(report.proposals) == 4  # none among the unrelated facts
    near = next(p for p in report.proposals if p.kind == "near_duplicate")
    assert near.evidence["similarity"] >= near.evidence["threshold"] > near.evidence["mean"]
    update = next(p for p in report.proposals if p.kind == "update")
    assert [(x.link_type, x.from_key, x.to_key) for x in update.links] == [
        ("supersedes", "city_v2", "city")
    ]
    assert report.run.mode == "propose" and report.run.status == "done"
    assert report.run.counts["memories"] == 39 and report.run.actor == "user:alice"
    assert await versions_digest(raw) == before
    assert (await raw.fetchone("SELECT count(*) FROM memory_links"))[0] == 0
    again = await services.consolidation.consolidate(services.principal, NS)
    assert [p.id for p in again.proposals] == [p.id for p in report.proposals]  # stable ids


async def test_apply_writes_links_and_memories_only_and_undo_takes_them_back(services, raw):
    await seed(services.memories)
    proposed = await services.consolidation.consolidate(services.principal, NS)
    before_count, before_digest = await versions_digest(raw)
    ids = [p.id for p in proposed.proposals]
    applied = await services.consolidation.consolidate(
        services.principal, NS, dry_run=False, apply=ids
    )
    assert sorted(applied.applied) == sorted(ids) and not applied.skipped
    assert applied.run.mode == "apply" and applied.run.counts["links_written"] == 6
    assert applied.run.counts["memories_written"] == 1
    # nothing deleted or rewritten: the old versions are byte for byte what they were
    rows = await raw.fetchall(
        "SELECT namespace, key, version, value FROM memory_entries ORDER BY namespace, key, version"
    )
    assert len(rows) == before_count + 1
    old = [r for r in rows if not r[1].startswith("distilled-")]
    assert (
        hashlib.sha256(
            json.dumps([[r[0], r[1], r[2], str(r[3])] for r in old]).encode()
        ).hexdigest()
        == before_digest
    )
    assert (await raw.fetchone("SELECT count(*) FROM memory_entries WHERE is_deleted"))[0] == 0
    listed = {e.key for e in (await services.memories.list(NS)).entries}
    assert {"pref_again", "theme2", "city"} & listed == set()  # hidden, not deleted
    distilled = next(k for k in listed if k.startswith("distilled-"))
    got = await services.memories.get(NS, distilled)
    assert got.memory_type == "semantic" and len(got.value["facts"]) == 3
    audit = await raw.fetchall(
        "SELECT count(*) FROM audit WHERE memory_operation_type = 'consolidate'"
    )
    assert audit[0][0] == 6  # one per link the run wrote
    undone = await services.consolidation.undo(services.principal, applied.run.id)
    assert undone.run.mode == "undo" and undone.run.undoes == applied.run.id
    assert undone.run.counts["links_removed"] == 6 and undone.run.counts["memories_deleted"] == 1
    assert (await services.consolidation.runs.run(applied.run.id)).undone_by == undone.run.id
    listed = {e.key for e in (await services.memories.list(NS)).entries}
    assert {"pref_again", "theme2", "city"} <= listed and not any(
        k.startswith("distilled-") for k in listed
    )
    assert len(await services.memories.history(NS, distilled)) == 1  # still readable
    assert (await raw.fetchone("SELECT count(*) FROM memory_links"))[0] == 6  # stamped
    with pytest.raises(Exception, match="already undone"):
        await services.consolidation.undo(services.principal, applied.run.id)


async def test_apply_by_confidence_and_stale_ids(services):
    await seed(services.memories)
    report = await services.consolidation.consolidate(
        services.principal, NS, dry_run=False, min_confidence=0.9, apply=["exa-000000000000"]
    )
    assert {p.kind for p in report.proposals} == {"exact_duplicate"}  # confidence 1.0 only
    assert [s.id for s in report.skipped] == ["exa-000000000000"]
    with pytest.raises(InvalidInput):
        await services.consolidation.consolidate(services.principal, NS, dry_run=False)
    with pytest.raises(InvalidInput):
        await services.consolidation.consolidate(services.principal, NS, min_confidence=0.5)


def _entries(n: int) -> list[MemoryEntry]:
    return [
        MemoryEntry(
            id=i,
            namespace=NS,
            key=f"k{i}",
            version=1,
            value=f"v{i}",
            memory_type="semantic",
            metadata={},
            is_deleted=False,
            created_by=None,
            updated_by=None,
            created_at=f"2026-01-01T00:00:{i:02d}.000Z",
            updated_at="",
        )
        for i in range(n)
    ]


def test_the_near_duplicate_bar_comes_from_the_namespace_and_nothing_chains():
    """A model whose unrelated texts score 0.6 (MiniLM's high baseline) gets a higher bar
    than one whose score 0.1; a chain of memories each like the next is pairs, never one
    cluster."""
    rng = np.random.default_rng(7)

    def space(baseline: float, n: int = 40) -> np.ndarray:
        common = rng.normal(size=64)
        rows = baseline * common + (1 - baseline) * rng.normal(size=(n, 64))
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)

    high, low = space(0.6), space(0.1)
    high_bar, _, high_stats = thresholds(high @ high.T)
    low_bar, _, _ = thresholds(low @ low.T)
    assert high_bar > low_bar + 0.2
    assert high_stats["mean"] > 0.5
    assert not near_duplicates(_entries(40), high @ high.T, high_bar, high_stats, set())
    # a chain: each vector a small step from the one before
    steps = [rng.normal(size=64)]
    for _ in range(39):
        steps.append(steps[-1] + 0.35 * rng.normal(size=64))
    chain = np.array(steps)
    chain = (chain / np.linalg.norm(chain, axis=1, keepdims=True)).astype(np.float32)
    similarity = chain @ chain.T
    bar, _, stats = thresholds(similarity)
    pairs = near_duplicates(_entries(40), similarity, bar, stats, set())
    members = [m.key for p in pairs for m in p.members]
    assert len(members) == len(set(members))  # each memory in one pair at most


async def test_memory_consolidate_tool_and_command(db_url, tmp_path):
    async with connected(db_url) as client:
        for key, text in fillers():
            await call(client, "memory_put", namespace=NS, key=key, value=text)
        await call(client, "memory_put", namespace=NS, key="a", value="Prefers dark mode.")
        await call(client, "memory_put", namespace=NS, key="b", value="prefers dark mode")
        proposed = await call(client, "memory_consolidate", prefix=NS)
        assert [p["kind"] for p in proposed["proposals"]] == ["exact_duplicate"]
        pid = proposed["proposals"][0]["id"]
        applied = await call(client, "memory_consolidate", prefix=NS, dry_run=False, apply=[pid])
        assert applied["applied"] == [pid]
        undone = await call(client, "memory_consolidate", prefix=NS, undo=applied["run"]["id"])
        assert undone["run"]["undoes"] == applied["run"]["id"]
        denied = await client.call_tool(
            "memory_consolidate", {"prefix": "user:bob", "dry_run": False, "min_confidence": 0.5}
        )
        assert denied.is_error


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    result = run_cli(capsys, *args)
    return result.code, result.out, result.err


def test_consolidate_command(db_url, capsys):
    async def seeded() -> None:
        async with connected(db_url) as client:
            for key, text in fillers():
                await call(client, "memory_put", namespace=NS, key=key, value=text)
            await call(client, "memory_put", namespace=NS, key="a", value="Prefers dark mode.")
            await call(client, "memory_put", namespace=NS, key="b", value="prefers dark mode")

    asyncio.run(seeded())
    base = ("consolidate", "--db", str(db_url), "--user", "alice", "--project", "website")
    code, out, err = _cli(capsys, *base, "--prefix", NS, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["run"]["mode"] == "propose"
    (proposal,) = report["proposals"]
    pid = proposal["id"]
    assert proposal["kind"] == "exact_duplicate"
    code, out, err = _cli(capsys, *base, "--prefix", NS, "--apply", pid)
    assert code == 0, err
    assert "apply run" in out and pid in out
    run_id = out.strip().splitlines()[-1].split()[2]
    code, out, err = _cli(capsys, *base, "--undo", run_id, "--json")
    assert code == 0, err
    assert json.loads(out)["run"]["undoes"] == run_id
    code, out, err = _cli(capsys, *base)
    assert code == 2 and "--prefix" in err
    code, out, err = _cli(capsys, *base, "--undo", "nope")
    assert code == 1 and err.startswith("error:") and "nope" in err


async def _policy(services: Acting, **extra: Any) -> None:
    from abathur_memory.memory.lifecycle import POLICY_KEY, POLICY_NAMESPACE

    admin = services.runtime.memories
    root = Principal(user="root", app="abathur", admin=True)
    current = (await admin.get(root, POLICY_NAMESPACE, POLICY_KEY)).value
    await admin.put(root, POLICY_NAMESPACE, POLICY_KEY, {**current, **extra})


async def test_scheduled_consolidation_is_opt_in_and_runs_when_due(services, raw):
    await seed(services.memories)
    lifecycle = services.runtime.lifecycle
    assert (await lifecycle.run()).consolidation == []  # the seeded policy names no prefix
    await _policy(services, consolidation_namespaces=[NS], consolidation_frequency="weekly")
    assert [r.mode for r in (await lifecycle.run(dry_run=True)).consolidation] == ["due"]
    assert (await raw.fetchone("SELECT count(*) FROM consolidation_runs"))[0] == 0
    (first,) = (await lifecycle.run()).consolidation
    assert first.mode == "propose" and first.counts["proposed"] == 4
    assert (await raw.fetchone("SELECT count(*) FROM memory_links"))[0] == 0  # proposes only
    assert (await lifecycle.run()).consolidation == []  # not due again for a week
    run = await services.consolidation.runs.run(first.run_id)
    assert run.actor == "user:system-consolidation"
    await raw.execute_write(  # a week later
        "UPDATE consolidation_runs SET started_at = ? WHERE id = ?",
        ("2020-01-01 00:00:00.000", first.run_id),
    )
    await _policy(services, consolidation_min_confidence=1.0)
    (second,) = (await lifecycle.run()).consolidation
    assert second.mode == "apply" and second.counts["applied"] == 1  # the exact duplicate
    await _policy(services, consolidation_frequency="hourly")
    with pytest.raises(InvalidInput, match="consolidation_frequency"):
        await lifecycle.run(dry_run=True)


async def test_a_run_reports_its_progress_phase_by_phase(services):
    """What the command line's bar shows: each phase reaches its total, in order."""
    await seed(services.memories)
    heard: list[tuple[str, int, int | None]] = []

    def listen(phase: str, done: int, total: int | None) -> None:
        heard.append((phase, done, total))

    proposed = await services.consolidation.consolidate(services.principal, NS, progress=listen)
    phases = list(dict.fromkeys(phase for phase, _, _ in heard))
    assert phases == ["reading memories", "embedding memories", "comparing memories"]
    assert ("reading memories", 39, 39) in heard and ("embedding memories", 39, 39) in heard
    heard.clear()
    ids = [p.id for p in proposed.proposals]
    await services.consolidation.consolidate(
        services.principal, NS, dry_run=False, apply=ids, progress=listen
    )
    applying = [(done, total) for phase, done, total in heard if phase == "applying proposals"]
    assert applying[0] == (0, len(ids)) and applying[-1] == (len(ids), len(ids))
    assert [done for done, _ in applying] == sorted(done for done, _ in applying)


async def test_end_punctuation_and_spacing_do_not_hide_an_exact_duplicate(services):
    """'fact .' and 'Fact' are one fact; so are a question with and without its mark."""
    for key, text in fillers():
        await services.memories.put(NS, key, text)
    await services.memories.put(NS, "a", "Prefers dark mode.")
    await services.memories.put(NS, "a_copy", "  PREFERS dark   mode . ")
    await services.memories.put(NS, "b", "Is the trip in May?")
    await services.memories.put(NS, "b_copy", "is the trip in may ?!")
    report = await services.consolidation.consolidate(services.principal, NS)
    assert sorted(kinds(report)["exact_duplicate"]) == [["a", "a_copy"], ["b", "b_copy"]]


async def test_a_newer_memory_of_the_same_key_family_is_an_update_even_when_alike(services):
    """'lives in Berlin' then 'lives in Lisbon' under home / home_v2 is an update, however
    alike the two texts are: taking it as a duplicate would keep the stale one."""
    for key, text in fillers():
        await services.memories.put(NS, key, text)
    await services.memories.put(NS, "home", "Alice lives in a flat in Berlin near the river")
    await services.memories.put(NS, "home_v2", "Alice lives in a flat in Lisbon near the river")
    report = await services.consolidation.consolidate(services.principal, NS)
    found = kinds(report)
    assert found.get("update") == [["home", "home_v2"]]
    assert "near_duplicate" not in found


async def test_a_large_run_saves_its_proposals_in_short_batches(services, monkeypatch):
    """Thousands of proposals in one write transaction held the write lock for seconds."""
    from abathur_memory.memory import consolidation

    monkeypatch.setattr(consolidation, "SAVE_BATCH", 4)
    for key, text in fillers():
        await services.memories.put(NS, key, text)
    for n in range(10):
        await services.memories.put(NS, f"same{n}", "one fact stored again and again")
    sizes: list[int] = []
    save = services.consolidation.runs.save_proposals

    async def counted(run_id, proposals):
        sizes.append(len(proposals))
        await save(run_id, proposals)

    monkeypatch.setattr(services.consolidation.runs, "save_proposals", counted)
    report = await services.consolidation.consolidate(services.principal, NS)
    assert len(report.proposals) == 9 and sizes == [4, 4, 1]
    applied = await services.consolidation.consolidate(
        services.principal, NS, dry_run=False, min_confidence=1.0
    )
    assert len(applied.applied) == 9 and sizes[3:] == [4, 4, 1]
    assert len(await services.consolidation.runs.applied(applied.run.id)) == 9


async def test_a_later_run_embeds_only_what_changed_and_kept_vectors_follow_the_memories(
    services, raw
):
    """A version's vector is kept between runs: a scheduled run over 100,000 memories must
    not embed them all again. A new version is embedded; the old one's vector goes; a
    redacted version's vector goes at once (it was derived from the erased content)."""
    await seed(services.memories)
    embedder = services.consolidation.embedder
    embedded: list[str] = []
    original = embedder.embed_documents

    async def counting(texts):
        embedded.extend(texts)
        return await original(texts)

    embedder.embed_documents = counting
    try:
        first = await services.consolidation.consolidate(services.principal, NS)
        assert len(embedded) == 39
        embedded.clear()
        again = await services.consolidation.consolidate(services.principal, NS)
        assert embedded == [] and [p.id for p in again.proposals] == [p.id for p in first.proposals]
        await services.memories.put(NS, "fact3", "a brand new text for an old key")
        await services.consolidation.consolidate(services.principal, NS)
        assert embedded == ["a brand new text for an old key"]
    finally:
        del embedder.embed_documents
    kept = await raw.fetchall("SELECT entry_id FROM consolidation_vectors")
    live = await raw.fetchall(
        "SELECT id FROM memory_entries AS m WHERE namespace = ? AND NOT is_deleted AND NOT"
        " EXISTS (SELECT 1 FROM memory_entries AS n WHERE n.namespace = m.namespace"
        " AND n.key = m.key AND n.version > m.version)",
        (NS,),
    )
    assert sorted(r[0] for r in kept) == sorted(r[0] for r in live)  # the old fact3 went
    door = await services.memories.get(NS, "pref")
    await services.redaction.redact(services.principal, NS, "pref", door.version)
    kept = await raw.fetchall("SELECT entry_id FROM consolidation_vectors")
    assert door.id not in {r[0] for r in kept}
