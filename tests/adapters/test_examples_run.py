"""Each adapter's example runs, offline, on both backends: an agent loop with a scripted
model that writes through the adapter and later recalls what it wrote (the end-to-end run
of each framework)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CASES = {
    # example: (framework package, what its output must show)
    "openai_agents_session.py": (
        "agents",
        ["answer: Black, no sugar.", "'I take my coffee black.'"],
    ),
    "langgraph_store.py": ("langgraph", ["answer: my editor is helix"]),
    "adk_services.py": ("google.adk", ["recalled: ['My printer is a LaserJet 4'"]),
    "anthropic_memory_tool.py": (
        "anthropic",
        ["versions of notes.md: ['# Alice\\n- likes tea\\n', '# Alice\\n- likes coffee\\n']"],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("example", sorted(CASES))
def test_example_runs(example, db_url):
    package, expected = CASES[example]
    pytest.importorskip(package)
    env = {**os.environ, "ABATHUR_EMBEDDER": "fake", "ABATHUR_MAINTENANCE_INTERVAL_HOURS": "0"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / example), "--db", db_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for line in expected:
        assert line in done.stdout, done.stdout
