//! A value read from a file and read again when the file changes (its modification time or
//! length); a change that does not load keeps the value read before, and says so in the log,
//! so a bad edit never locks everybody out.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// What identifies a version of a file: its modification time and length.
pub type Stamp = Option<(SystemTime, u64)>;

/// The stamp of `path` now (`None` when it cannot be read).
pub fn stamp_of(path: &Path) -> Stamp {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// See the module docs. `setting` names the file in log lines (`auth.tokens_file`).
pub struct Reloading<T> {
    path: PathBuf,
    setting: &'static str,
    load: fn(&Path) -> Result<T, String>,
    current: RwLock<(Stamp, Arc<T>)>,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("path", &self.path)
            .field("setting", &self.setting)
            .finish_non_exhaustive()
    }
}

impl<T> Reloading<T> {
    /// Loads `path` once now; an error says what is wrong with it.
    pub fn open(path: PathBuf, setting: &'static str, load: fn(&Path) -> Result<T, String>) -> Result<Self, String> {
        let stamp = stamp_of(&path);
        let value = load(&path)?;
        Ok(Self {
            path,
            setting,
            load,
            current: RwLock::new((stamp, Arc::new(value))),
        })
    }

    /// The value, loaded again first if the file changed.
    pub fn current(&self) -> Arc<T> {
        let stamp = stamp_of(&self.path);
        {
            let current = self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            if current.0 == stamp {
                return current.1.clone();
            }
        }
        let mut current = self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if current.0 != stamp {
            current.0 = stamp;
            match (self.load)(&self.path) {
                Ok(value) => {
                    tracing::info!(setting = self.setting, "the file changed; reloaded");
                    current.1 = Arc::new(value);
                }
                Err(message) => tracing::warn!(
                    setting = self.setting,
                    %message,
                    "the file changed but cannot be used; what was read before stays in force"
                ),
            }
        }
        current.1.clone()
    }
}
