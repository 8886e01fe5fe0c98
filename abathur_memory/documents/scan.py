"""Walking document roots: markdown files only, .gitignore and excludes honoured.

Symbolic links are never followed (no loops, nothing outside the root) and are reported as
skipped. The walk only stats files; reading and hashing happen later, for what changed.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

MARKDOWN_SUFFIXES = (".md", ".markdown")
# Directories nobody wants indexed; user excludes add to these.
DEFAULT_EXCLUDES = (
    ".git/",
    ".hg/",
    ".svn/",
    "node_modules/",
    ".venv/",
    "venv/",
    "__pycache__/",
    ".tox/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".idea/",
    ".cache/",
)
HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class FileState:
    rel: str  # POSIX path relative to the root
    size: int
    mtime_ns: int


@dataclass
class Walk:
    files: list[FileState] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # rel path -> reason


def is_markdown(name: str) -> bool:
    return name.lower().endswith(MARKDOWN_SUFFIXES)


def walk(root: Path, excludes: list[str] | tuple[str, ...] = ()) -> Walk:
    """Every markdown file under ``root`` that no .gitignore or exclude pattern hides."""
    result = Walk()
    user_spec = pathspec.GitIgnoreSpec.from_lines([*DEFAULT_EXCLUDES, *excludes])
    # (directory relative to root, spec of the .gitignore found there)
    stack: list[tuple[str, pathspec.GitIgnoreSpec]] = []
    for directory, dirnames, filenames in os.walk(root, topdown=True, followlinks=False):
        rel_dir = os.path.relpath(directory, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir
        while stack and not _within(rel_dir, stack[-1][0]):
            stack.pop()
        if ".gitignore" in filenames:
            spec = _read_gitignore(Path(directory) / ".gitignore")
            if spec is not None:
                stack.append((rel_dir, spec))
        kept = []
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if os.path.islink(os.path.join(directory, name)):
                result.skipped[rel + "/"] = "symbolic link (not followed)"
            elif not _ignored(rel + "/", user_spec, stack):
                kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            if not is_markdown(name):
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if _ignored(rel, user_spec, stack):
                continue
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError as exc:  # vanished or unreadable between listing and stat
                result.skipped[rel] = f"cannot stat: {exc.strerror}"
                continue
            if stat.S_ISLNK(info.st_mode):
                result.skipped[rel] = "symbolic link (not followed)"
                continue
            result.files.append(FileState(rel, info.st_size, info.st_mtime_ns))
    return result


def file_state(
    root: Path, rel: str, excludes: list[str] | tuple[str, ...] = ()
) -> tuple[FileState | None, str]:
    """The state of one file as a walk of ``root`` would find it, or (None, why not): the
    same rules (markdown only, excludes and .gitignore files, no symbolic links)."""
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        return None, "not a path inside the root"
    if not is_markdown(parts[-1]):
        return None, "only markdown files (.md, .markdown) are indexed"
    user_spec = pathspec.GitIgnoreSpec.from_lines([*DEFAULT_EXCLUDES, *excludes])
    stack: list[tuple[str, pathspec.GitIgnoreSpec]] = []
    current = root
    for depth, part in enumerate(parts):
        base = "/".join(parts[:depth])
        gitignore = current / ".gitignore"
        if gitignore.is_file() and (spec := _read_gitignore(gitignore)) is not None:
            stack.append((base, spec))
        sub = f"{base}/{part}" if base else part
        is_dir = depth < len(parts) - 1
        if _ignored(sub + ("/" if is_dir else ""), user_spec, stack):
            return None, "excluded by the root's exclude patterns or a .gitignore file"
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            return None, "the file does not exist"
        except OSError as exc:
            return None, f"cannot stat: {exc.strerror}"
        if stat.S_ISLNK(info.st_mode):
            return None, "symbolic links are not followed"
    if not stat.S_ISREG(info.st_mode):
        return None, "not a regular file"
    return FileState("/".join(parts), info.st_size, info.st_mtime_ns), ""


def _within(rel: str, base: str) -> bool:
    return base == "" or rel == base or rel.startswith(base + "/")


def _ignored(
    rel: str, user_spec: pathspec.GitIgnoreSpec, stack: list[tuple[str, pathspec.GitIgnoreSpec]]
) -> bool:
    if user_spec.match_file(rel):
        return True
    for base, spec in stack:
        local = rel[len(base) + 1 :] if base else rel
        if spec.match_file(local):
            return True
    return False


def _read_gitignore(path: Path) -> pathspec.GitIgnoreSpec | None:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return pathspec.GitIgnoreSpec.from_lines(lines)


def hash_file(path: Path, *, limit: int | None = None) -> tuple[str, int]:
    """(SHA-256 hex, bytes read); stops with ValueError past ``limit`` bytes."""
    digest = hashlib.sha256()
    total = 0
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            total += len(chunk)
            if limit is not None and total > limit:
                raise ValueError(f"larger than the {limit:,}-byte limit")
            digest.update(chunk)
    return digest.hexdigest(), total


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
