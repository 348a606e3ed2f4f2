-- Every committed version, refusal and give-up of a workflow (see the PostgreSQL migration).
CREATE TABLE IF NOT EXISTS workflow_history (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace      TEXT    NOT NULL,
    workflow_key   TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    workflow_type  TEXT    NOT NULL,
    action_id      TEXT    NOT NULL,
    action_type    TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    state          TEXT,
    payload        TEXT,
    intents        TEXT    NOT NULL DEFAULT '[]',
    reason         TEXT,
    result_hash    TEXT    NOT NULL,
    actor          TEXT    NOT NULL,
    recorded_at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_workflow_history_key ON workflow_history (namespace, workflow_key, version, seq);
CREATE INDEX IF NOT EXISTS idx_workflow_history_recorded_at ON workflow_history (recorded_at);

-- Listing workflows (SQLite compares text bytewise, so a key prefix is a range).
CREATE INDEX IF NOT EXISTS idx_workflow_state_type ON workflow_state (namespace, workflow_type, workflow_key);
CREATE INDEX IF NOT EXISTS idx_workflow_state_updated ON workflow_state (namespace, updated_at, workflow_key);
CREATE INDEX IF NOT EXISTS idx_workflow_state_status ON workflow_state (namespace, json_extract(state, '$.status'), workflow_key);

-- A dead letter replayed by an operator keeps its record, marked with when.
ALTER TABLE dead_letters ADD COLUMN replayed_at INTEGER;

-- Give-ups an operator may retry, newest first.
CREATE INDEX IF NOT EXISTS idx_workflow_history_gave_up ON workflow_history (seq) WHERE status = 'GAVE_UP';
