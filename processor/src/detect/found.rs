//! What detection found: anomalies and change points, and their rows in the `anomalies` and
//! `regressions` tables.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, MapBuilder, StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_schemas::tables;

use super::config::Mark;
use crate::rollup::{append_labels, labels_builder, ts_builder, SeriesKey};

/// An anomaly found.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// The series, without its version.
    pub series: SeriesKey,
    /// The statistic judged (`p50`, `p95`, `p99`, `error_rate`).
    pub metric: &'static str,
    /// Start of the window judged (epoch ms).
    pub window_start: i64,
    /// The observed value.
    pub observed: f64,
    /// Expected value.
    pub expected: f64,
    /// Lower bound of the expected range.
    pub lower: f64,
    /// Upper bound of the expected range.
    pub upper: f64,
    /// Distance from the expected value, in robust spreads.
    pub score: f64,
    /// `warning`, or `critical` at twice the threshold.
    pub severity: &'static str,
    /// How it was judged, as recorded in `anomalies.method`.
    pub method: &'static str,
}

/// A change point found.
#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    /// The series, without its version.
    pub series: SeriesKey,
    /// The statistic judged (`p50`, `p95`, `p99`, `error_rate`).
    pub metric: &'static str,
    /// Where the change happened (epoch ms).
    pub change_at: i64,
    /// Mean level before the change.
    pub before: f64,
    /// Mean level after the change.
    pub after: f64,
    /// Change, percent of the level before.
    pub change_pct: f64,
    /// p-value of the change.
    pub p_value: f64,
    /// Deployed version before the change, when known.
    pub version_before: Option<String>,
    /// Deployed version after the change, when known.
    pub version_after: Option<String>,
    /// `regression` (the bad way for the metric), `improvement`, or `change` (a metric that
    /// may be bad either way).
    pub kind: &'static str,
}

/// What detection found, and the marks to record.
#[derive(Debug, Default)]
pub struct Detections {
    /// Anomalies found.
    pub anomalies: Vec<Anomaly>,
    /// Change points found.
    pub regressions: Vec<Regression>,
    /// Detection progress to record, by state key.
    pub marks: BTreeMap<String, Mark>,
}

/// The columns both tables start with: detected_at, service, name, labels, metric, and the
/// time the row is about (`window_start`, `change_at`).
struct Leading {
    detected_at: i64,
    at: TimestampMillisecondBuilder,
    service: StringBuilder,
    name: StringBuilder,
    labels: MapBuilder<StringBuilder, StringBuilder>,
    metric: StringBuilder,
    time: TimestampMillisecondBuilder,
}

impl Leading {
    fn new(rows: usize, detected_at: i64) -> Self {
        Self {
            detected_at,
            at: ts_builder(rows),
            service: StringBuilder::new(),
            name: StringBuilder::new(),
            labels: labels_builder(),
            metric: StringBuilder::new(),
            time: ts_builder(rows),
        }
    }

    fn push(&mut self, series: &SeriesKey, metric: &str, time: i64) -> Result<(), ArrowError> {
        self.at.append_value(self.detected_at);
        self.service.append_value(&series.service);
        self.name.append_value(&series.name);
        append_labels(&mut self.labels, &series.labels)?;
        self.metric.append_value(metric);
        self.time.append_value(time);
        Ok(())
    }

    /// The six columns, then `values` (one column per value, as many as each row pushed).
    fn finish(mut self, values: Vec<Vec<f64>>) -> Vec<ArrayRef> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.at.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.metric.finish()),
            Arc::new(self.time.finish()),
        ];
        cols.extend(
            values
                .into_iter()
                .map(|v| Arc::new(Float64Array::from(v)) as ArrayRef),
        );
        cols
    }
}

/// Rows of the `anomalies` table.
///
/// # Errors
/// When Arrow refuses the arrays (a bug).
pub fn anomaly_batch(rows: &[Anomaly], detected_at: i64) -> Result<RecordBatch, ArrowError> {
    let mut leading = Leading::new(rows.len(), detected_at);
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); 5];
    let (mut severity, mut method) = (StringBuilder::new(), StringBuilder::new());
    for a in rows {
        leading.push(&a.series, a.metric, a.window_start)?;
        for (col, v) in values
            .iter_mut()
            .zip([a.observed, a.expected, a.lower, a.upper, a.score])
        {
            col.push(v);
        }
        severity.append_value(a.severity);
        method.append_value(a.method);
    }
    let mut cols = leading.finish(values);
    cols.push(Arc::new(severity.finish()));
    cols.push(Arc::new(method.finish()));
    RecordBatch::try_new(tables::anomalies(), cols)
}

/// Rows of the `regressions` table.
///
/// # Errors
/// When Arrow refuses the arrays (a bug).
pub fn regression_batch(rows: &[Regression], detected_at: i64) -> Result<RecordBatch, ArrowError> {
    let mut leading = Leading::new(rows.len(), detected_at);
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); 4];
    let (mut before, mut after, mut kind) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    for r in rows {
        leading.push(&r.series, r.metric, r.change_at)?;
        for (col, v) in values
            .iter_mut()
            .zip([r.before, r.after, r.change_pct, r.p_value])
        {
            col.push(v);
        }
        before.append_option(r.version_before.as_deref());
        after.append_option(r.version_after.as_deref());
        kind.append_value(r.kind);
    }
    let mut cols = leading.finish(values);
    cols.push(Arc::new(before.finish()));
    cols.push(Arc::new(after.finish()));
    cols.push(Arc::new(kind.finish()));
    RecordBatch::try_new(tables::regressions(), cols)
}
