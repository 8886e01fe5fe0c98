-- 0006: keyword index over the live memories (memory_search).
--
-- One row per key: the latest live version, rowid = its memory_entries.id. The memory
-- service keeps it in step in the same transaction as every put, delete and restore.
-- Vectors for memories live in per-space tables (memory_vectors_s<N>) beside the chunks.

CREATE VIRTUAL TABLE IF NOT EXISTS memory_fts USING fts5(
    namespace UNINDEXED,
    key,
    text,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

INSERT INTO memory_fts (rowid, namespace, key, text)
SELECT m.id, m.namespace, m.key, m.value FROM memory_entries AS m
WHERE m.is_deleted = 0
  AND m.version = (SELECT MAX(v.version) FROM memory_entries AS v
                   WHERE v.namespace = m.namespace AND v.key = m.key);
