-- 0004: append-only session events, task claims, agent heartbeats.
--
-- Appending an event inserts one row and bumps sessions.last_seq, so it costs the same for
-- the 10th and the 100,000th event (the seed's sessions.events JSON array stays '[]').

ALTER TABLE sessions ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS session_events (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    actor TEXT NOT NULL,
    content TEXT NOT NULL,
    state_delta TEXT,
    created_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    UNIQUE (session_id, seq),
    CHECK(seq > 0),
    CHECK(json_valid(content)),
    CHECK(state_delta IS NULL OR json_valid(state_delta)),
    FOREIGN KEY (session_id) REFERENCES sessions(id) ON DELETE CASCADE
);

ALTER TABLE tasks ADD COLUMN claimed_by TEXT;

ALTER TABLE agents ADD COLUMN last_heartbeat_at TIMESTAMP;

-- Sessions listed by user, newest first, for a given status (the partial index above covers
-- only active/paused).
CREATE INDEX IF NOT EXISTS idx_sessions_user_status_created
    ON sessions(user_id, status, created_at DESC);
