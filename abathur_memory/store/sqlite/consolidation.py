"""Consolidation runs and their proposals on SQLite: what each run proposed, what it
applied (so that an undo knows what to take back), counts and who ran it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from abathur_memory.core.records import ConsolidationRun, StoredProposal
from abathur_memory.store.sqlite import timestamps
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.driver import Connection, Row


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
