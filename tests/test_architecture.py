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

# Where SQL may be written: the two storage backends, and the statements both backends'
# copy endpoints share (`migrate`). Nothing outside store/: ops/ and cli/ reach a backend
# through store/operations.py.
SQL_HOMES = ("store/sqlite/", "store/postgres/", "store/copy_tables.py")

# The concrete backends: only store/ itself (store/open.py picks one) imports them.
BACKENDS = ("sqlite", "postgres")

# Database drivers: imported inside store/ only.
DRIVERS = ("sqlean", "sqlite3", "aiosqlite", "apsw", "psycopg", "psycopg_pool", "pgvector")


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
    if head == "store" and len(parts) > 1 and parts[1] in BACKENDS:
        return "store.backend"
    return head


def _allowed(importer: str, imported: str) -> bool:
    if imported in (importer, "version"):
        return True
    if imported == "store.backend":  # a concrete backend: chosen in store/open.py, nowhere else
        return importer == "store"
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
    return "store" if layer in ("store.protocols", "store.backend") else layer


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


def test_drivers_are_imported_in_the_store_only() -> None:
    """No module outside store/ talks to a database driver: the operations room (ops/,
    cli/) asks a backend through store/operations.py, so a third backend needs no change
    there."""
    offenders = []
    for module, path in _modules():
        if _layer_of_importer(module) == "store":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] in DRIVERS:
                    offenders.append(f"{module}:{node.lineno} imports {name}")
    assert not offenders, "database drivers imported outside store/:\n" + "\n".join(offenders)


def test_services_hold_no_sql() -> None:
    """SQL lives in the backends: a statement written in a service, a command or an
    operation would bypass the other backend."""
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


def test_only_the_runtime_wires_the_services() -> None:
    """The services that share a store, a model and a retrieval pipeline are built in one
    place (runtime.py: build_runtime, and document_service for a worker of its own); the
    package, its tests and its benchmarks take them from there."""
    services = ("DocumentService", "Retrieval", "MemoryService", "MemoryIndexer")
    root = Path(__file__).resolve().parent.parent
    wired = []
    for path in [
        *(root / "abathur_memory").rglob("*.py"),
        *(root / "tests").rglob("*.py"),
        *(root / "bench").rglob("*.py"),
    ]:
        if path == root / "abathur_memory" / "runtime.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                called = node.func
                name = (
                    called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
                )
                if name in services:
                    wired.append(f"{path.relative_to(root)}:{node.lineno} {name}(...)")
    assert not wired, "services wired outside the runtime:\n" + "\n".join(wired)
