//! Bearer JWTs verified against public keys from a JWKS file (reread when it changes), with
//! `iss`, `aud`, `exp` and `nbf` checked; the namespaces and roles come from claims.
//!
//! Only public-key algorithms are accepted (RSA, ECDSA, EdDSA), and a key only verifies the
//! algorithms of its own family, so a token cannot pick a weaker check than its key allows.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::reload::Reloading;
use super::{Identity, Namespaces, Rejection, Role};

/// `[auth.jwt]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// A JSON Web Key Set with the issuer's public keys.
    pub jwks_file: Option<PathBuf>,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// The `aud` every token must carry (one of its values, when a list).
    pub audience: String,
    /// The claim listing the namespaces (`"*"` for all); `namespaces` when empty.
    pub namespaces_claim: String,
    /// The claim listing the roles; `roles` when empty.
    pub roles_claim: String,
}

/// One usable key of the set.
#[derive(Clone)]
struct Key {
    id: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// Verifies bearer JWTs (see the module docs).
pub struct JwtVerifier {
    issuer: String,
    audience: String,
    namespaces_claim: String,
    roles_claim: String,
    keys: Reloading<Vec<Key>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Reads the key set; an error names the setting at fault.
    pub fn open(config: &JwtConfig) -> Result<Self, (&'static str, String)> {
        let Some(path) = config.jwks_file.clone() else {
            return Err(("auth.jwt.jwks_file", "is required with auth.mode = \"jwt\"".to_owned()));
        };
        if config.issuer.is_empty() {
            return Err(("auth.jwt.issuer", "is required with auth.mode = \"jwt\"".to_owned()));
        }
        if config.audience.is_empty() {
            return Err(("auth.jwt.audience", "is required with auth.mode = \"jwt\"".to_owned()));
        }
        let keys =
            Reloading::open(path, "auth.jwt.jwks_file", read).map_err(|message| ("auth.jwt.jwks_file", message))?;
        let claim = |name: &str, default: &str| {
            if name.is_empty() {
                default.to_owned()
            } else {
                name.to_owned()
            }
        };
        Ok(Self {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            namespaces_claim: claim(&config.namespaces_claim, "namespaces"),
            roles_claim: claim(&config.roles_claim, "roles"),
            keys,
        })
    }

    /// The identity a valid token stands for.
    pub fn identify(&self, token: &[u8]) -> Result<Arc<Identity>, Rejection> {
        let token = std::str::from_utf8(token).map_err(|_| Rejection::Unknown)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Unknown)?;
        let key = {
            let keys = self.keys.current();
            let mut candidates = keys
                .iter()
                .filter(|key| header.kid.is_none() || key.id == header.kid)
                .filter(|key| key.algorithms.contains(&header.alg));
            let first = candidates.next().cloned();
            // Without a `kid` the key must be unambiguous.
            if header.kid.is_none() && candidates.next().is_some() {
                return Err(Rejection::Unknown);
            }
            first.ok_or(Rejection::Unknown)?
        };
        let mut validation = Validation::new(header.alg);
        validation.algorithms = key.algorithms.clone();
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key.key, &validation)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Rejection::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => Rejection::NotYetValid,
                _ => Rejection::Unknown,
            })?
            .claims;
        let subject = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let strings = |name: &str| -> Vec<String> {
            match claims.get(name) {
                Some(serde_json::Value::Array(items)) => {
                    items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
                }
                Some(serde_json::Value::String(joined)) => joined.split_whitespace().map(str::to_owned).collect(),
                _ => Vec::new(),
            }
        };
        let namespaces = strings(&self.namespaces_claim);
        let namespaces = if namespaces.iter().any(|n| n == "*") {
            Namespaces::All
        } else {
            Namespaces::Only(namespaces.into_iter().collect::<BTreeSet<_>>())
        };
        let role = strings(&self.roles_claim)
            .iter()
            .filter_map(|name| Role::parse(name))
            .max();
        Ok(Arc::new(Identity {
            subject,
            namespaces,
            role,
        }))
    }
}

fn read(path: &Path) -> Result<Vec<Key>, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|err| format!("{}: not a JWKS document: {err}", path.display()))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let algorithms = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            AlgorithmParameters::EllipticCurve(_) => vec![Algorithm::ES256, Algorithm::ES384],
            AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
            AlgorithmParameters::OctetKey(_) => {
                return Err(format!(
                    "{}: symmetric (\"oct\") keys are not accepted; publish the issuer's public keys",
                    path.display()
                ));
            }
        };
        let key =
            DecodingKey::from_jwk(jwk).map_err(|err| format!("{}: a key cannot be used: {err}", path.display()))?;
        keys.push(Key {
            id: jwk.common.key_id.clone(),
            key,
            algorithms,
        });
    }
    if keys.is_empty() {
        return Err(format!("{}: the key set holds no keys", path.display()));
    }
    Ok(keys)
}
