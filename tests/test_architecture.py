"""Imports point down the layers of docs/architecture.md, and services hold no SQL.

Every import of an ``abathur_memory`` module (at module level or inside a function) is
checked against the layer of the importing module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "abathur_memory"

# What each layer may import, besides itself. Lower layers first.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "core": {"errors"},
    "config": {"errors"},
    "embedders": {"errors", "core", "config"},
    "chat": {"errors", "core", "config"},
    "store": {"errors", "core", "config"},
    "search": {"errors", "core", "embedders", "store.protocols"},
    "memory": {"errors", "core", "store.protocols", "search"},
    "documents": {"errors", "core", "embedders", "store.protocols", "search"},
    "ops": {"errors", "core", "config", "store"},
    "transfer": {"errors", "core", "store.protocols", "memory"},
    "runtime": {
        "errors",
        "core",
        "config",
        "embedders",
        "chat",
        "store",
        "search",
        "memory",
        "documents",
        "transfer",
    },
    "server": {
        "errors",
        "core",
        "config",
        "embedders",
        "search",
        "memory",
        "documents",
        "runtime",
        "version",
    },
    # the Python API: the runtime as a library, bound to a principal
    "api": {"errors", "core", "config", "search", "memory", "runtime", "version"},
    # the framework adapters, built on the Python API
    "adapters": {"errors", "core", "search", "memory", "api"},
    "cli": {
        "errors",
        "core",
        "config",
        "embedders",
        "store",
        "search",
        "memory",
        "documents",
        "ops",
        "runtime",
        "server",
        "transfer",
        "version",
    },
    "main": {"cli"},
}

# Where SQL may be written: the two storage backends, and the operations on a SQLite file.
SQL_HOMES = ("store/sqlite/", "store/postgres/", "ops/")


def _layer(module: str) -> str:
    """The layer of a dotted module name inside the package."""
    parts = module.split(".")[1:]
    if not parts:
        return "version"  # `from abathur_memory import __version__`
    head = parts[0]
    if head == "__main__":
        return "main"
    if head == "__init__":
        return "version"
    if head == "store" and len(parts) > 1 and parts[1] in ("protocols",):
        return "store.protocols"
    return head


def _allowed(importer: str, imported: str) -> bool:
    if imported in (importer, "version"):
        return True
    if imported == "store.protocols":  # the interface: whoever may use a store may see it
        return importer == "store" or bool({"store", "store.protocols"} & ALLOWED[importer])
    return imported in ALLOWED[importer]


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        found.append((name, path))
    return found


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [
                (node.lineno, a.name) for a in node.names if a.name.startswith("abathur_memory")
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("abathur_memory"):
                if target == "abathur_memory":
                    out += [(node.lineno, f"abathur_memory.{a.name}") for a in node.names]
                else:
                    out.append((node.lineno, target))
    return out


def _layer_of_importer(module: str) -> str:
    layer = _layer(module)
    if layer == "version":
        return "version"
    return "store" if layer == "store.protocols" else layer


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_imports_point_down(module: str, path: Path) -> None:
    importer = _layer_of_importer(module)
    if importer == "version":
        return
    assert importer in ALLOWED, f"{module}: no layer {importer!r} in docs/architecture.md"
    wrong = []
    for line, target in _imports(path, module):
        imported = _layer(target)
        if imported in ("__version__",):
            continue
        if not _allowed(importer, imported):
            wrong.append(f"{path.name}:{line} imports {target} ({importer} -> {imported})")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(wrong)


def test_services_hold_no_sql() -> None:
    """SQL lives in the backends (and the operations on a SQLite file): a statement written
    in a service would bypass the second backend."""
    keywords = ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "CREATE TABLE")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(SQL_HOMES) or rel == "store/protocols.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if any(k in text for k in keywords) and (" FROM " in text or "INTO " in text):
                    offenders.append(f"{rel}:{node.lineno}: {text[:60]!r}")
    assert not offenders, "SQL outside the storage backends:\n" + "\n".join(offenders)


def test_only_the_runtime_builds_the_watcher() -> None:
    """`serve --watch` and `watch` keep folders indexed through one composition
    (Runtime.watch): no face imports the watcher to wire one of its own."""
    watcher = "abathur_memory.documents.watcher"
    builders = []
    for module, path in _modules():
        if module in ("abathur_memory.runtime", watcher):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            if watcher in names:
                assert isinstance(node, ast.Import | ast.ImportFrom)
                builders.append(f"{module}:{node.lineno}")
    assert not builders, "the watcher built outside the runtime:\n" + "\n".join(builders)
