-- 0004: memories read in the context of their neighbours (memory_search), as in SQLite's
-- 0008. A memory that is part of a sequence (an episodic memory, or an utterance: a value
-- naming its speaker) carries the words of its neighbours in ``context`` (weight C in the
-- tsvector, ranked lighter than its own words), and a context vector (part -1 in the
-- memory_vectors_s<N> tables) pooled from the window's vectors. ``position`` is the id of
-- the key's first version (the order keys were first stored in), ``moment`` when its value
-- says it happened (else when it was first stored), ``speaker`` who said it (utterances),
-- ``thread`` the session, conversation or thread its value names (a window never crosses two),
-- ``window_ids`` the window's entry ids and
-- ``window_signature`` what its context vector must have been pooled from.
--
-- Derived data: the index is rebuilt from the live memories by the next catch-up.

DELETE FROM memory_search_index;
DROP INDEX IF EXISTS idx_memory_search_tsv;
ALTER TABLE memory_search_index DROP COLUMN tsv;
ALTER TABLE memory_search_index
    ADD COLUMN position bigint NOT NULL DEFAULT 0,
    ADD COLUMN moment timestamptz,
    ADD COLUMN contextual boolean NOT NULL DEFAULT false,
    ADD COLUMN speaker text,
    ADD COLUMN thread text,
    ADD COLUMN context text NOT NULL DEFAULT '',
    ADD COLUMN window_ids bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN window_signature text;
ALTER TABLE memory_search_index ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', key), 'A')
    || setweight(to_tsvector('english', text), 'B')
    || setweight(to_tsvector('english', context), 'C')
) STORED;
CREATE INDEX idx_memory_search_tsv ON memory_search_index USING gin (tsv);
CREATE INDEX idx_memory_search_position ON memory_search_index (namespace, position);

INSERT INTO meta (key, value) VALUES ('memory_index_snapshot', 'rebuild')
    ON CONFLICT (key) DO UPDATE SET value = 'rebuild';
