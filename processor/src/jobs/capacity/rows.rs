//! Rows of `leaks` and `capacity_forecasts` (CONTRACT section 10).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_schemas::tables;
use serde::{Deserialize, Serialize};

use crate::capacity::{CapacityForecast, LeakVerdict};
use crate::rollup::labels_builder;

/// A resource series' identity: service, gauge name, host and labels (sorted by key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct SeriesId {
    pub(crate) service: String,
    pub(crate) name: String,
    pub(crate) host: Option<String>,
    pub(crate) labels: Vec<(String, String)>,
}

impl SeriesId {
    /// The `series` column: `["service","name","host",[["key","value"],...]]`, `null` for a
    /// missing host; one string per series, whatever its version.
    pub(crate) fn key(&self) -> String {
        serde_json::to_string(&(&self.service, &self.name, &self.host, &self.labels))
            .expect("strings serialize")
    }

    /// The same series' gauge `name` (where a `limit_metric` is read).
    pub(crate) fn with_name(&self, name: &str) -> Self {
        Self {
            name: name.to_string(),
            ..self.clone()
        }
    }
}

/// The identity columns every row starts with.
struct Leading {
    at: TimestampMillisecondBuilder,
    service: StringBuilder,
    host: StringBuilder,
    name: StringBuilder,
    labels: datafusion::arrow::array::MapBuilder<StringBuilder, StringBuilder>,
    series: StringBuilder,
}

impl Leading {
    fn new() -> Self {
        Self {
            at: TimestampMillisecondBuilder::new().with_timezone(tables::TZ),
            service: StringBuilder::new(),
            host: StringBuilder::new(),
            name: StringBuilder::new(),
            labels: labels_builder(),
            series: StringBuilder::new(),
        }
    }

    fn push(&mut self, at_ms: i64, id: &SeriesId) -> Result<(), ArrowError> {
        self.at.append_value(at_ms);
        self.service.append_value(&id.service);
        self.host.append_option(id.host.as_deref());
        self.name.append_value(&id.name);
        for (k, v) in &id.labels {
            self.labels.keys().append_value(k);
            self.labels.values().append_value(v);
        }
        self.labels.append(true)?;
        self.series.append_value(id.key());
        Ok(())
    }

    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.at.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.host.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.series.finish()),
        ]
    }
}

/// A `leaks` row: a series' verdict at `detected_at`.
#[derive(Debug, Clone)]
pub(crate) struct LeakRow {
    pub(crate) detected_at_ms: i64,
    pub(crate) id: SeriesId,
    pub(crate) verdict: LeakVerdict,
    /// A cleared row: growth 0.
    pub(crate) cleared: bool,
}

/// A `capacity_forecasts` row.
#[derive(Debug, Clone)]
pub(crate) struct ForecastRow {
    pub(crate) computed_at_ms: i64,
    pub(crate) id: SeriesId,
    pub(crate) limit: f64,
    pub(crate) forecast: CapacityForecast,
}

/// Rows of `leaks`.
pub(crate) fn leak_batch(rows: &[LeakRow]) -> Result<RecordBatch, ArrowError> {
    let mut leading = Leading::new();
    let mut since = TimestampMillisecondBuilder::new().with_timezone(tables::TZ);
    let (mut growth, mut pct, mut score) = (
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
    );
    let (mut version, mut method) = (StringBuilder::new(), StringBuilder::new());
    let mut restarts = Int64Builder::new();
    for r in rows {
        let v = &r.verdict;
        leading.push(r.detected_at_ms, &r.id)?;
        since.append_option(v.since_ms);
        let (g, p) = if r.cleared {
            (0.0, 0.0)
        } else {
            (v.growth_per_hour, v.growth_pct_per_day)
        };
        growth.append_value(finite(g));
        pct.append_value(finite(p));
        version.append_option(v.version.as_deref());
        restarts.append_value(i64::from(v.restarts));
        score.append_value(finite(v.score));
        method.append_value(v.method);
    }
    let mut cols = leading.finish();
    cols.extend([
        Arc::new(since.finish()) as ArrayRef,
        Arc::new(growth.finish()),
        Arc::new(pct.finish()),
        Arc::new(version.finish()),
        Arc::new(restarts.finish()),
        Arc::new(score.finish()),
        Arc::new(method.finish()),
    ]);
    RecordBatch::try_new(tables::leaks(), cols)
}

/// Rows of `capacity_forecasts`.
pub(crate) fn forecast_batch(rows: &[ForecastRow]) -> Result<RecordBatch, ArrowError> {
    let mut leading = Leading::new();
    let (mut current, mut limit, mut growth) = (
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
    );
    let ts = || TimestampMillisecondBuilder::new().with_timezone(tables::TZ);
    let (mut at, mut low, mut high) = (ts(), ts(), ts());
    let mut method = StringBuilder::new();
    for r in rows {
        let f = &r.forecast;
        leading.push(r.computed_at_ms, &r.id)?;
        current.append_option(f.current.is_finite().then_some(f.current));
        limit.append_value(r.limit);
        growth.append_value(finite(f.growth_per_hour));
        // All three, or none: a time without its interval is not a forecast.
        let all = f
            .exhausted_at_ms
            .zip(f.exhausted_low_ms)
            .zip(f.exhausted_high_ms);
        at.append_option(all.map(|((a, _), _)| a));
        low.append_option(all.map(|((_, l), _)| l));
        high.append_option(all.map(|(_, h)| h));
        method.append_value(f.method);
    }
    let mut cols = leading.finish();
    cols.extend([
        Arc::new(current.finish()) as ArrayRef,
        Arc::new(limit.finish()),
        Arc::new(growth.finish()),
        Arc::new(at.finish()),
        Arc::new(low.finish()),
        Arc::new(high.finish()),
        Arc::new(method.finish()),
    ]);
    RecordBatch::try_new(tables::capacity_forecasts(), cols)
}

fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}
