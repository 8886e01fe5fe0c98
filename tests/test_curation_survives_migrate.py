"""What issue 15 stores (links, validity, redactions, consolidation runs) survives
`abathur-memory migrate` to PostgreSQL and back, and a SQLite backup and restore."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from acting import open_acting
from cli_helpers import run_cli

from abathur_memory.config import Settings, load_settings

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

NS = "user:alice:home"


def _settings(db: str | Path) -> Settings:
    return load_settings(db=str(db), user="alice", embedder="fake", maintenance_interval_hours=0)


async def _fill(db: Path) -> None:
    async with open_acting(_settings(db)) as services:
        m = services.memories
        await m.put(NS, "old", "lives in Berlin", valid_from="2020-01-01")
        await m.put(NS, "new", "moved to Lisbon", valid_from="2024-03-01")
        await m.put(NS, "pin", "1234")
        await services.links.link(services.principal, "supersedes", NS, "new", NS, "old")
        await services.redaction.redact(services.principal, NS, "pin", 1)
        await services.consolidation.consolidate(services.principal, NS)


async def _state(db: str | Path) -> dict:
    async with open_acting(_settings(db)) as services:
        m = services.memories
        old = await m.get(NS, "old")
        pin = await m.get(NS, "pin")
        links = await services.links.readable_links(services.principal, NS, "old")
        listed = [e.key for e in (await m.list(NS)).entries]
        runs = await services.raw.fetchall("SELECT mode, status FROM consolidation_runs")
        return {
            "old_valid": (old.valid_from, old.valid_to),
            "pin": (pin.value, pin.redacted_by, pin.redacted_at is not None),
            "links": [(x.link_type, x.from_key, x.to_key, x.holds_until) for x in links],
            "listed": listed,
            "runs": sorted(tuple(r) for r in runs),
        }


async def test_links_validity_and_redactions_go_to_postgresql_and_back(tmp_path, pg_url, capsys):
    source = tmp_path / "source.db"
    await _fill(source)
    before = await _state(source)
    assert before["old_valid"] == ("2020-01-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z")
    assert before["links"] and before["listed"] == ["new", "pin"]
    copied = await asyncio.to_thread(
        run_cli, capsys, "migrate", "--db", str(source), "--to", pg_url
    )
    assert copied.code == 0, copied.err
    assert await _state(pg_url) == before
    back = tmp_path / "back.db"
    returned = await asyncio.to_thread(
        run_cli, capsys, "migrate", "--db", pg_url, "--to", str(back)
    )
    assert returned.code == 0, returned.err
    assert await _state(back) == before


async def test_a_backup_restores_them(tmp_path, capsys):
    source = tmp_path / "source.db"
    await _fill(source)
    before = await _state(source)
    saved = tmp_path / "saved.db"
    made = await asyncio.to_thread(run_cli, capsys, "backup", "--db", str(source), str(saved))
    assert made.code == 0, made.err
    target = tmp_path / "restored.db"
    done = await asyncio.to_thread(run_cli, capsys, "restore", "--db", str(target), str(saved))
    assert done.code == 0, done.err
    assert await _state(target) == before
