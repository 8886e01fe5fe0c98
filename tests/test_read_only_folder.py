"""A database in a read-only folder or on a read-only mount (issue 13 item 9) is intact:
it is served read-only (reads work, writes answer ``read_only:``), the commands read it,
and doctor says "read-only", never "damaged". Where a read-only folder cannot be read
(changes waiting in a -wal file that SQLite would need a -shm beside to read), the error
says exactly that.

The folder is made read-only for real: a read-only bind mount as root (root ignores
permission bits), ``chmod 555`` otherwise; a platform that allows neither skips with the
reason.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import run_cli
from mcp_helpers import call, connected, text_of

from abathur_memory.store.sqlite import driver

pytestmark = pytest.mark.anyio


@pytest.fixture
def read_only_view(tmp_path):
    """``make(folder)`` -> a read-only view of ``folder`` (the same files)."""
    mounted: list[Path] = []
    chmodded: list[Path] = []

    def make(folder: Path) -> Path:
        if os.geteuid() != 0:
            folder.chmod(0o555)
            chmodded.append(folder)
            return folder
        view = tmp_path / f"{folder.name}-ro"
        view.mkdir()
        for args in (
            ["mount", "--bind", str(folder), str(view)],
            ["mount", "-o", "remount,bind,ro", str(view)],
        ):
            done = subprocess.run(args, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                if mounted:
                    subprocess.run(["umount", "-l", str(view)], check=False)
                pytest.skip(f"cannot make a read-only bind mount here: {done.stderr.strip()}")
            if args[1] == "--bind":
                mounted.append(view)
        probe = view / ".probe"
        with pytest.raises(OSError):
            probe.write_text("x")
        return view

    yield make
    for view in mounted:
        subprocess.run(["umount", "-l", str(view)], check=False)
    for folder in chmodded:
        folder.chmod(0o755)


async def _filled(folder: Path) -> Path:
    folder.mkdir()
    db_path = folder / "memory.db"
    async with connected(db_path) as client:
        await call(client, "memory_put", namespace="user:alice:n", key="k", value="harbour lights")
        for _ in range(300):  # the keyword index catches up in the background
            found = await call(client, "memory_search", query="harbour", mode="keyword")
            if found["results"] and found["pending"] == 0:
                break
            await asyncio.sleep(0.05)
    return db_path


async def test_a_database_in_a_read_only_folder_is_served_read_only(
    tmp_path, read_only_view, capsys
):
    db_path = await _filled(tmp_path / "data")
    view = read_only_view(db_path.parent) / db_path.name
    async with connected(view) as client:
        got = await call(client, "memory_get", namespace="user:alice:n", key="k")
        assert got["value"] == "harbour lights"
        found = await call(client, "memory_search", query="harbour", mode="keyword")
        assert [r["key"] for r in found["results"]] == ["k"]
        put = await client.call_tool(
            "memory_put", {"namespace": "user:alice:n", "key": "k2", "value": "x"}
        )
        assert put.is_error
        text = text_of(put)
        assert text.startswith(f"read_only: the database {view} is read-only: "), text
        assert "not writable" in text and "damaged" not in text

    status = await asyncio.to_thread(run_cli, capsys, "status", "--db", str(view))
    assert status.code == 0, status.err
    doctor = await asyncio.to_thread(run_cli, capsys, "doctor", "--json", "--db", str(view))
    assert doctor.code == 0, doctor.out
    report = doctor.json()
    assert report["read_only"] is True
    assert "damaged" not in doctor.out + doctor.err
    assert not list(view.parent.glob("*-shm"))  # nothing was written beside it


async def test_changes_waiting_in_the_wal_of_a_read_only_folder_are_explained(
    tmp_path, read_only_view, capsys
):
    db_path = await _filled(tmp_path / "data")
    holder = driver.connect(db_path)  # an open writer keeps its -wal file around
    try:
        holder.execute("PRAGMA wal_autocheckpoint = 0")
        holder.execute("INSERT INTO meta (key, value) VALUES ('pending', 'in the wal only')")
        copied = tmp_path / "copied"
        copied.mkdir()
        shutil.copy(db_path, copied / db_path.name)
        shutil.copy(f"{db_path}-wal", copied / f"{db_path.name}-wal")
    finally:
        holder.close()
    view = read_only_view(copied) / db_path.name
    assert Path(f"{view}-wal").stat().st_size > 0
    result = await asyncio.to_thread(run_cli, capsys, "status", "--db", str(view))
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "damaged" not in lines[0]
    assert f"the folder {view.parent} is not writable" in lines[0]
    assert f"needs to create {view.name}-shm" in lines[0]
