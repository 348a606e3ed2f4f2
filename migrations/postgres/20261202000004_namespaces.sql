-- A workflow is identified by (namespace, workflow_key) everywhere: the same key in two
-- namespaces is two workflows. Rows written before this migration take the namespace of
-- their workflow (workflow keys were unique across namespaces until now), else 'default'.
ALTER TABLE workflow_state DROP CONSTRAINT IF EXISTS workflow_state_pkey;
ALTER TABLE workflow_state ADD CONSTRAINT workflow_state_pkey PRIMARY KEY (namespace, workflow_key);

ALTER TABLE action_dedup_log ADD COLUMN IF NOT EXISTS namespace text NOT NULL DEFAULT 'default';
UPDATE action_dedup_log AS d SET namespace = s.namespace
  FROM workflow_state AS s WHERE s.workflow_key = d.workflow_key AND s.namespace <> 'default';
ALTER TABLE action_dedup_log DROP CONSTRAINT IF EXISTS action_dedup_log_pkey;
ALTER TABLE action_dedup_log ADD CONSTRAINT action_dedup_log_pkey PRIMARY KEY (namespace, workflow_key, action_id);

ALTER TABLE event_outbox ADD COLUMN IF NOT EXISTS namespace text NOT NULL DEFAULT 'default';
UPDATE event_outbox AS e SET namespace = s.namespace
  FROM workflow_state AS s WHERE s.workflow_key = e.workflow_key AND s.namespace <> 'default';

ALTER TABLE workflow_projection DROP CONSTRAINT IF EXISTS workflow_projection_pkey;
ALTER TABLE workflow_projection ADD CONSTRAINT workflow_projection_pkey PRIMARY KEY (namespace, workflow_key);

ALTER TABLE action_completions ADD COLUMN IF NOT EXISTS namespace text NOT NULL DEFAULT 'default';
UPDATE action_completions AS c SET namespace = s.namespace
  FROM workflow_state AS s WHERE s.workflow_key = c.workflow_key AND s.namespace <> 'default';
ALTER TABLE action_completions DROP CONSTRAINT IF EXISTS action_completions_pkey;
ALTER TABLE action_completions ADD CONSTRAINT action_completions_pkey PRIMARY KEY (namespace, correlation_id, action_id);

ALTER TABLE action_queue ADD COLUMN IF NOT EXISTS namespace text NOT NULL DEFAULT 'default';
UPDATE action_queue AS q SET namespace = s.namespace
  FROM workflow_state AS s WHERE s.workflow_key = q.workflow_key AND s.namespace <> 'default';
DROP INDEX IF EXISTS idx_action_queue_key_seq;
CREATE INDEX IF NOT EXISTS idx_action_queue_key_seq ON action_queue (namespace, workflow_key, seq);

ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS namespace text NOT NULL DEFAULT 'default';
UPDATE dead_letters AS l SET namespace = s.namespace
  FROM workflow_state AS s WHERE s.workflow_key = l.workflow_key AND s.namespace <> 'default';
