-- 0010: every tool call and command measured (issue 16).
--
-- `metrics` (the seed's table) holds one row per call, written in batches off the request
-- path: metric_name is what ran ('memory_get', 'cli:index', 'ui:memories'), metric_value its
-- latency in milliseconds; the new columns say for whom (principal: an actor such as
-- 'user:alice'), how it ended (outcome: 'ok' or the error kind), how many rows it touched,
-- and the latency bucket of core/metrics.py. Rows older than the configured raw window are
-- rolled up into `metric_minutes` (calls per minute, tool, principal, outcome and bucket) by
-- the maintenance worker, which also prunes minutes past the retention.

ALTER TABLE metrics ADD COLUMN principal TEXT;
ALTER TABLE metrics ADD COLUMN outcome TEXT;
ALTER TABLE metrics ADD COLUMN rows_touched INTEGER;
ALTER TABLE metrics ADD COLUMN bucket INTEGER;

CREATE INDEX IF NOT EXISTS idx_metrics_timestamp ON metrics(timestamp);

CREATE TABLE IF NOT EXISTS metric_minutes (
    minute TIMESTAMP NOT NULL,
    metric_name TEXT NOT NULL,
    principal TEXT NOT NULL,
    outcome TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    total_ms REAL NOT NULL,
    max_ms REAL NOT NULL,
    rows_touched INTEGER NOT NULL,
    PRIMARY KEY (minute, metric_name, principal, outcome, bucket),
    CHECK(calls > 0),
    CHECK(bucket >= 0)
) WITHOUT ROWID;

-- The console's audit page filters by principal (actor), action and denial, newest first.
CREATE INDEX IF NOT EXISTS idx_audit_actor ON audit(actor, id);
CREATE INDEX IF NOT EXISTS idx_audit_action ON audit(action_type, id);
CREATE INDEX IF NOT EXISTS idx_audit_result ON audit(result, id);
