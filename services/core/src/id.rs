//! Identifiers that are valid by construction.

use std::fmt;

use uuid::Uuid;

/// A problem with one request field, reported back to the caller field by field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {description}")]
pub struct FieldError {
    /// The request field, as named in the API (for example `action.workflow_key`).
    pub field: String,
    /// What is wrong and what a valid value looks like.
    pub description: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }

    /// The same problem, reported under a parent message (`action` + `workflow_key`).
    #[must_use]
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

/// Longest accepted workflow key, in bytes.
pub const MAX_KEY_LEN: usize = 256;

/// The key that identifies one workflow: a name of 1-256 characters from `[A-Za-z0-9._:/@-]`
/// inside a namespace. The same name in two namespaces is two workflows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkflowKey {
    namespace: Namespace,
    name: String,
}

impl WorkflowKey {
    /// Validates a workflow key name within `namespace`.
    pub fn parse(namespace: &Namespace, raw: &str) -> Result<Self, FieldError> {
        check_name(
            raw,
            "workflow_key",
            MAX_KEY_LEN,
            ("letters, digits and . _ : / @ -", |c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '@' | '-')
            }),
        )?;
        Ok(Self {
            namespace: namespace.clone(),
            name: raw.to_owned(),
        })
    }

    /// The key's name, without its namespace.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The namespace the workflow lives in.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }
}

/// Shows the key's name; the namespace is shown separately where it matters.
impl fmt::Display for WorkflowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A tenant namespace: 1-63 characters from `[a-z0-9_-]`, `default` when not given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

impl Default for Namespace {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

impl Namespace {
    /// The namespace used when a request leaves it empty.
    pub const DEFAULT: &'static str = "default";

    /// Validates a namespace; empty means [`Namespace::DEFAULT`].
    pub fn parse_or_default(raw: &str) -> Result<Self, FieldError> {
        if raw.is_empty() {
            return Ok(Self(Self::DEFAULT.to_owned()));
        }
        check_name(
            raw,
            "namespace",
            63,
            ("lowercase letters, digits, _ and -", |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')
            }),
        )?;
        Ok(Self(raw.to_owned()))
    }

    /// The namespace as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A workflow type or action type name: 1-128 characters from `[A-Za-z0-9._:/-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeName(String);

impl TypeName {
    /// Validates a type name; `field` names the request field in errors.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        check_name(
            raw,
            field,
            128,
            ("letters, digits and . _ : / -", |c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-')
            }),
        )?;
        Ok(Self(raw.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The unique id of an action, a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActionId(Uuid);

impl ActionId {
    /// Parses a UUID in any standard text form; `field` names the request field in errors.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        if raw.is_empty() {
            return Err(FieldError::new(
                field,
                "is required: send a UUID such as 3f1c9a52-7d4e-4a8b-9c0d-2e5f6a7b8c9d",
            ));
        }
        Uuid::try_parse(raw)
            .map(Self)
            .map_err(|_| FieldError::new(field, format!("'{}' is not a UUID", truncate(raw))))
    }

    /// Wraps an existing UUID.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

fn check_name(raw: &str, field: &str, max: usize, allowed: (&str, fn(char) -> bool)) -> Result<(), FieldError> {
    let (allowed_text, allowed) = allowed;
    if raw.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    if raw.len() > max {
        return Err(FieldError::new(
            field,
            format!("is {} bytes long; the limit is {max}", raw.len()),
        ));
    }
    if let Some(bad) = raw.chars().find(|c| !allowed(*c)) {
        return Err(FieldError::new(
            field,
            format!("contains {bad:?}; allowed are {allowed_text}"),
        ));
    }
    Ok(())
}

/// Shortens untrusted input before echoing it in an error message.
pub(crate) fn truncate(raw: &str) -> String {
    raw.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn keys_reject_empty_long_and_foreign_characters() {
        assert!(WorkflowKey::parse(&Namespace::default(), "order-42").is_ok());
        assert!(WorkflowKey::parse(&Namespace::default(), "tenant/a:b@c.d_e").is_ok());
        assert!(WorkflowKey::parse(&Namespace::default(), "").is_err());
        assert!(WorkflowKey::parse(&Namespace::default(), "has space").is_err());
        assert!(WorkflowKey::parse(&Namespace::default(), &"k".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(WorkflowKey::parse(&Namespace::default(), &"k".repeat(MAX_KEY_LEN)).is_ok());
    }

    #[test]
    fn the_same_name_in_two_namespaces_is_two_keys() {
        let tenant = Namespace::parse_or_default("tenant-a").expect("namespace");
        let a = WorkflowKey::parse(&tenant, "order-1").expect("key");
        let b = WorkflowKey::parse(&Namespace::default(), "order-1").expect("key");
        assert_ne!(a, b);
        assert_eq!(a.as_str(), b.as_str());
        assert_eq!(a.namespace().as_str(), "tenant-a");
    }

    #[test]
    fn namespace_defaults_and_rejects_uppercase() {
        assert_eq!(Namespace::parse_or_default("").map(|n| n.0), Ok("default".to_owned()));
        assert!(Namespace::parse_or_default("Tenant").is_err());
    }

    #[test]
    fn action_ids_must_be_uuids() {
        assert!(ActionId::parse("not-a-uuid", "action_id").is_err());
        assert!(ActionId::parse("", "action_id").is_err());
        assert!(ActionId::parse("3f1c9a52-7d4e-4a8b-9c0d-2e5f6a7b8c9d", "action_id").is_ok());
    }

    proptest! {
        #[test]
        fn parsed_keys_round_trip(raw in "[A-Za-z0-9._:/@-]{1,256}") {
            let key = WorkflowKey::parse(&Namespace::default(), &raw).expect("valid by the pattern");
            prop_assert_eq!(key.as_str(), raw.as_str());
        }

        #[test]
        fn keys_with_any_other_character_are_refused(prefix in "[a-z]{0,8}", bad in "[^A-Za-z0-9._:/@-]", suffix in "[a-z]{0,8}") {
            let raw = format!("{prefix}{bad}{suffix}");
            prop_assert!(WorkflowKey::parse(&Namespace::default(), &raw).is_err());
        }
    }
}
