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
    assert!(error_of("[projection]\nenable_idempotence = false").contains("projection.enable_idempotence"));
    let explicit = Config::from_toml("[projection]\nenable_idempotence = true").expect("parses");
    explicit
        .validate()
        .expect("the runbook's recommended value is accepted");
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

#[test]
fn kafka_security_settings_are_checked_together() {
    let sasl = "[kafka]\nbrokers = \"b:9093\"\nsecurity_protocol = \"SASL_SSL\"\n";
    assert!(error_of(sasl).contains("kafka.sasl_mechanism"), "{}", error_of(sasl));
    let no_password = format!("{sasl}sasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"u\"\n");
    assert!(error_of(&no_password).contains("sasl_password"));
    let complete = format!("{no_password}sasl_password = \"p\"\n");
    let config = Config::from_toml(&complete).expect("parses");
    config.validate().expect("a complete SASL_SSL configuration is valid");
    assert_eq!(config.kafka.brokers().security_protocol, "sasl_ssl");
    assert!(
        !format!("{config:?}").contains("sasl_password: \"p\""),
        "the password was printed"
    );
    let stray = "[kafka]\nsasl_username = \"u\"\n";
    assert!(error_of(stray).contains("SASL settings need"), "{}", error_of(stray));
    let unknown = "[kafka]\nsecurity_protocol = \"tls\"\n";
    assert!(error_of(unknown).contains("unknown protocol 'tls'"));
    let ca = "[kafka]\nsecurity_protocol = \"ssl\"\nssl_ca_file = \"/nonexistent/ca.pem\"\n";
    assert!(error_of(ca).contains("kafka.ssl_ca_file"));
}

#[test]
fn auth_and_tls_settings_are_checked_at_start_up() {
    assert!(error_of("[auth]\nmode = \"oauth\"\n").contains("unknown mode 'oauth'"));
    assert!(error_of("[auth]\nmode = \"jwt\"\n").contains("auth.jwt.jwks_file"));
    assert!(error_of("[auth]\nmode = \"token\"\n").contains("auth.tokens_file"));
    assert!(error_of("[auth]\nmode = \"token\"\ntokens_file = \"/nonexistent/tokens.toml\"\n").contains("cannot read"));
    assert!(error_of("[server]\nreflection = \"on\"\n").contains("server.reflection"));
    let defaults = Config::default().validate().expect("defaults");
    assert!(defaults.listen.ip().is_loopback() && defaults.metrics_listen.ip().is_loopback());
}
