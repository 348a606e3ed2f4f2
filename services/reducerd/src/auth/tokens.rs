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
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::Deserialize;
use sha2::{Digest, Sha256};

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

/// What the file said when it was last read.
#[derive(Debug)]
struct Loaded {
    /// The file's modification time and length then; a change in either rereads it.
    stamp: Option<(SystemTime, u64)>,
    by_digest: HashMap<[u8; 32], Arc<Identity>>,
}

/// The tokens file, reread when it changes; a change that does not parse keeps the tokens
/// read before it (and says so in the log), so a bad edit never locks everybody out.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    loaded: RwLock<Loaded>,
}

impl TokenFile {
    /// Reads the file; an error names what is wrong in it.
    pub fn open(path: PathBuf) -> Result<Self, String> {
        let stamp = stamp_of(&path).ok_or_else(|| format!("cannot read {}", path.display()))?;
        let by_digest = read(&path)?;
        Ok(Self {
            path,
            loaded: RwLock::new(Loaded {
                stamp: Some(stamp),
                by_digest,
            }),
        })
    }

    /// The identity whose token is `token`, after rereading the file if it changed.
    pub fn identify(&self, token: &[u8]) -> Option<Arc<Identity>> {
        self.refresh();
        let digest: [u8; 32] = Sha256::digest(token).into();
        let loaded = self.loaded.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        loaded.by_digest.get(&digest).cloned()
    }

    /// How many tokens are in force.
    pub fn len(&self) -> usize {
        self.loaded
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .by_digest
            .len()
    }

    /// Whether no token is in force.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn refresh(&self) {
        let stamp = stamp_of(&self.path);
        {
            let loaded = self.loaded.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            if loaded.stamp == stamp {
                return;
            }
        }
        let mut loaded = self.loaded.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if loaded.stamp == stamp {
            return;
        }
        loaded.stamp = stamp;
        match read(&self.path) {
            Ok(by_digest) => {
                tracing::info!(tokens = by_digest.len(), "auth.tokens_file changed; tokens reloaded");
                loaded.by_digest = by_digest;
            }
            Err(message) => tracing::warn!(
                %message,
                "auth.tokens_file changed but cannot be used; the tokens read before stay in force"
            ),
        }
    }
}

fn stamp_of(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

fn read(path: &std::path::Path) -> Result<HashMap<[u8; 32], Arc<Identity>>, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    parse(&text)
}

/// Parses a tokens file's text.
pub(super) fn parse(text: &str) -> Result<HashMap<[u8; 32], Arc<Identity>>, String> {
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
