"""Consolidation runs and their proposals on SQLite: what each run proposed, what it
applied (so that an undo knows what to take back), counts and who ran it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from abathur_memory.core.documents import Vector
from abathur_memory.core.records import ConsolidationRun, StoredProposal
from abathur_memory.store.sqlite import timestamps
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.driver import Connection, Row
from abathur_memory.store.sqlite.vectors import decode, encode

VECTOR_BATCH = 5000  # kept vectors read or dropped per statement
# Kept vectors of versions no longer live: deleted, superseded by a newer version, or gone.
_NOT_LIVE = """
SELECT DISTINCT c.entry_id FROM consolidation_vectors AS c
LEFT JOIN memory_entries AS m ON m.id = c.entry_id
WHERE m.id IS NULL OR m.is_deleted OR EXISTS (
    SELECT 1 FROM memory_entries AS n
    WHERE n.namespace = m.namespace AND n.key = m.key AND n.version > m.version)
"""


def _run(row: Row) -> ConsolidationRun:
    return ConsolidationRun(
        id=row["id"],
        prefix=row["prefix"],
        actor=row["actor"],
        mode=row["mode"],
        status=row["status"],
        started_at=timestamps.to_iso(row["started_at"]) or "",
        finished_at=timestamps.to_iso(row["finished_at"]),
        counts=json.loads(row["counts"] or "{}"),
        undoes=row["undoes"],
        undone_by=row["undone_by"],
    )


class SqliteConsolidationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def start_run(
        self, run_id: str, prefix: str, actor: str, mode: str, undoes: str | None
    ) -> None:
        await self.db.execute_write(
            "INSERT INTO consolidation_runs (id, prefix, actor, mode, undoes, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, prefix, actor, mode, undoes, timestamps.now_db()),
        )

    async def finish_run(self, run_id: str, status: str, counts: dict[str, Any]) -> None:
        def finish(conn: Connection) -> None:
            conn.execute(
                "UPDATE consolidation_runs SET status = ?, counts = ?, finished_at = ?"
                " WHERE id = ?",
                (status, json.dumps(counts), timestamps.now_db(), run_id),
            )
            if status == "done":
                conn.execute(
                    "UPDATE consolidation_runs SET undone_by = ? WHERE id ="
                    " (SELECT undoes FROM consolidation_runs WHERE id = ? AND mode = 'undo')",
                    (run_id, run_id),
                )

        await self.db.write(finish)

    async def save_proposals(self, run_id: str, proposals: Sequence[StoredProposal]) -> None:
        def save(conn: Connection) -> None:
            conn.executemany(
                "INSERT INTO consolidation_proposals (run_id, id, kind, confidence, proposal,"
                " applied) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        p.id,
                        p.kind,
                        p.confidence,
                        json.dumps(p.proposal, ensure_ascii=False),
                        None if p.applied is None else json.dumps(p.applied),
                    )
                    for p in proposals
                ],
            )

        await self.db.write(save)

    async def run(self, run_id: str) -> ConsolidationRun | None:
        row = await self.db.fetchone("SELECT * FROM consolidation_runs WHERE id = ?", (run_id,))
        return None if row is None else _run(row)

    async def last_run(self, prefix: str, actor: str) -> ConsolidationRun | None:
        row = await self.db.fetchone(
            "SELECT * FROM consolidation_runs WHERE prefix = ? AND actor = ? AND status = 'done'"
            " ORDER BY started_at DESC LIMIT 1",
            (prefix, actor),
        )
        return None if row is None else _run(row)

    async def recent_runs(self, prefix: str, limit: int) -> list[ConsolidationRun]:
        found = await self.db.fetchall(
            "SELECT * FROM consolidation_runs WHERE prefix = ? ORDER BY started_at DESC LIMIT ?",
            (prefix, limit),
        )
        return [_run(r) for r in found]

    async def applied(self, run_id: str) -> list[StoredProposal]:
        found = await self.db.fetchall(
            "SELECT * FROM consolidation_proposals WHERE run_id = ? AND applied IS NOT NULL"
            " ORDER BY rowid",
            (run_id,),
        )
        return [
            StoredProposal(
                r["id"],
                r["kind"],
                r["confidence"],
                json.loads(r["proposal"]),
                json.loads(r["applied"]),
            )
            for r in found
        ]

    async def vectors(self, model: str, entry_ids: Sequence[int]) -> dict[int, Vector]:
        found: dict[int, Vector] = {}
        for start in range(0, len(entry_ids), VECTOR_BATCH):
            rows = await self.db.fetchall(
                "SELECT entry_id, embedding FROM consolidation_vectors WHERE model = ?"
                " AND entry_id IN (SELECT value FROM json_each(?))",
                (model, json.dumps(list(entry_ids[start : start + VECTOR_BATCH]))),
            )
            found.update((row[0], decode(row[1])) for row in rows)
        return found

    async def keep_vectors(self, model: str, vectors: dict[int, Vector]) -> None:
        def keep(conn: Connection) -> None:
            conn.executemany(
                "INSERT OR REPLACE INTO consolidation_vectors (entry_id, model, embedding)"
                " VALUES (?, ?, ?)",
                [(entry_id, model, encode(v)) for entry_id, v in vectors.items()],
            )

        if vectors:
            await self.db.write(keep)

    async def forget_vectors(self) -> int:
        rows = await self.db.fetchall(_NOT_LIVE)
        stale = [row[0] for row in rows]
        for start in range(0, len(stale), VECTOR_BATCH):
            batch = json.dumps(stale[start : start + VECTOR_BATCH])
            await self.db.execute_write(
                "DELETE FROM consolidation_vectors"
                " WHERE entry_id IN (SELECT value FROM json_each(?))",
                (batch,),
            )
        return len(stale)
