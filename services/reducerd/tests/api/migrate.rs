//! `reducerd migrate`, the binary itself: it says which migrations it applied, creates
//! pg_stat_statements where PostgreSQL preloads it, and on a second run has nothing to do.

use std::process::Command;

use sqlx::Connection;

fn migrate(url: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_reducerd"))
        .args(["--database-url", url, "migrate"])
        .output()
        .expect("run reducerd migrate");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "reducerd migrate failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn migrate_lists_what_it_applied_and_creates_pg_stat_statements() {
    let url = purereducer_storage::testing::fresh_postgres_url()
        .await
        .expect("a new database");
    let first = migrate(&url);
    for migration in ["applied 20261127000001 initial", "applied 20261202000005 history"] {
        assert!(first.contains(migration), "{first}");
    }
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let preloaded: String = sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')")
        .fetch_one(&mut conn)
        .await
        .expect("setting");
    let installed: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')")
            .fetch_one(&mut conn)
            .await
            .expect("extensions");
    if preloaded.contains("pg_stat_statements") {
        assert!(installed, "preloaded, so migrate creates it: {first}");
        assert!(first.contains("created the pg_stat_statements extension"), "{first}");
    } else {
        assert!(!installed);
        assert!(first.contains("not in shared_preload_libraries"), "{first}");
    }
    let second = migrate(&url);
    assert!(second.starts_with("the database was already up to date"), "{second}");
    assert!(!second.contains("applied "), "{second}");
}
