//! Settings of detection, and the progress it records per series and metric.

use serde::{Deserialize, Serialize};

use super::anomaly::AnomalyConfig;
use super::changepoint::ChangePointConfig;
use super::direction::Directions;
use crate::rollup::SeriesKey;

/// Settings of detection.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    /// Anomaly detection settings.
    pub anomaly: AnomalyConfig,
    /// Change-point detection settings.
    pub changes: ChangePointConfig,
    /// History replayed before the first window to evaluate.
    pub lookback_ms: i64,
    /// Windows a window waits for late data before it is evaluated.
    pub lateness_windows: i64,
    /// Points of history the change-point search looks at.
    pub change_history: usize,
    /// Points a change must have after it (itself included) before it is recorded, so that it
    /// does not move and a passing spike is not taken for it; a young series needs fewer:
    /// half the points before the change, and [`MIN_SETTLE_POINTS`] at least (Otava's
    /// ten-run sample has its change at the seventh run).
    pub change_settle: usize,
    /// Which way each metric's moves are bad.
    pub directions: Directions,
}

/// Fewest points a change must have after it (itself included) before it is recorded.
pub const MIN_SETTLE_POINTS: usize = 3;

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            anomaly: AnomalyConfig::default(),
            changes: ChangePointConfig {
                window_len: 50,
                max_pvalue: 0.001,
                min_magnitude: 0.1,
            },
            lookback_ms: 3 * 86_400_000,
            lateness_windows: 2,
            change_history: 300,
            change_settle: 8,
            directions: Directions::default(),
        }
    }
}

/// Per series and metric: how far detection got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Last window evaluated for anomalies.
    pub evaluated: Option<i64>,
    /// Last change point recorded.
    pub last_change: Option<i64>,
    /// Last window the change-point search has seen.
    #[serde(default)]
    pub searched: Option<i64>,
}

/// State key of a series' metric.
pub fn state_key(series: &SeriesKey, metric: &str) -> String {
    let labels: Vec<String> = series
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "detect|{}|{}|{}|{metric}",
        series.service,
        series.name,
        labels.join(",")
    )
}
