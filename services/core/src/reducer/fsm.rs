//! `fsm`: a declared state machine. The state's `status` member holds the machine's state;
//! an action's type names the event, and the payload is merged into the rest of the state.
//!
//! A workflow starts in the machine's initial state: its first action may name that state
//! (to create it there) or any transition out of it. Every transition emits a `transition`
//! intent carrying `from`, `to` and `event`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Intent, Reducer, Reduction, Rejection, into_object};
use crate::{Action, JsonObject, Version};

/// The state member the machine owns.
pub const STATUS_FIELD: &str = "status";

/// One allowed move of the machine.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Transition {
    /// State the move starts from.
    pub from: String,
    /// State the move ends in.
    pub to: String,
    /// Action type that triggers the move; the target state's name when absent.
    #[serde(default)]
    pub on: Option<String>,
}

impl Transition {
    fn event(&self) -> &str {
        self.on.as_deref().unwrap_or(&self.to)
    }
}

/// A state machine reducer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsmReducer {
    initial: String,
    transitions: Vec<Transition>,
}

impl FsmReducer {
    /// A machine with the given initial state and transitions.
    pub fn new(initial: impl Into<String>, transitions: Vec<Transition>) -> Self {
        Self {
            initial: initial.into(),
            transitions,
        }
    }

    /// The default machine: PENDING→PROCESSING→COMPLETED, PENDING→FAILED, PROCESSING→FAILED.
    pub fn default_machine() -> Self {
        let step = |from: &str, to: &str| Transition {
            from: from.to_owned(),
            to: to.to_owned(),
            on: None,
        };
        Self::new(
            "PENDING",
            vec![
                step("PENDING", "PROCESSING"),
                step("PROCESSING", "COMPLETED"),
                step("PENDING", "FAILED"),
                step("PROCESSING", "FAILED"),
            ],
        )
    }

    /// Every state the machine mentions.
    pub fn states(&self) -> Vec<&str> {
        let mut states: Vec<&str> = std::iter::once(self.initial.as_str())
            .chain(self.transitions.iter().flat_map(|t| [t.from.as_str(), t.to.as_str()]))
            .collect();
        states.sort_unstable();
        states.dedup();
        states
    }
}

impl Reducer for FsmReducer {
    fn reduce(&self, state: &JsonObject, version: Version, action: &Action) -> Result<Reduction, Rejection> {
        if action.payload.contains_key(STATUS_FIELD) {
            return Err(Rejection::new(format!(
                "payload.{STATUS_FIELD} is owned by the state machine; send the event as the action type instead"
            )));
        }
        let event = action.action_type.as_str();
        let current = match state.get(STATUS_FIELD) {
            Some(Value::String(status)) => status.as_str(),
            Some(_) => return Err(Rejection::new(format!("state.{STATUS_FIELD} is not a string"))),
            None => self.initial.as_str(),
        };
        let creating = version == Version::NONE;
        let target = if creating && event == self.initial {
            self.initial.clone()
        } else {
            let Some(transition) = self
                .transitions
                .iter()
                .find(|t| t.from == current && t.event() == event)
            else {
                return Err(Rejection::new(format!(
                    "no transition from {current} on {event}; allowed: {}",
                    self.allowed_from(current)
                )));
            };
            transition.to.clone()
        };

        let mut document = Value::Object(state.clone());
        json_patch::merge(&mut document, &Value::Object(action.payload.clone()));
        let mut next = into_object(document, "an fsm payload")?;
        next.insert(STATUS_FIELD.to_owned(), Value::String(target.clone()));
        let from = if creating {
            Value::Null
        } else {
            Value::String(current.to_owned())
        };
        let intent = Intent {
            intent_type: "transition".to_owned(),
            payload: json!({"from": from, "to": target, "event": event})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        Ok(Reduction {
            state: next,
            intents: vec![intent],
        })
    }
}

impl FsmReducer {
    fn allowed_from(&self, current: &str) -> String {
        let events: Vec<&str> = self
            .transitions
            .iter()
            .filter(|t| t.from == current)
            .map(Transition::event)
            .collect();
        if events.is_empty() {
            format!("none ({current} is final)")
        } else {
            events.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::reducer::test_support::{action, object};

    #[test]
    fn walks_the_default_machine() {
        let fsm = FsmReducer::default_machine();
        let created = fsm
            .reduce(
                &JsonObject::new(),
                Version::NONE,
                &action("PENDING", json!({"order": 7})),
            )
            .expect("create");
        assert_eq!(
            Value::Object(created.state.clone()),
            json!({"order": 7, "status": "PENDING"})
        );
        let started = fsm
            .reduce(&created.state, Version::new(1), &action("PROCESSING", json!({})))
            .expect("start");
        assert_eq!(started.state["status"], "PROCESSING");
        assert_eq!(started.intents[0].payload["from"], "PENDING");
        let done = fsm
            .reduce(&started.state, Version::new(2), &action("COMPLETED", json!({})))
            .expect("finish");
        assert_eq!(done.state["status"], "COMPLETED");
    }

    #[test]
    fn refuses_invalid_transitions_and_status_in_payload() {
        let fsm = FsmReducer::default_machine();
        let done = object(json!({"status": "COMPLETED"}));
        let err = fsm
            .reduce(&done, Version::new(3), &action("PROCESSING", json!({})))
            .expect_err("final state");
        assert!(err.reason.contains("COMPLETED is final"), "{}", err.reason);
        let pending = object(json!({"status": "PENDING"}));
        assert!(
            fsm.reduce(&pending, Version::new(1), &action("COMPLETED", json!({})))
                .is_err()
        );
        assert!(
            fsm.reduce(&pending, Version::new(1), &action("PROCESSING", json!({"status": "X"})))
                .is_err()
        );
    }

    #[test]
    fn named_events_trigger_transitions() {
        let fsm = FsmReducer::new(
            "open",
            vec![Transition {
                from: "open".into(),
                to: "closed".into(),
                on: Some("close".into()),
            }],
        );
        let next = fsm
            .reduce(
                &object(json!({"status": "open"})),
                Version::new(1),
                &action("close", json!({})),
            )
            .expect("close");
        assert_eq!(next.state["status"], "closed");
        assert!(
            fsm.reduce(
                &object(json!({"status": "open"})),
                Version::new(1),
                &action("closed", json!({}))
            )
            .is_err()
        );
    }

    proptest! {
        #[test]
        fn any_event_sequence_stays_within_declared_states(events in prop::collection::vec(
            prop_oneof![Just("PENDING"), Just("PROCESSING"), Just("COMPLETED"), Just("FAILED"), Just("BOGUS")], 1..12)) {
            let fsm = FsmReducer::default_machine();
            let states = fsm.states();
            let mut state = JsonObject::new();
            let mut version = Version::NONE;
            for event in events {
                if let Ok(next) = fsm.reduce(&state, version, &action(event, json!({}))) {
                    let status = next.state["status"].as_str().expect("status is a string").to_owned();
                    prop_assert!(states.contains(&status.as_str()));
                    state = next.state;
                    version = version.next();
                }
            }
        }
    }
}
