-- Every committed version, refusal and give-up of a workflow, written in the transaction
-- that decided it. Entries of one version (a commit and the refusals seen at it) are ordered
-- by seq. Pruned by `history.keep_versions` and `history.max_age`.
CREATE TABLE IF NOT EXISTS workflow_history (
    seq            bigserial   PRIMARY KEY,
    namespace      text        NOT NULL,
    workflow_key   text        NOT NULL,
    version        bigint      NOT NULL,
    workflow_type  text        NOT NULL,
    action_id      text        NOT NULL,
    action_type    text        NOT NULL,
    correlation_id text        NOT NULL,
    status         text        NOT NULL,
    state          jsonb,
    payload        jsonb,
    intents        jsonb       NOT NULL DEFAULT '[]',
    reason         text,
    result_hash    text        NOT NULL,
    actor          text        NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_workflow_history_key ON workflow_history (namespace, workflow_key, version, seq);
CREATE INDEX IF NOT EXISTS idx_workflow_history_recorded_at ON workflow_history (recorded_at);

-- Listing workflows: by key (byte order, so a key prefix is a range), by type, by last commit.
CREATE INDEX IF NOT EXISTS idx_workflow_state_key_c ON workflow_state (namespace, (workflow_key COLLATE "C"));
CREATE INDEX IF NOT EXISTS idx_workflow_state_type ON workflow_state (namespace, workflow_type, (workflow_key COLLATE "C"));
CREATE INDEX IF NOT EXISTS idx_workflow_state_updated ON workflow_state (namespace, updated_at, (workflow_key COLLATE "C"));
CREATE INDEX IF NOT EXISTS idx_workflow_state_status ON workflow_state (namespace, (state->>'status'), (workflow_key COLLATE "C"));

-- A dead letter replayed by an operator keeps its record, marked with when.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS replayed_at timestamptz;

-- Give-ups an operator may retry, newest first.
CREATE INDEX IF NOT EXISTS idx_workflow_history_gave_up ON workflow_history (seq) WHERE status = 'GAVE_UP';
