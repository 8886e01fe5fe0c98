"""The command line as a new user meets it: a mistyped --db creates nothing, names say what
they mean, output is never truncated when piped, every reporting command speaks JSON."""

from __future__ import annotations

import gzip
import json

import pytest
from cli_helpers import run_cli
from indexing_helpers import write_tree


@pytest.fixture(autouse=True)
def fake_model(monkeypatch):
    monkeypatch.setenv("ABATHUR_EMBEDDER", "fake")


@pytest.mark.parametrize(
    "args",
    [
        ("search", "x"),
        ("status",),
        ("roots",),
        ("maintain",),
        ("doctor",),
        ("backup", "out.db"),
        ("tokens", "list"),
    ],
    ids=lambda a: a[0],
)
def test_commands_that_only_read_never_create_a_database(capsys, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    typo = tmp_path / "typo.db"
    result = run_cli(capsys, *args, "--db", str(typo))
    assert result.code == 1, (result.out, result.err)
    assert result.err.startswith(f"error: no database at {typo}"), result.err
    assert not typo.exists() and not (tmp_path / "out.db").exists()


@pytest.mark.parametrize("command", ["index", "init"])
def test_no_command_creates_a_missing_directory_unless_asked(capsys, tmp_path, command):
    docs = write_tree(tmp_path / "docs")
    target = tmp_path / "nonexistent" / "dir" / "x.db"
    args = (command, str(docs)) if command == "index" else (command,)
    result = run_cli(capsys, *args, "--db", str(target))
    assert result.code == 1
    assert f"the directory {target.parent} does not exist" in result.err
    assert not (tmp_path / "nonexistent").exists()
    made = run_cli(capsys, "init", "--create-dirs", "--db", str(target))
    assert made.code == 0 and target.exists()


def test_a_gz_backup_is_compressed_even_without_gzip(capsys, tmp_path):
    db = tmp_path / "a.db"
    assert run_cli(capsys, "init", "--db", str(db)).code == 0
    out = tmp_path / "out.db.gz"
    assert run_cli(capsys, "backup", str(out), "--db", str(db)).code == 0
    with gzip.open(out, "rb") as fh:  # raises on a plain SQLite file
        assert fh.read(16) == b"SQLite format 3\x00"


def test_reporting_commands_speak_json(capsys, tmp_path):
    db = tmp_path / "j.db"
    docs = write_tree(tmp_path / "docs")
    for args in (
        ("init", "--json"),
        ("index", str(docs), "--json"),
        ("search", "fox", "--json"),
        ("status", "--json"),
        ("roots", "--json"),
        ("maintain", "--json"),
        ("doctor", "--json"),
        ("tokens", "list", "--json"),
        ("tokens", "create", "ci", "--json"),
    ):
        result = run_cli(capsys, *args, "--db", str(db))
        assert result.code == 0, (args, result.err)
        json.loads(result.out)  # one JSON document on stdout


def test_piped_status_and_roots_are_not_truncated(capsys, tmp_path):
    db = tmp_path / "p.db"
    long_name = "rust-book-second-edition-with-a-long-name"
    docs = write_tree(tmp_path / "docs")
    assert run_cli(capsys, "index", f"{long_name}={docs}", "--db", str(db)).code == 0
    status = run_cli(capsys, "status", "--db", str(db))
    assert long_name in status.out and str(docs) in status.out and "…" not in status.out
    roots = run_cli(capsys, "roots", "--db", str(db))
    assert long_name in roots.out and str(docs) in roots.out and "…" not in roots.out


def test_a_folder_without_markdown_is_not_accepted_silently(capsys, tmp_path):
    empty = tmp_path / "pictures"
    empty.mkdir()
    (empty / "cat.png").write_bytes(b"\x89PNG")
    result = run_cli(capsys, "index", str(empty), "--db", str(tmp_path / "e.db"))
    assert result.code == 0
    assert "holds no markdown files" in result.err


def test_excludes_can_be_seen_and_changed(capsys, tmp_path):
    db = tmp_path / "x.db"
    docs = write_tree(tmp_path / "docs")
    assert run_cli(capsys, "index", str(docs), "--exclude", "notes/", "--db", str(db)).code == 0
    roots = run_cli(capsys, "roots", "--json", "--db", str(db)).json()
    assert roots[0]["excludes"] == ["notes/"]
    assert run_cli(capsys, "status", "--json", "--db", str(db)).json()["roots"][0]["documents"] == 1
    changed = run_cli(capsys, "roots", "--set", "docs", "--no-excludes", "--db", str(db))
    assert changed.code == 0, changed.err
    assert run_cli(capsys, "roots", "--json", "--db", str(db)).json()[0]["excludes"] == []
    assert run_cli(capsys, "index", "--db", str(db)).code == 0
    assert run_cli(capsys, "status", "--json", "--db", str(db)).json()["roots"][0]["documents"] == 3
    again = run_cli(capsys, "roots", "--set", "docs", "--exclude", "*.markdown", "--db", str(db))
    assert again.code == 0
    assert run_cli(capsys, "index", "--db", str(db)).code == 0
    assert run_cli(capsys, "status", "--json", "--db", str(db)).json()["roots"][0]["documents"] == 2
    usage = run_cli(capsys, "roots", "--exclude", "x", "--db", str(db))
    assert usage.code == 2 and "--set NAME" in usage.err


def test_a_known_folder_under_a_new_name_says_so_and_can_be_renamed(capsys, tmp_path):
    db = tmp_path / "n.db"
    docs = write_tree(tmp_path / "docs")
    assert run_cli(capsys, "index", f"first={docs}", "--db", str(db)).code == 0
    second = run_cli(capsys, "index", f"second={docs}", "--db", str(db))
    assert second.code == 0
    assert "already indexed as 'first'" in second.err and "--rename first second" in second.err
    renamed = run_cli(capsys, "roots", "--rename", "first", "second", "--db", str(db))
    assert renamed.code == 0, renamed.err
    found = run_cli(capsys, "search", "fox", "--json", "--db", str(db)).json()
    assert found["results"] and all(h["path"].startswith("second/") for h in found["results"])


def test_failure_counts_agree_within_one_run(capsys, tmp_path, monkeypatch):
    db = tmp_path / "f.db"
    docs = write_tree(
        tmp_path / "docs",
        {"good.md": "# Good\n\nfine\n", "empty.md": "", "binary.md": "x\x00y" * 10},
    )
    (docs / "latin1.md").write_bytes("# Caf\xe9\n".encode("latin-1"))
    report = run_cli(capsys, "index", str(docs), "--json", "--db", str(db)).json()
    status = run_cli(capsys, "status", "--json", "--db", str(db)).json()
    assert report["failed_count"] == status["failed_count"] == len(status["failed"]) == 3
    text = run_cli(capsys, "index", "--full", "--db", str(db))
    assert "3 documents could not be indexed" in text.out
