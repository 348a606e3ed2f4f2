//! `json-patch`: applies a JSON Patch (RFC 6902) from the action payload's `patch` member.
//! A failing operation, including a failed `test`, refuses the whole action, which makes
//! `test` a conditional update.

use serde_json::Value;

use super::{Reducer, Reduction, Rejection, into_object};
use crate::{Action, JsonObject, Version};

/// Applies `payload.patch`, an array of RFC 6902 operations, atomically.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonPatchReducer;

impl Reducer for JsonPatchReducer {
    fn reduce(&self, state: &JsonObject, _version: Version, action: &Action) -> Result<Reduction, Rejection> {
        let Some(raw_patch) = action.payload.get("patch") else {
            return Err(Rejection::new(
                "payload.patch is missing: send {\"patch\": [{\"op\": \"add\", \"path\": \"/a\", \"value\": 1}]}",
            ));
        };
        let patch: json_patch::Patch = serde_json::from_value(raw_patch.clone())
            .map_err(|err| Rejection::new(format!("payload.patch is not a JSON Patch: {err}")))?;
        let mut document = Value::Object(state.clone());
        json_patch::patch(&mut document, &patch).map_err(|err| Rejection::new(format!("json patch failed: {err}")))?;
        Ok(Reduction {
            state: into_object(document, "a json patch")?,
            intents: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::reducer::test_support::{action, object};

    #[test]
    fn applies_operations_in_order() {
        let state = object(json!({"n": 1}));
        let act = action(
            "patch",
            json!({"patch": [
                {"op": "test", "path": "/n", "value": 1},
                {"op": "replace", "path": "/n", "value": 2},
                {"op": "add", "path": "/tags", "value": ["a"]}
            ]}),
        );
        let next = JsonPatchReducer
            .reduce(&state, Version::new(1), &act)
            .expect("test passes");
        assert_eq!(Value::Object(next.state), json!({"n": 2, "tags": ["a"]}));
    }

    #[test]
    fn a_failed_test_refuses_the_action() {
        let state = object(json!({"n": 1}));
        let act = action(
            "patch",
            json!({"patch": [
                {"op": "test", "path": "/n", "value": 7},
                {"op": "replace", "path": "/n", "value": 2}
            ]}),
        );
        let rejection = JsonPatchReducer
            .reduce(&state, Version::new(1), &act)
            .expect_err("test fails");
        assert!(rejection.reason.contains("json patch failed"), "{}", rejection.reason);
    }

    #[test]
    fn replacing_the_root_with_a_non_object_is_refused() {
        let act = action("patch", json!({"patch": [{"op": "replace", "path": "", "value": 3}]}));
        assert!(
            JsonPatchReducer
                .reduce(&JsonObject::new(), Version::NONE, &act)
                .is_err()
        );
    }

    #[test]
    fn a_missing_or_malformed_patch_is_refused() {
        assert!(
            JsonPatchReducer
                .reduce(&JsonObject::new(), Version::NONE, &action("p", json!({})))
                .is_err()
        );
        assert!(
            JsonPatchReducer
                .reduce(&JsonObject::new(), Version::NONE, &action("p", json!({"patch": 1})))
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn add_then_remove_restores_the_state(key in "[a-z]{1,6}", value in any::<i64>()) {
            let state = object(json!({"keep": true}));
            let path = format!("/{key}_new");
            let act = action("p", json!({"patch": [
                {"op": "add", "path": path, "value": value},
                {"op": "remove", "path": path}
            ]}));
            let next = JsonPatchReducer.reduce(&state, Version::new(1), &act).expect("valid patch");
            prop_assert_eq!(next.state, state);
        }
    }
}
