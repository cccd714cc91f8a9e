//! One SLO (`[[slos]]`).

use std::collections::BTreeMap;
use std::time::Duration;

use opslake_schemas::ConfigError;
use serde::{Deserialize, Serialize};

/// What an SLO counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SloKind {
    /// Samples of `metric` at or under `threshold` are good (from the stored sketches).
    Latency,
    /// Log events of level `error` or `fatal`, or with `status_code` >= 500, are bad.
    Errors,
}

/// A service level objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    /// Its name (the `slo` column and label).
    pub name: String,
    /// `latency` or `errors`.
    pub kind: SloKind,
    /// The service.
    pub service: String,
    /// The metric of a latency SLO.
    #[serde(default)]
    pub metric: Option<String>,
    /// Labels a latency SLO's samples must have (equality).
    #[serde(default)]
    pub filter: BTreeMap<String, String>,
    /// A latency SLO's threshold, in the metric's unit.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The share of good events aimed for, e.g. 0.999.
    pub objective: f64,
    /// The rolling period the objective is over.
    #[serde(default = "thirty_days", with = "humantime_serde")]
    pub period: Duration,
}

fn thirty_days() -> Duration {
    Duration::from_secs(30 * 86_400)
}

/// Checks every SLO; the error names the key.
///
/// # Errors
/// A missing name, metric or threshold, an objective outside (0, 1), a period under an hour,
/// two SLOs of one name.
pub fn validate(slos: &[SloConfig]) -> Result<(), ConfigError> {
    let mut names = std::collections::BTreeSet::new();
    for (i, s) in slos.iter().enumerate() {
        let key = |f: &str| format!("slos[{i}].{f}");
        if s.name.trim().is_empty() || !names.insert(s.name.as_str()) {
            return Err(ConfigError::key(
                key("name"),
                "must be a name no other SLO has",
            ));
        }
        if s.service.trim().is_empty() {
            return Err(ConfigError::key(key("service"), "must not be empty"));
        }
        if !(s.objective > 0.0 && s.objective < 1.0) {
            return Err(ConfigError::key(
                key("objective"),
                format!("{} is not between 0 and 1 (e.g. 0.999)", s.objective),
            ));
        }
        if s.period < Duration::from_secs(3600) {
            return Err(ConfigError::key(key("period"), "must be at least 1h"));
        }
        if s.kind == SloKind::Latency {
            if s.metric.as_deref().is_none_or(|m| m.trim().is_empty()) {
                return Err(ConfigError::key(
                    key("metric"),
                    "a latency SLO needs its metric",
                ));
            }
            if !s.threshold.is_some_and(f64::is_finite) {
                return Err(ConfigError::key(
                    key("threshold"),
                    "a latency SLO needs its threshold",
                ));
            }
        }
    }
    Ok(())
}
