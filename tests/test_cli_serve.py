"""`serve` as a new user meets it: its documented flags work, and a database it cannot use
is one `error:` line and exit 1, never an exception group."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from indexing_helpers import write_tree
from mcp import Client, StdioServerParameters

from abathur_memory.store.sqlite import driver

pytestmark = pytest.mark.slow


def _serve(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abathur_memory", "serve", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "ABATHUR_EMBEDDER": "fake"},
    )


def _damaged(tmp_path: Path) -> Path:
    """A real database whose schema page (page 1, after the header) is garbage."""
    path = tmp_path / "damaged.db"
    subprocess.run(
        [sys.executable, "-m", "abathur_memory", "init", "--db", str(path)],
        check=True,
        capture_output=True,
    )
    conn = driver.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    data[200:4096] = bytes(n * 7 % 256 for n in range(3896))
    path.write_bytes(bytes(data))
    return path


def _foreign(tmp_path: Path) -> Path:
    path = tmp_path / "invoices.db"
    conn = driver.connect_plain(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.close()
    return path


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "notes.db"
    path.write_text("# not a database\n" * 50)
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_damaged, "damaged"),
        (_foreign, "not created by abathur-memory"),
        (_text, "not a SQLite database"),
        (lambda tmp: Path("/proc/abathur-memory.db"), "cannot open"),
        (lambda tmp: tmp / "missing" / "dir" / "x.db", "does not exist"),
    ],
    ids=["damaged", "foreign", "text", "unopenable", "missing-directory"],
)
def test_serve_on_a_file_it_cannot_use_is_one_line(tmp_path, make, expected):
    db = make(tmp_path)
    before = db.read_bytes() if db.is_file() else None
    proc = _serve(db)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert expected in proc.stderr
    if before is not None:
        assert db.read_bytes() == before  # not modified
    assert not (tmp_path / "missing").exists()


def test_serve_with_a_missing_docs_folder_is_one_line(tmp_path):
    proc = _serve(tmp_path / "x.db", "--docs", str(tmp_path / "nowhere"))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "does not exist" in proc.stderr, proc.stderr


@pytest.mark.parametrize("port", [["--port", "9000"], ["--port=8765"]], ids=["other", "default"])
def test_serve_port_with_stdio_is_a_usage_error(tmp_path, port):
    """stdio listens on no port: a --port there would be silently ignored (the user then
    waits for a server that never answers on it), so it is refused before anything opens."""
    proc = _serve(tmp_path / "x.db", *port)
    assert proc.returncode == 2, proc.stderr
    assert "--port applies to --transport streamable-http" in proc.stderr
    assert not (tmp_path / "x.db").exists()


@pytest.mark.anyio
async def test_serve_docs_watch_and_embedder_as_the_readme_configures_it(tmp_path):
    notes = write_tree(tmp_path / "notes")
    work = write_tree(tmp_path / "work", {"plan.md": "# Plan\n\nShip the lighthouse release.\n"})
    db = tmp_path / "agent.db"
    server = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "abathur_memory",
            "serve",
            "--db",
            str(db),
            "--user",
            "alice",
            "--docs",
            str(notes),
            "--docs",
            f"job={work}",
            "--watch",
            "--embedder",
            "fake",
        ],
        env={**os.environ, "ABATHUR_WATCH_DEBOUNCE_MS": "100"},
    )
    async with Client(server) as client:
        deadline = time.monotonic() + 60
        while True:
            status = (await client.call_tool("index_status", {})).structured_content
            synced = {r["name"]: r["by_status"]["synced"] for r in status["roots"]}
            if synced == {"notes": 3, "job": 1}:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        assert status["model"] == "fake:hash-v1"
        found = await client.call_tool("document_search", {"query": "lighthouse release"})
        assert found.structured_content["results"][0]["path"] == "job/plan.md"
        (work / "later.md").write_text("# Later\n\nThe heron returns in spring.\n")
        while True:  # --watch keeps the folders indexed
            found = await client.call_tool(
                "document_search", {"query": "heron spring", "mode": "keyword"}
            )
            hits = found.structured_content["results"]
            if hits and hits[0]["path"] == "job/later.md":
                break
            assert time.monotonic() < deadline + 60, "the new file was never indexed"
            time.sleep(0.1)


def _record_watchers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """Replace the runtime's watcher with a recorder that returns at once."""
    from abathur_memory.runtime import Runtime

    seen: list[tuple[str, list[str]]] = []

    async def watch(self: Runtime, stop: object, *, kind: str = "server") -> None:
        seen.append((kind, [root.name for root in await self.documents.roots()]))

    monkeypatch.setattr(Runtime, "watch", watch)
    return seen


def test_watch_keeps_folders_indexed_through_the_runtime(tmp_path, capsys, monkeypatch):
    """`watch` is built by the runtime, the composition `serve --watch` uses, not by hand."""
    from cli_helpers import run_cli

    monkeypatch.setenv("ABATHUR_EMBEDDER", "fake")
    seen = _record_watchers(monkeypatch)
    root = write_tree(tmp_path / "notes")
    result = run_cli(capsys, "watch", str(root), "--db", str(tmp_path / "w.db"))
    assert result.code == 0, result.err
    assert seen == [("watcher", ["notes"])]


@pytest.mark.anyio
async def test_serve_watch_keeps_folders_indexed_through_the_same_runtime_call(
    tmp_path, monkeypatch
):
    from conftest import settings_for

    from abathur_memory.runtime import open_runtime

    seen = _record_watchers(monkeypatch)
    root = write_tree(tmp_path / "notes")
    settings = settings_for(tmp_path / "s.db", docs=[str(root)], watch=True)
    async with open_runtime(settings) as runtime:
        await runtime.start_serving()
        deadline = time.monotonic() + 30
        while not seen:
            assert time.monotonic() < deadline, "serve --watch never started the watcher"
            await asyncio.sleep(0.05)
    assert seen == [("server", ["notes"])]
