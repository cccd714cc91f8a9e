//! What detection found: anomalies and change points, and their rows in the `anomalies` and
//! `regressions` tables.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Builder, StringBuilder};
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

/// Rows of the `anomalies` table.
///
/// # Errors
/// When Arrow refuses the arrays (a bug).
pub fn anomaly_batch(rows: &[Anomaly], detected_at: i64) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let (mut at, mut ws) = (ts_builder(n), ts_builder(n));
    let (mut service, mut name, mut metric, mut sev, mut method) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut labels = labels_builder();
    let mut f: Vec<Float64Builder> = (0..5).map(|_| Float64Builder::with_capacity(n)).collect();
    for a in rows {
        at.append_value(detected_at);
        service.append_value(&a.series.service);
        name.append_value(&a.series.name);
        append_labels(&mut labels, &a.series.labels)?;
        metric.append_value(a.metric);
        ws.append_value(a.window_start);
        for (b, v) in f
            .iter_mut()
            .zip([a.observed, a.expected, a.lower, a.upper, a.score])
        {
            b.append_value(v);
        }
        sev.append_value(a.severity);
        method.append_value(a.method);
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(at.finish()),
        Arc::new(service.finish()),
        Arc::new(name.finish()),
        Arc::new(labels.finish()),
        Arc::new(metric.finish()),
        Arc::new(ws.finish()),
    ];
    for mut b in f {
        cols.push(Arc::new(b.finish()));
    }
    cols.push(Arc::new(sev.finish()));
    cols.push(Arc::new(method.finish()));
    RecordBatch::try_new(tables::anomalies(), cols)
}

/// Rows of the `regressions` table.
///
/// # Errors
/// When Arrow refuses the arrays (a bug).
pub fn regression_batch(rows: &[Regression], detected_at: i64) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let (mut at, mut change) = (ts_builder(n), ts_builder(n));
    let (mut service, mut name, mut metric, mut vb, mut va, mut kind) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut labels = labels_builder();
    let mut f: Vec<Float64Builder> = (0..4).map(|_| Float64Builder::with_capacity(n)).collect();
    for r in rows {
        at.append_value(detected_at);
        service.append_value(&r.series.service);
        name.append_value(&r.series.name);
        append_labels(&mut labels, &r.series.labels)?;
        metric.append_value(r.metric);
        change.append_value(r.change_at);
        for (b, v) in f
            .iter_mut()
            .zip([r.before, r.after, r.change_pct, r.p_value])
        {
            b.append_value(v);
        }
        vb.append_option(r.version_before.as_deref());
        va.append_option(r.version_after.as_deref());
        kind.append_value(r.kind);
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(at.finish()),
        Arc::new(service.finish()),
        Arc::new(name.finish()),
        Arc::new(labels.finish()),
        Arc::new(metric.finish()),
        Arc::new(change.finish()),
    ];
    for mut b in f {
        cols.push(Arc::new(b.finish()));
    }
    cols.push(Arc::new(vb.finish()));
    cols.push(Arc::new(va.finish()));
    cols.push(Arc::new(kind.finish()));
    RecordBatch::try_new(tables::regressions(), cols)
}
