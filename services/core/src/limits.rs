//! Limits on caller-supplied JSON, checked before anything is stored.

use crate::id::FieldError;

/// How deeply JSON values may nest.
pub const MAX_DEPTH: usize = 64;

/// The encoded size of a JSON value, in bytes.
pub fn encoded_len(value: &serde_json::Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len())
}

/// Refuses a JSON document larger than `max_bytes` once encoded.
pub fn check_size(value: &serde_json::Value, max_bytes: usize, field: &str) -> Result<(), FieldError> {
    let len = encoded_len(value);
    if len > max_bytes {
        return Err(FieldError::new(
            field,
            format!("is {len} bytes as JSON; the limit is {max_bytes} (server.max_payload_bytes)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn size_limit_counts_encoded_bytes() {
        let value = json!({"a": "x".repeat(100)});
        assert!(check_size(&value, 200, "payload").is_ok());
        let err = check_size(&value, 50, "payload").expect_err("too large");
        assert_eq!(err.field, "payload");
    }
}
