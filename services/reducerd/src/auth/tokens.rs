//! Bearer tokens from a TOML file, stored as SHA-256 digests and reread when the file changes.
//!
//! ```toml
//! [[token]]
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! subject = "billing-service"
//! namespaces = ["billing"]   # or ["*"] for every namespace
//! roles = ["writer"]
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::reload::Reloading;
use super::{Identity, Namespaces, Role};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    token: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    sha256: String,
    subject: String,
    namespaces: Vec<String>,
    roles: Vec<String>,
}

type ByDigest = HashMap<[u8; 32], Arc<Identity>>;

/// The tokens file, reread when it changes (see [`Reloading`]).
#[derive(Debug)]
pub struct TokenFile {
    tokens: Reloading<ByDigest>,
}

impl TokenFile {
    /// Reads the file; an error names what is wrong in it.
    pub fn open(path: PathBuf) -> Result<Self, String> {
        Ok(Self {
            tokens: Reloading::open(path, "auth.tokens_file", read)?,
        })
    }

    /// The identity whose token is `token`, after rereading the file if it changed.
    pub fn identify(&self, token: &[u8]) -> Option<Arc<Identity>> {
        let digest: [u8; 32] = Sha256::digest(token).into();
        self.tokens.current().get(&digest).cloned()
    }
}

fn read(path: &Path) -> Result<ByDigest, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    parse(&text)
}

/// Parses a tokens file's text.
pub(super) fn parse(text: &str) -> Result<ByDigest, String> {
    let file: File = toml::from_str(text).map_err(|err| err.to_string())?;
    let mut by_digest = HashMap::new();
    for (index, entry) in file.token.into_iter().enumerate() {
        let at = format!("token {} ('{}')", index + 1, entry.subject);
        let digest = parse_digest(&entry.sha256)
            .ok_or_else(|| format!("{at}: sha256 must be 64 hexadecimal digits (the SHA-256 of the token)"))?;
        if entry.subject.trim().is_empty() {
            return Err(format!("token {}: subject must not be empty", index + 1));
        }
        let namespaces = if entry.namespaces.iter().any(|n| n == "*") {
            Namespaces::All
        } else if entry.namespaces.is_empty() {
            return Err(format!("{at}: namespaces must list at least one namespace, or \"*\""));
        } else {
            Namespaces::Only(entry.namespaces.into_iter().collect::<BTreeSet<_>>())
        };
        let mut role = None;
        for name in &entry.roles {
            let parsed =
                Role::parse(name).ok_or_else(|| format!("{at}: unknown role '{name}'; use reader, writer or admin"))?;
            role = role.max(Some(parsed));
        }
        let identity = Identity {
            subject: entry.subject,
            namespaces,
            role,
        };
        if by_digest.insert(digest, Arc::new(identity)).is_some() {
            return Err(format!("{at}: the same token is listed twice"));
        }
    }
    Ok(by_digest)
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(digest)
}
