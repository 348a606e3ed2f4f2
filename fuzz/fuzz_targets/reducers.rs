//! The built-in reducers (merge, JSON Patch, fsm) on arbitrary states and actions: a reducer
//! answers with a next state that is a JSON object, or a refusal, and never panics.
//!
//! Input: `state JSON \0 payload JSON \0 action type`; parts that do not parse become `{}`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use purereducer_core::reducer::{FsmReducer, JsonPatchReducer, MergeReducer, Reducer};
use purereducer_core::{Action, ActionId, JsonObject, Namespace, TypeName, Version, WorkflowKey};

fn object(bytes: &[u8]) -> JsonObject {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => JsonObject::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let state = object(parts.next().unwrap_or_default());
    let payload = object(parts.next().unwrap_or_default());
    let action_type = std::str::from_utf8(parts.next().unwrap_or_default()).unwrap_or("set");
    let Ok(action_type) = TypeName::parse(action_type, "action_type") else {
        return;
    };
    let action = Action {
        id: ActionId::parse("6f1c9a52-7d4e-4a8b-9c0d-2e5f6a7b8c9d", "action_id").expect("id"),
        key: WorkflowKey::parse(&Namespace::default(), "fuzz-1").expect("key"),
        workflow_type: TypeName::parse("fuzz", "workflow_type").expect("type"),
        action_type,
        payload,
        correlation_id: "fuzz".to_owned(),
    };
    let reducers: [&dyn Reducer; 3] = [&MergeReducer, &JsonPatchReducer, &FsmReducer::default_machine()];
    for reducer in reducers {
        if let Ok(reduction) = reducer.reduce(&state, Version::new(3), &action) {
            // The next state is an object that serializes and reads back the same.
            let text = serde_json::to_string(&reduction.state).expect("serializes");
            let again: JsonObject = serde_json::from_str(&text).expect("reads back");
            assert_eq!(again, reduction.state);
        }
    }
});
