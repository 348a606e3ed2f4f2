//! Upgrading a database written before namespaces became part of the key: the rows keep
//! their workflow's namespace and stay readable through the store.

use std::sync::Arc;

use purereducer_core::{ActionId, Namespace, WorkflowKey};
use purereducer_storage::Store;
use sqlx::Connection;

/// The first migration that makes the namespace part of the key.
const NAMESPACES: i64 = 20261202000004;

/// The migrations of `all` that ran before namespaces became part of the key.
fn before_namespaces(all: sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    let older = all
        .migrations
        .iter()
        .filter(|m| m.version < NAMESPACES)
        .cloned()
        .collect();
    sqlx::migrate::Migrator::with_migrations(older)
}

/// Rows as the older schema held them: a workflow of namespace `tenant-x`, its dedup record,
/// an unpublished event, a queued action, a completion and a projection row.
fn legacy_rows(now: &str, action: &str) -> Vec<String> {
    vec![
        format!(
            "INSERT INTO workflow_state (workflow_key, version, state, workflow_type, namespace, provenance, created_at, updated_at) \
             VALUES ('legacy-1', 3, '{{\"n\": 3}}', 'merge', 'tenant-x', '{{}}', {now}, {now})"
        ),
        format!(
            "INSERT INTO action_dedup_log (workflow_key, action_id, request_hash, result_hash, version, status, outcome, created_at, expires_at) \
             VALUES ('legacy-1', '{action}', 'rq', 'rs', 3, 'COMMITTED', '{{}}', {now}, {now} + 3600000)"
        ),
        format!(
            "INSERT INTO event_outbox (workflow_key, version, event_type, payload, headers, created_at) \
             VALUES ('legacy-1', 3, 'StateCommitted', x'010203', '{{}}', {now})"
        ),
        format!(
            "INSERT INTO action_queue (workflow_key, action, headers, enqueued_at) VALUES ('legacy-1', x'01', '{{}}', {now})"
        ),
        format!(
            "INSERT INTO action_completions (correlation_id, action_id, workflow_key, status, version, result_hash, completed_at) \
             VALUES ('legacy-corr', '{action}', 'legacy-1', 'COMMITTED', 3, 'rs', {now})"
        ),
        format!(
            "INSERT INTO workflow_projection (workflow_key, version, tag, last_action, namespace, updated_at, indices, extras) \
             VALUES ('legacy-1', 3, 'open', 'set', 'tenant-x', {now}, '{{}}', '{{}}')"
        ),
    ]
}

async fn check_upgraded(store: Arc<dyn Store>, action: ActionId) {
    let tenant = Namespace::parse_or_default("tenant-x").expect("namespace");
    let key = WorkflowKey::parse(&tenant, "legacy-1").expect("key");
    let state = store
        .get_state(&key)
        .await
        .expect("read")
        .expect("kept in its namespace");
    assert_eq!(state.version.get(), 3);
    let default_key = WorkflowKey::parse(&Namespace::default(), "legacy-1").expect("key");
    assert!(store.get_state(&default_key).await.expect("read").is_none());
    assert!(
        store.find_processed(&key, action).await.expect("find").is_some(),
        "dedup record"
    );
    assert!(
        store
            .find_processed(&default_key, action)
            .await
            .expect("find")
            .is_none()
    );
    let completion = store
        .find_completion(&tenant, "legacy-corr", None)
        .await
        .expect("find")
        .expect("completion kept in its namespace");
    assert_eq!(completion.namespace, "tenant-x");
    let pending = store.pending_events(10).await.expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].event.namespace, "tenant-x");
    let claim = store.claim_actions(10).await.expect("claim");
    assert_eq!(claim.actions.len(), 1);
    assert_eq!(claim.actions[0].action.namespace, "tenant-x");
    claim.release().await.expect("release");
    let projection = store.get_projection(&key).await.expect("read").expect("projection");
    assert_eq!(projection.row.version.get(), 3);
}

#[tokio::test]
async fn postgres_rows_from_before_namespaced_keys_keep_their_namespace() {
    let url = purereducer_storage::testing::fresh_postgres_url()
        .await
        .expect("postgres test database");
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    before_namespaces(sqlx::migrate!("../../migrations/postgres"))
        .run(&mut conn)
        .await
        .expect("older schema");
    let action = ActionId::from_uuid(uuid::Uuid::new_v4());
    for statement in legacy_rows("now()", &action.to_string()) {
        // PostgreSQL spells times and bytes its own way.
        let statement = statement
            .replace("now() + 3600000", "now() + interval '1 hour'")
            .replace("x'010203'", "'\\x010203'::bytea")
            .replace("x'01'", "'\\x01'::bytea");
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .expect("legacy row");
    }
    conn.close().await.expect("close");
    let store = purereducer_storage::postgres::PgStore::connect(&url, purereducer_storage::testing::test_pool(4))
        .await
        .expect("connect");
    store.migrate().await.expect("upgrade");
    check_upgraded(Arc::new(store), action).await;
}

#[tokio::test]
async fn sqlite_rows_from_before_namespaced_keys_keep_their_namespace() {
    let path = std::env::temp_dir().join(format!("prt_{}.db", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("connect");
    before_namespaces(sqlx::migrate!("../../migrations/sqlite"))
        .run(&mut conn)
        .await
        .expect("older schema");
    let action = ActionId::from_uuid(uuid::Uuid::new_v4());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        .to_string();
    for statement in legacy_rows(&now, &action.to_string()) {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .expect("legacy row");
    }
    conn.close().await.expect("close");
    let store = purereducer_storage::sqlite::SqliteStore::connect(&url, purereducer_storage::testing::test_pool(4))
        .await
        .expect("connect");
    store.migrate().await.expect("upgrade");
    check_upgraded(Arc::new(store), action).await;
}
