//! `[history]`: how much of each workflow's history is kept.

use serde::Deserialize;

/// `[history]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// `[history.retention]`
    pub retention: HistoryRetentionConfig,
}

/// `[history.retention]`: entries beyond either bound are pruned on the `[retention]`
/// interval.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryRetentionConfig {
    /// Keep the entries of this many versions below each workflow's current one
    /// (0: no bound by count).
    pub keep_versions: u64,
    /// Keep entries at most this old (0: no bound by age).
    pub max_age_seconds: u64,
}

impl Default for HistoryRetentionConfig {
    fn default() -> Self {
        Self {
            keep_versions: 1000,
            max_age_seconds: 30 * 24 * 3600,
        }
    }
}

impl HistoryRetentionConfig {
    /// The bounds as the store takes them.
    pub fn bounds(&self) -> purereducer_storage::HistoryRetention {
        purereducer_storage::HistoryRetention {
            keep_versions: (self.keep_versions > 0).then_some(self.keep_versions),
            max_age: (self.max_age_seconds > 0).then(|| std::time::Duration::from_secs(self.max_age_seconds)),
        }
    }
}
