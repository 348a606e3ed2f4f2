//! JSON text ↔ `google.protobuf.Struct`, the type of every payload and state in the API.
//!
//! A `Struct` holds numbers as 64-bit floats, so integers are exact only within ±2^53. Going in,
//! a larger integer is refused rather than silently rounded; coming out, whole numbers in that
//! range print as integers (`42`, not `42.0`), so what an operator typed is what they read back.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Timestamp, Value};
use serde_json::{Map, Number, Value as Json};

use crate::error::CliError;

/// Largest integer a 64-bit float holds exactly (2^53).
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// The text a JSON flag names: `@PATH` reads a file, `-` reads standard input, anything
/// else is the JSON itself (large payloads do not fit on a command line).
pub fn flag_text(flag: &str, value: &str) -> Result<String, CliError> {
    if value == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|err| CliError::Usage(format!("{flag} -: cannot read standard input: {err}")))?;
        return Ok(text);
    }
    if let Some(path) = value.strip_prefix('@') {
        return std::fs::read_to_string(path)
            .map_err(|err| CliError::Usage(format!("{flag} @{path}: cannot read the file: {err}")));
    }
    Ok(value.to_owned())
}

/// Parses the text of `flag` (for example `--payload`), which must be a JSON object; `@PATH`
/// and `-` read it from a file or standard input.
pub fn parse_object(flag: &str, value: &str) -> Result<Struct, CliError> {
    let text = flag_text(flag, value)?;
    let text = text.as_str();
    let json: Json =
        serde_json::from_str(text).map_err(|err| CliError::Usage(format!("{flag} is not valid JSON: {err}")))?;
    let Json::Object(object) = json else {
        return Err(CliError::Usage(format!(
            "{flag} must be a JSON object, got {}",
            kind_of(&json)
        )));
    };
    object_to_struct(&object, flag, "")
}

fn kind_of(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn object_to_struct(object: &Map<String, Json>, flag: &str, path: &str) -> Result<Struct, CliError> {
    let fields = object
        .iter()
        .map(|(name, member)| Ok((name.clone(), json_to_value(member, flag, &format!("{path}/{name}"))?)))
        .collect::<Result<_, CliError>>()?;
    Ok(Struct { fields })
}

fn json_to_value(json: &Json, flag: &str, path: &str) -> Result<Value, CliError> {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(exact_f64(n, flag, path)?),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items
                .iter()
                .enumerate()
                .map(|(index, item)| json_to_value(item, flag, &format!("{path}/{index}")))
                .collect::<Result<_, _>>()?,
        }),
        Json::Object(object) => Kind::StructValue(object_to_struct(object, flag, path)?),
    };
    Ok(Value { kind: Some(kind) })
}

/// The number as a float, refusing integers the float would round.
fn exact_f64(n: &Number, flag: &str, path: &str) -> Result<f64, CliError> {
    let too_big = match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => i.unsigned_abs() > MAX_EXACT_INTEGER as u64,
        (None, Some(u)) => u > MAX_EXACT_INTEGER as u64,
        (None, None) => false,
    };
    if too_big {
        return Err(CliError::Usage(format!(
            "{flag}: the integer {n} at {path} is beyond ±2^53 and would be rounded; send it as a string"
        )));
    }
    // serde_json only yields finite numbers, and every integer here is in range.
    Ok(n.as_f64().unwrap_or_default())
}

/// A `Struct` as a JSON object.
pub fn struct_to_json(value: &Struct) -> Json {
    Json::Object(
        value
            .fields
            .iter()
            .map(|(name, member)| (name.clone(), value_to_json(member)))
            .collect(),
    )
}

/// An optional `Struct` (absent means empty) as a JSON object.
pub fn optional_struct_to_json(value: Option<&Struct>) -> Json {
    value.map_or_else(|| Json::Object(Map::new()), struct_to_json)
}

fn value_to_json(value: &Value) -> Json {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => number_to_json(*n),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(list)) => Json::Array(list.values.iter().map(value_to_json).collect()),
        Some(Kind::StructValue(object)) => struct_to_json(object),
    }
}

fn number_to_json(n: f64) -> Json {
    if n.fract() == 0.0 && n.abs() <= MAX_EXACT_INTEGER {
        // Exact: the value is whole and within ±2^53.
        return Json::from(n as i64);
    }
    // NaN and infinities have no JSON form; the server never stores them anyway.
    Number::from_f64(n).map_or(Json::Null, Json::Number)
}

/// A timestamp as RFC 3339 text, or null when absent.
pub fn timestamp_to_json(value: Option<&Timestamp>) -> Json {
    value.map_or(Json::Null, |ts| Json::String(ts.to_string()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn round_trip(text: &str) -> Json {
        struct_to_json(&parse_object("--payload", text).expect("valid object"))
    }

    #[test]
    fn whole_numbers_come_back_as_integers() {
        let back = round_trip(r#"{"total": 42, "neg": -7, "big": 9007199254740992, "half": 1.5, "float_whole": 2.0}"#);
        assert_eq!(
            back,
            json!({"total": 42, "neg": -7, "big": 9_007_199_254_740_992_i64, "half": 1.5, "float_whole": 2})
        );
        assert!(!back.to_string().contains("42.0"));
    }

    #[test]
    fn nested_values_survive() {
        let text = r#"{"a": {"b": [1, "two", null, true, {"c": []}]}, "s": "x"}"#;
        assert_eq!(round_trip(text), serde_json::from_str::<Json>(text).expect("valid"));
    }

    #[test]
    fn non_objects_are_refused_naming_the_flag() {
        for (text, kind) in [
            ("[1]", "an array"),
            ("3", "a number"),
            ("\"x\"", "a string"),
            ("null", "null"),
        ] {
            let err = parse_object("--state", text).expect_err("not an object");
            let CliError::Usage(message) = &err else {
                panic!("expected a usage error, got {err:?}");
            };
            assert_eq!(message, &format!("--state must be a JSON object, got {kind}"));
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn invalid_json_is_a_usage_error() {
        let err = parse_object("--payload", "{not json").expect_err("invalid");
        assert!(matches!(&err, CliError::Usage(m) if m.starts_with("--payload is not valid JSON")));
    }

    #[test]
    fn integers_beyond_2_pow_53_are_refused_with_their_path() {
        let err = parse_object("--payload", r#"{"a": [0, 9007199254740993]}"#).expect_err("too big");
        assert!(matches!(&err, CliError::Usage(m) if m.contains("at /a/1")), "{err:?}");
        let err = parse_object("--payload", r#"{"n": -9007199254740993}"#).expect_err("too small");
        assert!(matches!(&err, CliError::Usage(m) if m.contains("at /n")), "{err:?}");
    }

    #[test]
    fn numbers_without_json_form_print_as_null() {
        assert_eq!(number_to_json(f64::NAN), Json::Null);
        assert_eq!(number_to_json(1e300), json!(1e300));
    }

    fn leaf() -> impl Strategy<Value = Json> {
        prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            (-(1_i64 << 53)..=(1_i64 << 53)).prop_map(Json::from),
            // Non-integral floats keep their float form through the round trip.
            (-1e12_f64..1e12)
                .prop_filter("not whole", |f| f.fract() != 0.0)
                .prop_map(Json::from),
            ".{0,8}".prop_map(Json::String),
        ]
    }

    fn any_json() -> impl Strategy<Value = Json> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..4).prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn json_objects_round_trip(members in prop::collection::btree_map(".{0,6}", any_json(), 0..5)) {
            let original = Json::Object(members.into_iter().collect());
            prop_assert_eq!(round_trip(&original.to_string()), original);
        }
    }
}
