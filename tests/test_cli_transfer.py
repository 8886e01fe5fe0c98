"""`abathur-memory export` and `import` on the command line: the file, the report (a
table, tab-separated when piped, or --json), the exit status, one-line errors, and a
progress bar on stderr only where it can be drawn."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
from cli_helpers import run_cli
from conftest import settings_for
from rich.console import Console
from transfer_helpers import ALICE

from abathur_memory.cli import common
from abathur_memory.runtime import open_runtime

DATA = Path(__file__).parent / "data" / "transfer"


@pytest.fixture(autouse=True)
def _fake_model(monkeypatch):
    monkeypatch.setenv("ABATHUR_EMBEDDER", "fake")
    monkeypatch.setenv("ABATHUR_USER", "alice")
    monkeypatch.delenv("ABATHUR_DB", raising=False)


def _filled(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Path:
    db = tmp_path / "source.db"
    assert run_cli(capsys, "init", "--db", str(db)).code == 0
    result = run_cli(capsys, "import", str(DATA / "mcp-memory.jsonl"), "--db", str(db))
    assert result.code == 0, result.out + result.err
    return db


def test_export_to_a_file_then_import_it(capsys, tmp_path):
    db = _filled(capsys, tmp_path)
    out = tmp_path / "all.jsonl"
    exported = run_cli(capsys, "export", "--db", str(db), "--with-history", "-o", str(out))
    assert exported.code == 0, exported.err
    lines = exported.out.splitlines()
    assert lines[0] == "kind\trecords\tchecksum"
    memory = next(line.split("\t") for line in lines if line.startswith("memory\t"))
    assert memory[1] == "8" and memory[2].startswith("sha256:")  # 5 + the 3 seed memories
    assert lines[-1] == f"exported 8 records to {out}"
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    target = tmp_path / "target.db"
    imported = run_cli(capsys, "import", str(out), "--db", str(target))  # a new database
    assert imported.code == 0, imported.out + imported.err
    rows = [line.split("\t") for line in imported.out.splitlines()[1:] if "\t" in line]
    assert imported.out.splitlines()[0].split("\t")[:5] == [
        "kind",
        "records",
        "new",
        "changed",
        "present",
    ]
    assert rows[0][:5] == ["memory", "8", "5", "0", "3"]
    assert rows[0][8] == memory[2]  # the checksum the export reported
    assert "1 of 1 files imported and verified" in imported.out
    again = run_cli(capsys, "import", str(out), "--db", str(target), "--json")
    report = again.json()
    assert report["ok"] and report["files"][0]["kinds"]["memory"]["present"] == 8


def test_export_to_stdout_reports_on_stderr(capsys, tmp_path):
    db = _filled(capsys, tmp_path)
    result = run_cli(capsys, "export", "--db", str(db), "--prefix", "user:alice")
    assert result.code == 0
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert lines[0]["kind"] == "header" and lines[-1]["kind"] == "footer"
    assert lines[0]["prefixes"] == ["user:alice"]
    assert result.err.strip() == "exported 5 records (memory: 5)"
    as_json = run_cli(capsys, "export", "--db", str(db), "--prefix", "user:alice", "--json")
    assert json.loads(as_json.err)["kinds"]["memory"]["records"] == 5


def test_a_bad_file_exits_1_and_names_the_line(capsys, tmp_path):
    db = _filled(capsys, tmp_path)
    bad = tmp_path / "memory.jsonl"
    bad.write_text('{"type":"entity","name":"A","entityType":"x","observations":[]}\n{oops\n')
    result = run_cli(capsys, "import", str(bad), "--db", str(db), "--format", "mcp-memory")
    assert result.code == 1
    assert f"  {bad}:2: bad: not JSON" in result.out
    assert "0 of 1 files imported; 1 not written (nothing of them)" in result.out
    dry = run_cli(capsys, "import", str(bad), "--db", str(db), "--dry-run", "--skip-bad")
    assert dry.code == 1 and "dry run: nothing written" in dry.out


def test_errors_are_one_line(capsys, tmp_path):
    missing = run_cli(capsys, "export", "--db", str(tmp_path / "none.db"))
    assert missing.code == 1 and missing.err.startswith("error: no database at")
    db = _filled(capsys, tmp_path)
    forbidden = run_cli(capsys, "export", "--db", str(db), "--prefix", "user:bob")
    assert forbidden.code == 1
    assert forbidden.err.strip().splitlines() == [
        "error: export on 'user:bob' denied: other users' namespaces are private"
    ]
    mapped = run_cli(
        capsys,
        "import",
        str(DATA / "mcp-memory.jsonl"),
        "--db",
        str(db),
        "--namespace-map",
        "nonsense",
    )
    assert mapped.code == 1 and mapped.err.startswith("error: --namespace-map 'nonsense'")
    unknown = run_cli(capsys, "import", str(tmp_path / "nope.jsonl"), "--db", str(db))
    assert unknown.code == 2


def test_a_progress_bar_only_on_a_terminal(capsys, tmp_path, monkeypatch):
    db = _filled(capsys, tmp_path)
    piped = run_cli(capsys, "export", "--db", str(db), "-o", str(tmp_path / "a.jsonl"))
    assert piped.err == ""
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(common, "err_console", terminal)
    run_cli(capsys, "import", str(tmp_path / "a.jsonl"), "--db", str(db))
    assert "\x1b[" in screen.getvalue()  # drawn (and cleared) on the terminal


def test_export_says_how_many_links_it_left_out(capsys, tmp_path):
    db = tmp_path / "links.db"

    async def fill() -> None:
        async with open_runtime(settings_for(db)) as runtime:
            await runtime.memories.put(ALICE, "user:alice:a", "x", "inside")
            await runtime.memories.put(ALICE, "user:alice:b", "y", "outside")
            await runtime.links.link(ALICE, "related", "user:alice:a", "x", "user:alice:b", "y")

    asyncio.run(fill())
    result = run_cli(capsys, "export", "--db", str(db), "--prefix", "user:alice:a")
    assert result.code == 0, result.err
    assert "1 links left out: their other end is not in the export" in result.err
    whole = run_cli(capsys, "export", "--db", str(db), "--prefix", "user:alice")
    assert "left out" not in whole.err
    assert sum('"kind":"link"' in line for line in whole.out.splitlines()) == 1
