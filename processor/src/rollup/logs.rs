//! Log rollups: `logs` rows folded into per-service, per-window counts by level and duration
//! sketches, read back from and written as `log_rollups_1m` rows.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Float64Builder, Int64Builder, StringBuilder,
};
use datafusion::arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_schemas::tables;
use opslake_sketch::DDSketch;

use super::{sketch_from, ts_builder, window_of};
use crate::columns::{column, strings, timestamps};

/// Log levels in the order of the `*_count` columns.
pub const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

/// Aggregate of one service's logs in one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogAgg {
    /// Events per level, in [`LEVELS`] order.
    pub levels: [u64; 6],
    /// Events that failed: level `error` or `fatal`, or a `status_code` of 500 or more (what
    /// an `errors` SLO counts as bad).
    pub bad: u64,
    /// Sketch of the events' durations.
    pub duration: DDSketch,
}

impl LogAgg {
    /// Events counted, every level.
    pub fn count(&self) -> u64 {
        self.levels.iter().sum()
    }

    /// `error` and `fatal`.
    pub fn errors(&self) -> u64 {
        self.levels[4] + self.levels[5]
    }

    /// Adds `other`'s counts and durations.
    pub fn merge(&mut self, other: &LogAgg) {
        for (a, b) in self.levels.iter_mut().zip(other.levels) {
            *a += b;
        }
        self.bad += other.bad;
        self.duration.merge(&other.duration);
    }
}

/// Log rollups of some windows: (window start ms, service) → aggregate.
pub type LogWindows = HashMap<(i64, String), LogAgg>;

fn level_index(level: &str) -> usize {
    LEVELS
        .iter()
        .position(|l| l.eq_ignore_ascii_case(level))
        .unwrap_or_else(|| {
            if level.eq_ignore_ascii_case("warning") {
                3
            } else {
                2
            }
        })
}

/// Folds rows of the `logs` table into `into`.
///
/// # Errors
/// When a batch lacks a column of the `logs` table.
pub fn fold_logs(
    batch: &RecordBatch,
    window_ms: i64,
    into: &mut LogWindows,
) -> Result<(), ArrowError> {
    let ts = timestamps(batch, "timestamp")?;
    let ts = ts.as_primitive::<TimestampMillisecondType>();
    let service = strings(batch, "service")?;
    let service = service.as_string::<i32>();
    let level = strings(batch, "level")?;
    let level = level.as_string::<i32>();
    let duration = column(batch, "duration_ms")?;
    let duration = duration.as_primitive::<Float64Type>();
    let status = column(batch, "status_code")?;
    let status = status.as_primitive::<Int32Type>();
    let mut cache: HashMap<&str, String> = HashMap::new();
    for row in 0..batch.num_rows() {
        let w = window_of(ts.value(row), window_ms);
        let s = service.value(row);
        let owned = cache.entry(s).or_insert_with(|| s.to_string()).clone();
        let agg = into.entry((w, owned)).or_default();
        let li = level_index(level.value(row));
        agg.levels[li] += 1;
        if li >= 4 || (!status.is_null(row) && status.value(row) >= 500) {
            agg.bad += 1;
        }
        if !duration.is_null(row) {
            agg.duration.add(duration.value(row));
        }
    }
    Ok(())
}

/// Reads stored log rollup rows back into windows.
///
/// # Errors
/// When the batch is not a log rollup or a sketch does not decode.
pub fn load_log_rollups(batch: &RecordBatch, into: &mut LogWindows) -> Result<(), ArrowError> {
    let ws = timestamps(batch, "window_start")?;
    let ws = ws.as_primitive::<TimestampMillisecondType>();
    let service = strings(batch, "service")?;
    let service = service.as_string::<i32>();
    let counts: Vec<ArrayRef> = LEVELS
        .iter()
        .map(|l| column(batch, &format!("{l}_count")))
        .collect::<Result<_, _>>()?;
    let sketch = column(batch, "duration_sketch")?;
    // Absent (null) in rollups written before it existed: their errors are all that is known.
    let bad = batch.column_by_name("bad_count");
    for row in 0..batch.num_rows() {
        let mut agg = LogAgg::default();
        for (i, c) in counts.iter().enumerate() {
            agg.levels[i] = c.as_primitive::<Int64Type>().value(row).max(0) as u64;
        }
        agg.bad = match bad.map(|b| b.as_primitive::<Int64Type>()) {
            Some(b) if !b.is_null(row) => b.value(row).max(0) as u64,
            _ => agg.errors(),
        };
        if let Some(s) = sketch_from(&sketch, row)? {
            agg.duration = s;
        }
        into.entry((ws.value(row), service.value(row).to_string()))
            .or_default()
            .merge(&agg);
    }
    Ok(())
}

/// The rows of `log_rollups_1m` for `windows`, ordered by service and window.
///
/// # Errors
/// When Arrow refuses the arrays (a bug).
pub fn log_rollup_batch(windows: &LogWindows, window_ms: i64) -> Result<RecordBatch, ArrowError> {
    let mut rows: Vec<(&(i64, String), &LogAgg)> =
        windows.iter().filter(|(_, a)| a.count() > 0).collect();
    rows.sort_by(|a, b| (&a.0 .1, a.0 .0).cmp(&(&b.0 .1, b.0 .0)));
    let n = rows.len();
    let mut start = ts_builder(n);
    let mut end = ts_builder(n);
    let mut service = StringBuilder::new();
    let mut total = Int64Builder::with_capacity(n);
    let mut levels: Vec<Int64Builder> = (0..6).map(|_| Int64Builder::with_capacity(n)).collect();
    let mut rate = Float64Builder::with_capacity(n);
    let mut p: Vec<Float64Builder> = (0..3).map(|_| Float64Builder::with_capacity(n)).collect();
    let mut sketch = BinaryBuilder::new();
    let mut bad = Int64Builder::with_capacity(n);
    for ((w, svc), agg) in rows {
        bad.append_value(agg.bad as i64);
        start.append_value(*w);
        end.append_value(w + window_ms);
        service.append_value(svc);
        total.append_value(agg.count() as i64);
        for (b, c) in levels.iter_mut().zip(agg.levels) {
            b.append_value(c as i64);
        }
        rate.append_value(agg.errors() as f64 / agg.count() as f64);
        for (b, q) in p.iter_mut().zip([0.5, 0.95, 0.99]) {
            b.append_option(agg.duration.quantile(q));
        }
        if agg.duration.is_empty() {
            sketch.append_null();
        } else {
            sketch.append_value(agg.duration.to_bytes());
        }
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(service.finish()),
        Arc::new(total.finish()),
    ];
    for mut b in levels {
        cols.push(Arc::new(b.finish()));
    }
    cols.push(Arc::new(rate.finish()));
    for mut b in p {
        cols.push(Arc::new(b.finish()));
    }
    cols.push(Arc::new(sketch.finish()));
    cols.push(Arc::new(bad.finish()));
    RecordBatch::try_new(tables::log_rollups(), cols)
}
