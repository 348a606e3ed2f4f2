-- Actions queued by PublishAction: durable once the publish is answered; a row is deleted
-- in the transaction that records its completion.
CREATE TABLE IF NOT EXISTS action_queue (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_key TEXT    NOT NULL,
    action       BLOB    NOT NULL,
    headers      TEXT    NOT NULL DEFAULT '{}',
    enqueued_at  INTEGER NOT NULL
);

-- Completions are kept per action (see the PostgreSQL migration).
CREATE TABLE action_completions_by_action (
    correlation_id   TEXT    NOT NULL,
    action_id        TEXT    NOT NULL,
    workflow_key     TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    result_hash      TEXT    NOT NULL,
    rejection_reason TEXT,
    completed_at     INTEGER NOT NULL,
    PRIMARY KEY (correlation_id, action_id)
);
INSERT OR IGNORE INTO action_completions_by_action
    SELECT correlation_id, action_id, workflow_key, status, version, result_hash, rejection_reason, completed_at
      FROM action_completions;
DROP TABLE action_completions;
ALTER TABLE action_completions_by_action RENAME TO action_completions;
CREATE INDEX IF NOT EXISTS idx_action_completions_completed_at ON action_completions (completed_at);

-- Events the pipeline could not apply, kept for the operator (see the PostgreSQL migration).
CREATE TABLE IF NOT EXISTS dead_letters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source       TEXT    NOT NULL UNIQUE,
    workflow_key TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    event_type   TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    error        TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);

-- The relay and pipeline read unpublished rows; retention deletes published ones by age.
CREATE INDEX IF NOT EXISTS idx_event_outbox_unpublished ON event_outbox (id) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_event_outbox_published_at ON event_outbox (published_at)
    WHERE published_at IS NOT NULL;
