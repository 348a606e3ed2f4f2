CREATE TABLE IF NOT EXISTS action_completions (
    correlation_id   TEXT    PRIMARY KEY,
    action_id        TEXT    NOT NULL,
    workflow_key     TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    result_hash      TEXT    NOT NULL,
    rejection_reason TEXT,
    completed_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_action_completions_completed_at ON action_completions (completed_at);
