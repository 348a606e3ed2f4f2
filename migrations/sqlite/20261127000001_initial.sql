-- The embedded schema mirrors the PostgreSQL one; times are unix milliseconds.
CREATE TABLE IF NOT EXISTS workflow_state (
    workflow_key  TEXT    PRIMARY KEY,
    version       INTEGER NOT NULL CHECK (version >= 1),
    state         TEXT    NOT NULL,
    workflow_type TEXT    NOT NULL,
    namespace     TEXT    NOT NULL DEFAULT 'default',
    provenance    TEXT    NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS action_dedup_log (
    workflow_key TEXT    NOT NULL,
    action_id    TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    result_hash  TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    status       TEXT    NOT NULL,
    outcome      TEXT    NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (workflow_key, action_id)
);
CREATE INDEX IF NOT EXISTS idx_action_dedup_log_expires_at ON action_dedup_log (expires_at);

CREATE TABLE IF NOT EXISTS event_outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_key TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    event_type   TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    headers      TEXT    NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    published_at INTEGER
);

CREATE TABLE IF NOT EXISTS workflow_projection (
    workflow_key TEXT    PRIMARY KEY,
    version      INTEGER NOT NULL,
    tag          TEXT,
    last_action  TEXT,
    namespace    TEXT    NOT NULL DEFAULT 'default',
    updated_at   INTEGER NOT NULL,
    indices      TEXT    NOT NULL DEFAULT '{}',
    extras       TEXT    NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS projection_watermarks (
    topic      TEXT    NOT NULL,
    partition  INTEGER NOT NULL,
    "offset"   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
