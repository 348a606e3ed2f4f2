//! W3C trace context across process boundaries: taken from the current `tracing` span when
//! an event or action is written, carried in outbox headers and Kafka headers, and restored
//! as the parent of the span that handles it on the other side.
//!
//! The propagator is OpenTelemetry's global one, so an application that installs none
//! (tests, tools) simply carries nothing.

use std::collections::HashMap;

use opentelemetry::trace::TraceContextExt as _;
use rdkafka::Message as _;
use rdkafka::message::{Headers as _, OwnedMessage};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Header names the W3C trace context uses.
pub const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// The trace context of `span` as header name → value (empty when there is none).
pub fn inject(span: &tracing::Span) -> HashMap<String, String> {
    let context = span.context();
    let mut carrier = HashMap::new();
    if context.span().span_context().is_valid() {
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut carrier));
    }
    carrier
}

/// The trace context of the current span.
pub fn inject_current() -> HashMap<String, String> {
    inject(&tracing::Span::current())
}

/// Makes the context in `carrier` the parent of `span` (nothing happens without one).
pub fn set_parent(span: &tracing::Span, carrier: &HashMap<String, String>) {
    if carrier.is_empty() {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(carrier));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The trace headers found by `get` (a header lookup by name) in any carrier: outbox JSON,
/// Kafka headers, gRPC metadata.
pub fn carrier<'a>(get: impl Fn(&str) -> Option<&'a str>) -> HashMap<String, String> {
    TRACE_HEADERS
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), get(name)?.to_owned())))
        .collect()
}

/// The trace headers of a JSON header object, as written to the outbox.
pub fn from_json(headers: &serde_json::Value) -> HashMap<String, String> {
    carrier(|name| headers.get(name)?.as_str())
}

/// The trace headers of a Kafka message.
pub fn from_message(message: &OwnedMessage) -> HashMap<String, String> {
    let Some(headers) = message.headers() else {
        return HashMap::new();
    };
    carrier(|name| {
        let header = headers.iter().find(|header| header.key == name)?;
        std::str::from_utf8(header.value?).ok()
    })
}

/// The trace id of `span` in hex, or `None` when it is not sampled into a trace.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_headers_keep_only_trace_context() {
        let headers = serde_json::json!({
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "event_type": "StateCommitted",
            "tracestate": 7,
        });
        let carrier = from_json(&headers);
        assert_eq!(carrier.len(), 1);
        assert_eq!(
            carrier.get("traceparent").map(String::as_str),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
    }

    #[test]
    fn nothing_is_injected_outside_a_trace() {
        assert!(inject_current().is_empty());
    }
}
