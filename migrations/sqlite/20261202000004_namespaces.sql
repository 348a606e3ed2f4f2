-- A workflow is identified by (namespace, workflow_key) everywhere (see the PostgreSQL
-- migration). SQLite cannot change a primary key in place, so the keyed tables are rebuilt.
CREATE TABLE workflow_state_ns (
    workflow_key  TEXT    NOT NULL,
    version       INTEGER NOT NULL CHECK (version >= 1),
    state         TEXT    NOT NULL,
    workflow_type TEXT    NOT NULL,
    namespace     TEXT    NOT NULL DEFAULT 'default',
    provenance    TEXT    NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (namespace, workflow_key)
);
INSERT INTO workflow_state_ns
    SELECT workflow_key, version, state, workflow_type, namespace, provenance, created_at, updated_at
      FROM workflow_state;
DROP TABLE workflow_state;
ALTER TABLE workflow_state_ns RENAME TO workflow_state;

CREATE TABLE action_dedup_log_ns (
    namespace    TEXT    NOT NULL DEFAULT 'default',
    workflow_key TEXT    NOT NULL,
    action_id    TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    result_hash  TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    status       TEXT    NOT NULL,
    outcome      TEXT    NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (namespace, workflow_key, action_id)
);
INSERT INTO action_dedup_log_ns
    SELECT COALESCE((SELECT s.namespace FROM workflow_state s WHERE s.workflow_key = d.workflow_key), 'default'),
           d.workflow_key, d.action_id, d.request_hash, d.result_hash, d.version, d.status, d.outcome,
           d.created_at, d.expires_at
      FROM action_dedup_log d;
DROP TABLE action_dedup_log;
ALTER TABLE action_dedup_log_ns RENAME TO action_dedup_log;
CREATE INDEX IF NOT EXISTS idx_action_dedup_log_expires_at ON action_dedup_log (expires_at);

ALTER TABLE event_outbox ADD COLUMN namespace TEXT NOT NULL DEFAULT 'default';
UPDATE event_outbox SET namespace = COALESCE(
    (SELECT s.namespace FROM workflow_state s WHERE s.workflow_key = event_outbox.workflow_key), 'default');

CREATE TABLE workflow_projection_ns (
    workflow_key TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    tag          TEXT,
    last_action  TEXT,
    namespace    TEXT    NOT NULL DEFAULT 'default',
    updated_at   INTEGER NOT NULL,
    indices      TEXT    NOT NULL DEFAULT '{}',
    extras       TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (namespace, workflow_key)
);
INSERT INTO workflow_projection_ns
    SELECT workflow_key, version, tag, last_action, namespace, updated_at, indices, extras FROM workflow_projection;
DROP TABLE workflow_projection;
ALTER TABLE workflow_projection_ns RENAME TO workflow_projection;

CREATE TABLE action_completions_ns (
    namespace        TEXT    NOT NULL DEFAULT 'default',
    correlation_id   TEXT    NOT NULL,
    action_id        TEXT    NOT NULL,
    workflow_key     TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    result_hash      TEXT    NOT NULL,
    rejection_reason TEXT,
    completed_at     INTEGER NOT NULL,
    PRIMARY KEY (namespace, correlation_id, action_id)
);
INSERT INTO action_completions_ns
    SELECT COALESCE((SELECT s.namespace FROM workflow_state s WHERE s.workflow_key = c.workflow_key), 'default'),
           c.correlation_id, c.action_id, c.workflow_key, c.status, c.version, c.result_hash,
           c.rejection_reason, c.completed_at
      FROM action_completions c;
DROP TABLE action_completions;
ALTER TABLE action_completions_ns RENAME TO action_completions;
CREATE INDEX IF NOT EXISTS idx_action_completions_completed_at ON action_completions (completed_at);

ALTER TABLE action_queue ADD COLUMN namespace TEXT NOT NULL DEFAULT 'default';
UPDATE action_queue SET namespace = COALESCE(
    (SELECT s.namespace FROM workflow_state s WHERE s.workflow_key = action_queue.workflow_key), 'default');

ALTER TABLE dead_letters ADD COLUMN namespace TEXT NOT NULL DEFAULT 'default';
UPDATE dead_letters SET namespace = COALESCE(
    (SELECT s.namespace FROM workflow_state s WHERE s.workflow_key = dead_letters.workflow_key), 'default');
