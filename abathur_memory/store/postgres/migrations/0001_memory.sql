-- 0001: the memory side. Versioned memories with their audit rows, sessions and their event
-- log, tasks and checkpoints, bearer tokens; the seeded application memories (SQLite's 0003).
--
-- SQLite's tables, columns and indexes (its migrations 0001-0004 and 0007) in PostgreSQL's
-- form, with these differences, each for a reason:
-- * JSON is jsonb; times are timestamptz at millisecond precision (what SQLite stores), set
--   from the time the statement started.
-- * Text that is sorted or compared as a range (namespaces, keys, ids) is COLLATE "C": bytes,
--   like SQLite's BINARY, so listings and cursors order the same on both backends whatever
--   the database's locale.
-- * row_id (an identity) breaks ties between rows stamped in the same millisecond, as
--   SQLite's rowid does in its cursors and "oldest first" orders.
-- * Columns and tables nothing on the memory side reads (sessions.events, agents, state,
--   metrics) are left out; so is audit's foreign key to memory_entries: entries are never
--   deleted (deletes are soft), and the check would cost put_many a row lock per version.
-- * A live token name is unique by a partial index, so two servers cannot both create it.

CREATE TABLE sessions (
    id text COLLATE "C" PRIMARY KEY,
    app_name text COLLATE "C" NOT NULL,
    user_id text COLLATE "C" NOT NULL,
    project_id text COLLATE "C",
    status text NOT NULL DEFAULT 'created'
        CHECK (status IN ('created', 'active', 'paused', 'terminated', 'archived')),
    state jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(state) = 'object'),
    metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    last_seq bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', statement_timestamp()),
    last_update_time timestamptz NOT NULL
        DEFAULT date_trunc('milliseconds', statement_timestamp()),
    terminated_at timestamptz,
    archived_at timestamptz,
    row_id bigint GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE session_events (
    session_id text COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq bigint NOT NULL CHECK (seq > 0),
    event_type text NOT NULL,
    actor text NOT NULL,
    content jsonb NOT NULL,
    state_delta jsonb,
    created_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', statement_timestamp()),
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE memory_entries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    value jsonb NOT NULL,
    memory_type text NOT NULL CHECK (memory_type IN ('semantic', 'episodic', 'procedural')),
    version bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    is_deleted boolean NOT NULL DEFAULT false,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_by text,
    updated_by text,
    created_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', statement_timestamp()),
    updated_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', statement_timestamp()),
    -- Compare-and-set's last line: two writers can never both add version n + 1.
    CONSTRAINT memory_entries_version_key UNIQUE (namespace, key, version)
);

CREATE TABLE tasks (
    id text COLLATE "C" PRIMARY KEY,
    prompt text NOT NULL,
    agent_type text NOT NULL DEFAULT 'general',
    priority integer NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 10),
    status text NOT NULL CHECK (status IN
        ('pending', 'blocked', 'ready', 'running', 'completed', 'failed', 'cancelled')),
    input_data jsonb NOT NULL,
    result_data jsonb,
    error_message text,
    retry_count integer NOT NULL DEFAULT 0,
    max_retries integer NOT NULL DEFAULT 3,
    max_execution_timeout_seconds integer NOT NULL DEFAULT 3600
        CHECK (max_execution_timeout_seconds > 0),
    submitted_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', statement_timestamp()),
    started_at timestamptz,
    completed_at timestamptz,
    last_updated_at timestamptz NOT NULL
        DEFAULT date_trunc('milliseconds', statement_timestamp()),
    created_by text COLLATE "C",
    parent_task_id text COLLATE "C" REFERENCES tasks (id),
    dependencies jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(dependencies) = 'array'),
    session_id text COLLATE "C" REFERENCES sessions (id) ON DELETE SET NULL,
    claimed_by text,
    row_id bigint GENERATED ALWAYS AS IDENTITY,
    CHECK (retry_count >= 0 AND max_retries >= 0)
);

CREATE TABLE checkpoints (
    task_id text COLLATE "C" NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    iteration bigint NOT NULL CHECK (iteration >= 0),
    state jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    session_id text COLLATE "C" REFERENCES sessions (id) ON DELETE SET NULL,
    PRIMARY KEY (task_id, iteration)
);

CREATE TABLE audit (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "timestamp" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', statement_timestamp()),
    agent_id text,
    task_id text,
    action_type text NOT NULL,
    action_data jsonb,
    result text,
    memory_operation_type text CHECK (memory_operation_type IS NULL
        OR memory_operation_type IN ('create', 'update', 'delete', 'consolidate', 'publish')),
    memory_namespace text COLLATE "C",
    memory_entry_id bigint,
    actor text
);

CREATE TABLE api_tokens (
    id text COLLATE "C" PRIMARY KEY,
    name text COLLATE "C" NOT NULL,
    token_hash text NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    user_id text NOT NULL,
    app_name text NOT NULL,
    project_id text,
    is_admin boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', statement_timestamp()),
    revoked_at timestamptz,
    row_id bigint GENERATED ALWAYS AS IDENTITY
);

CREATE UNIQUE INDEX idx_api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- Indexes: SQLite's (0002, 0004), with row_id where a cursor or an "oldest first" order
-- needs the tie-break. The primary keys and unique constraints stand for SQLite's *_pk
-- indexes, for idx_memory_namespace_key_version (the latest version of a key is the end of
-- its range in memory_entries_version_key) and for idx_checkpoints_task.

CREATE INDEX idx_sessions_status_updated
    ON sessions (status, last_update_time DESC) WHERE status IN ('active', 'paused');
CREATE INDEX idx_sessions_user_created ON sessions (user_id, created_at DESC, row_id DESC);
CREATE INDEX idx_sessions_project
    ON sessions (project_id, created_at DESC, row_id DESC) WHERE project_id IS NOT NULL;
CREATE INDEX idx_sessions_user_status_created
    ON sessions (user_id, status, created_at DESC, row_id DESC);
CREATE INDEX idx_sessions_created ON sessions (created_at DESC, row_id DESC);
CREATE INDEX idx_sessions_terminated
    ON sessions (terminated_at, row_id) WHERE status = 'terminated';

CREATE INDEX idx_memory_type_updated
    ON memory_entries (memory_type, updated_at DESC) WHERE NOT is_deleted;
CREATE INDEX idx_memory_namespace_prefix
    ON memory_entries (namespace, updated_at DESC) WHERE NOT is_deleted;
CREATE INDEX idx_memory_episodic_ttl
    ON memory_entries (updated_at) WHERE memory_type = 'episodic' AND NOT is_deleted;
CREATE INDEX idx_memory_created_by ON memory_entries (created_by, created_at DESC);

CREATE INDEX idx_tasks_status_priority
    ON tasks (status, priority DESC, submitted_at ASC, row_id ASC);
CREATE INDEX idx_tasks_submitted_at ON tasks (submitted_at DESC, row_id DESC);
CREATE INDEX idx_tasks_created_by ON tasks (created_by, submitted_at DESC, row_id DESC);
CREATE INDEX idx_tasks_parent ON tasks (parent_task_id) WHERE parent_task_id IS NOT NULL;
CREATE INDEX idx_tasks_running_timeout ON tasks (last_updated_at) WHERE status = 'running';
CREATE INDEX idx_tasks_session
    ON tasks (session_id, submitted_at DESC, row_id DESC) WHERE session_id IS NOT NULL;
-- SQLite reads inside this JSON (a claim waits for every dependency); the GIN index answers
-- the reverse question, which tasks wait for a given one (dependencies @> '["<id>"]').
CREATE INDEX idx_tasks_dependencies ON tasks USING gin (dependencies jsonb_path_ops)
    WHERE dependencies <> '[]';

CREATE INDEX idx_audit_task ON audit (task_id, "timestamp" DESC) WHERE task_id IS NOT NULL;
CREATE INDEX idx_audit_agent ON audit (agent_id, "timestamp" DESC) WHERE agent_id IS NOT NULL;
CREATE INDEX idx_audit_timestamp ON audit ("timestamp" DESC);
CREATE INDEX idx_audit_memory_operations ON audit (memory_operation_type, "timestamp" DESC)
    WHERE memory_operation_type IS NOT NULL;
CREATE INDEX idx_audit_memory_namespace ON audit (memory_namespace, "timestamp" DESC)
    WHERE memory_namespace IS NOT NULL;
CREATE INDEX idx_audit_memory_entry ON audit (memory_entry_id, "timestamp" DESC)
    WHERE memory_entry_id IS NOT NULL;

-- Seed 000 §3.1: the application memories (SQLite's 0003).
INSERT INTO memory_entries (namespace, key, value, memory_type, created_by, updated_by) VALUES
    ('app:abathur:agent_instructions', 'default_workflow',
     '{"steps": ["Read and analyze task requirements", "Retrieve relevant context from memory", "Execute task with best practices", "Update session state and memory", "Log audit trail"], "error_handling": "Always provide detailed error messages", "logging": "Comprehensive audit logging enabled"}',
     'procedural', 'system', 'system'),
    ('app:abathur:defaults', 'user_preference_template',
     '{"communication_style": "balanced", "technical_level": "intermediate", "response_length": "moderate", "code_comments": true}',
     'semantic', 'system', 'system'),
    ('app:abathur:config', 'memory_lifecycle_policies',
     '{"episodic_ttl_days": 90, "consolidation_frequency": "weekly", "archival_after_days": 365}',
     'procedural', 'system', 'system');
