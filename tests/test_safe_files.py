"""safe_files: reading inside a root without following symbolic links, even under a race.

The two race tests run a thread that swaps a path for a symbolic link to a secret outside the
root while the main thread reads it. Each race also runs against a reference "resolve, check it
is inside the root, then open by name" reader (what documents.py and worker.py did), which must
leak the secret at least once: that shows the race is real, so the safe reader's clean record
means something.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from abathur_memory.documents import safe_files
from abathur_memory.documents.scan import hash_file
from abathur_memory.errors import AbathurError, Forbidden, InvalidInput, NotFound

SECRET = b"TOP-SECRET: this text lives outside the root\n"
INSIDE = b"# inside\n\nharmless text\n"
LIMIT = 1 << 20
READS = 800  # per race run of the safe reader
NAIVE_ROUNDS = 10  # the naive reader gets up to this many times READS reads to leak once

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="symlinks/FIFOs/dir_fd: POSIX")
Reader = Callable[[Path, str], bytes]


MODES = ["dir_fd", "by_path", "by_path_stat"]
STRICT = ["dir_fd", "by_path"]  # the modes that refuse every link, even under a race


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """dir_fd: the O_NOFOLLOW walk; by_path: the Windows fallback (descriptor path checked), forced
    on POSIX; by_path_stat: that fallback where a descriptor's path is unknown (dev/inode only)."""
    if request.param == "dir_fd" and not safe_files._HAVE_DIR_FD:
        pytest.skip("this platform has no dir_fd support")
    if request.param == "by_path" and not _can_name_descriptors():
        pytest.skip("this platform cannot tell a descriptor's path")
    monkeypatch.setattr(safe_files, "_HAVE_DIR_FD", request.param == "dir_fd")
    if request.param == "by_path_stat":
        monkeypatch.setattr(safe_files, "_descriptor_path", lambda fd: None)
    return str(request.param)


def _can_name_descriptors() -> bool:
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        return safe_files._descriptor_path(fd) is not None
    finally:
        os.close(fd)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """(root, outside): root/dir/file.md holds INSIDE; outside/secret.md, outside/file.md SECRET."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "dir").mkdir(parents=True)
    outside.mkdir()
    (root / "dir" / "file.md").write_bytes(INSIDE)
    (outside / "secret.md").write_bytes(SECRET)
    (outside / "file.md").write_bytes(SECRET)
    return root, outside


def read(root: Path, rel: str) -> bytes:
    return safe_files.read_in_root(root, rel, max_bytes=LIMIT)[0]


def read_via_hash(root: Path, rel: str) -> bytes:
    digest, _ = safe_files.hash_in_root(root, rel, limit=LIMIT)
    return SECRET if digest == hashlib.sha256(SECRET).hexdigest() else INSIDE


def naive_read(root: Path, rel: str) -> bytes:
    """The reference reader: documents._inside + DocumentService._read before the fix."""
    try:
        resolved = root.joinpath(*PurePosixPath(rel).parts).resolve(strict=False)
    except (OSError, RuntimeError):  # realpath itself races (EINVAL/ENOENT from readlink)
        raise Forbidden(f"{rel} cannot be resolved (symbolic link loop?)") from None
    root_real = root.resolve()
    if resolved != root_real and root_real not in resolved.parents:
        raise Forbidden(f"{rel} leads outside the root (symbolic link)")
    try:
        if resolved.stat().st_size > LIMIT:
            raise InvalidInput(f"{rel} is too large")
        return resolved.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{rel} does not exist (any more)") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {rel}: {exc.strerror}") from None


def last_component_read(root: Path, rel: str) -> bytes:
    """The reference reader: worker._read_and_parse before the fix (is_symlink on the last part)."""
    path = root / rel
    if path.is_symlink():
        raise Forbidden("symbolic links are not indexed")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{rel} does not exist (any more)") from None


def race(
    reader: Reader,
    flip: Callable[[], None],
    root: Path,
    rel: str,
    reads: int,
    *,
    until_leak: bool = False,
) -> Counter[str]:
    """Read ``rel`` ``reads`` times (or until a leak) while a thread keeps calling ``flip``.

    Outcomes: "leak" (the secret came back), "ok" (inside text), or the error's class name.
    Any exception that is not one of the project's errors propagates and fails the test.
    """
    outcomes: Counter[str] = Counter()
    stop = threading.Event()
    flips = 0
    failure: list[BaseException] = []

    def flipper() -> None:
        nonlocal flips
        try:
            while not stop.is_set():
                flip()
                flips += 1
        except BaseException as exc:  # surfaced in the main thread below
            failure.append(exc)

    thread = threading.Thread(target=flipper, daemon=True)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave the two threads finely
    thread.start()
    try:
        for _ in range(reads):
            seen = flips
            while flips == seen and thread.is_alive():  # let the flipper move between reads
                time.sleep(0)
            try:
                data = reader(root, rel)
            except AbathurError as exc:
                outcomes[type(exc).__name__] += 1
                continue
            outcomes["leak" if SECRET in data else "ok"] += 1
            if until_leak and outcomes["leak"]:
                break
    finally:
        stop.set()
        thread.join(10)
        sys.setswitchinterval(old_interval)
    assert not thread.is_alive()
    if failure:
        raise failure[0]
    return outcomes


def naive_leaks(reader: Reader, flip: Callable[[], None], root: Path, rel: str) -> int:
    """Race a naive reader for up to NAIVE_ROUNDS * READS reads; 1 once it leaked, else 0."""
    return race(reader, flip, root, rel, NAIVE_ROUNDS * READS, until_leak=True)["leak"]


def file_flipper(root: Path, outside: Path) -> Callable[[], None]:
    """Swap root/dir/file.md atomically between a regular file and a link to outside/secret.md."""
    target = root / "dir" / "file.md"
    link_tmp, file_tmp = root / "dir" / ".link.tmp", root / "dir" / ".file.tmp"

    def flip() -> None:
        os.symlink(outside / "secret.md", link_tmp)
        os.replace(link_tmp, target)
        file_tmp.write_bytes(INSIDE)
        os.replace(file_tmp, target)

    return flip


def dir_flipper(root: Path, outside: Path) -> Callable[[], None]:
    """Swap root/sub between a real folder (sub/file.md = INSIDE) and a link to outside/."""
    sub, real, link = root / "sub", root / ".sub.real", root / ".sub.link"
    sub.mkdir()
    (sub / "file.md").write_bytes(INSIDE)
    os.symlink(outside, link, target_is_directory=True)

    def flip() -> None:
        os.rename(sub, real)
        os.rename(link, sub)  # sub -> outside
        os.rename(sub, link)
        os.rename(real, sub)  # sub is the real folder again

    return flip


# -- the races ------------------------------------------------------------------------------


@posix_only
@pytest.mark.parametrize("mode", STRICT, indirect=True)
@pytest.mark.parametrize("reader", [read, read_via_hash], ids=["read", "hash"])
def test_race_last_component_swapped_for_a_link(
    tree: tuple[Path, Path], mode: str, reader: Reader
) -> None:
    root, outside = tree
    flip = file_flipper(root, outside)
    assert naive_leaks(naive_read, flip, root, "dir/file.md") > 0, "the race did not reproduce"
    outcomes = race(reader, flip, root, "dir/file.md", READS)
    assert outcomes["leak"] == 0, outcomes
    assert set(outcomes) <= {"ok", "Forbidden", "NotFound"}, outcomes
    assert outcomes["ok"] > 0, outcomes


@posix_only
@pytest.mark.parametrize("mode", STRICT, indirect=True)
@pytest.mark.parametrize("reader", [read, read_via_hash], ids=["read", "hash"])
def test_race_folder_swapped_for_a_link(tree: tuple[Path, Path], mode: str, reader: Reader) -> None:
    root, outside = tree
    flip = dir_flipper(root, outside)
    assert naive_leaks(naive_read, flip, root, "sub/file.md") > 0, "the race did not reproduce"
    assert naive_leaks(last_component_read, flip, root, "sub/file.md") > 0
    outcomes = race(reader, flip, root, "sub/file.md", READS)
    assert outcomes["leak"] == 0, outcomes
    assert set(outcomes) <= {"ok", "Forbidden", "NotFound"}, outcomes
    assert outcomes["ok"] > 0, outcomes


# -- plain cases ----------------------------------------------------------------------------


def test_reads_a_file_and_returns_the_descriptor_stat(tree: tuple[Path, Path], mode: str) -> None:
    root, _ = tree
    data, info = safe_files.read_in_root(root, "dir/file.md", max_bytes=LIMIT)
    assert data == INSIDE
    assert stat.S_ISREG(info.st_mode)
    assert info.st_size == len(INSIDE)
    assert info.st_ino == os.stat(root / "dir" / "file.md").st_ino


def test_nested_folders_and_top_level_files(tmp_path: Path, mode: str) -> None:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "deep.md").write_bytes(b"deep")
    (tmp_path / "top.md").write_bytes(b"top")
    assert read(tmp_path, "a/b/c/deep.md") == b"deep"
    assert read(tmp_path, "top.md") == b"top"


def test_size_limit(tree: tuple[Path, Path], mode: str) -> None:
    root, _ = tree
    assert read(root, "dir/file.md") == INSIDE
    assert safe_files.read_in_root(root, "dir/file.md", max_bytes=len(INSIDE))[0] == INSIDE
    with pytest.raises(safe_files.TooLarge, match="limit"):
        safe_files.read_in_root(root, "dir/file.md", max_bytes=len(INSIDE) - 1)
    assert issubclass(safe_files.TooLarge, InvalidInput)
    (root / "empty.md").write_bytes(b"")
    assert safe_files.read_in_root(root, "empty.md", max_bytes=0)[0] == b""


@pytest.mark.parametrize("size", [1, 4095, safe_files.CHUNK, safe_files.CHUNK + 1, 3 * LIMIT + 7])
def test_every_byte_whatever_the_size(tmp_path: Path, size: int) -> None:
    """Reads are sized by what fstat said (a kept file costs a buffer of its own size)."""
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    (tmp_path / "f.md").write_bytes(data)
    assert safe_files.read_in_root(tmp_path, "f.md", max_bytes=4 * LIMIT)[0] == data


def test_a_file_that_grew_after_its_fstat_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"# grown\n" + b"y" * 5000
    (tmp_path / "g.md").write_bytes(data)
    real_fstat = os.fstat

    def earlier(fd: int) -> os.stat_result:  # as it was before the last 4,000 bytes came
        info = list(real_fstat(fd))
        info[stat.ST_SIZE] -= 4000
        return os.stat_result(info)

    monkeypatch.setattr(safe_files.os, "fstat", earlier)
    assert safe_files.read_in_root(tmp_path, "g.md", max_bytes=LIMIT)[0] == data
    with pytest.raises(safe_files.TooLarge):
        safe_files.read_in_root(tmp_path, "g.md", max_bytes=len(data) - 1)


@pytest.mark.parametrize("rel", ["nope.md", "dir/nope.md", "nodir/file.md", "dir/file.md/x.md"])
def test_missing(tree: tuple[Path, Path], mode: str, rel: str) -> None:
    with pytest.raises(NotFound):
        read(tree[0], rel)


def test_missing_root(tmp_path: Path, mode: str) -> None:
    with pytest.raises(NotFound):
        read(tmp_path / "gone", "file.md")


@pytest.mark.parametrize(
    ("rel", "error"),
    [
        ("../outside/secret.md", Forbidden),
        ("dir/../../outside/secret.md", Forbidden),
        ("dir/..", Forbidden),
        ("/etc/passwd", Forbidden),
        ("", InvalidInput),
        ("dir//file.md", InvalidInput),
        ("./dir/file.md", InvalidInput),
        ("dir/./file.md", InvalidInput),
        ("dir/", InvalidInput),
        ("dir/file.md\x00.txt", InvalidInput),
        ("x" * 300 + ".md", InvalidInput),
        ("x" * 300 + "/file.md", InvalidInput),
        ("é" * 128 + ".md", InvalidInput),  # 131 characters, 259 bytes
        ("\ud800.md", InvalidInput),
    ],
)
def test_bad_paths(tree: tuple[Path, Path], mode: str, rel: str, error: type[Exception]) -> None:
    root, _ = tree
    for call in (read, safe_files.hash_in_root):
        with pytest.raises(error) as info:
            call(root, rel)
        assert "\n" not in str(info.value) and str(info.value)


def test_absolute_path_to_a_file_inside_is_refused(tree: tuple[Path, Path], mode: str) -> None:
    root, _ = tree
    with pytest.raises(Forbidden, match="absolute"):
        read(root, (root / "dir" / "file.md").as_posix())


def test_folder_is_not_a_document(tree: tuple[Path, Path], mode: str) -> None:
    with pytest.raises(InvalidInput, match="folder"):
        read(tree[0], "dir")


@posix_only
def test_fifo_is_refused_without_blocking(tree: tuple[Path, Path], mode: str) -> None:
    root, _ = tree
    os.mkfifo(root / "dir" / "pipe.md")
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            read(root, "dir/pipe.md")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "opening a FIFO blocked"
    assert len(errors) == 1 and isinstance(errors[0], InvalidInput), errors


@posix_only
@pytest.mark.parametrize("mode", STRICT, indirect=True)
@pytest.mark.parametrize("target", ["outside/secret.md", "root/dir/file.md", "nowhere.md"])
def test_last_component_link_is_refused(tree: tuple[Path, Path], mode: str, target: str) -> None:
    root, _ = tree
    os.symlink(root.parent / target, root / "link.md")
    for call in (read, safe_files.hash_in_root):
        with pytest.raises(Forbidden, match="symbolic link"):
            call(root, "link.md")


@posix_only
@pytest.mark.parametrize("mode", STRICT, indirect=True)
@pytest.mark.parametrize("target", ["outside", "root/dir"])
def test_middle_component_link_is_refused(tree: tuple[Path, Path], mode: str, target: str) -> None:
    root, _ = tree
    os.symlink(root.parent / target, root / "linked", target_is_directory=True)
    assert (root / "linked" / "file.md").exists()
    for call in (read, safe_files.hash_in_root):
        with pytest.raises(Forbidden, match="symbolic link"):
            call(root, "linked/file.md")


@posix_only
@pytest.mark.parametrize("mode", ["by_path_stat"], indirect=True)
def test_dev_inode_fallback_refuses_links_leading_outside(
    tree: tuple[Path, Path], mode: str
) -> None:
    root, outside = tree
    os.symlink(outside / "secret.md", root / "link.md")
    os.symlink(outside, root / "linked", target_is_directory=True)
    for rel in ("link.md", "linked/file.md"):
        with pytest.raises(Forbidden):
            read(root, rel)


def test_hash_matches_scan_hash_file(tree: tuple[Path, Path], mode: str) -> None:
    root, _ = tree
    expected = hash_file(root / "dir" / "file.md")
    assert safe_files.hash_in_root(root, "dir/file.md") == expected
    assert safe_files.hash_in_root(root, "dir/file.md", limit=len(INSIDE)) == expected
    with pytest.raises(ValueError, match="limit"):
        safe_files.hash_in_root(root, "dir/file.md", limit=len(INSIDE) - 1)
    (root / "big.md").write_bytes(b"x" * (safe_files.CHUNK * 2 + 7))
    assert safe_files.hash_in_root(root, "big.md") == hash_file(root / "big.md")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_no_descriptor_leaks(tree: tuple[Path, Path], mode: str) -> None:
    root, outside = tree
    os.symlink(outside, root / "linked", target_is_directory=True)
    os.mkfifo(root / "pipe.md")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        for rel in (
            "dir/file.md",
            "dir",
            "nope/x.md",
            "linked/file.md",
            "dir/file.md/x",
            "pipe.md",
        ):
            for call in (read, lambda r, p: safe_files.hash_in_root(r, p, limit=1)):
                with contextlib.suppress(AbathurError, ValueError):
                    call(root, rel)
    assert len(os.listdir("/proc/self/fd")) == before
