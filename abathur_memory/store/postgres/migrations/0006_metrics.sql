-- 0006: every tool call and command measured (issue 16); SQLite's 0010 says what each
-- column holds.

ALTER TABLE metrics ADD COLUMN principal text;
ALTER TABLE metrics ADD COLUMN outcome text;
ALTER TABLE metrics ADD COLUMN rows_touched bigint;
ALTER TABLE metrics ADD COLUMN bucket integer;

CREATE INDEX idx_metrics_timestamp ON metrics ("timestamp");

CREATE TABLE metric_minutes (
    minute timestamptz NOT NULL,
    metric_name text NOT NULL,
    principal text NOT NULL,
    outcome text NOT NULL,
    bucket integer NOT NULL CHECK (bucket >= 0),
    calls bigint NOT NULL CHECK (calls > 0),
    total_ms double precision NOT NULL,
    max_ms double precision NOT NULL,
    rows_touched bigint NOT NULL,
    PRIMARY KEY (minute, metric_name, principal, outcome, bucket)
);

-- The console's audit page filters by principal (actor), action and denial, newest first.
CREATE INDEX idx_audit_actor ON audit (actor, id);
CREATE INDEX idx_audit_action ON audit (action_type, id);
CREATE INDEX idx_audit_result ON audit (result, id);
