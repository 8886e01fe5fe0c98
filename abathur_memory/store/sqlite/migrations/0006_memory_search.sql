-- 0006: keyword index over the live memories, for memory_search.
--
-- memory_fts holds one row per key: its latest live version (rowid = that version's id),
-- as flattened text. memory_fts_keys says which row each key has. Both are brought up to
-- date from the audit table (every memory change writes an audit row in its own
-- transaction), so puts stay cheap; memory_search catches up before it searches.
-- Vectors for memories live in per-space tables (memory_vectors_s<N>) beside the chunks.

CREATE VIRTUAL TABLE IF NOT EXISTS memory_fts USING fts5(
    namespace UNINDEXED,
    key,
    text,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TABLE IF NOT EXISTS memory_fts_keys (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    entry_id INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS idx_memory_fts_keys_entry ON memory_fts_keys(entry_id);

-- Existing memories are picked up from the audit trail's start: mark nothing as done yet.
INSERT INTO meta (key, value) VALUES ('memory_index_audit_id', '0')
    ON CONFLICT(key) DO NOTHING;
