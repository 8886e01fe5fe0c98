-- 0011: the vectors consolidation compares (issue 15), kept between runs.
--
-- Consolidation compares what memories say, so it embeds each memory's text alone (the
-- search index embeds the key with it, which would make "home" and "home_v2" alike for
-- their keys). One row per memory version (`entry_id`) and model (`model`: the embedding
-- identity's key); a version's text never changes, so a row stays right until the version
-- is superseded, deleted, redacted or erased: redaction and erasure delete it at once, a
-- run forgets the rows of versions no longer live. Derived: never copied by migrate,
-- backup salvage or export; a missing row is embedded again.

CREATE TABLE IF NOT EXISTS consolidation_vectors (
    entry_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    embedding BLOB NOT NULL,
    PRIMARY KEY (entry_id, model)
) WITHOUT ROWID;
