"""The README is tested against the code: every command and flag it shows exists in
`--help`, and every tool the server offers is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import run_cli

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def _commands(capsys: pytest.CaptureFixture[str]) -> set[str]:
    top = run_cli(capsys, "--help").out
    return set(re.findall(r"^\s{2}([a-z][a-z-]+)\s", top.split("Commands:", 1)[-1], re.M))


def _shown(commands: set[str]) -> dict[tuple[str, ...], set[str]]:
    """(command, [subcommand]) -> flags, for every `abathur-memory ...` the README shows."""
    spans = re.findall(r"```.*?```", README, re.S) + re.findall(
        r"`([^`]+)`", re.sub(r"```.*?```", "", README, flags=re.S)
    )
    wanted: dict[tuple[str, ...], set[str]] = {}
    for span in spans:
        for line in re.split(r"\n(?!\s*--)|&&|;|\s\|\s", span):
            if "inspector" in line or "npx" in line or "claude mcp" in line:
                continue  # flags there belong to another program
            match = re.search(r"abathur-memory\s+([a-z][a-z-]+)(?:\s+([a-z][a-z-]+))?(.*)", line)
            if not match or match.group(1) not in commands:
                continue
            command: tuple[str, ...] = (match.group(1),)
            rest = match.group(3)
            if match.group(2):
                if match.group(1) == "tokens":
                    command = (match.group(1), match.group(2))
                else:
                    rest = match.group(2) + rest
            flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest))
            wanted.setdefault(command, set()).update(flags)
    return wanted


def test_every_command_and_flag_the_readme_shows_exists(capsys):
    commands = _commands(capsys)
    shown = _shown(commands)
    assert len(shown) >= 10, shown  # the README shows most commands
    missing = []
    for command, flags in sorted(shown.items()):
        result = run_cli(capsys, *command, "--help")
        assert result.code == 0, (command, result.err)
        missing += [
            f"{' '.join(command)} {flag}" for flag in sorted(flags) if flag not in result.out
        ]
    assert not missing, missing


def test_every_command_is_in_the_readme(capsys):
    for command in _commands(capsys):
        assert f"abathur-memory {command}" in README, command


def test_the_inspector_and_mcp_dev_commands_work_without_a_terminal():
    for line in re.findall(r"^.*(?:npx|mcp dev).*$", README, re.M):
        if line.lstrip().startswith(("npx", "uv run")):
            assert "-y" in line.split() or "npm_config_yes=true" in line, line
    assert "22.19" in README  # the Inspector's Node.js requirement is stated
