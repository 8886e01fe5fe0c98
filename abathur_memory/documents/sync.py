"""Bringing the index in line with a root on disk.

(mtime, size) decide first; only files whose pair changed are read and hashed (their bytes
kept for the worker, documents/reads.py, so a run reads each file once). A new path
whose content hash equals a vanished one's is a move: the row (and its chunks and vectors)
follows the file, nothing is re-embedded. Changed files become ``stale``, new ones
``pending``; the worker embeds them. Files that cannot be indexed are recorded as ``failed``
with the reason. What to change is decided here; the store applies it in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from abathur_memory.core.documents import (
    ChangedDocument,
    DocumentState,
    FailedDocument,
    MovedDocument,
    NewDocument,
    Root,
    ScanChanges,
    TouchedDocument,
)
from abathur_memory.documents import safe_files, scan
from abathur_memory.documents.reads import ReadFile, Reads
from abathur_memory.errors import AbathurError, NotFound
from abathur_memory.store.protocols import DocumentStore

log = logging.getLogger(__name__)

VANISHED = "vanished during the scan"


class ScanReport(BaseModel):
    root: str
    files: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    moved: int = 0
    deleted: int = 0
    failed: int = 0
    skipped: dict[str, str] = Field(default_factory=dict)
    removed: list[str] = Field(default_factory=list)  # documents that left the index
    document_ids: list[int] = Field(default_factory=list)  # set by scan_file: what it touched


@dataclass
class _Seen:
    file: scan.FileState
    row: DocumentState | None
    content_hash: str = ""
    error: str | None = None


async def scan_root(
    store: DocumentStore, root: Root, *, max_file_bytes: int, reads: Reads | None = None
) -> ScanReport:
    """Walk ``root`` and apply what changed in one transaction; the changed files' bytes go
    to ``reads`` for the worker."""
    report = ScanReport(root=root.name)
    if not root.path.is_dir():
        report.skipped[""] = f"the folder {root.path} does not exist (nothing changed)"
        return report
    walked = await asyncio.to_thread(scan.walk, root.path, root.excludes)
    report.files = len(walked.files)
    report.skipped.update(walked.skipped)
    prefix = f"{root.name}/"
    by_path = {row.file_path: row for row in await store.states(root.id)}
    seen: set[str] = set()
    work: list[_Seen] = []
    unchanged = 0  # counted here: a pydantic field set per file costs a no-op rescan 20 %
    for file in walked.files:
        path = prefix + file.rel
        seen.add(path)
        row = by_path.get(path)
        if row is not None and row.size_bytes == file.size and row.mtime_ns == file.mtime_ns:
            unchanged += 1
        else:
            work.append(_Seen(file, row))
    report.unchanged = unchanged
    if work:
        await asyncio.to_thread(_read_all, root.path, prefix, work, max_file_bytes, reads)
    gone = [row for path, row in by_path.items() if path not in seen]
    await store.apply_scan(_plan(root, prefix, work, gone, report))
    return report


async def scan_files(
    store: DocumentStore,
    root: Root,
    rels: Sequence[str],
    *,
    max_file_bytes: int,
    reads: Reads | None = None,
) -> tuple[ScanReport, dict[str, str]]:
    """Bring the rows of the named files of ``root`` in line with them (new, changed,
    unchanged, or gone: then they leave the index) in one transaction, without walking the
    root; a rename named by both its paths is a move. Returns the report, whose
    ``document_ids`` are the documents of the named files, and the paths that are neither
    indexed nor indexable, with why."""
    report = ScanReport(root=root.name)
    prefix = f"{root.name}/"
    missing: dict[str, str] = {}
    present: dict[str, DocumentState | None] = {}
    work: list[_Seen] = []
    gone: list[DocumentState] = []
    for rel in dict.fromkeys(rels):
        rows = await store.states(root.id, prefix + rel)
        row = rows[0] if rows else None
        state, reason = await asyncio.to_thread(scan.file_state, root.path, rel, root.excludes)
        if state is None:
            if row is None:
                missing[rel] = reason
            else:
                gone.append(row)
            continue
        report.files += 1
        present[rel] = row
        if row is not None and row.size_bytes == state.size and row.mtime_ns == state.mtime_ns:
            report.unchanged += 1
        else:
            work.append(_Seen(state, row))
    if work:
        await asyncio.to_thread(_read_all, root.path, prefix, work, max_file_bytes, reads)
    if work or gone:
        await store.apply_scan(_plan(root, prefix, work, gone, report))
    for rel, row in present.items():
        if row is None:  # new here (or moved here): its row exists now
            found = await store.states(root.id, prefix + rel)
            row = found[0] if found else None
        if row is not None:
            report.document_ids.append(row.id)
    return report, missing


async def scan_file(
    store: DocumentStore, root: Root, rel: str, *, max_file_bytes: int, reads: Reads | None = None
) -> ScanReport:
    """Bring one document's row in line with its file: new, changed, unchanged, or gone
    (then it leaves the index). A path that is neither indexed nor indexable is not found."""
    report, missing = await scan_files(
        store, root, [rel], max_file_bytes=max_file_bytes, reads=reads
    )
    if missing:
        raise NotFound(f"no document {root.name}/{rel}: {missing[rel]}")
    return report


def _read_all(
    root: Path, prefix: str, work: list[_Seen], max_file_bytes: int, reads: Reads | None
) -> None:
    """Read and hash what changed, opening each file without following links (safe_files);
    the bytes go to ``reads`` (within its budget), for the worker not to read them again."""
    too_large = f"larger than the {max_file_bytes:,}-byte limit (max_file_bytes)"
    for item in work:
        if item.file.size > max_file_bytes:
            item.error = too_large
            continue
        try:
            data, _ = safe_files.read_in_root(root, item.file.rel, max_bytes=max_file_bytes)
        except safe_files.TooLarge:  # it grew since the walk
            item.error = too_large
            continue
        except NotFound:
            item.error = VANISHED
            continue
        except AbathurError as exc:  # a link swapped in, a permission or I/O problem
            item.error = str(exc)
            continue
        item.content_hash = scan.hash_bytes(data)
        if reads is not None:
            read = ReadFile(data, item.content_hash, item.file.size, item.file.mtime_ns)
            reads.keep(prefix + item.file.rel, read)


def _plan(
    root: Root, prefix: str, work: list[_Seen], gone: list[DocumentState], report: ScanReport
) -> ScanChanges:
    """What the store must change, counted in ``report``."""
    changes = ScanChanges(root_id=root.id)
    gone = list(gone)
    gone_by_hash: dict[str, list[DocumentState]] = {}
    for row in gone:
        if row.content_hash:
            gone_by_hash.setdefault(row.content_hash, []).append(row)
    for item in work:
        path = prefix + item.file.rel
        size, mtime = item.file.size, item.file.mtime_ns
        if item.error == VANISHED:
            continue
        if item.error is not None:
            changes.failed.append(
                FailedDocument(
                    item.row.id if item.row else None,
                    path,
                    Path(item.file.rel).stem,
                    size,
                    mtime,
                    item.error,
                )
            )
            report.failed += 1
            report.skipped[item.file.rel] = item.error
            continue
        if item.row is None:
            moved_from = gone_by_hash.get(item.content_hash)
            if moved_from:
                source = moved_from.pop()
                gone.remove(source)
                changes.moved.append(MovedDocument(source.id, path, size, mtime))
                report.moved += 1
                continue
            title = Path(item.file.rel).stem
            changes.new.append(NewDocument(path, title, item.content_hash, size, mtime))
            report.new += 1
        elif item.row.content_hash == item.content_hash and item.row.sync_status != "failed":
            changes.touched.append(TouchedDocument(item.row.id, size, mtime))
            report.unchanged += 1
        else:
            changes.changed.append(ChangedDocument(item.row.id, item.content_hash, size, mtime))
            report.changed += 1
    for row in gone:
        changes.deleted.append(row.id)
        report.deleted += 1
        report.removed.append(row.file_path)
    return changes
