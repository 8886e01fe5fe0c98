-- 0007: versioned tables per embedding space, a fresh memory keyword index, owners and
-- visibility for document roots, and bearer tokens for the HTTP transport.

-- How many of schema/space_tables.py's steps each space has had. Spaces made before this
-- column existed had the first step (chunks, full-text, vectors); the ensure step that runs
-- after the migrations brings them to the latest.
ALTER TABLE embedding_spaces ADD COLUMN ddl_version INTEGER NOT NULL DEFAULT 1;

-- Older releases could skip the first audit row when they built the memory keyword index
-- on an empty audit table; rebuild it once from the live memories (-1 = rebuild).
INSERT INTO meta (key, value) VALUES ('memory_index_audit_id', '-1')
    ON CONFLICT(key) DO UPDATE SET value = '-1';

-- A root belongs to the user who indexed it. visibility: 'private' (its owner only),
-- 'project' (principals of the root's project), 'all' (everyone). Roots indexed before
-- owners existed have none and stay visible to all, as they were; `roots --owner` fixes it.
ALTER TABLE doc_roots ADD COLUMN owner TEXT;
ALTER TABLE doc_roots ADD COLUMN project TEXT;
ALTER TABLE doc_roots ADD COLUMN visibility TEXT NOT NULL DEFAULT 'all'
    CHECK(visibility IN ('private', 'project', 'all'));

-- Bearer tokens for streamable HTTP. Only the SHA-256 of a token is stored; each names
-- the principal its requests act as.
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    app_name TEXT NOT NULL,
    project_id TEXT,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    revoked_at TIMESTAMP,
    CHECK(is_admin IN (0, 1)),
    CHECK(length(token_hash) = 64)
);
