-- 0007: the vectors consolidation compares (issue 15), kept between runs; SQLite's 0011
-- says why and when a row goes.

CREATE TABLE consolidation_vectors (
    entry_id bigint NOT NULL,
    model text NOT NULL,
    embedding bytea NOT NULL,
    PRIMARY KEY (entry_id, model)
);
