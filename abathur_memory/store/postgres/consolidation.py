"""Consolidation runs and their proposals on PostgreSQL (SQLite's consolidation.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from abathur_memory.core.documents import Vector
from abathur_memory.core.records import ConsolidationRun, StoredProposal
from abathur_memory.store.postgres.connection import Conn, Database
from abathur_memory.store.postgres.times import SQL_NOW

VECTOR_BATCH = 5000  # kept vectors read or dropped per statement
# Kept vectors of versions no longer live: deleted, superseded by a newer version, or gone.
_NOT_LIVE = """
SELECT DISTINCT c.entry_id FROM consolidation_vectors AS c
LEFT JOIN memory_entries AS m ON m.id = c.entry_id
WHERE m.id IS NULL OR m.is_deleted OR EXISTS (
    SELECT 1 FROM memory_entries AS n
    WHERE n.namespace = m.namespace AND n.key = m.key AND n.version > m.version)
"""
_RUN = "id, prefix, actor, mode, status, started_at, finished_at, counts, undoes, undone_by"


class PostgresConsolidationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def start_run(
        self, run_id: str, prefix: str, actor: str, mode: str, undoes: str | None
    ) -> None:
        async def start(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO consolidation_runs (id, prefix, actor, mode, undoes)"
                " VALUES (%s, %s, %s, %s, %s)",
                (run_id, prefix, actor, mode, undoes),
            )

        await self.db.transaction(start, what="starting a consolidation run")

    async def finish_run(self, run_id: str, status: str, counts: dict[str, Any]) -> None:
        async def finish(conn: Conn) -> None:
            await conn.execute(
                f"UPDATE consolidation_runs SET status = %s, counts = %s::jsonb,"
                f" finished_at = {SQL_NOW} WHERE id = %s",
                (status, json.dumps(counts), run_id),
            )
            if status == "done":
                await conn.execute(
                    "UPDATE consolidation_runs SET undone_by = %s WHERE id ="
                    " (SELECT undoes FROM consolidation_runs WHERE id = %s AND mode = 'undo')",
                    (run_id, run_id),
                )

        await self.db.transaction(finish, what="finishing a consolidation run")

    async def save_proposals(self, run_id: str, proposals: Sequence[StoredProposal]) -> None:
        async def save(conn: Conn) -> None:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO consolidation_proposals (run_id, id, kind, confidence,"
                    " proposal, applied) VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb)",
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

        if proposals:
            await self.db.transaction(save, what="saving consolidation proposals")

    async def run(self, run_id: str) -> ConsolidationRun | None:
        row = await self.db.fetchone(
            f"SELECT {_RUN} FROM consolidation_runs WHERE id = %s", (run_id,)
        )
        if row is None:
            return None
        names = [n.strip() for n in _RUN.split(",")]
        return ConsolidationRun(**dict(zip(names, row, strict=True)))

    async def last_run(self, prefix: str, actor: str) -> ConsolidationRun | None:
        row = await self.db.fetchone(
            f"SELECT {_RUN} FROM consolidation_runs WHERE prefix = %s AND actor = %s"
            " AND status = 'done' ORDER BY started_at DESC LIMIT 1",
            (prefix, actor),
        )
        if row is None:
            return None
        names = [n.strip() for n in _RUN.split(",")]
        return ConsolidationRun(**dict(zip(names, row, strict=True)))

    async def recent_runs(self, prefix: str, limit: int) -> list[ConsolidationRun]:
        found = await self.db.fetchall(
            f"SELECT {_RUN} FROM consolidation_runs WHERE prefix = %s"
            " ORDER BY started_at DESC LIMIT %s",
            (prefix, limit),
        )
        names = [n.strip() for n in _RUN.split(",")]
        return [ConsolidationRun(**dict(zip(names, r, strict=True))) for r in found]

    async def applied(self, run_id: str) -> list[StoredProposal]:
        found = await self.db.fetchall(
            "SELECT id, kind, confidence, proposal, applied FROM consolidation_proposals"
            " WHERE run_id = %s AND applied IS NOT NULL ORDER BY ctid",
            (run_id,),
        )
        return [StoredProposal(r[0], r[1], r[2], r[3], r[4]) for r in found]

    async def vectors(self, model: str, entry_ids: Sequence[int]) -> dict[int, Vector]:
        found: dict[int, Vector] = {}
        for start in range(0, len(entry_ids), VECTOR_BATCH):
            rows = await self.db.fetchall(
                "SELECT entry_id, embedding FROM consolidation_vectors WHERE model = %s"
                " AND entry_id = ANY(%s)",
                (model, list(entry_ids[start : start + VECTOR_BATCH])),
            )
            found.update((row[0], np.frombuffer(row[1], dtype="<f4")) for row in rows)
        return found

    async def keep_vectors(self, model: str, vectors: dict[int, Vector]) -> None:
        async def keep(conn: Conn) -> None:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO consolidation_vectors (entry_id, model, embedding)"
                    " VALUES (%s, %s, %s) ON CONFLICT (entry_id, model)"
                    " DO UPDATE SET embedding = excluded.embedding",
                    [
                        (entry_id, model, np.asarray(v, dtype="<f4").tobytes())
                        for entry_id, v in vectors.items()
                    ],
                )

        if vectors:
            await self.db.transaction(keep, what="keeping consolidation vectors")

    async def forget_vectors(self) -> int:
        rows = await self.db.fetchall(_NOT_LIVE)
        stale = [row[0] for row in rows]
        for start in range(0, len(stale), VECTOR_BATCH):
            batch = stale[start : start + VECTOR_BATCH]

            async def drop(conn: Conn, batch: list[int] = batch) -> None:
                await conn.execute(
                    "DELETE FROM consolidation_vectors WHERE entry_id = ANY(%s)", (batch,)
                )

            await self.db.run(drop, what="forgetting consolidation vectors")
        return len(stale)
