-- 0005: document roots, per-file scan state and work leases, embedding spaces.
--
-- A document is shown as '<root name>/<path within the root>'; document_index.file_path
-- holds exactly that, so it stays unique across roots.
-- Chunks, their full-text index and their vectors live in per-space tables
-- (chunks_s<N>, chunks_fts_s<N>, chunk_vectors_s<N>) created by the indexer when a space
-- is created, because their shape depends on the model (vector dimension).

CREATE TABLE IF NOT EXISTS doc_roots (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL UNIQUE,
    excludes TEXT NOT NULL DEFAULT '[]',
    added_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    last_scan_at TIMESTAMP,
    CHECK(json_valid(excludes)),
    CHECK(length(name) > 0 AND instr(name, '/') = 0)
);

ALTER TABLE document_index ADD COLUMN root_id INTEGER REFERENCES doc_roots(id) ON DELETE CASCADE;
ALTER TABLE document_index ADD COLUMN size_bytes INTEGER;
ALTER TABLE document_index ADD COLUMN mtime_ns INTEGER;
ALTER TABLE document_index ADD COLUMN tags TEXT;
ALTER TABLE document_index ADD COLUMN lease_owner TEXT;
ALTER TABLE document_index ADD COLUMN lease_until TIMESTAMP;
ALTER TABLE document_index ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE document_index ADD COLUMN next_attempt_at TIMESTAMP;

CREATE INDEX IF NOT EXISTS idx_document_root ON document_index(root_id, file_path);

CREATE TABLE IF NOT EXISTS embedding_spaces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity TEXT NOT NULL UNIQUE,
    model_id TEXT NOT NULL,
    dim INTEGER NOT NULL,
    status TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    activated_at TIMESTAMP,
    CHECK(json_valid(identity)),
    CHECK(dim > 0),
    CHECK(status IN ('building', 'active', 'retired'))
);

-- At most one active and one building space.
CREATE UNIQUE INDEX IF NOT EXISTS idx_embedding_spaces_active
    ON embedding_spaces(status) WHERE status = 'active';
CREATE UNIQUE INDEX IF NOT EXISTS idx_embedding_spaces_building
    ON embedding_spaces(status) WHERE status = 'building';

-- Which content of each document a space holds chunks for.
CREATE TABLE IF NOT EXISTS space_documents (
    space_id INTEGER NOT NULL,
    document_id INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    indexed_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    PRIMARY KEY (space_id, document_id),
    FOREIGN KEY (space_id) REFERENCES embedding_spaces(id) ON DELETE CASCADE,
    FOREIGN KEY (document_id) REFERENCES document_index(id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS idx_space_documents_document ON space_documents(document_id);

-- Processes that index or watch, so index_status can show a dead or lagging watcher.
CREATE TABLE IF NOT EXISTS indexer_heartbeats (
    owner TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    roots TEXT NOT NULL DEFAULT '[]',
    started_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    beat_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    last_event_at TIMESTAMP,
    last_indexed_at TIMESTAMP,
    CHECK(json_valid(roots)),
    CHECK(kind IN ('watcher', 'indexer', 'server'))
);
