"""Links between memories in abathur-memory's JSONL: exported when both ends are in the
export, imported with their versions, times and actors so that memory_get and
memory_history answer the same links; importing twice adds nothing; a bad link line, a
link whose end is nowhere, or one the principal may not write writes nothing of the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from backends import Raw
from conftest import settings_for
from transfer_helpers import (
    ADMIN,
    ALICE,
    NOTES,
    export_text,
    fill_with_links,
    link_reads,
    records,
)

from abathur_memory.core.search import MemoryScope
from abathur_memory.runtime import open_runtime
from abathur_memory.transfer.records import Digest

pytestmark = pytest.mark.anyio


def _link_count(out: dict[str, Any]) -> int:
    return sum(len(v) for k, v in out.items() if k.startswith("links "))


async def _write(tmp_path: Path, text: str, name: str = "export.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _with_footer(lines: list[str]) -> str:
    """The lines with the footer recomputed (a file edited on purpose, not cut)."""
    body = [json.loads(line) for line in lines[1:-1]]
    digests: dict[str, Digest] = {}
    for record in body:
        digests.setdefault(record["kind"], Digest()).add(record)
    footer = {
        "kind": "footer",
        "counts": {k: d.count for k, d in digests.items()},
        "checksums": {k: d.checksum for k, d in digests.items()},
    }
    return "\n".join([lines[0], *lines[1:-1], json.dumps(footer)]) + "\n"


async def _link_rows(runtime: Any) -> int:
    return (await Raw(runtime.store).fetchone("SELECT count(*) FROM memory_links"))[0]


async def test_a_round_trip_shows_the_same_links(runtime, target_url, tmp_path):
    ids = await fill_with_links(runtime)
    before = await link_reads(runtime, ids)
    assert _link_count(before) >= 10  # both ends of each link, the session link once
    text = await export_text(runtime, with_history=True)
    exported = [r for r in records(text) if r["kind"] == "link"]
    assert len(exported) == 7
    assert {r["link_type"] for r in exported} == {
        "related",
        "supersedes",
        "contradicts",
        "duplicates",
        "derived_from",
    }
    path = await _write(tmp_path, text)
    async with open_runtime(settings_for(target_url)) as target:
        report = await target.transfer.import_path(ADMIN, path)
        assert report.ok, report.files[0].problems
        assert report.files[0].verified and report.files[0].footer_checked
        assert report.files[0].kinds["link"].new == 7
        assert await link_reads(target, ids) == before
        again = await export_text(target, with_history=True)
        assert [r for r in records(again) if r["kind"] == "link"] == exported
        rows = await _link_rows(target)
        second = await target.transfer.import_path(ADMIN, path)
        assert second.files[0].kinds["link"].present == 7
        assert second.files[0].kinds["link"].new == 0
        assert await _link_rows(target) == rows


async def test_links_go_from_sqlite_into_postgresql(tmp_path, pg_url):
    async with open_runtime(settings_for(tmp_path / "source.db")) as runtime:
        ids = await fill_with_links(runtime)
        before = await link_reads(runtime, ids)
        path = await _write(tmp_path, await export_text(runtime, with_history=True))
    async with open_runtime(settings_for(pg_url)) as target:
        report = await target.transfer.import_path(ADMIN, path)
        assert report.ok and report.files[0].verified
        assert await link_reads(target, ids) == before


async def test_a_link_leaving_the_export_is_left_out_and_counted(runtime, tmp_path):
    await fill_with_links(runtime)
    report = await runtime.transfer.export(
        ADMIN, (out := list[str]()).append, prefixes=["user:alice:notes"], with_history=True
    )
    exported = [r for r in records("".join(out)) if r["kind"] == "link"]
    # plan->diary, back->unicode, plan->gone; diary->style (another prefix) is left out.
    assert sorted((r["from_key"], r["to_key"]) for r in exported) == [
        ("back", "unicode"),
        ("plan", "diary"),
        ("plan", "gone"),
    ]
    assert report.links_left_out == 1
    # Without history the deleted memory is not exported, nor the link to it.
    report = await runtime.transfer.export(ADMIN, (live := list[str]()).append)
    kept = [r for r in records("".join(live)) if r["kind"] == "link"]
    assert ("plan", "gone") not in {(r["from_key"], r["to_key"]) for r in kept}
    assert len(kept) == 6 and report.links_left_out == 1


async def test_links_follow_the_namespace_map_and_dry_run_counts_them(
    runtime, target_url, tmp_path
):
    await fill_with_links(runtime)
    text = await export_text(runtime, ALICE, with_history=True)
    path = await _write(tmp_path, text)
    async with open_runtime(settings_for(target_url)) as target:
        mapping = ["user:alice=user:root:alice", "temp:scratch=user:root:scratch"]
        dry = await target.transfer.import_path(ADMIN, path, namespace_map=mapping, dry_run=True)
        counts = dry.files[0].kinds["link"]
        assert dry.ok and counts.new == counts.records == 6  # bob's link is not alice's
        assert counts.checksum is not None and counts.checksum.startswith("sha256:")
        assert await _link_rows(target) == 0
        report = await target.transfer.import_path(ADMIN, path, namespace_map=mapping)
        assert report.ok, report.files[0].problems
        shown = await target.links.readable_links(ADMIN, "user:root:alice:notes", "unicode")
        assert sorted((link.from_namespace, link.from_key, link.link_type) for link in shown) == [
            ("user:root:alice:notes", "back", "supersedes"),
            ("user:root:scratch", "mixed", "duplicates"),
        ]


async def test_a_bad_link_line_writes_nothing_of_the_file(runtime, tmp_path):
    async with open_runtime(settings_for(tmp_path / "source.db")) as origin:
        await fill_with_links(origin)
        lines = (await export_text(origin, with_history=True)).splitlines()
    number = next(i for i, line in enumerate(lines) if '"kind":"link"' in line)
    bad = json.loads(lines[number])
    bad["link_type"] = "likes"
    lines[number] = json.dumps(bad)
    path = await _write(tmp_path, _with_footer(lines))
    before = await _link_rows(runtime)
    report = await runtime.transfer.import_path(ADMIN, path)
    file = report.files[0]
    assert not report.ok and not file.written
    assert file.kinds["link"].bad == 1
    assert file.problems[0].startswith(f"{path}:{number + 1}: bad: link: link_type")
    assert await _link_rows(runtime) == before
    versions = await runtime.store.transfer.count_memory_versions(MemoryScope(ADMIN), True)
    skipped = await runtime.transfer.import_path(ADMIN, path, skip_bad=True)
    assert skipped.files[0].written and skipped.files[0].kinds["link"].new == 6
    assert await _link_rows(runtime) == before + 6
    assert await runtime.store.transfer.count_memory_versions(MemoryScope(ADMIN), True) > versions


async def test_a_link_whose_end_is_nowhere_is_a_conflict(runtime, tmp_path):
    async with open_runtime(settings_for(tmp_path / "source.db")) as origin:
        await fill_with_links(origin)
        lines = (await export_text(origin, with_history=True)).splitlines()
    # Keep the links and what the target has of its own (the seed memories), drop the rest.
    kept = [
        line
        for line in lines[1:-1]
        if '"kind":"link"' in line and '"from_key":"plan"' in line and '"to_key":"diary"' in line
    ]
    path = await _write(tmp_path, _with_footer([lines[0], *kept, lines[-1]]))
    report = await runtime.transfer.import_path(ADMIN, path)
    file = report.files[0]
    assert not file.written and file.kinds["link"].conflict == 1
    assert "no memory user:alice:notes/plan here or in the file" in file.problems[0]
    assert await _link_rows(runtime) == 0


async def test_a_link_the_principal_may_not_write_is_refused_and_listed(runtime, tmp_path):
    async with open_runtime(settings_for(tmp_path / "source.db")) as origin:
        await fill_with_links(origin)
        text = await export_text(origin, ADMIN, with_history=True)
    # Alice's own memories, and a link from one of them to bob's.
    lines = text.splitlines()
    body = [r for r in records(text)[1:-1] if r["kind"] == "memory" and r["namespace"] == NOTES]
    link = next(r for r in records(text) if r["kind"] == "link" and r["from_key"] == "plan")
    crossing = {**link, "to_namespace": "user:bob:notes", "to_key": "secret"}
    path = await _write(
        tmp_path,
        _with_footer([lines[0], *(json.dumps(r) for r in [*body, crossing]), lines[-1]]),
    )
    report = await runtime.transfer.import_path(ALICE, path)
    file = report.files[0]
    assert not file.written and file.kinds["link"].refused == 1
    assert any("user:bob:notes: 1 links refused" in p for p in file.problems)
    assert await _link_rows(runtime) == 0


async def test_a_removal_spreads_and_is_never_undone(runtime, target_url, tmp_path):
    await fill_with_links(runtime)
    first = await _write(tmp_path, await export_text(runtime, with_history=True), "first.jsonl")
    async with open_runtime(settings_for(target_url)) as target:
        assert (await target.transfer.import_path(ADMIN, first)).ok
        active = [
            link
            for link in await runtime.links.readable_links(ADMIN, NOTES, "plan")
            if link.to_key == "diary"
        ]
        await runtime.links.unlink(ALICE, active[0].id)
        later = await export_text(runtime, with_history=True)
        report = await target.transfer.import_path(ADMIN, await _write(tmp_path, later, "2.jsonl"))
        assert report.ok and report.files[0].kinds["link"].changed == 1
        shown = await target.links.readable_links(ADMIN, NOTES, "diary")
        removed = [link for link in shown if link.from_key == "plan"]
        assert removed[0].removed_by == "user:alice" and removed[0].removed_at is not None
        # The first file, which has it active, does not bring it back.
        again = await target.transfer.import_path(ADMIN, first)
        assert again.ok and again.files[0].kinds["link"].changed == 0
        assert await target.links.readable_links(ADMIN, NOTES, "diary") == shown
