-- Runs once, when the postgres container initialises an empty data volume.
-- The runbook's slow-query diagnosis reads pg_stat_statements; the library itself is preloaded
-- by the `command:` in compose.yaml.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
