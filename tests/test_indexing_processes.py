"""Indexing under real process conditions: killed mid-run, watcher signals, failures."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from indexing_helpers import Costs, FlakyEmbedder, long_line, make_docs, write_tree

from abathur_memory.documents.watcher import Watcher
from abathur_memory.store.sqlite import driver

pytestmark = pytest.mark.slow


def _interruptible() -> None:
    """Let the child take Ctrl-C as a terminal would: a shell that started pytest in the
    background ignores SIGINT, and an ignored signal stays ignored across exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "abathur_memory", *args],
        env={**os.environ, "ABATHUR_EMBEDDER": "fake", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interruptible,
        **kwargs,
    )


def _count(db_path: Path | str, sql: str) -> int:
    conn = driver.connect(db_path)
    try:
        return conn.execute(sql).fetchone()[0]
    except driver.OperationalError:
        return 0
    finally:
        conn.close()


def test_a_process_killed_mid_index_leaves_no_half_written_document(db_path, tmp_path):
    files = {f"d{i:04d}.md": f"# Doc {i}\n\n" + f"words of document {i} " * 40 for i in range(1500)}
    root = write_tree(tmp_path / "big", files)
    proc = _cli("index", str(root), "--db", str(db_path), "--json")
    deadline = time.monotonic() + 120
    assert proc.stderr is not None
    while _count(db_path, "SELECT count(*) FROM space_documents") < 50:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    done = _count(db_path, "SELECT count(*) FROM space_documents")
    assert 0 < done < 1500, "the kill came too late to interrupt anything"
    doctor = subprocess.run(
        [sys.executable, "-m", "abathur_memory", "doctor", "--json", "--db", str(db_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["index consistency"]["ok"], checks["index consistency"]["detail"]
    assert checks["integrity_check"]["ok"]
    resumed = _cli("index", "--db", str(db_path), "--json")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    report = json.loads(out)
    assert report["work"]["documents_done"] == 1500 - done  # nothing redone
    assert _count(db_path, "SELECT count(*) FROM space_documents") == 1500


def test_ctrl_c_keeps_the_finished_documents_and_a_rerun_completes(db_path, tmp_path):
    """SIGINT mid-run: the documents finished so far are committed (not only whole batches
    of 16), the process says how many it kept and exits 130, the rest stay pending without
    leases, and the next run indexes only those. The small files come first (claims follow
    the scan's order); the interrupt lands while the large one-line files are processed."""
    line = long_line(50_000)  # ~300 KB on one line
    files = {f"a{i:04d}.md": f"# Doc {i}\n\n" + f"words of document {i} " * 40 for i in range(200)}
    files.update({f"b{i}.md": f"# Big {i}\n\n{line} big{i}\n" for i in range(6)})
    root = write_tree(tmp_path / "mixed", files)
    proc = _cli("index", str(root), "--db", str(db_path))
    deadline = time.monotonic() + 120
    assert proc.stderr is not None
    while _count(db_path, "SELECT count(*) FROM space_documents") < 200:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the finished small documents were not written"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    said = re.search(r"interrupted: kept the (\d+) documents indexed so far", err)
    assert said, err
    kept = int(said.group(1))
    assert kept == _count(db_path, "SELECT count(*) FROM space_documents")
    assert 200 <= kept < 206
    assert _count(db_path, "SELECT count(*) FROM document_index WHERE lease_owner IS NOT NULL") == 0
    pending = "SELECT count(*) FROM document_index WHERE sync_status = 'pending'"
    assert _count(db_path, pending) == 206 - kept
    resumed = _cli("index", "--db", str(db_path), "--json")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert json.loads(out)["work"]["documents_done"] == 206 - kept
    assert _count(db_path, "SELECT count(*) FROM space_documents") == 206


def test_watch_stops_cleanly_on_sigterm(db_path, tmp_path):
    root = write_tree(tmp_path / "w")
    proc = _cli("watch", str(root), "--db", str(db_path))
    deadline = time.monotonic() + 60
    assert proc.stderr is not None
    while _count(db_path, "SELECT count(*) FROM indexer_heartbeats") == 0:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    while _count(db_path, "SELECT count(*) FROM document_index WHERE sync_status='synced'") < 3:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err
    assert _count(db_path, "SELECT count(*) FROM indexer_heartbeats") == 0


@pytest.mark.anyio
async def test_the_watcher_survives_a_failing_model(db, tmp_path):
    root = write_tree(tmp_path / "flaky", {"a.md": "# A\nfirst\n"})
    flaky = FlakyEmbedder(ok_calls=10**6, dim=64)
    docs = make_docs(db, flaky)
    await docs.add_root(root)
    watcher = Watcher(docs, debounce_ms=50)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await asyncio.wait_for(watcher.ready.wait(), 30)
    flaky.ok_calls = flaky.calls  # from now on the model fails
    (root / "b.md").write_text("# B\nsecond file\n")
    await asyncio.sleep(1.0)
    assert not task.done()  # still running despite the failures
    flaky.ok_calls = 10**6  # the model is back
    deadline = time.monotonic() + 30
    while True:
        if (await docs.search(None, "second file", mode="keyword")).results:
            break
        assert time.monotonic() < deadline, "the watcher never retried"
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, 30)


@pytest.mark.anyio
async def test_the_watcher_hands_over_the_files_that_changed(db, tmp_path, monkeypatch):
    """A saved, created, deleted or renamed file is brought in line on its own, without a
    walk of the root; a folder event walks the root."""
    from abathur_memory.documents import sync

    files = {f"n{i}.md": f"# N{i}\nmarker{i} text\n" for i in range(20)}
    root = write_tree(tmp_path / "notes", files)
    docs = make_docs(db, FlakyEmbedder(ok_calls=10**6, dim=64))
    await docs.add_root(root)
    walks: list[str] = []
    real_scan_root = sync.scan_root

    async def counted(store, scanned_root, **kwargs):
        walks.append(scanned_root.name)
        return await real_scan_root(store, scanned_root, **kwargs)

    monkeypatch.setattr(sync, "scan_root", counted)
    watcher = Watcher(docs, debounce_ms=50)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await asyncio.wait_for(watcher.ready.wait(), 30)
    assert walks == ["notes"]  # the catch-up at start walks the root once

    async def found(query: str) -> list[str]:
        return [h.path for h in (await docs.search(None, query, mode="keyword")).results]

    async def until(check: Callable[[], Awaitable[bool]]) -> None:
        deadline = time.monotonic() + 30
        while not await check():
            assert time.monotonic() < deadline, "the watcher never caught up"
            await asyncio.sleep(0.1)

    (root / "n3.md").write_text("# N3\nzanzibar harbour\n")
    (root / "new.md").write_text("# New\nquokka meadow\n")
    (root / "n5.md").unlink()
    (root / "n7.md").rename(root / "seven.md")
    await until(lambda: _has(found, "zanzibar", ["notes/n3.md"]))
    await until(lambda: _has(found, "quokka", ["notes/new.md"]))
    await until(lambda: _has(found, "marker5", []))
    await until(lambda: _has(found, "marker7", ["notes/seven.md"]))
    assert walks == ["notes"]  # none of that walked the root

    (root / "sub").mkdir()
    await until(lambda: _walked(walks))
    stop.set()
    await asyncio.wait_for(task, 30)


@pytest.mark.anyio
async def test_a_saved_file_costs_the_watcher_three_write_transactions(
    store, tmp_path, monkeypatch
):
    """From the save to searchable and the run recorded: the file read once, the space
    looked up once, three write transactions (scan, claim, chunks); the heartbeat's own
    write comes on its schedule, not once per run."""
    from abathur_memory.documents import watcher as watcher_module

    monkeypatch.setattr(watcher_module, "HEARTBEAT_S", 3600.0)  # no beat inside the count
    root = write_tree(tmp_path / "notes", {f"n{i}.md": f"# N{i}\nmarker{i}\n" for i in range(5)})
    docs = make_docs(store, FlakyEmbedder(ok_calls=10**6, dim=64))
    await docs.add_root(root)
    watcher = Watcher(docs, debounce_ms=200)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await asyncio.wait_for(watcher.ready.wait(), 30)
    costs = Costs(store, monkeypatch)
    await costs.start()
    runs = watcher.indexed_runs
    (root / "n2.md").write_text("# N2\nzanzibar harbour\n")
    deadline = time.monotonic() + 30
    while watcher.indexed_runs == runs:
        assert time.monotonic() < deadline, "the watcher never indexed the saved file"
        await asyncio.sleep(0.05)
    hits = (await docs.search(None, "zanzibar", mode="keyword")).results
    assert [hit.path for hit in hits] == ["notes/n2.md"]
    assert watcher.indexed_runs == runs + 1
    assert costs.reads == {"n2.md": 1}
    assert costs.spaces == 1
    assert await costs.writes() <= 3
    stop.set()
    await asyncio.wait_for(task, 30)


@pytest.mark.anyio
async def test_the_heartbeat_says_when_the_last_events_and_run_were(store, tmp_path, monkeypatch):
    """The times a run used to write on its own reach index_status with the next beat."""
    from abathur_memory.documents import watcher as watcher_module

    monkeypatch.setattr(watcher_module, "HEARTBEAT_S", 0.2)
    root = write_tree(tmp_path / "notes", {"a.md": "# A\nfirst\n"})
    docs = make_docs(store, FlakyEmbedder(ok_calls=10**6, dim=64))
    await docs.add_root(root)
    watcher = Watcher(docs, debounce_ms=50)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await asyncio.wait_for(watcher.ready.wait(), 30)
    (root / "b.md").write_text("# B\nsecond\n")
    deadline = time.monotonic() + 30
    while True:
        beats = (await docs.status()).watchers
        if beats and beats[0].last_event_at and beats[0].last_indexed_at:
            break
        assert time.monotonic() < deadline, "the heartbeat never recorded the run"
        await asyncio.sleep(0.1)
    beat = beats[0]
    assert beat.alive
    assert beat.last_event_at <= beat.last_indexed_at <= beat.last_beat_at
    stop.set()
    await asyncio.wait_for(task, 30)


async def _has(found: Callable[[str], Awaitable[list[str]]], query: str, paths: list[str]) -> bool:
    return await found(query) == paths


async def _walked(walks: list[str]) -> bool:
    return len(walks) >= 2
