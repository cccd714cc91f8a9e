//! Window rollups: raw metric and log rows folded into per-window aggregates with sketches.
//!
//! Everything here is pure over record batches, so the runner can fold new files into the
//! rollups already stored (incremental) or recompute an hour from all its raw files (after
//! compaction replaced files it had not read yet); both give the same rows.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Float64Builder, Int64Builder, MapArray, MapBuilder,
    StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMillisecondType};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_schemas::tables;

use crate::sketch::DDSketch;

/// A series with its version: the grouping key of metric rollups.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub service: String,
    pub name: String,
    pub version: Option<String>,
    /// Sorted by key.
    pub labels: Vec<(String, String)>,
}

impl SeriesKey {
    /// The same series without its version (detection works across deployments).
    pub fn without_version(&self) -> SeriesKey {
        SeriesKey {
            version: None,
            ..self.clone()
        }
    }
}

/// Metric rollups of some windows: (window start ms, series) → sketch. The sketch carries the
/// exact count, sum, min and max.
pub type MetricWindows = HashMap<(i64, Arc<SeriesKey>), DDSketch>;

/// Log levels in the order of the `*_count` columns.
pub const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

/// Aggregate of one service's logs in one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogAgg {
    pub levels: [u64; 6],
    pub duration: DDSketch,
}

impl LogAgg {
    pub fn count(&self) -> u64 {
        self.levels.iter().sum()
    }

    /// `error` and `fatal`.
    pub fn errors(&self) -> u64 {
        self.levels[4] + self.levels[5]
    }

    pub fn merge(&mut self, other: &LogAgg) {
        for (a, b) in self.levels.iter_mut().zip(other.levels) {
            *a += b;
        }
        self.duration.merge(&other.duration);
    }
}

/// Log rollups of some windows: (window start ms, service) → aggregate.
pub type LogWindows = HashMap<(i64, String), LogAgg>;

/// Interns series so that a row costs one hash of its parts and one comparison, with no
/// allocation: strings are copied only the first time a series is seen. (Hand-rolled over
/// hashbrown's `HashTable`, because a map keyed by an owned key would have to build that key
/// for every row just to look it up.)
#[derive(Default)]
pub struct SeriesInterner {
    table: hashbrown::HashTable<u32>,
    keys: Vec<Arc<SeriesKey>>,
    hasher: hashbrown::DefaultHashBuilder,
}

fn hash_parts(
    hasher: &hashbrown::DefaultHashBuilder,
    service: &str,
    name: &str,
    version: Option<&str>,
    labels: &[(&str, &str)],
) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = hasher.build_hasher();
    service.hash(&mut h);
    name.hash(&mut h);
    version.hash(&mut h);
    labels.len().hash(&mut h);
    for (k, v) in labels {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

fn hash_key(hasher: &hashbrown::DefaultHashBuilder, key: &SeriesKey) -> u64 {
    let labels: Vec<(&str, &str)> = key
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    hash_parts(
        hasher,
        &key.service,
        &key.name,
        key.version.as_deref(),
        &labels,
    )
}

impl SeriesInterner {
    fn intern(
        &mut self,
        service: &str,
        name: &str,
        version: Option<&str>,
        labels: &mut [(&str, &str)],
    ) -> u32 {
        if !labels.is_sorted() {
            labels.sort_unstable();
        }
        let hash = hash_parts(&self.hasher, service, name, version, labels);
        let keys = &self.keys;
        let same = |id: &u32| {
            let k = &keys[*id as usize];
            k.service == service
                && k.name == name
                && k.version.as_deref() == version
                && k.labels.len() == labels.len()
                && k.labels
                    .iter()
                    .zip(labels.iter())
                    .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
        };
        if let Some(id) = self.table.find(hash, same) {
            return *id;
        }
        let id = self.keys.len() as u32;
        self.keys.push(Arc::new(SeriesKey {
            service: service.to_string(),
            name: name.to_string(),
            version: version.map(str::to_string),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        }));
        let (keys, hasher) = (&self.keys, &self.hasher);
        self.table
            .insert_unique(hash, id, |id| hash_key(hasher, &keys[*id as usize]));
        id
    }

    fn key(&self, id: u32) -> &Arc<SeriesKey> {
        &self.keys[id as usize]
    }
}

pub(crate) fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is missing")))
}

/// A string column as `Utf8`, whatever string type the file holds.
pub(crate) fn strings(batch: &RecordBatch, name: &str) -> Result<ArrayRef, ArrowError> {
    let c = column(batch, name)?;
    if c.data_type() == &DataType::Utf8 {
        Ok(c)
    } else {
        cast(&c, &DataType::Utf8)
    }
}

pub(crate) fn timestamps(batch: &RecordBatch, name: &str) -> Result<ArrayRef, ArrowError> {
    let c = column(batch, name)?;
    match c.data_type() {
        DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, _) => Ok(c),
        _ => cast(&c, &tables::ts()),
    }
}

pub(crate) fn map_entries<'a>(map: &'a MapArray, row: usize, out: &mut Vec<(&'a str, &'a str)>) {
    out.clear();
    if map.is_null(row) {
        return;
    }
    let offsets = map.value_offsets();
    let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
    let keys = map.keys().as_string::<i32>();
    let values = map.values().as_string::<i32>();
    for i in start..end {
        let v = if values.is_null(i) {
            ""
        } else {
            values.value(i)
        };
        out.push((keys.value(i), v));
    }
}

/// Adds every window of `from` to `into` (sketches of the same window and series merge).
pub fn merge_windows(into: &mut MetricWindows, from: MetricWindows) {
    for (k, s) in from {
        match into.entry(k) {
            std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().merge(&s),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(s);
            }
        }
    }
}

/// Start of the window holding `ts_ms`.
pub fn window_of(ts_ms: i64, window_ms: i64) -> i64 {
    ts_ms - ts_ms.rem_euclid(window_ms)
}

/// Folds rows of the `metrics` table into `into`.
///
/// # Errors
/// When a batch lacks a column of the `metrics` table.
pub fn fold_metrics(
    batch: &RecordBatch,
    window_ms: i64,
    interner: &mut SeriesInterner,
    into: &mut MetricWindows,
) -> Result<(), ArrowError> {
    let ts = timestamps(batch, "timestamp")?;
    let ts = ts.as_primitive::<TimestampMillisecondType>();
    let service = strings(batch, "service")?;
    let service = service.as_string::<i32>();
    let name = strings(batch, "name")?;
    let name = name.as_string::<i32>();
    let version = strings(batch, "version")?;
    let version = version.as_string::<i32>();
    let value = column(batch, "value")?;
    let value = value.as_primitive::<Float64Type>();
    let labels = column(batch, "labels")?;
    let labels = labels.as_map();
    let mut pairs = Vec::new();
    // Groups of this batch by (window, series id); merged into `into` once at the end, so the
    // per-row work hashes two integers, not the series' strings.
    let mut local: hashbrown::HashMap<(i64, u32), DDSketch> = hashbrown::HashMap::new();
    for row in 0..batch.num_rows() {
        map_entries(labels, row, &mut pairs);
        let v = (!version.is_null(row)).then(|| version.value(row));
        let id = interner.intern(service.value(row), name.value(row), v, &mut pairs);
        let w = window_of(ts.value(row), window_ms);
        local.entry((w, id)).or_default().add(value.value(row));
    }
    for ((w, id), s) in local {
        match into.entry((w, Arc::clone(interner.key(id)))) {
            std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().merge(&s),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(s);
            }
        }
    }
    Ok(())
}

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
    let mut cache: HashMap<&str, String> = HashMap::new();
    for row in 0..batch.num_rows() {
        let w = window_of(ts.value(row), window_ms);
        let s = service.value(row);
        let owned = cache.entry(s).or_insert_with(|| s.to_string()).clone();
        let agg = into.entry((w, owned)).or_default();
        agg.levels[level_index(level.value(row))] += 1;
        if !duration.is_null(row) {
            agg.duration.add(duration.value(row));
        }
    }
    Ok(())
}

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
    for row in 0..batch.num_rows() {
        let mut agg = LogAgg::default();
        for (i, c) in counts.iter().enumerate() {
            agg.levels[i] = c.as_primitive::<Int64Type>().value(row).max(0) as u64;
        }
        if let Some(s) = sketch_from(&sketch, row)? {
            agg.duration = s;
        }
        into.entry((ws.value(row), service.value(row).to_string()))
            .or_default()
            .merge(&agg);
    }
    Ok(())
}

/// Merges window rollups into rollups of `coarse_ms` windows (1-minute sketches into hours).
pub fn coarsen(windows: &MetricWindows, coarse_ms: i64) -> MetricWindows {
    let mut out = MetricWindows::new();
    for ((w, key), s) in windows {
        out.entry((window_of(*w, coarse_ms), Arc::clone(key)))
            .or_default()
            .merge(s);
    }
    out
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
        let vals = [
            s.sum(),
            s.min().unwrap_or(0.0),
            s.max().unwrap_or(0.0),
            s.mean().unwrap_or(0.0),
            s.quantile(0.5).unwrap_or(0.0),
            s.quantile(0.9).unwrap_or(0.0),
            s.quantile(0.95).unwrap_or(0.0),
            s.quantile(0.99).unwrap_or(0.0),
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
    for ((w, svc), agg) in rows {
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
    RecordBatch::try_new(tables::log_rollups(), cols)
}
