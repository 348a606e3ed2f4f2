//! Every SQL statement of the operations runbook runs, exactly as written, against a
//! database that reducerd created and wrote to.

use serde_json::json;

use crate::support::{Backend, action, handle, new_id, start};

/// The runbook's SQL, verbatim (psql `-c` arguments, ```sql blocks and inline statements).
const RUNBOOK_SQL: &[&str] = &[
    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'omninode_bridge';",
    "SELECT * FROM projection_watermarks ORDER BY updated_at DESC LIMIT 10;",
    "SELECT workflow_key FROM workflow_state ORDER BY version DESC LIMIT 10;",
    "SELECT query, mean_exec_time, calls FROM pg_stat_statements WHERE query LIKE '%workflow_state%' ORDER BY mean_exec_time DESC LIMIT 10;",
    "SELECT count(*) as active, state FROM pg_stat_activity GROUP BY state;",
    "CREATE INDEX IF NOT EXISTS idx_workflow_state_workflow_key ON workflow_state(workflow_key);",
    "SHOW max_connections;",
    "SELECT * FROM projection_watermarks ORDER BY updated_at DESC LIMIT 20;",
    "SELECT * FROM projection_watermarks;",
    "SELECT workflow_key, version, updated_at FROM workflow_state ORDER BY updated_at DESC LIMIT 10;",
    "SELECT * FROM projection_watermarks ORDER BY updated_at DESC;",
    "SELECT workflow_key, count(*) FROM action_dedup_log GROUP BY workflow_key;",
];

/// The runbook beside the checkout, when it is there.
fn runbook() -> Option<String> {
    let path = std::env::var("RUNBOOK")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/operations-runbook.md")
        });
    std::fs::read_to_string(path).ok()
}

/// SQL statements in the runbook's text: psql's `-c "…"` arguments, lines of ```sql blocks,
/// and inline `SELECT …;` / `CREATE INDEX …;` spans.
fn statements_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_sql = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_sql = trimmed == "```sql";
            continue;
        }
        if in_sql && !trimmed.is_empty() && !trimmed.starts_with("--") {
            found.push(trimmed.to_owned());
            continue;
        }
        // Only psql's -c; `python -c "..."` in the runbook is not SQL.
        let mut rest = line.find("psql ").map_or("", |at| &line[at..]);
        while let Some(start) = rest.find("-c \"") {
            let after = &rest[start + 4..];
            let Some(end) = after.find('"') else { break };
            found.push(after[..end].to_owned());
            rest = &after[end + 1..];
        }
        for (i, span) in line.split('`').enumerate() {
            let upper = span.to_ascii_uppercase();
            if i % 2 == 1 && (upper.starts_with("SELECT ") || upper.starts_with("CREATE INDEX")) && span.ends_with(';')
            {
                found.push(span.to_owned());
            }
        }
    }
    found
}

#[test]
fn the_list_holds_every_statement_of_the_runbook() {
    let Some(text) = runbook() else {
        // The list above is the copy under test; the runbook lives outside the repository.
        eprintln!("runbook not found beside the checkout; checked the embedded copy only");
        return;
    };
    let found = statements_in(&text);
    assert!(found.len() >= RUNBOOK_SQL.len(), "{found:#?}");
    for statement in &found {
        assert!(
            RUNBOOK_SQL.contains(&statement.as_str()),
            "runbook SQL not under test: {statement}"
        );
    }
}

#[test]
fn statements_are_recognised_in_each_runbook_form() {
    let text = "python -c \"import x\"\npsql -c \"SELECT 1;\"\n```sql\n-- note\nSELECT 2;\n```\n1. See: `SELECT 3;` and `CREATE INDEX i ON t(c);`\n";
    assert_eq!(
        statements_in(text),
        ["SELECT 1;", "SELECT 2;", "SELECT 3;", "CREATE INDEX i ON t(c);"]
    );
}

#[tokio::test]
async fn every_runbook_query_runs_unchanged_against_the_schema() {
    let server = start(Backend::Postgres, |_| {}).await;
    for n in 1..=3 {
        handle(
            &server,
            action(&new_id(), "runbook-sql", "merge", "set", json!({"n": n})),
        )
        .await
        .expect("commit");
    }
    // Wait for the projection so the watermark queries have a row to show.
    let projected = server
        .projections()
        .get_projection(purereducer_api::v1::GetProjectionRequest {
            namespace: Default::default(),
            workflow_key: "runbook-sql".into(),
            min_version: 3,
            max_wait_ms: 30_000,
        })
        .await
        .expect("projection")
        .into_inner();
    assert!(!projected.from_canonical);

    let pool = server.pg();
    // pg_stat_statements is a PostgreSQL extension the runbook relies on (the test command
    // preloads it, as docs/operations.md asks of deployments).
    sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(pool)
        .await
        .expect("pg_stat_statements is available (postgresql-contrib)");
    for statement in RUNBOOK_SQL {
        sqlx::raw_sql(*statement)
            .execute(pool)
            .await
            .unwrap_or_else(|err| panic!("runbook SQL failed: {statement}\n{err}"));
    }
    // The rows the runbook looks at are there and mean what it says.
    let (key, version): (String, i64) =
        sqlx::query_as("SELECT workflow_key, version FROM workflow_state ORDER BY version DESC LIMIT 1")
            .fetch_one(pool)
            .await
            .expect("state row");
    assert_eq!((key.as_str(), version), ("runbook-sql", 3));
    let dedup: i64 = sqlx::query_scalar("SELECT count(*) FROM action_dedup_log WHERE workflow_key = 'runbook-sql'")
        .fetch_one(pool)
        .await
        .expect("dedup rows");
    assert_eq!(dedup, 3);
    server.stop().await;
}
