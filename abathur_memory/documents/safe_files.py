"""Opening files inside a root without ever following a symbolic link, even under a race.

Resolving a path and then opening it by name leaves a window in which any component can be
swapped for a link to somewhere else, so everything that reads under a root goes through here:
``read_in_root`` (bytes + fstat of the opened file) and ``hash_in_root`` (like scan.hash_file).

``root`` is trusted (resolved when registered); ``rel`` is a POSIX relative path. On POSIX the
root is opened once and each component is opened relative to its parent's descriptor with
O_NOFOLLOW, so no component can be a link when it is opened; the last is opened non-blocking (a
FIFO cannot hang us) and must be a regular file. Without ``dir_fd`` (Windows) the file is opened
by full path and the *descriptor's* own path (GetFinalPathNameByHandle, /proc/self/fd) must be
exactly the expected one, so a link anywhere is refused. Where a descriptor's path cannot be
had, its (st_dev, st_ino) is compared with the realpath's: best effort, a swap can slip through.

Errors: Forbidden (absolute path, '..', a link), NotFound (missing), InvalidInput (a folder, not
a regular file, a bad name; TooLarge past the size limit), Unavailable (any other OS error:
permission, I/O; worth retrying).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from abathur_memory.errors import AbathurError, Forbidden, InvalidInput, NotFound, Unavailable

CHUNK = 1024 * 1024
MAX_NAME_BYTES = 255

_CLOEXEC = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOINHERIT", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_FILE_FLAGS = os.O_RDONLY | _CLOEXEC | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0)
_FILE_FLAGS |= getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
_DIR_FLAGS = os.O_RDONLY | _CLOEXEC | _NOFOLLOW | getattr(os, "O_DIRECTORY", 0)
# Tests switch this off to exercise the by-path fallback on POSIX too.
_HAVE_DIR_FD = os.open in os.supports_dir_fd and os.stat in os.supports_dir_fd and bool(_NOFOLLOW)


class TooLarge(InvalidInput):
    """The file is larger than the caller's limit (an InvalidInput a caller may tell apart)."""


def read_in_root(root: Path, rel: str, *, max_bytes: int) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file ``rel`` under ``root`` and its fstat (taken before reading).

    TooLarge (an InvalidInput) if it is, or grows while read, larger than ``max_bytes``.
    """
    with _open_in_root(root, rel) as (fd, info):
        if info.st_size <= max_bytes:
            data = b"".join(_chunks(fd, rel, max_bytes + 1, expected=info.st_size))
            if len(data) <= max_bytes:
                return data, info
    raise TooLarge(f"{rel} is larger than the {max_bytes:,}-byte limit")


def hash_in_root(root: Path, rel: str, *, limit: int | None = None) -> tuple[str, int]:
    """(SHA-256 hex, bytes read) of ``rel``; ValueError past ``limit`` bytes, as scan.hash_file."""
    digest, total = hashlib.sha256(), 0
    with _open_in_root(root, rel) as (fd, info):
        if limit is not None and info.st_size > limit:
            raise ValueError(f"larger than the {limit:,}-byte limit")
        for chunk in _chunks(fd, rel, None if limit is None else limit + 1):
            total += len(chunk)
            if limit is not None and total > limit:
                raise ValueError(f"larger than the {limit:,}-byte limit")
            digest.update(chunk)
    return digest.hexdigest(), total


def _parts(rel: str) -> list[str]:
    if not isinstance(rel, str) or not rel:
        raise InvalidInput("a path inside the root is required, e.g. notes/todo.md")
    if "\x00" in rel:
        raise InvalidInput("file paths cannot contain NUL characters")
    if os.sep != "/":
        rel = rel.replace(os.sep, "/")
    if rel.startswith("/") or (os.name == "nt" and ":" in rel):
        raise Forbidden("absolute paths are not allowed: give a path inside the root")
    parts = rel.split("/")
    for part in parts:
        if part == "..":
            raise Forbidden("'..' is not allowed in document paths")
        if part in ("", "."):
            raise InvalidInput(f"{rel} has an empty or '.' component; give a plain relative path")
        try:
            size = len(os.fsencode(part))
        except UnicodeEncodeError:
            raise InvalidInput(f"{rel!r} is not a valid file name on this system") from None
        if size > MAX_NAME_BYTES:
            raise InvalidInput(f"a file or folder name is longer than {MAX_NAME_BYTES} bytes")
    return parts


@contextmanager
def _open_in_root(root: Path, rel: str) -> Iterator[tuple[int, os.stat_result]]:
    parts = _parts(rel)
    fd = _open_last(root, parts, rel) if _HAVE_DIR_FD else _open_by_path(root, parts, rel)
    try:
        with _mapped(rel, rel, None, None):
            info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InvalidInput(f"{rel} is a folder, not a document")
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"{rel} is not a regular file")
        yield fd, info
    finally:
        os.close(fd)


def _open_dirs(root: Path, parts: list[str], rel: str) -> int:
    """A descriptor of the folder ``parts`` under ``root``, each step opened with O_NOFOLLOW."""
    try:
        fd = os.open(root, os.O_RDONLY | _CLOEXEC | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        raise NotFound(f"the root folder {root} does not exist (any more)") from None
    except OSError as exc:
        raise Unavailable(f"cannot open the root folder {root}: {exc.strerror}") from None
    try:
        for i, part in enumerate(parts):
            with _mapped(rel, "/".join(parts[: i + 1]), part, fd):
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            fd, parent = child, fd
            os.close(parent)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_last(root: Path, parts: list[str], rel: str) -> int:
    fd = _open_dirs(root, parts[:-1], rel)
    try:
        with _mapped(rel, rel, parts[-1], fd):
            return os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


def _open_by_path(root: Path, parts: list[str], rel: str) -> int:
    full = os.path.join(os.path.realpath(root), *parts)
    with _mapped(rel, rel, full, None):
        fd = os.open(full, _FILE_FLAGS)
    try:
        with _mapped(rel, rel, None, None):
            actual = _descriptor_path(fd)
            if actual is None:  # best effort: what realpath names now is what we opened
                opened, actual = os.fstat(fd), os.path.realpath(full)
                now = os.stat(actual)
                if (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
                    actual = "(changed)"
        if _plain(actual) != _plain(full):
            raise Forbidden(f"{rel} is or goes through a symbolic link; links are not followed")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _descriptor_path(fd: int) -> str | None:
    """The path the open descriptor ``fd`` itself refers to, where the system can tell."""
    if sys.platform == "win32":
        import ctypes
        import msvcrt

        size = 32768
        buf = ctypes.create_unicode_buffer(size)
        handle = msvcrt.get_osfhandle(fd)
        n = ctypes.windll.kernel32.GetFinalPathNameByHandleW(ctypes.c_void_p(handle), buf, size, 0)
        return buf.value if 0 < n < size else None
    with suppress(OSError):
        return os.readlink(f"/proc/self/fd/{fd}")
    return None


def _plain(path: str) -> str:
    """``path`` comparable: case folded on Windows, without the \\\\?\\ (or \\\\?\\UNC\\) prefix."""
    if path.startswith("\\\\?\\UNC\\"):
        path = "\\\\" + path[8:]
    elif path.startswith("\\\\?\\"):
        path = path[4:]
    return os.path.normcase(path)


def _chunks(fd: int, rel: str, cap: int | None, *, expected: int | None = None) -> Iterator[bytes]:
    """Read ``fd`` to the end, or until ``cap`` bytes have been read. ``expected`` (the size
    fstat gave) sizes the reads: bytes that are kept then cost a buffer of their own size,
    not a CHUNK-sized one cut down (which fragments the heap), until the file proves larger."""
    while cap is None or cap > 0:
        size = CHUNK if cap is None else min(CHUNK, cap)
        if expected is not None:
            size = min(size, expected + 1)  # + 1: a file that grew says so at once
        with _mapped(rel, rel, None, None):
            chunk = os.read(fd, size)
        if not chunk:
            return
        cap = None if cap is None else cap - len(chunk)
        if expected is not None:
            expected = expected - len(chunk) if len(chunk) <= expected else None  # it grew
        yield chunk


@contextmanager
def _mapped(rel: str, where: str, name: str | None, dir_fd: int | None) -> Iterator[None]:
    """OSError -> the project's error; ``name`` (relative to ``dir_fd``) was being opened."""
    try:
        yield
    except OSError as exc:
        raise _error(exc, rel, where, name, dir_fd) from None


def _error(
    exc: OSError, rel: str, where: str, name: str | None, dir_fd: int | None
) -> AbathurError:
    code, mode = exc.errno, 0
    if code == errno.ENOENT:
        return NotFound(f"{rel} does not exist (any more)")
    if code == errno.ENAMETOOLONG:
        return InvalidInput(f"{rel} is too long a path for this file system")
    if name is not None:  # why? (BSDs say EMLINK or EFTYPE for O_NOFOLLOW on a link)
        with suppress(OSError, NotImplementedError):
            mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    if code == errno.ELOOP or stat.S_ISLNK(mode):
        if where == rel:
            return Forbidden(f"{rel} is a symbolic link; links are not followed")
        return Forbidden(f"{rel} goes through the symbolic link {where}; links are not followed")
    if code == errno.ENOTDIR:
        return NotFound(f"{rel} does not exist: {where} is not a folder")
    if code == errno.EISDIR or (where == rel and stat.S_ISDIR(mode)):
        return InvalidInput(f"{rel} is a folder, not a document")
    if code == errno.ENXIO:  # a socket, or a device without a driver
        return InvalidInput(f"{rel} is not a regular file")
    return Unavailable(f"cannot read {rel}: {exc.strerror or exc}")
