//! `merge`: applies the action payload to the state as a JSON Merge Patch (RFC 7396).

use serde_json::Value;

use super::{Reducer, Reduction, Rejection, into_object};
use crate::{Action, JsonObject, Version};

/// Merges each action's payload into the state (`null` deletes a member).
#[derive(Debug, Default, Clone, Copy)]
pub struct MergeReducer;

impl Reducer for MergeReducer {
    fn reduce(&self, state: &JsonObject, _version: Version, action: &Action) -> Result<Reduction, Rejection> {
        let mut document = Value::Object(state.clone());
        json_patch::merge(&mut document, &Value::Object(action.payload.clone()));
        Ok(Reduction {
            state: into_object(document, "a merge patch")?,
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
    fn merges_nested_members_and_deletes_nulls() {
        let state = object(json!({"a": {"b": 1, "c": 2}, "d": 3}));
        let next = MergeReducer
            .reduce(
                &state,
                Version::new(1),
                &action("set", json!({"a": {"c": null, "e": 4}, "d": 5})),
            )
            .expect("merge never refuses an object");
        assert_eq!(Value::Object(next.state), json!({"a": {"b": 1, "e": 4}, "d": 5}));
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z]{0,4}".prop_map(Value::from)
        ]
    }

    fn json_object() -> impl Strategy<Value = Value> {
        json_leaf()
            .prop_recursive(3, 24, 4, |inner| {
                prop::collection::btree_map("[a-c]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))
            })
            .prop_map(|v| if v.is_object() { v } else { json!({"v": v}) })
    }

    proptest! {
        #[test]
        fn applying_the_same_patch_twice_changes_nothing_more(state in json_object(), patch in json_object()) {
            let state = object(state);
            let act = action("set", patch);
            let once = MergeReducer.reduce(&state, Version::new(1), &act).expect("object");
            let twice = MergeReducer.reduce(&once.state, Version::new(2), &act).expect("object");
            prop_assert_eq!(once.state, twice.state);
        }
    }
}
