-- PLACEHOLDER, delete at merge: version 9 belongs to issue 15 (links, validity,
-- consolidation), built on another branch. The runner wants versions 1..n without gaps, so
-- this branch (issue 16) holds the number with a no-op until that migration arrives; its
-- own migration is 0010_metrics.sql.
SELECT 1;
