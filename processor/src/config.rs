//! The processor's settings.

use std::time::Duration;

use opslake_schemas::ConfigError;
use serde::{Deserialize, Serialize};

use crate::capacity::CapacityConfig;
use crate::cost::CostConfig;
use crate::detect::direction::Directions;

const HOUR_MS: i64 = 3_600_000;

/// Settings of the processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorConfig {
    /// Window of `metric_rollups_1m` and `log_rollups_1m`; must divide an hour.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Time between cycles.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Cost analytics: forecasts and savings opportunities.
    pub costs: CostConfig,
    /// Anomaly and regression detection.
    pub detect: DetectSettings,
    /// Resource trends: leaks and capacity (the top-level `[capacity]` section, which the
    /// binary copies here).
    #[serde(skip)]
    pub capacity: CapacityConfig,
}

/// Settings of detection (`processor.detect`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectSettings {
    /// Which way each metric's moves are bad, by metric name or `prefix*`: `up`, `down` or
    /// `both`; other names are judged by their words (see [`Directions::of`]).
    pub directions: Directions,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            interval: Duration::from_secs(10),
            costs: CostConfig::default(),
            detect: DetectSettings::default(),
            capacity: CapacityConfig::default(),
        }
    }
}

impl ProcessorConfig {
    /// Checks the settings; the error names the key.
    ///
    /// # Errors
    /// When the window does not divide an hour or the interval is zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let w = self.window.as_millis();
        if w < 1000 || !(HOUR_MS as u128).is_multiple_of(w) {
            return Err(ConfigError::key(
                "processor.window",
                format!(
                    "{} does not divide an hour into whole windows of at least 1s (try 1m, 5m, 15m)",
                    humantime::format_duration(self.window)
                ),
            ));
        }
        if self.interval.is_zero() {
            return Err(ConfigError::key(
                "processor.interval",
                "must be more than 0s",
            ));
        }
        self.costs.validate()?;
        self.capacity.validate()
    }

    pub(crate) fn window_ms(&self) -> i64 {
        self.window.as_millis() as i64
    }
}
