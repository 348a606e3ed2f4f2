//! Who may call what: bearer tokens checked on every request, roles per RPC and namespaces
//! per credential.
//!
//! [`AuthLayer`] runs in front of every service: it answers UNAUTHENTICATED for a missing or
//! unknown credential and PERMISSION_DENIED for an RPC the credential's role does not cover,
//! and hands the caller's [`Identity`] to the services through the request's extensions.
//! The services check the namespace a request names with [`require_namespace`], since only
//! they know it. Health checks stay open so probes need no credential.
//!
//! Roles nest: `reader` ⊂ `writer` ⊂ `admin`.

mod jwt;
mod layer;
pub(crate) mod reload;
mod tokens;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use tonic::Status;

pub use jwt::{JwtConfig, JwtVerifier};
pub use layer::AuthLayer;
pub use tokens::TokenFile;

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `none` (every caller is trusted; keep the server on a loopback address), `token` or
    /// `jwt`.
    pub mode: String,
    /// With `mode = "token"`: a TOML file of `[[token]]` tables, reread when it changes.
    pub tokens_file: Option<PathBuf>,
    /// With `mode = "jwt"`: the issuer's keys and the claims to check.
    pub jwt: JwtConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: "none".to_owned(),
            tokens_file: None,
            jwt: JwtConfig::default(),
        }
    }
}

/// What a credential may do, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads state, projections, dedup records and completions; subscribes.
    Reader,
    /// A reader that may also send actions.
    Writer,
    /// A writer that may also commit states directly, plant dedup records, clean up and
    /// use reflection.
    Admin,
}

impl Role {
    /// Parses a role name as written in a tokens file or a token's claims.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "reader" => Some(Self::Reader),
            "writer" => Some(Self::Writer),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// The role's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Writer => "writer",
            Self::Admin => "admin",
        }
    }
}

/// The namespaces a credential is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// Every namespace (`"*"`).
    All,
    /// Just these.
    Only(BTreeSet<String>),
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Who the credential belongs to; logged, never a secret.
    pub subject: String,
    /// The namespaces it may use.
    pub namespaces: Namespaces,
    /// The highest role it holds; `None` for a credential with no role at all.
    pub role: Option<Role>,
}

impl Identity {
    /// The caller when authentication is off: everything is allowed.
    pub fn trusted() -> Self {
        Self {
            subject: "anonymous".to_owned(),
            namespaces: Namespaces::All,
            role: Some(Role::Admin),
        }
    }

    /// Whether the caller holds `role` (or a higher one).
    pub fn has(&self, role: Role) -> bool {
        self.role.is_some_and(|held| held >= role)
    }

    /// Whether the caller may use `namespace`.
    pub fn may_use(&self, namespace: &str) -> bool {
        match &self.namespaces {
            Namespaces::All => true,
            Namespaces::Only(granted) => granted.contains(namespace),
        }
    }

    /// The granted namespaces, or `None` for all of them.
    pub fn granted(&self) -> Option<&BTreeSet<String>> {
        match &self.namespaces {
            Namespaces::All => None,
            Namespaces::Only(granted) => Some(granted),
        }
    }
}

/// How requests are authenticated.
#[derive(Debug)]
pub enum Authenticator {
    /// Every caller is [`Identity::trusted`].
    None,
    /// Bearer tokens listed in a file.
    Tokens(TokenFile),
    /// Bearer JWTs signed by a configured issuer.
    Jwt(JwtVerifier),
}

/// Why a request carries no usable credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No `authorization` header, or not `Bearer …`.
    Missing,
    /// A bearer token that no credential matches (or a JWT that does not verify).
    Unknown,
    /// A JWT past its `exp`.
    Expired,
    /// A JWT before its `nbf`.
    NotYetValid,
}

impl Rejection {
    /// The status the caller sees; never echoes what it sent.
    pub fn status(self) -> Status {
        match self {
            Self::Missing => Status::unauthenticated(
                "this server requires a credential: send the header 'authorization: Bearer <token>'",
            ),
            Self::Unknown => Status::unauthenticated(
                "the bearer token is not valid for this server; check the token, or ask its operator for one",
            ),
            Self::Expired => Status::unauthenticated("the bearer token has expired; get a new one from its issuer"),
            Self::NotYetValid => Status::unauthenticated(
                "the bearer token is not valid yet (nbf); check the clocks of the issuer and of this caller",
            ),
        }
    }
}

impl Authenticator {
    /// Builds the authenticator `config` asks for, reading its files once now so a bad one
    /// stops start-up.
    pub fn from_config(config: &AuthConfig) -> Result<Self, crate::config::ConfigError> {
        match config.mode.as_str() {
            "none" => Ok(Self::None),
            "token" => {
                let Some(path) = &config.tokens_file else {
                    return Err(crate::config::ConfigError::Invalid {
                        key: "auth.tokens_file".to_owned(),
                        message: "is required with auth.mode = \"token\"".to_owned(),
                    });
                };
                TokenFile::open(path.clone())
                    .map(Self::Tokens)
                    .map_err(|message| crate::config::ConfigError::Invalid {
                        key: "auth.tokens_file".to_owned(),
                        message,
                    })
            }
            "jwt" => JwtVerifier::open(&config.jwt).map(Self::Jwt).map_err(|(key, message)| {
                crate::config::ConfigError::Invalid {
                    key: key.to_owned(),
                    message,
                }
            }),
            other => Err(crate::config::ConfigError::Invalid {
                key: "auth.mode".to_owned(),
                message: format!("unknown mode '{other}'; use \"none\", \"token\" or \"jwt\""),
            }),
        }
    }

    /// Whether callers must present a credential.
    pub fn required(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// The caller behind `authorization` (the header's value, if any).
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Arc<Identity>, Rejection> {
        match self {
            Self::None => Ok(trusted()),
            Self::Tokens(tokens) => {
                let token = bearer(authorization).ok_or(Rejection::Missing)?;
                tokens.identify(token).ok_or(Rejection::Unknown)
            }
            Self::Jwt(verifier) => verifier.identify(bearer(authorization).ok_or(Rejection::Missing)?),
        }
    }
}

/// The token of an `authorization: Bearer <token>` header.
fn bearer(header: Option<&[u8]>) -> Option<&[u8]> {
    let value = header?;
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value[7..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// What an RPC needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, credential or not (health checks).
    Open,
    /// An authenticated caller holding this role.
    Needs(Role),
}

/// The access an RPC path (`/package.Service/Method`) needs. Anything not listed needs a
/// reader, so an authenticated caller learns that an unknown method is unimplemented and
/// nobody else learns anything.
pub fn access_for(path: &str) -> Access {
    let path = path.trim_start_matches('/');
    if path.starts_with("grpc.health.") {
        return Access::Open;
    }
    if path.starts_with("grpc.reflection.") {
        return Access::Needs(Role::Admin);
    }
    let method = path.strip_prefix("purereducer.v1.").unwrap_or(path);
    match method {
        "CanonicalStoreService/TryCommit"
        | "CanonicalStoreService/DeleteWorkflow"
        | "ActionDedupService/RecordProcessed"
        | "ActionDedupService/CleanupExpired"
        | "ReducerService/RetryAction"
        | "ProjectionService/ListDeadLetters"
        | "ProjectionService/ReplayDeadLetter" => Access::Needs(Role::Admin),
        "ReducerService/HandleAction" | "EventBusService/PublishAction" => Access::Needs(Role::Writer),
        _ => Access::Needs(Role::Reader),
    }
}

/// The caller of a request that went through [`AuthLayer`]; a request that did not (a
/// service used without the layer, as in unit tests) is trusted.
pub fn identity<T>(request: &tonic::Request<T>) -> Arc<Identity> {
    request
        .extensions()
        .get::<Arc<Identity>>()
        .cloned()
        .unwrap_or_else(trusted)
}

/// The one [`Identity::trusted`], shared rather than made per request.
fn trusted() -> Arc<Identity> {
    static TRUSTED: std::sync::OnceLock<Arc<Identity>> = std::sync::OnceLock::new();
    TRUSTED.get_or_init(|| Arc::new(Identity::trusted())).clone()
}

/// PERMISSION_DENIED unless the caller may use `namespace`.
pub fn require_namespace(identity: &Identity, namespace: &str) -> Result<(), Status> {
    if identity.may_use(namespace) {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "the credential of '{}' is not granted namespace '{namespace}'; use a credential for it, or ask the operator to grant it",
        identity.subject
    )))
}

#[cfg(test)]
mod tests;
