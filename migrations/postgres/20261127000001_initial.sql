-- Canonical state: one row per workflow, versioned for compare-and-set commits.
CREATE TABLE IF NOT EXISTS workflow_state (
    workflow_key  text        PRIMARY KEY,
    version       bigint      NOT NULL CHECK (version >= 1),
    state         jsonb       NOT NULL,
    workflow_type text        NOT NULL,
    namespace     text        NOT NULL DEFAULT 'default',
    provenance    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_workflow_state_updated_at ON workflow_state (updated_at DESC);

-- Processed action ids with the outcome they produced; rows expire by the database clock.
CREATE TABLE IF NOT EXISTS action_dedup_log (
    workflow_key text        NOT NULL,
    action_id    uuid        NOT NULL,
    request_hash text        NOT NULL,
    result_hash  text        NOT NULL,
    version      bigint      NOT NULL,
    status       text        NOT NULL,
    outcome      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (workflow_key, action_id)
);
CREATE INDEX IF NOT EXISTS idx_action_dedup_log_expires_at ON action_dedup_log (expires_at);

-- Transactional outbox: events written in the same transaction as the commit that caused
-- them, published to Kafka by the relay afterwards.
CREATE TABLE IF NOT EXISTS event_outbox (
    id           bigserial   PRIMARY KEY,
    workflow_key text        NOT NULL,
    version      bigint      NOT NULL,
    event_type   text        NOT NULL,
    payload      bytea       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX IF NOT EXISTS idx_event_outbox_unpublished ON event_outbox (id) WHERE published_at IS NULL;

-- Read-optimised view of each workflow, maintained by the projection materializer.
CREATE TABLE IF NOT EXISTS workflow_projection (
    workflow_key text        PRIMARY KEY,
    version      bigint      NOT NULL,
    tag          text,
    last_action  text,
    namespace    text        NOT NULL DEFAULT 'default',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    indices      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    extras       jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS idx_workflow_projection_namespace_tag ON workflow_projection (namespace, tag);

-- How far the materializer has applied each topic partition; moves forward only.
CREATE TABLE IF NOT EXISTS projection_watermarks (
    topic      text        NOT NULL,
    partition  integer     NOT NULL,
    "offset"   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
