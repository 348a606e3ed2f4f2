//! Checks of the addresses a configuration names, so `reducerd check-config` catches a
//! database URL, broker list or endpoint that could never connect, before start-up does.

use super::{Config, ConfigError, invalid};

/// Whether `raw` is `host:port` with a host and a port number.
fn host_port(raw: &str) -> bool {
    match raw.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

/// Whether `raw` is an `http://` or `https://` URL with a host (and a valid port, if any).
fn http_url(raw: &str) -> bool {
    let Ok(uri) = raw.parse::<axum::http::Uri>() else {
        return false;
    };
    matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.host().is_some_and(|h| !h.is_empty())
        && uri.authority().is_some_and(|a| a.port_u16() != Some(0))
}

/// The first address of `config` that cannot work, named by its key.
pub(super) fn check(config: &Config) -> Result<(), ConfigError> {
    let url = &config.storage.database_url;
    let scheme_ok = url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:");
    if !scheme_ok {
        return Err(invalid(
            "storage.database_url",
            format!(
                "must start with postgres://, postgresql:// or sqlite: (got '{}')",
                purereducer_storage::redact(url)
            ),
        ));
    }
    let brokers = config.kafka.brokers.trim();
    if !brokers.is_empty() {
        for broker in brokers.split(',').map(str::trim) {
            if !host_port(broker) {
                return Err(invalid(
                    "kafka.brokers",
                    format!("'{broker}' is not host:port; list brokers as host1:9092,host2:9092"),
                ));
            }
        }
    }
    let otlp = config.telemetry.otlp_endpoint.trim();
    if !otlp.is_empty() && !http_url(otlp) {
        return Err(invalid(
            "telemetry.otlp_endpoint",
            format!("'{otlp}' is not an http:// or https:// URL with a host, such as http://collector:4317"),
        ));
    }
    for (name, declared) in &config.workflow_types {
        if let Some(endpoint) = declared.endpoint.as_ref().filter(|e| !e.is_empty())
            && !http_url(endpoint)
        {
            return Err(invalid(
                &format!("workflow_types.{name}.endpoint"),
                format!("'{endpoint}' is not an http:// or https:// URL with a host, such as http://reducer:50052"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        let config = Config::from_toml(text).expect("parses");
        check(&config).expect_err("refused").to_string()
    }

    #[test]
    fn addresses_that_cannot_work_are_refused_by_key() {
        assert!(error_of("[storage]\ndatabase_url = \"mysql://x\"").contains("storage.database_url"));
        let brokers = error_of("[kafka]\nbrokers = \"kafka:9092,not a broker\"");
        assert!(
            brokers.contains("kafka.brokers") && brokers.contains("'not a broker'"),
            "{brokers}"
        );
        assert!(error_of("[kafka]\nbrokers = \"kafka:99999\"").contains("kafka.brokers"));
        let remote = error_of("[workflow_types.ext]\nreducer = \"remote\"\nendpoint = \"http://\"");
        assert!(remote.contains("workflow_types.ext.endpoint"), "{remote}");
        assert!(error_of("[telemetry]\notlp_endpoint = \"collector\"").contains("telemetry.otlp_endpoint"));
        let fine = Config::from_toml(
            "[kafka]\nbrokers = \"kafka-0:9092, kafka-1:9092\"\n[telemetry]\notlp_endpoint = \"https://otel:4317\"",
        )
        .expect("parses");
        check(&fine).expect("valid addresses");
    }
}
