"""The benchmarks are modules of the ``bench`` package, run from the repository root as
``python -m bench.<name>``: they import what they share from ``bench.common``, never through
``sys.path``, and the README and docs/ run them that way."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# What a benchmark imports at module level from the bench extra (the rest import their peers
# inside the functions that use them).
OPTIONAL = {"vec0": "sqlite_vec"}


def _modules() -> list[str]:
    return sorted(path.stem for path in BENCH.glob("*.py") if path.stem != "__init__")


def test_no_benchmark_touches_sys_path() -> None:
    offenders = []
    for path in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "path"
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
            ):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, "sys.path in bench/: " + ", ".join(offenders)


def test_every_benchmark_imports_as_a_module_of_the_package() -> None:
    """As ``python -m bench.<name>`` imports it: from the repository root, nothing else on the
    path (a sibling imported as a top-level module fails here)."""
    names = [
        name
        for name in _modules()
        if name not in OPTIONAL or importlib.util.find_spec(OPTIONAL[name]) is not None
    ]
    assert "common" in names and len(names) >= 15
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)"
    done = subprocess.run(
        [sys.executable, "-c", code, *(f"bench.{name}" for name in names)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_docs_run_the_benchmarks_as_modules() -> None:
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    as_scripts, unknown = [], []
    modules = set(_modules())
    for document in documents:
        for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{document.relative_to(ROOT)}:{number}"
            if re.search(r"python3? bench/", line):
                as_scripts.append(where)
            for name in re.findall(r"python3? (?:-P )?-m bench\.(\w+)", line):
                if name not in modules:
                    unknown.append(f"{where}: bench.{name}")
    assert not as_scripts, "run as a script, not as a module: " + ", ".join(as_scripts)
    assert not unknown, "no such benchmark: " + ", ".join(unknown)


def test_no_benchmark_wires_the_services_by_hand() -> None:
    """They take the runtime's services with their own embedder (``build_runtime(...,
    embedder=...)``), so a benchmark measures what the server runs."""
    wired = [
        f"{path.name}: {name}"
        for path in BENCH.glob("*.py")
        for name in ("DocumentService(", "Retrieval(", "MemoryService(", "MemoryIndexer(")
        if name in path.read_text(encoding="utf-8")
    ]
    assert not wired, "wired by hand: " + ", ".join(wired)
