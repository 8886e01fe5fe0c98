"""Databases in the layouts of earlier releases, to test upgrades where features meet.

- ``legacy``: the layout abathur used before numbered migrations (seed 002's "existing
  database"): the oldest layout abathur-memory upgrades.
- ``before_memory_search``: migrations 1-5 of the first release with an embedding space
  built by it (chunks, full-text and vectors, but no memory vectors table), one document
  indexed in it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from abathur_memory.embedders.fake import FakeEmbedder
from abathur_memory.store.sqlite import driver, vectors
from abathur_memory.store.sqlite import migrate as runner
from abathur_memory.store.sqlite.chunks import binary_code

LEGACY_DDL = """
CREATE TABLE tasks (
    id TEXT PRIMARY KEY, prompt TEXT NOT NULL, agent_type TEXT NOT NULL DEFAULT 'general',
    priority INTEGER NOT NULL DEFAULT 5, status TEXT NOT NULL, input_data TEXT NOT NULL,
    result_data TEXT, error_message TEXT, retry_count INTEGER DEFAULT 0,
    max_retries INTEGER DEFAULT 3, submitted_at TIMESTAMP NOT NULL, started_at TIMESTAMP,
    completed_at TIMESTAMP, created_by TEXT, parent_task_id TEXT, dependencies TEXT,
    FOREIGN KEY (parent_task_id) REFERENCES tasks(id)
);
CREATE INDEX idx_tasks_status_priority ON tasks(status, priority DESC, submitted_at ASC);
CREATE TABLE agents (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, specialization TEXT NOT NULL,
    task_id TEXT NOT NULL, state TEXT NOT NULL, model TEXT NOT NULL,
    spawned_at TIMESTAMP NOT NULL, terminated_at TIMESTAMP, resource_usage TEXT,
    FOREIGN KEY (task_id) REFERENCES tasks(id)
);
CREATE TABLE state (
    id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, key TEXT NOT NULL,
    value TEXT NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL,
    UNIQUE(task_id, key), FOREIGN KEY (task_id) REFERENCES tasks(id)
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TIMESTAMP NOT NULL, agent_id TEXT,
    task_id TEXT NOT NULL, action_type TEXT NOT NULL, action_data TEXT, result TEXT,
    FOREIGN KEY (agent_id) REFERENCES agents(id), FOREIGN KEY (task_id) REFERENCES tasks(id)
);
CREATE TABLE metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TIMESTAMP NOT NULL,
    metric_name TEXT NOT NULL, metric_value REAL NOT NULL, labels TEXT,
    CHECK(metric_value >= 0)
);
CREATE TABLE checkpoints (
    task_id TEXT NOT NULL, iteration INTEGER NOT NULL, state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL, PRIMARY KEY (task_id, iteration),
    FOREIGN KEY (task_id) REFERENCES tasks(id)
);
CREATE TABLE legacy_notes (id INTEGER PRIMARY KEY, body TEXT);
"""

LEGACY_ROWS = [
    "INSERT INTO tasks (id, prompt, status, input_data, submitted_at, completed_at, dependencies)"
    " VALUES ('t1', 'summarise', 'completed', '{\"doc\": 1}', '2025-01-01 10:00:00',"
    " '2025-01-01 10:05:00', '[]')",
    "INSERT INTO tasks (id, prompt, status, input_data, submitted_at, parent_task_id)"
    " VALUES ('t2', 'child', 'pending', '{}', '2025-01-02 09:00:00', 't1')",
    "INSERT INTO agents VALUES ('a1', 'worker', 'general', 't1', 'terminated', 'm',"
    " '2025-01-01 10:00:01', NULL, '{\"tokens\": 3}')",
    "INSERT INTO state (task_id, key, value, created_at, updated_at)"
    " VALUES ('t1', 'progress', '\"done\"', '2025-01-01 10:00:00', '2025-01-01 10:05:00')",
    "INSERT INTO audit (timestamp, agent_id, task_id, action_type, action_data, result)"
    " VALUES ('2025-01-01 10:00:02', 'a1', 't1', 'tool_call', '{\"tool\": \"read\"}', 'ok')",
    "INSERT INTO metrics (timestamp, metric_name, metric_value, labels)"
    " VALUES ('2025-01-01 10:00:03', 'latency_ms', 12.5, '{\"op\": \"get\"}')",
    "INSERT INTO checkpoints VALUES ('t1', 1, '{\"step\": 1}', '2025-01-01 10:01:00')",
    "INSERT INTO legacy_notes (body) VALUES ('kept')",
]


def build_legacy(path: Path) -> Path:
    conn = driver.connect_plain(path)
    try:
        for statement in runner.split_statements(LEGACY_DDL):
            conn.execute(statement)
        for row in LEGACY_ROWS:
            conn.execute(row)
    finally:
        conn.close()
    return path


OLD_DOCUMENT = "# Old notes\n\nThe lighthouse keeper logs every passing ship.\n"


def build_before_memory_search(path: Path, root: Path) -> Path:
    """Migrations 1-5 and one document of ``root`` indexed into a first-release space."""
    from abathur_memory.store.sqlite import space_tables

    root.mkdir(parents=True, exist_ok=True)
    (root / "old.md").write_text(OLD_DOCUMENT)
    conn = driver.connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(runner.SCHEMA_MIGRATIONS_DDL)
        for migration in runner.load_migrations()[:5]:
            for statement in migration.statements():
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)",
                (migration.version, migration.name, migration.checksum),
            )
        embedder = FakeEmbedder()
        # The first release cut chunks with chunker version 1 (core/spaces.CHUNKER_VERSION).
        identity = dataclasses.replace(embedder.identity, chunker_version=1)
        conn.execute(
            "INSERT INTO embedding_spaces (id, identity, model_id, dim, status, activated_at)"
            " VALUES (1, ?, ?, ?, 'active', '2025-06-01 00:00:00')",
            (identity.key(), identity.model_id, identity.dim),
        )
        for sql in space_tables.STEPS[0](1):  # what the first release created: plain SQL
            assert isinstance(sql, str)
            conn.execute(sql)
        conn.execute(
            "INSERT INTO doc_roots (id, name, path) VALUES (1, 'old', ?)", (str(root.resolve()),)
        )
        info = (root / "old.md").stat()
        conn.execute(
            "INSERT INTO document_index (id, file_path, title, content_hash, sync_status,"
            " root_id, size_bytes, mtime_ns, chunk_count, embedding_model)"
            " VALUES (1, 'old/old.md', 'Old notes', 'h', 'synced', 1, ?, ?, 1, ?)",
            (info.st_size, info.st_mtime_ns, identity.model_id),
        )
        text = "The lighthouse keeper logs every passing ship."
        conn.execute(
            "INSERT INTO chunks_s1 (id, document_id, seq, heading, heading_path, start_line,"
            " end_line, text, text_hash, token_count) VALUES (1, 1, 0, 'Old notes', ?, 1, 3, ?,"
            " 'th', 10)",
            (json.dumps(["Old notes"]), text),
        )
        vector = embedder.vectors([text])[0]
        conn.execute(
            "INSERT INTO chunk_vectors_s1 (chunk_id, embedding, code) VALUES (1, ?, ?)",
            (vectors.encode(vector), binary_code(np.asarray(vector))),
        )
        conn.execute(
            "INSERT INTO space_documents (space_id, document_id, content_hash, chunk_count)"
            " VALUES (1, 1, 'h', 1)"
        )
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', '5'),"
            " ('embedding_model', ?), ('embedding_dim', ?)",
            (identity.model_id, str(identity.dim)),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    return path
