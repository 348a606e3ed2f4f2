-- Outcomes of actions queued through the event bus, looked up by correlation id so a
-- waiter on any replica finds the outcome whether it arrived before or after the wait.
CREATE TABLE IF NOT EXISTS action_completions (
    correlation_id   text        PRIMARY KEY,
    action_id        uuid        NOT NULL,
    workflow_key     text        NOT NULL,
    status           text        NOT NULL,
    version          bigint      NOT NULL,
    result_hash      text        NOT NULL,
    rejection_reason text,
    completed_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_action_completions_completed_at ON action_completions (completed_at);
