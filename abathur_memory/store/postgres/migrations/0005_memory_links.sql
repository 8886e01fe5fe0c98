-- 0005: memory that stays right (issue 15), as SQLite's 0009: validity beside system time,
-- redaction, links between memories, consolidation runs and their proposals. See that file
-- for what each column means.

ALTER TABLE memory_entries
    ADD COLUMN valid_from timestamptz,
    ADD COLUMN valid_to timestamptz,
    ADD COLUMN redacted_at timestamptz,
    ADD COLUMN redacted_by text;

CREATE INDEX idx_memory_valid_to ON memory_entries (valid_to) WHERE valid_to IS NOT NULL;
CREATE INDEX idx_memory_valid_from ON memory_entries (valid_from) WHERE valid_from IS NOT NULL;

CREATE TABLE memory_links (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    link_type text NOT NULL CHECK (link_type IN
        ('supersedes', 'contradicts', 'duplicates', 'derived_from', 'related')),
    from_namespace text COLLATE "C" NOT NULL,
    from_key text COLLATE "C" NOT NULL,
    from_version bigint NOT NULL,
    to_namespace text COLLATE "C",
    to_key text COLLATE "C",
    to_version bigint,
    to_session text COLLATE "C",
    seq_start bigint,
    seq_end bigint,
    holds_until timestamptz,
    reason text,
    metadata jsonb NOT NULL DEFAULT '{}',
    run_id text,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', statement_timestamp()),
    removed_at timestamptz,
    removed_by text,
    removed_run_id text,
    CHECK ((to_key IS NOT NULL AND to_namespace IS NOT NULL AND to_version IS NOT NULL
            AND to_session IS NULL)
           OR (to_session IS NOT NULL AND to_key IS NULL AND to_namespace IS NULL
               AND link_type = 'derived_from' AND seq_start IS NOT NULL
               AND seq_end >= seq_start))
);

CREATE INDEX idx_memory_links_from ON memory_links (from_namespace, from_key, link_type);
CREATE INDEX idx_memory_links_to ON memory_links (to_namespace, to_key, link_type);
CREATE INDEX idx_memory_links_run ON memory_links (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX idx_memory_links_session
    ON memory_links (to_session, seq_start) WHERE to_session IS NOT NULL;

CREATE TABLE consolidation_runs (
    id text COLLATE "C" PRIMARY KEY,
    prefix text COLLATE "C" NOT NULL,
    actor text NOT NULL,
    mode text NOT NULL CHECK (mode IN ('propose', 'apply', 'undo')),
    status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    started_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', statement_timestamp()),
    finished_at timestamptz,
    counts jsonb NOT NULL DEFAULT '{}',
    undoes text,
    undone_by text
);

CREATE INDEX idx_consolidation_runs_started ON consolidation_runs (started_at DESC);

CREATE TABLE consolidation_proposals (
    run_id text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    confidence double precision NOT NULL,
    proposal jsonb NOT NULL,
    applied jsonb,
    PRIMARY KEY (run_id, id)
);

CREATE INDEX idx_consolidation_proposals_id ON consolidation_proposals (id);
