//! `[capacity]` (CONTRACT section 10): which gauges are resources, of which kind, with which
//! limit, and how far ahead a forecast looks.

use std::time::Duration;

use opslake_schemas::ConfigError;
use serde::{Deserialize, Serialize};

/// Longest horizon accepted: a forecast further out than a year says nothing useful.
const MAX_HORIZON: Duration = Duration::from_secs(366 * 86_400);

/// Settings of resource trends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapacityConfig {
    /// Forecasts further out than this say "not within the horizon" (three nulls).
    #[serde(with = "humantime_serde")]
    pub horizon: Duration,
    /// Gauges named as resources; the defaults of [`CapacityConfig::resource`] apply to the
    /// rest.
    pub resources: Vec<ResourceConfig>,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        Self {
            horizon: Duration::from_secs(30 * 86_400),
            resources: Vec::new(),
        }
    }
}

/// One `[[capacity.resources]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    /// The gauge's exact name, or a prefix ending in `*`.
    pub metric: String,
    /// `memory` (watched for leaks and forecast) or `other` (forecast only).
    #[serde(default)]
    pub kind: ResourceKind,
    /// The limit, in the metric's unit.
    #[serde(default)]
    pub limit: Option<f64>,
    /// A gauge of the same series (service, host, labels) giving the limit.
    #[serde(default)]
    pub limit_metric: Option<String>,
}

/// What a resource is watched for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    /// Watched for leaks, and forecast when it has a limit.
    Memory,
    /// Forecast when it has a limit.
    #[default]
    Other,
}

/// Where a resource's limit comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    /// None: a memory series watched for leaks only.
    None,
    /// A fixed value.
    Fixed(f64),
    /// The latest value of another gauge of the same series.
    Metric(String),
}

/// A gauge recognised as a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// What it is watched for.
    pub kind: ResourceKind,
    /// Its limit.
    pub limit: Limit,
}

impl CapacityConfig {
    /// Checks the settings; the error names the key.
    ///
    /// # Errors
    /// A horizon of zero or over a year, an empty metric, a limit that is not a positive
    /// number, or both `limit` and `limit_metric`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.horizon.is_zero() || self.horizon > MAX_HORIZON {
            return Err(ConfigError::key(
                "capacity.horizon",
                "must be more than 0s and at most 366 days",
            ));
        }
        for (i, r) in self.resources.iter().enumerate() {
            let key = |k: &str| format!("capacity.resources[{i}].{k}");
            if r.metric.trim_end_matches('*').is_empty() {
                return Err(ConfigError::key(key("metric"), "must name a gauge"));
            }
            if r.limit.is_some_and(|l| !(l.is_finite() && l > 0.0)) {
                return Err(ConfigError::key(key("limit"), "must be a number above 0"));
            }
            if r.limit.is_some() && r.limit_metric.is_some() {
                return Err(ConfigError::key(
                    key("limit_metric"),
                    "give limit or limit_metric, not both",
                ));
            }
            if r.limit_metric.as_deref().is_some_and(str::is_empty) {
                return Err(ConfigError::key(key("limit_metric"), "must name a gauge"));
            }
        }
        Ok(())
    }

    /// The horizon in milliseconds.
    pub fn horizon_ms(&self) -> i64 {
        i64::try_from(self.horizon.as_millis()).unwrap_or(i64::MAX)
    }

    /// The resource a gauge named `name` is, if any: the first entry that names it, else the
    /// defaults (a name containing `memory` is memory without a limit; one ending in
    /// `.utilization` or `_ratio` has limit 1.0). A gauge that is some entry's `limit_metric`
    /// is a limit, not a resource.
    pub fn resource(&self, name: &str) -> Option<Resource> {
        if self.is_limit_metric(name) {
            return None;
        }
        if let Some(r) = self.resources.iter().find(|r| names(&r.metric, name)) {
            let limit = match (&r.limit, &r.limit_metric) {
                (Some(l), _) => Limit::Fixed(*l),
                (None, Some(m)) => Limit::Metric(m.clone()),
                (None, None) if is_ratio(name) => Limit::Fixed(1.0),
                (None, None) => Limit::None,
            };
            return Some(Resource {
                kind: r.kind,
                limit,
            });
        }
        if is_ratio(name) {
            let kind = if name.contains("memory") {
                ResourceKind::Memory
            } else {
                ResourceKind::Other
            };
            return Some(Resource {
                kind,
                limit: Limit::Fixed(1.0),
            });
        }
        name.contains("memory").then_some(Resource {
            kind: ResourceKind::Memory,
            limit: Limit::None,
        })
    }

    /// Whether `name` is the `limit_metric` of an entry.
    pub fn is_limit_metric(&self, name: &str) -> bool {
        self.resources
            .iter()
            .any(|r| r.limit_metric.as_deref() == Some(name))
    }
}

/// Whether `pattern` (an exact name, or a prefix ending in `*`) names `name`.
fn names(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn is_ratio(name: &str) -> bool {
    name.ends_with(".utilization") || name.ends_with("_ratio")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_recognise_memory_and_ratios() {
        let c = CapacityConfig::default();
        for n in [
            "process.memory.usage",
            "container.memory.usage",
            "jvm.memory.used",
            "process_resident_memory_bytes",
        ] {
            assert_eq!(
                c.resource(n),
                Some(Resource {
                    kind: ResourceKind::Memory,
                    limit: Limit::None
                }),
                "{n}"
            );
        }
        assert_eq!(
            c.resource("disk.utilization").map(|r| r.limit),
            Some(Limit::Fixed(1.0))
        );
        assert_eq!(c.resource("http.server.duration"), None);
    }

    #[test]
    fn entries_win_and_limit_metrics_are_not_resources() {
        let c: CapacityConfig = toml::from_str(
            r#"
            horizon = "14d"
            [[resources]]
            metric = "process.memory.*"
            kind = "memory"
            limit_metric = "process.memory.limit"
            [[resources]]
            metric = "disk.used"
            limit = 100.0
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.resource("process.memory.usage").map(|r| r.limit),
            Some(Limit::Metric("process.memory.limit".into()))
        );
        assert_eq!(c.resource("process.memory.limit"), None);
        assert_eq!(
            c.resource("disk.used"),
            Some(Resource {
                kind: ResourceKind::Other,
                limit: Limit::Fixed(100.0)
            })
        );
        assert_eq!(c.horizon_ms(), 14 * 86_400_000);
    }

    #[test]
    fn bad_settings_name_their_key() {
        for (toml, key) in [
            ("horizon = \"0s\"", "capacity.horizon"),
            (
                "[[resources]]\nmetric = \"*\"",
                "capacity.resources[0].metric",
            ),
            (
                "[[resources]]\nmetric = \"m\"\nlimit = -1.0",
                "capacity.resources[0].limit",
            ),
            (
                "[[resources]]\nmetric = \"m\"\nlimit = 1.0\nlimit_metric = \"x\"",
                "capacity.resources[0].limit_metric",
            ),
        ] {
            let c: CapacityConfig = toml::from_str(toml).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{toml}: {e}");
        }
    }
}
