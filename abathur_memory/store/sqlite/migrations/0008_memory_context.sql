-- 0008: memories read in the context of their neighbours (memory_search).
--
-- A memory that is part of a sequence (an episodic memory, or an utterance: a value naming
-- its speaker) is indexed with the words of its neighbours in a second keyword column,
-- ``context``, ranked lighter than its own words; its context vector (part -1 in the
-- memory_vectors_s<N> tables) is pooled from the window's vectors. memory_fts_keys records
-- where each key sits in its namespace (``position``: the id of its first version, so the
-- order in which keys were first stored), when its value says it happened (``moment``,
-- else when it was first stored), who said it (``speaker``, for utterances), the session,
-- conversation or thread its value names (``thread``: a window never crosses two), whether
-- it takes context, and its window (``window_ids``, entry ids)
-- with the signature its context vector must match.
--
-- Everything here is derived: the keyword index is rebuilt from the live memories by the
-- next catch-up (the cursor is set to -1).

DROP TABLE IF EXISTS memory_fts;

CREATE VIRTUAL TABLE memory_fts USING fts5(
    namespace UNINDEXED,
    key,
    text,
    context,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

DELETE FROM memory_fts_keys;
ALTER TABLE memory_fts_keys ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
ALTER TABLE memory_fts_keys ADD COLUMN moment TEXT;
ALTER TABLE memory_fts_keys ADD COLUMN contextual INTEGER NOT NULL DEFAULT 0;
ALTER TABLE memory_fts_keys ADD COLUMN speaker TEXT;
ALTER TABLE memory_fts_keys ADD COLUMN thread TEXT;
ALTER TABLE memory_fts_keys ADD COLUMN window_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE memory_fts_keys ADD COLUMN window_signature TEXT;

CREATE INDEX IF NOT EXISTS idx_memory_fts_keys_position ON memory_fts_keys(namespace, position);

INSERT INTO meta (key, value) VALUES ('memory_index_audit_id', '-1')
    ON CONFLICT(key) DO UPDATE SET value = '-1';
