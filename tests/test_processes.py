"""Real processes: the stdio server under the official client, and concurrent writers."""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
from pathlib import Path

import anyio
import pytest
from acting import open_acting
from mcp import Client, StdioServerParameters
from mcp_helpers import text_of

from abathur_memory.config import load_settings
from abathur_memory.errors import Conflict

pytestmark = pytest.mark.slow


def test_stdio_server_subprocess(db_url, backend, db_path):
    async def run() -> None:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "abathur_memory", "serve", "--db", db_url, "--user", "alice"],
            env={"ABATHUR_LOG_LEVEL": "INFO", "PATH": "/usr/bin:/bin"},
        )
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"memory_put", "session_append", "task_claim"} <= names
            put = await client.call_tool(
                "memory_put", {"namespace": "user:alice:x", "key": "k", "value": [1, 2]}
            )
            assert not put.is_error, text_of(put)
            got = await client.call_tool("memory_get", {"namespace": "user:alice:x", "key": "k"})
            assert got.structured_content["value"] == [1, 2]
            denied = await client.call_tool("memory_get", {"namespace": "user:eve:x", "key": "k"})
            assert denied.is_error and text_of(denied).startswith("forbidden: ")
            assert "forbidden" in text_of(denied)

    anyio.run(run)
    assert db_path.exists() == (backend == "sqlite")


def _cas_worker(args: tuple[str, int, int]) -> list[int]:
    """Increment a counter with compare-and-set until `rounds` increments succeeded."""
    db, worker, rounds = args

    async def work() -> list[int]:
        settings = load_settings(db=db, user="alice", readers=1)
        won: list[int] = []
        async with open_acting(settings) as services:
            while len(won) < rounds:
                try:
                    current = await services.memories.get("user:alice:shared", "counter")
                    version, count = current.version, current.value["count"]
                except Exception:
                    version, count = 0, 0
                try:
                    result = await services.memories.put(
                        "user:alice:shared",
                        "counter",
                        {"count": count + 1, "by": worker},
                        expected_version=version,
                    )
                except Conflict:
                    continue  # somebody else won this round: re-read and retry
                won.append(result.version)
        return won

    return asyncio.run(work())


def test_eight_processes_compare_and_set_without_lost_updates(db_url):
    rounds, workers = 15, 8
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        results = pool.map(_cas_worker, [(db_url, w, rounds) for w in range(workers)])
    versions = sorted(v for won in results for v in won)
    assert versions == list(range(1, rounds * workers + 1))  # every version issued once

    async def final():
        async with open_acting(load_settings(db=db_url, user="alice")) as services:
            entry = await services.memories.get("user:alice:shared", "counter")
            history = await services.memories.history("user:alice:shared", "counter")
            return entry, history

    entry, history = asyncio.run(final())
    assert entry.value["count"] == rounds * workers  # no update lost
    assert [h.value["count"] for h in history] == list(range(1, rounds * workers + 1))


def _claimer(args: tuple[str, str]) -> list[str]:
    db, name = args

    async def work() -> list[str]:
        got = []
        async with open_acting(load_settings(db=db, user="alice", readers=1)) as services:
            while (task := await services.tasks.claim(claimant=name)) is not None:
                got.append(task.id)
        return got

    return asyncio.run(work())


def test_two_claimer_processes_never_get_the_same_task(db_url):
    async def seed() -> set[str]:
        async with open_acting(load_settings(db=db_url, user="alice")) as services:
            return {(await services.tasks.create(f"t{i}")).id for i in range(120)}

    created = asyncio.run(seed())
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        first, second = pool.map(_claimer, [(db_url, "a"), (db_url, "b")])
    assert not set(first) & set(second)
    assert set(first) | set(second) == created
    assert len(first) + len(second) == len(created)


def test_maintain_command(capsys, db_path):
    from cli_helpers import run_cli

    assert run_cli(capsys, "init", "--db", str(db_path)).code == 0
    dry = run_cli(capsys, "maintain", "--dry-run", "--json", "--db", str(db_path))
    assert dry.code == 0
    assert dry.json()["dry_run"] is True and dry.json()["expired_memories"] == []
    text = run_cli(capsys, "maintain", "--db", str(db_path))
    assert "expired 0 episodic memories (older than 90 days)" in text.out


def test_example_script_runs(tmp_path):
    import subprocess

    example = Path(__file__).parent.parent / "examples" / "agent_memory.py"
    proc = subprocess.run(
        [sys.executable, str(example), "--db", str(tmp_path / "ex.db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "claimed and completed" in proc.stdout
