//! A fresh, migrated database per test: real PostgreSQL and real SQLite, never a mock.
//!
//! PostgreSQL tests create their own database on the server `PURE_REDUCER_TEST_DATABASE_URL`
//! names (default `postgres://postgres@127.0.0.1:5432/postgres`) and drop nothing, so a
//! failed test can be inspected afterwards; names start with `prt_`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::{PoolOptions, StorageResult, Store};

/// The server test databases are created on.
pub fn admin_url() -> String {
    std::env::var("PURE_REDUCER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Pool sizing for tests: small, so parallel tests stay under the server's connection limit.
pub fn test_pool(max_connections: u32) -> PoolOptions {
    PoolOptions {
        min_connections: 0,
        max_connections,
        acquire_timeout: Duration::from_secs(30),
    }
}

/// Creates an empty database and returns its URL.
pub async fn fresh_postgres_url() -> StorageResult<String> {
    let admin = admin_url();
    let name = format!("prt_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin).await?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let (base, _) = admin.rsplit_once('/').unwrap_or((admin.as_str(), ""));
    Ok(format!("{base}/{name}"))
}

/// A migrated PostgreSQL store on a new database.
pub async fn fresh_postgres(max_connections: u32) -> StorageResult<(Arc<PgStore>, String)> {
    let url = fresh_postgres_url().await?;
    let store = PgStore::connect(&url, test_pool(max_connections)).await?;
    store.migrate().await?;
    Ok((Arc::new(store), url))
}

/// A migrated SQLite store on a new file under the system temp directory.
pub async fn fresh_sqlite() -> StorageResult<(Arc<SqliteStore>, String)> {
    let path = std::env::temp_dir().join(format!("prt_{}.db", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url, test_pool(4)).await?;
    store.migrate().await?;
    Ok((Arc::new(store), url))
}

/// Either backend, as the trait object the services use.
pub async fn fresh_store(backend: &str) -> StorageResult<Arc<dyn Store>> {
    if backend == "postgres" {
        let (store, _) = fresh_postgres(10).await?;
        return Ok(store);
    }
    let (store, _) = fresh_sqlite().await?;
    Ok(store)
}
