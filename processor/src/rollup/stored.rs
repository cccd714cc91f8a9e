//! Metric rollups as stored: `metric_rollups_1m`/`_1h` rows read back into windows and
//! written from them, and the column builders the derived tables share.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Float64Builder, Int64Builder, MapBuilder,
    StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, TimestampMillisecondType};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_schemas::tables;
use opslake_sketch::DDSketch;

use super::{MetricWindows, SeriesInterner, SeriesKey};
use crate::columns::{column, map_entries, strings, timestamps};

pub(crate) fn sketch_from(col: &ArrayRef, row: usize) -> Result<Option<DDSketch>, ArrowError> {
    let bytes: Option<&[u8]> = match col.data_type() {
        DataType::Binary => {
            let a = col.as_binary::<i32>();
            (!a.is_null(row)).then(|| a.value(row))
        }
        DataType::BinaryView => {
            let a = col.as_binary_view();
            (!a.is_null(row)).then(|| a.value(row))
        }
        DataType::LargeBinary => {
            let a = col.as_binary::<i64>();
            (!a.is_null(row)).then(|| a.value(row))
        }
        other => {
            return Err(ArrowError::SchemaError(format!(
                "sketch column has type {other}, expected binary"
            )))
        }
    };
    bytes
        .map(|b| DDSketch::from_bytes(b).map_err(|e| ArrowError::ParseError(e.to_string())))
        .transpose()
}

/// Reads stored metric rollup rows back into windows (the sketch holds every aggregate).
///
/// # Errors
/// When the batch is not a metric rollup or a sketch does not decode.
pub fn load_metric_rollups(
    batch: &RecordBatch,
    interner: &mut SeriesInterner,
    into: &mut MetricWindows,
) -> Result<(), ArrowError> {
    let ws = timestamps(batch, "window_start")?;
    let ws = ws.as_primitive::<TimestampMillisecondType>();
    let service = strings(batch, "service")?;
    let service = service.as_string::<i32>();
    let name = strings(batch, "name")?;
    let name = name.as_string::<i32>();
    let version = strings(batch, "version")?;
    let version = version.as_string::<i32>();
    let labels = column(batch, "labels")?;
    let labels = labels.as_map();
    let sketch = column(batch, "sketch")?;
    let mut pairs = Vec::new();
    for row in 0..batch.num_rows() {
        map_entries(labels, row, &mut pairs);
        let v = (!version.is_null(row)).then(|| version.value(row));
        let id = interner.intern(service.value(row), name.value(row), v, &mut pairs);
        if let Some(s) = sketch_from(&sketch, row)? {
            into.entry((ws.value(row), Arc::clone(interner.key(id))))
                .or_default()
                .merge(&s);
        }
    }
    Ok(())
}

/// A builder of `MAP<VARCHAR, VARCHAR>` columns (labels).
pub(crate) fn labels_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

pub(crate) fn ts_builder(cap: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(cap).with_timezone(tables::TZ)
}

pub(crate) fn append_labels(
    b: &mut MapBuilder<StringBuilder, StringBuilder>,
    labels: &[(String, String)],
) -> Result<(), ArrowError> {
    for (k, v) in labels {
        b.keys().append_value(k);
        b.values().append_value(v);
    }
    b.append(true)
}

/// The rows of a metric rollup table for `windows`, ordered by series, version and window.
///
/// # Errors
/// When Arrow refuses the arrays (a bug).
pub fn metric_rollup_batch(
    windows: &MetricWindows,
    window_ms: i64,
) -> Result<RecordBatch, ArrowError> {
    let mut rows: Vec<(&(i64, Arc<SeriesKey>), &DDSketch)> =
        windows.iter().filter(|(_, s)| !s.is_empty()).collect();
    rows.sort_by(|a, b| (&a.0 .1, a.0 .0).cmp(&(&b.0 .1, b.0 .0)));
    let n = rows.len();
    let mut start = ts_builder(n);
    let mut end = ts_builder(n);
    let mut service = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut version = StringBuilder::new();
    let mut labels = labels_builder();
    let mut count = Int64Builder::with_capacity(n);
    let mut f: Vec<Float64Builder> = (0..8).map(|_| Float64Builder::with_capacity(n)).collect();
    let mut sketch = BinaryBuilder::new();
    for ((w, key), s) in rows {
        start.append_value(*w);
        end.append_value(w + window_ms);
        service.append_value(&key.service);
        name.append_value(&key.name);
        version.append_option(key.version.as_deref());
        append_labels(&mut labels, &key.labels)?;
        count.append_value(s.count() as i64);
        let [p50, p90, p95, p99] = s.quantiles([0.5, 0.9, 0.95, 0.99]).unwrap_or_default();
        let vals = [
            s.sum(),
            s.min().unwrap_or(0.0),
            s.max().unwrap_or(0.0),
            s.mean().unwrap_or(0.0),
            p50,
            p90,
            p95,
            p99,
        ];
        for (b, v) in f.iter_mut().zip(vals) {
            b.append_value(v);
        }
        sketch.append_value(s.to_bytes());
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(service.finish()),
        Arc::new(name.finish()),
        Arc::new(version.finish()),
        Arc::new(labels.finish()),
        Arc::new(count.finish()),
    ];
    for mut b in f {
        cols.push(Arc::new(b.finish()));
    }
    cols.push(Arc::new(sketch.finish()));
    RecordBatch::try_new(tables::metric_rollups(), cols)
}
