//! Conversions between the protobuf API and the domain: `google.protobuf.Struct` to JSON and
//! back, and request validation into domain values. Every problem is reported per field.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use purereducer_api::v1;
use purereducer_core::limits::{MAX_DEPTH, check_size};
use purereducer_core::{Action, ActionId, FieldError, Intent, JsonObject, Namespace, TypeName, WorkflowKey};

/// Largest integer a JSON number keeps exactly as a double.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// Converts a `Struct` to a JSON object, refusing non-finite numbers and deep nesting.
pub fn struct_to_json(value: &Struct, field: &str) -> Result<JsonObject, FieldError> {
    struct_to_json_at(value, field, 0)
}

fn struct_to_json_at(value: &Struct, field: &str, depth: usize) -> Result<JsonObject, FieldError> {
    if depth > MAX_DEPTH {
        return Err(FieldError::new(field, format!("nests deeper than {MAX_DEPTH} levels")));
    }
    value
        .fields
        .iter()
        .map(|(name, member)| Ok((no_nul(name, field)?.clone(), value_to_json(member, field, depth + 1)?)))
        .collect()
}

fn value_to_json(value: &Value, field: &str, depth: usize) -> Result<serde_json::Value, FieldError> {
    if depth > MAX_DEPTH {
        return Err(FieldError::new(field, format!("nests deeper than {MAX_DEPTH} levels")));
    }
    Ok(match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StringValue(s)) => serde_json::Value::String(no_nul(s, field)?.clone()),
        Some(Kind::NumberValue(n)) => number_to_json(*n, field)?,
        Some(Kind::StructValue(s)) => serde_json::Value::Object(struct_to_json_at(s, field, depth + 1)?),
        Some(Kind::ListValue(list)) => serde_json::Value::Array(
            list.values
                .iter()
                .map(|v| value_to_json(v, field, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Refuses U+0000, which a JSON document may carry but no backend stores alike (PostgreSQL's
/// jsonb refuses it), so both answer the same.
fn no_nul<'a>(text: &'a String, field: &str) -> Result<&'a String, FieldError> {
    if text.contains('\0') {
        return Err(FieldError::new(
            field,
            "contains a NUL character (U+0000), which cannot be stored; remove it or encode it",
        ));
    }
    Ok(text)
}

/// A free-text field: at most `max` bytes, no control characters.
pub fn text_field(raw: &str, field: &str, max: usize) -> Result<(), FieldError> {
    if raw.len() > max || raw.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} bytes of printable characters"),
        ));
    }
    Ok(())
}

/// A version sent by a client: it must fit the database's signed 64-bit integers.
pub fn version_field(raw: u64, field: &str) -> Result<(), FieldError> {
    if i64::try_from(raw).is_err() {
        return Err(FieldError::new(field, format!("must be at most {}", i64::MAX)));
    }
    Ok(())
}

fn number_to_json(n: f64, field: &str) -> Result<serde_json::Value, FieldError> {
    if !n.is_finite() {
        return Err(FieldError::new(
            field,
            "contains NaN or infinity, which JSON cannot hold",
        ));
    }
    // Whole numbers stay integers so that `1` does not come back as `1.0`.
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER {
        return Ok(serde_json::Value::from(n as i64));
    }
    Ok(serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch of a protobuf timestamp.
pub fn timestamp_to_ms(timestamp: &prost_types::Timestamp) -> i64 {
    timestamp.seconds.saturating_mul(1000) + i64::from(timestamp.nanos / 1_000_000)
}

/// Converts a JSON object to a `Struct`.
pub fn json_to_struct(object: &JsonObject) -> Struct {
    Struct {
        fields: object.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect(),
    }
}

fn json_to_value(value: &serde_json::Value) -> Value {
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(object) => Kind::StructValue(json_to_struct(object)),
    };
    Value { kind: Some(kind) }
}

/// The API form of an action status.
pub fn status_to_proto(status: purereducer_core::ActionStatus) -> v1::ActionStatus {
    match status {
        purereducer_core::ActionStatus::Committed => v1::ActionStatus::Committed,
        purereducer_core::ActionStatus::Duplicate => v1::ActionStatus::Duplicate,
        purereducer_core::ActionStatus::Rejected => v1::ActionStatus::Rejected,
        purereducer_core::ActionStatus::GaveUp => v1::ActionStatus::GaveUp,
    }
}

/// Converts domain intents to the API's.
pub fn intents_to_proto(intents: &[Intent]) -> Vec<v1::Intent> {
    intents
        .iter()
        .map(|intent| v1::Intent {
            intent_type: intent.intent_type.clone(),
            payload: Some(json_to_struct(&intent.payload)),
        })
        .collect()
}

/// Collects field problems so a request reports all of them at once.
#[derive(Debug, Default)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    /// Keeps the value, or records the problem and returns `None`.
    pub fn take<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.0.push(err);
                None
            }
        }
    }

    /// Ends collection: the problems, if there were any.
    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() { Ok(()) } else { Err(self.0) }
    }
}

/// Parses a JSON object field (payload, state), enforcing the payload size limit.
pub fn json_field(
    value: Option<&Struct>,
    field: &str,
    max_bytes: usize,
    required: bool,
) -> Result<JsonObject, FieldError> {
    let Some(value) = value else {
        if required {
            return Err(FieldError::new(field, "is required: send a JSON object"));
        }
        return Ok(JsonObject::new());
    };
    let object = struct_to_json(value, field)?;
    check_size(&serde_json::Value::Object(object.clone()), max_bytes, field)?;
    Ok(object)
}

/// Validates an API action; field names are reported under `prefix` (for example `action`).
pub fn parse_action(
    action: Option<&v1::Action>,
    prefix: &str,
    max_payload_bytes: usize,
) -> Result<Action, Vec<FieldError>> {
    let Some(action) = action else {
        return Err(vec![FieldError::new(prefix, "is required")]);
    };
    let at = |name: &str| format!("{prefix}.{name}");
    let mut errors = FieldErrors::default();
    let id = errors.take(ActionId::parse(&action.action_id, &at("action_id")));
    let namespace = errors.take(Namespace::parse_or_default(&action.namespace).map_err(|e| e.within(prefix)));
    let key = namespace.as_ref().and_then(|namespace| {
        errors.take(WorkflowKey::parse(namespace, &action.workflow_key).map_err(|e| e.within(prefix)))
    });
    let workflow_type = errors.take(TypeName::parse(&action.workflow_type, &at("workflow_type")));
    let action_type = errors.take(TypeName::parse(&action.action_type, &at("action_type")));
    let payload = errors.take(json_field(
        action.payload.as_ref(),
        &at("payload"),
        max_payload_bytes,
        false,
    ));
    let correlation_id = errors.take(correlation_id(&action.correlation_id, &at("correlation_id")));
    errors.finish()?;
    match (id, key, workflow_type, action_type, payload, correlation_id) {
        (Some(id), Some(key), Some(workflow_type), Some(action_type), Some(payload), Some(correlation_id)) => {
            Ok(Action {
                id,
                key,
                workflow_type,
                action_type,
                payload,
                correlation_id,
            })
        }
        _ => Err(vec![FieldError::new(prefix, "is invalid")]),
    }
}

/// The workflow key a request names with `raw_namespace` (the default when empty) and
/// `raw_key`; `field` names the key field in errors.
pub fn namespaced_key(raw_namespace: &str, raw_key: &str, field: &str) -> Result<WorkflowKey, crate::error::ApiError> {
    use crate::error::ApiError;
    let namespace = Namespace::parse_or_default(raw_namespace).map_err(ApiError::from)?;
    WorkflowKey::parse(&namespace, raw_key)
        .map_err(|err| FieldError::new(field, err.description))
        .map_err(ApiError::from)
}

/// A correlation id: free text up to 128 printable characters, a new UUID when empty.
pub fn correlation_id(raw: &str, field: &str) -> Result<String, FieldError> {
    if raw.is_empty() {
        return Ok(uuid::Uuid::new_v4().to_string());
    }
    if raw.len() > 128 || raw.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must be at most 128 printable characters"));
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn number(n: f64) -> Value {
        Value {
            kind: Some(Kind::NumberValue(n)),
        }
    }

    #[test]
    fn json_round_trips_through_struct() {
        let original = json!({"a": 1, "b": [true, null, "x", 1.5], "c": {"d": -3}});
        let object = original.as_object().cloned().expect("object");
        let back = struct_to_json(&json_to_struct(&object), "state").expect("converts");
        assert_eq!(serde_json::Value::Object(back), original);
    }

    #[test]
    fn non_finite_numbers_and_deep_nesting_are_refused() {
        let nan = Struct {
            fields: [("n".to_owned(), number(f64::NAN))].into(),
        };
        assert!(struct_to_json(&nan, "payload").is_err());
        let mut deep = Struct::default();
        for _ in 0..(MAX_DEPTH + 2) {
            deep = Struct {
                fields: [(
                    "x".to_owned(),
                    Value {
                        kind: Some(Kind::StructValue(deep)),
                    },
                )]
                .into(),
            };
        }
        let err = struct_to_json(&deep, "payload").expect_err("too deep");
        assert_eq!(err.field, "payload");
    }

    #[test]
    fn an_action_reports_every_bad_field() {
        let action = v1::Action {
            action_id: "nope".into(),
            workflow_key: "bad key".into(),
            workflow_type: String::new(),
            action_type: "ok".into(),
            ..Default::default()
        };
        let errors = parse_action(Some(&action), "action", 1024).expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["action.action_id", "action.workflow_key", "action.workflow_type"]
        );
    }
}
