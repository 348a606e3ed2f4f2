-- Actions queued by PublishAction when no Kafka is configured: durable once the publish is
-- answered. A process claims the oldest rows with FOR UPDATE SKIP LOCKED and holds the row
-- locks while it applies them, so replicas share the queue and a process that dies gives its
-- claims back at once; a row is deleted in the transaction that records its completion.
CREATE TABLE IF NOT EXISTS action_queue (
    seq          bigserial   PRIMARY KEY,
    workflow_key text        NOT NULL,
    action       bytea       NOT NULL,
    headers      text        NOT NULL DEFAULT '{}',
    enqueued_at  timestamptz NOT NULL DEFAULT now()
);
-- "Does this key have an earlier action held elsewhere?" when claiming.
CREATE INDEX IF NOT EXISTS idx_action_queue_key_seq ON action_queue (workflow_key, seq);

-- Completions are kept per action: two actions sharing a correlation id each keep their own
-- outcome, and the same action published under two correlation ids answers both.
DELETE FROM action_completions a USING action_completions b
 WHERE a.correlation_id = b.correlation_id AND a.action_id = b.action_id AND a.ctid > b.ctid;
ALTER TABLE action_completions DROP CONSTRAINT IF EXISTS action_completions_pkey;
ALTER TABLE action_completions ADD CONSTRAINT action_completions_pkey PRIMARY KEY (correlation_id, action_id);

-- Events the in-process pipeline could not apply (undecodable, or refused by the database
-- every time), kept for the operator; the pipeline moves past them. One per source.
CREATE TABLE IF NOT EXISTS dead_letters (
    id           bigserial   PRIMARY KEY,
    source       text        NOT NULL UNIQUE,
    workflow_key text        NOT NULL,
    version      bigint      NOT NULL,
    event_type   text        NOT NULL,
    payload      bytea       NOT NULL,
    error        text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Retention deletes published outbox rows by age.
CREATE INDEX IF NOT EXISTS idx_event_outbox_published_at ON event_outbox (published_at)
    WHERE published_at IS NOT NULL;
