-- PLACEHOLDER, delete at merge: version 5 belongs to issue 15 (links, validity,
-- consolidation), built on another branch. The runner wants versions 1..n without gaps, so
-- this branch (issue 16) holds the number with a no-op until that migration arrives; its
-- own migration is 0006_metrics.sql.
SELECT 1;
