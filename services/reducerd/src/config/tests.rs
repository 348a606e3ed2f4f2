//! Parsing, layering and validation of the configuration.

use super::*;

fn error_of(text: &str) -> String {
    match Config::from_toml(text) {
        Err(message) => message,
        Ok(config) => config.validate().expect_err("invalid config").to_string(),
    }
}

#[test]
fn defaults_are_valid_and_match_the_runbook() {
    let config = Config::default();
    let validated = config.validate().expect("defaults validate");
    assert_eq!(
        validated.retry,
        RetryPolicy {
            max_attempts: 3,
            backoff_base_ms: 10,
            backoff_cap_ms: 250
        }
    );
    assert_eq!(validated.roles.len(), 5);
    assert_eq!(config.projection.batch_timeout_ms, 1000);
    assert_eq!(config.projection.max_records, 500);
    assert_eq!(config.storage.min_pool_size, 10);
    assert_eq!(config.storage.max_pool_size, 50);
    assert_eq!(config.dedup.ttl_seconds, 6 * 3600);
}

#[test]
fn invalid_values_name_their_key() {
    assert!(error_of("[reducer]\nmax_attempts = 0").contains("reducer.max_attempts"));
    assert!(error_of("[reducer]\nbackoff_base_ms = 500").contains("reducer.backoff_base_ms"));
    assert!(error_of("[storage]\nmin_pool_size = 60").contains("storage.min_pool_size"));
    assert!(error_of("[server]\nroles = [\"janitor\"]").contains("server.roles"));
    assert!(error_of("[server]\nlisten = \"nowhere\"").contains("server.listen"));
    assert!(error_of("[workflow_types.x]\nreducer = \"magic\"").contains("workflow_types.x.reducer"));
    assert!(error_of("[workflow_types.x]\nreducer = \"remote\"").contains("workflow_types.x.endpoint"));
    assert!(error_of("[reducer]\nmax_atempts = 3").contains("max_atempts"));
    assert!(error_of("[reducer]\nmax_attempts = \"three\"").contains("max_attempts"));
}

#[test]
fn declared_types_extend_the_builtins() {
    let config = Config::from_toml(
        "[workflow_types.order]\nreducer = \"fsm\"\ninitial = \"open\"\n\
         transitions = [{ from = \"open\", to = \"closed\", on = \"close\" }]\n",
    )
    .expect("parses");
    let types = config.validate().expect("valid").workflow_types;
    assert!(types.get("order").is_some());
    assert!(types.get("merge").is_some());
}
