-- 0009: memory that stays right (issue 15).
--
-- * Validity beside system time: ``valid_from`` / ``valid_to`` say when a version's fact
--   holds in the world (created_at says when the store learned it). ``valid_from``, when
--   given, is also the memory's moment for search filters and boosts.
-- * Redaction: a redacted version keeps its row (who wrote it, when) with its value erased
--   (JSON null), and says who redacted it when.
-- * memory_links: typed, directed links between memories (or from a memory to the events of
--   a session it was promoted from), with who, when, why and the consolidation run that
--   made them. Links are never memories and never searchable text. Unlinking stamps
--   ``removed_at``: nothing is deleted. A ``supersedes`` link closes the older memory's
--   validity at ``holds_until`` (the newer memory's valid_from, else when it was linked),
--   for the versions up to ``to_version``; a ``duplicates`` link hides its ``from`` side
--   up to ``from_version``.
-- * consolidation_runs and consolidation_proposals: what each run proposed, what it applied
--   (link ids and versions written, so that an undo knows what to take back).

ALTER TABLE memory_entries ADD COLUMN valid_from TIMESTAMP;
ALTER TABLE memory_entries ADD COLUMN valid_to TIMESTAMP;
ALTER TABLE memory_entries ADD COLUMN redacted_at TIMESTAMP;
ALTER TABLE memory_entries ADD COLUMN redacted_by TEXT;

CREATE INDEX IF NOT EXISTS idx_memory_valid_to
    ON memory_entries(valid_to) WHERE valid_to IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_memory_valid_from
    ON memory_entries(valid_from) WHERE valid_from IS NOT NULL;

CREATE TABLE IF NOT EXISTS memory_links (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    link_type TEXT NOT NULL,
    from_namespace TEXT NOT NULL,
    from_key TEXT NOT NULL,
    from_version INTEGER NOT NULL,
    to_namespace TEXT,
    to_key TEXT,
    to_version INTEGER,
    to_session TEXT,
    seq_start INTEGER,
    seq_end INTEGER,
    holds_until TIMESTAMP,
    reason TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    run_id TEXT,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    removed_at TIMESTAMP,
    removed_by TEXT,
    removed_run_id TEXT,
    CHECK(link_type IN ('supersedes', 'contradicts', 'duplicates', 'derived_from', 'related')),
    CHECK((to_key IS NOT NULL AND to_namespace IS NOT NULL AND to_version IS NOT NULL
           AND to_session IS NULL)
          OR (to_session IS NOT NULL AND to_key IS NULL AND to_namespace IS NULL
              AND link_type = 'derived_from' AND seq_start IS NOT NULL
              AND seq_end >= seq_start)),
    CHECK(json_valid(metadata))
);

-- Searches and listings ask, per candidate, whether a link hides it: by its address and
-- the link type (store/sqlite/readable.py).
CREATE INDEX IF NOT EXISTS idx_memory_links_from
    ON memory_links(from_namespace, from_key, link_type);
CREATE INDEX IF NOT EXISTS idx_memory_links_to ON memory_links(to_namespace, to_key, link_type);
CREATE INDEX IF NOT EXISTS idx_memory_links_run ON memory_links(run_id) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_memory_links_session
    ON memory_links(to_session, seq_start) WHERE to_session IS NOT NULL;

CREATE TABLE IF NOT EXISTS consolidation_runs (
    id TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    actor TEXT NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    started_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    finished_at TIMESTAMP,
    counts TEXT NOT NULL DEFAULT '{}',
    undoes TEXT,
    undone_by TEXT,
    CHECK(mode IN ('propose', 'apply', 'undo')),
    CHECK(status IN ('running', 'done', 'failed')),
    CHECK(json_valid(counts))
);

CREATE INDEX IF NOT EXISTS idx_consolidation_runs_started ON consolidation_runs(started_at DESC);

CREATE TABLE IF NOT EXISTS consolidation_proposals (
    run_id TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    confidence REAL NOT NULL,
    proposal TEXT NOT NULL,
    applied TEXT,
    PRIMARY KEY (run_id, id),
    CHECK(json_valid(proposal)),
    CHECK(applied IS NULL OR json_valid(applied))
);

CREATE INDEX IF NOT EXISTS idx_consolidation_proposals_id ON consolidation_proposals(id);
