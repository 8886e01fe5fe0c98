"""Bringing document_index in line with a root on disk.

(mtime, size) decide first; only files whose pair changed are read and hashed. A new path
whose content hash equals a vanished one's is a move: the row (and its chunks and vectors)
follows the file, nothing is re-embedded. Changed files become ``stale``, new ones
``pending``; the worker embeds them. Files that cannot be indexed are recorded as ``failed``
with the reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from abathur_memory.errors import AbathurError, NotFound
from abathur_memory.indexer import safe_files, scan
from abathur_memory.indexer.roots import Root
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite.database import Database

log = logging.getLogger(__name__)


@dataclass
class ScanReport:
    root: str
    files: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    moved: int = 0
    deleted: int = 0
    failed: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)  # documents that left the index
    document_ids: list[int] = field(default_factory=list)  # set by scan_file: what it touched

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class _Seen:
    file: scan.FileState
    row: driver.Row | None
    content_hash: str = ""
    error: str | None = None


async def scan_root(db: Database, root: Root, *, max_file_bytes: int) -> ScanReport:
    report = ScanReport(root.name)
    if not root.path.is_dir():
        report.skipped[""] = f"the folder {root.path} does not exist (nothing changed)"
        return report
    walked = await asyncio.to_thread(scan.walk, root.path, root.excludes)
    report.files = len(walked.files)
    report.skipped.update(walked.skipped)
    rows = await db.fetchall(
        "SELECT id, file_path, size_bytes, mtime_ns, content_hash, sync_status, metadata"
        " FROM document_index WHERE root_id = ?",
        (root.id,),
    )
    prefix = f"{root.name}/"
    by_path = {row["file_path"]: row for row in rows}
    seen: set[str] = set()
    work: list[_Seen] = []
    for file in walked.files:
        path = prefix + file.rel
        seen.add(path)
        row = by_path.get(path)
        if row is not None and row["size_bytes"] == file.size and row["mtime_ns"] == file.mtime_ns:
            report.unchanged += 1
        else:
            work.append(_Seen(file, row))
    await asyncio.to_thread(_hash_all, root.path, work, max_file_bytes)
    gone = [row for path, row in by_path.items() if path not in seen]
    await db.write(_apply, root, prefix, work, gone, report)
    return report


async def scan_file(db: Database, root: Root, rel: str, *, max_file_bytes: int) -> ScanReport:
    """Bring one document's row in line with its file: new, changed, unchanged, or gone
    (then it leaves the index). A path that is neither indexed nor indexable is not found."""
    report = ScanReport(root.name)
    path = f"{root.name}/{rel}"
    row = await db.fetchone(
        "SELECT id, file_path, size_bytes, mtime_ns, content_hash, sync_status, metadata"
        " FROM document_index WHERE root_id = ? AND file_path = ?",
        (root.id, path),
    )
    state, reason = await asyncio.to_thread(scan.file_state, root.path, rel, root.excludes)
    if state is None:
        if row is None:
            raise NotFound(f"no document {path}: {reason}")
        await db.write(_apply, root, f"{root.name}/", [], [row], report)
        return report
    report.files = 1
    work: list[_Seen] = []
    if row is not None and row["size_bytes"] == state.size and row["mtime_ns"] == state.mtime_ns:
        report.unchanged = 1
    else:
        work.append(_Seen(state, row))
        await asyncio.to_thread(_hash_all, root.path, work, max_file_bytes)
    await db.write(_apply, root, f"{root.name}/", work, [], report)
    found = await db.fetchone(
        "SELECT id FROM document_index WHERE root_id = ? AND file_path = ?", (root.id, path)
    )
    if found is not None:
        report.document_ids.append(found[0])
    return report


def _hash_all(root: Path, work: list[_Seen], max_file_bytes: int) -> None:
    """Hash what changed, opening each file without following links (safe_files)."""
    for item in work:
        if item.file.size > max_file_bytes:
            item.error = f"larger than the {max_file_bytes:,}-byte limit (max_file_bytes)"
            continue
        try:
            item.content_hash, _ = safe_files.hash_in_root(
                root, item.file.rel, limit=max_file_bytes
            )
        except ValueError as exc:
            item.error = str(exc)
        except NotFound:
            item.error = "vanished during the scan"
        except AbathurError as exc:  # a link swapped in, a permission or I/O problem
            item.error = str(exc)


def _apply(
    conn: driver.Connection,
    root: Root,
    prefix: str,
    work: list[_Seen],
    gone: list[driver.Row],
    report: ScanReport,
) -> None:
    gone_by_hash: dict[str, list[driver.Row]] = {}
    for row in gone:
        if row["content_hash"]:
            gone_by_hash.setdefault(row["content_hash"], []).append(row)
    for item in work:
        path = prefix + item.file.rel
        if item.error == "vanished during the scan":
            continue
        if item.error is not None:
            _record_failure(conn, root, path, item, report)
            continue
        if item.row is None:
            moved_from = gone_by_hash.get(item.content_hash)
            if moved_from:
                source = moved_from.pop()
                gone.remove(source)
                conn.execute(
                    "UPDATE document_index SET file_path = ?, size_bytes = ?, mtime_ns = ?,"
                    f" updated_at = {timestamps.SQL_NOW} WHERE id = ?",
                    (path, item.file.size, item.file.mtime_ns, source["id"]),
                )
                report.moved += 1
                continue
            conn.execute(
                "INSERT INTO document_index (file_path, title, content_hash, sync_status,"
                " root_id, size_bytes, mtime_ns, chunk_count)"
                " VALUES (?, ?, ?, 'pending', ?, ?, ?, 0)",
                (
                    path,
                    Path(item.file.rel).stem,
                    item.content_hash,
                    root.id,
                    item.file.size,
                    item.file.mtime_ns,
                ),
            )
            report.new += 1
        elif item.row["content_hash"] == item.content_hash and item.row["sync_status"] != "failed":
            conn.execute(  # touched, not changed
                "UPDATE document_index SET size_bytes = ?, mtime_ns = ? WHERE id = ?",
                (item.file.size, item.file.mtime_ns, item.row["id"]),
            )
            report.unchanged += 1
        else:
            conn.execute(
                "UPDATE document_index SET content_hash = ?, size_bytes = ?, mtime_ns = ?,"
                " sync_status = CASE WHEN sync_status = 'pending' THEN 'pending' ELSE 'stale' END,"
                " attempts = 0, next_attempt_at = NULL,"
                " metadata = json_remove(COALESCE(metadata, '{}'), '$.error'),"
                f" updated_at = {timestamps.SQL_NOW} WHERE id = ?",
                (item.content_hash, item.file.size, item.file.mtime_ns, item.row["id"]),
            )
            report.changed += 1
    for row in gone:
        conn.execute("DELETE FROM document_index WHERE id = ?", (row["id"],))
        report.deleted += 1
        report.removed.append(row["file_path"])
    conn.execute(
        f"UPDATE doc_roots SET last_scan_at = {timestamps.SQL_NOW} WHERE id = ?", (root.id,)
    )


def _record_failure(
    conn: driver.Connection, root: Root, path: str, item: _Seen, report: ScanReport
) -> None:
    metadata = json.dumps({"error": item.error})
    if item.row is None:
        conn.execute(
            "INSERT INTO document_index (file_path, title, content_hash, sync_status, root_id,"
            " size_bytes, mtime_ns, metadata, chunk_count)"
            " VALUES (?, ?, '', 'failed', ?, ?, ?, ?, 0)",
            (path, Path(item.file.rel).stem, root.id, item.file.size, item.file.mtime_ns, metadata),
        )
    else:
        conn.execute(
            "UPDATE document_index SET sync_status = 'failed', size_bytes = ?, mtime_ns = ?,"
            " metadata = json_set(COALESCE(metadata, '{}'), '$.error', ?),"
            f" updated_at = {timestamps.SQL_NOW} WHERE id = ?",
            (item.file.size, item.file.mtime_ns, item.error, item.row["id"]),
        )
    report.failed += 1
    report.skipped[item.file.rel] = item.error or "failed"
