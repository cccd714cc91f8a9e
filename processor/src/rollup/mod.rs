//! Window rollups: raw metric and log rows folded into per-window aggregates with sketches.
//!
//! Everything here is pure over record batches, so a job can fold new files into the
//! rollups already stored (incremental) or recompute an hour from all its raw files (after
//! compaction replaced files it had not read yet); both give the same rows.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, DictionaryArray};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{Float64Type, Int32Type, TimestampMillisecondType};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_schemas::series::parse_series_key;

use opslake_sketch::DDSketch;

use crate::columns::{column, dictionary, timestamps};

mod histograms;
mod logs;
mod stored;

pub use logs::{fold_logs, load_log_rollups, log_rollup_batch, LogAgg, LogWindows, LEVELS};
pub(crate) use stored::{append_labels, labels_builder, sketch_from, ts_builder};
pub use stored::{load_metric_rollups, metric_rollup_batch};

/// Per-window metric rollups (one row per series, version and window).
pub const METRIC_ROLLUPS_1M: &str = "metric_rollups_1m";
/// The same, per hour.
pub const METRIC_ROLLUPS_1H: &str = "metric_rollups_1h";
/// Per-window log rollups (one row per service and window).
pub const LOG_ROLLUPS_1M: &str = "log_rollups_1m";

/// A series with its version: the grouping key of metric rollups.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Service.
    pub service: String,
    /// Metric name.
    pub name: String,
    /// Deployed version, when the event had one.
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
/// exact count, sum, min and max. Hashed with foldhash (hashbrown's default), not SipHash: a
/// cycle hashes every window's key, strings included, several times.
pub type MetricWindows = HashMap<(i64, Arc<SeriesKey>), DDSketch, hashbrown::DefaultHashBuilder>;

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

/// Adds every window of `from` to `into` (sketches of the same window and series merge).
pub fn merge_windows(into: &mut MetricWindows, from: MetricWindows) {
    if into.is_empty() {
        *into = from;
        return;
    }
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

/// A dictionary column's contribution to a row's series code: its key + 1, or 0 for a null or
/// an absent label, in a radix of the dictionary's size + 1.
struct Digit<'a> {
    keys: &'a [i32],
    nulls: Option<&'a NullBuffer>,
    radix: u64,
}

impl<'a> Digit<'a> {
    fn of(d: &'a DictionaryArray<Int32Type>) -> Self {
        Self {
            keys: d.keys().values(),
            nulls: d.nulls(),
            radix: d.values().len() as u64 + 1,
        }
    }

    fn push(&self, code: u64, i: Option<usize>) -> u64 {
        let digit = match i {
            Some(i) if self.nulls.is_none_or(|n| n.is_valid(i)) => self.keys[i] as u64 + 1,
            _ => 0,
        };
        code * self.radix + digit
    }
}

fn str_at(d: &DictionaryArray<Int32Type>, row: usize) -> Option<&str> {
    d.is_valid(row).then(|| {
        d.values()
            .as_string::<i32>()
            .value(d.keys().value(row) as usize)
    })
}

/// Folds raw metric rows into sketches per (window, series).
///
/// The rows of a series are spread across a file, so the fold works on integers: string
/// columns are read as dictionaries (the Parquet files are dictionary-encoded, so nothing is
/// decoded per row), a row's dictionary keys find its series id in a per-batch cache, and each
/// series remembers the sketch of the window it last added to, so a row costs one small hash,
/// one comparison and one sketch update. Strings are compared only once per distinct series and
/// batch, when the interner resolves a new key combination.
#[derive(Default)]
pub struct MetricFold {
    interner: SeriesInterner,
    sketches: Vec<DDSketch>,
    /// (window start, series id) → index in `sketches`.
    slots: hashbrown::HashMap<(i64, u32), usize>,
    /// By series id: the window it last added to and that window's sketch.
    current: Vec<(i64, usize)>,
    /// Series ids by the `series` column's string.
    by_key: HashMap<Box<str>, u32>,
    /// By slot: values not yet in the slot's sketch. A slot's values enter its sketch
    /// [`PENDING`] at a time, while its bins are in L1; one value at a time, nearly every
    /// update missed the cache, the rows of a batch being spread over hundreds of sketches
    /// (half of the fold's time in `perf`).
    pending: Vec<Vec<f64>>,
}

/// Values a slot holds before they enter its sketch.
const PENDING: usize = 128;

impl MetricFold {
    /// Folds rows of the `metrics` table.
    ///
    /// # Errors
    /// When a batch lacks a column of the `metrics` table.
    pub fn add(&mut self, batch: &RecordBatch, window_ms: i64) -> Result<(), ArrowError> {
        if let Some(series) = batch.column_by_name("series") {
            if series.null_count() == 0 {
                return self.add_by_series(batch, series, window_ms);
            }
        }
        let ts = timestamps(batch, "timestamp")?;
        let ts = ts.as_primitive::<TimestampMillisecondType>();
        let service = dictionary(&column(batch, "service")?)?;
        let name = dictionary(&column(batch, "name")?)?;
        let version = dictionary(&column(batch, "version")?)?;
        let value = column(batch, "value")?;
        let value = value.as_primitive::<Float64Type>();
        let labels = column(batch, "labels")?;
        let labels = labels.as_map();
        let label_keys = dictionary(labels.keys())?;
        let label_values = dictionary(labels.values())?;
        let offsets = labels.value_offsets();
        let entries = |row: usize| {
            if labels.is_valid(row) {
                offsets[row] as usize..offsets[row + 1] as usize
            } else {
                0..0
            }
        };
        // A row's series as one integer: its dictionary keys as the digits of a mixed-radix
        // number (label slots a row does not use are 0). Keys index this batch's dictionaries,
        // so the cache from code to series id lives per batch. When the digits of a batch do
        // not fit in 64 bits (dictionaries of very many labels), rows take the string path.
        let digits = [&service, &name, &version, &label_keys, &label_values].map(Digit::of);
        let [service_d, name_d, version_d, key_d, value_d] = &digits;
        let most = (0..batch.num_rows())
            .map(|r| entries(r).len())
            .max()
            .unwrap_or(0);
        let count_radix = most as u64 + 1;
        let space = [service_d.radix, name_d.radix, version_d.radix, count_radix]
            .into_iter()
            .chain(std::iter::repeat_n(key_d.radix, most))
            .chain(std::iter::repeat_n(value_d.radix, most))
            .try_fold(1u64, u64::checked_mul);
        let mut cache: hashbrown::HashMap<u64, u32> = hashbrown::HashMap::new();
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for row in 0..batch.num_rows() {
            let labels_of_row = entries(row);
            let code = space.map(|_| {
                let mut code = service_d.push(0, Some(row));
                code = name_d.push(code, Some(row));
                code = version_d.push(code, Some(row));
                code = code * count_radix + labels_of_row.len() as u64;
                for j in 0..most {
                    let i = (j < labels_of_row.len()).then(|| labels_of_row.start + j);
                    code = key_d.push(code, i);
                    code = value_d.push(code, i);
                }
                code
            });
            let id = match code.and_then(|c| cache.get(&c).copied()) {
                Some(id) => id,
                None => {
                    let id = self.intern_row(
                        &service,
                        &name,
                        &version,
                        (&label_keys, &label_values),
                        row,
                        labels_of_row,
                        &mut pairs,
                    );
                    if let Some(c) = code {
                        cache.insert(c, id);
                    }
                    id
                }
            };
            self.add_value(id, ts.value(row), value.value(row), window_ms);
        }
        Ok(())
    }

    /// Folds rows whose `series` column is complete: each distinct series string of a batch
    /// is looked up (and parsed, the first time) once, and a row costs an index into that
    /// batch's ids and one sketch update.
    fn add_by_series(
        &mut self,
        batch: &RecordBatch,
        series: &ArrayRef,
        window_ms: i64,
    ) -> Result<(), ArrowError> {
        let ts = timestamps(batch, "timestamp")?;
        let ts = ts.as_primitive::<TimestampMillisecondType>();
        let value = column(batch, "value")?;
        let value = value.as_primitive::<Float64Type>();
        let series = dictionary(series)?;
        let distinct = series.values().as_string::<i32>();
        let mut ids = Vec::with_capacity(distinct.len());
        for key in distinct.iter() {
            ids.push(self.series_id(key.unwrap_or_default())?);
        }
        for (row, &k) in series.keys().values().iter().enumerate() {
            self.add_value(ids[k as usize], ts.value(row), value.value(row), window_ms);
        }
        Ok(())
    }

    fn series_id(&mut self, key: &str) -> Result<u32, ArrowError> {
        if let Some(&id) = self.by_key.get(key) {
            return Ok(id);
        }
        let (service, name, version, labels) = parse_series_key(key).ok_or_else(|| {
            ArrowError::ParseError(format!("not a series of the series column: {key}"))
        })?;
        let mut pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let id = self
            .interner
            .intern(&service, &name, version.as_deref(), &mut pairs);
        self.by_key.insert(key.into(), id);
        Ok(id)
    }

    #[inline]
    fn add_value(&mut self, id: u32, t: i64, v: f64, window_ms: i64) {
        let slot = match self.current.get(id as usize) {
            // Still in the series' current window: no division to find the window.
            Some(&(cw, slot)) if t >= cw && t - cw < window_ms => slot,
            _ => self.slot(window_of(t, window_ms), id),
        };
        let pending = &mut self.pending[slot];
        pending.push(v);
        if pending.len() >= PENDING {
            self.sketches[slot].add_all(pending);
            pending.clear();
        }
    }

    /// Adds a slot's pending values to its sketch and frees their buffer.
    fn flush(&mut self, slot: usize) {
        let pending = std::mem::take(&mut self.pending[slot]);
        self.sketches[slot].add_all(&pending);
    }

    #[allow(clippy::too_many_arguments)]
    fn intern_row<'a>(
        &mut self,
        service: &'a DictionaryArray<Int32Type>,
        name: &'a DictionaryArray<Int32Type>,
        version: &'a DictionaryArray<Int32Type>,
        labels: (
            &'a DictionaryArray<Int32Type>,
            &'a DictionaryArray<Int32Type>,
        ),
        row: usize,
        entries: std::ops::Range<usize>,
        pairs: &mut Vec<(&'a str, &'a str)>,
    ) -> u32 {
        pairs.clear();
        for i in entries {
            pairs.push((
                str_at(labels.0, i).unwrap_or_default(),
                str_at(labels.1, i).unwrap_or_default(),
            ));
        }
        self.interner.intern(
            str_at(service, row).unwrap_or_default(),
            str_at(name, row).unwrap_or_default(),
            str_at(version, row),
            pairs,
        )
    }

    /// The sketch of (`w`, `id`), created when new, remembered as the series' current one.
    fn slot(&mut self, w: i64, id: u32) -> usize {
        let next = self.sketches.len();
        let slot = *self.slots.entry((w, id)).or_insert(next);
        if slot == next {
            self.sketches.push(DDSketch::default());
            self.pending.push(Vec::new());
        }
        let i = id as usize;
        if self.current.len() <= i {
            // No window yet: no timestamp is at or after `i64::MAX`.
            self.current.resize(i + 1, (i64::MAX, usize::MAX));
        }
        // The series leaves its window (time moves on, mostly): that window's values go in.
        let left = self.current[i].1;
        if left != usize::MAX && left != slot {
            self.flush(left);
        }
        self.current[i] = (w, slot);
        slot
    }

    /// The windows folded so far.
    pub fn finish(mut self) -> MetricWindows {
        for slot in 0..self.sketches.len() {
            self.flush(slot);
        }
        let mut sketches: Vec<Option<DDSketch>> = self.sketches.into_iter().map(Some).collect();
        self.slots
            .into_iter()
            .map(|((w, id), slot)| {
                let s = sketches[slot].take().expect("one slot per sketch");
                ((w, Arc::clone(self.interner.key(id))), s)
            })
            .collect()
    }
}

/// Merges window rollups into rollups of `coarse_ms` windows (1-minute sketches into hours).
pub fn coarsen(windows: &MetricWindows, coarse_ms: i64) -> MetricWindows {
    let mut out = MetricWindows::default();
    for ((w, key), s) in windows {
        out.entry((window_of(*w, coarse_ms), Arc::clone(key)))
            .or_default()
            .merge(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, StringArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use opslake_schemas::tables;

    type Row = (
        i64,
        &'static str,
        Option<&'static str>,
        Vec<(&'static str, &'static str)>,
        f64,
    );

    /// A batch of the columns the fold reads; `dictionaries` stores the strings as the lake's
    /// reader returns them, otherwise as plain `Utf8`.
    fn batch(rows: &[Row], dictionaries: bool) -> RecordBatch {
        let mut labels = labels_builder();
        for (_, _, _, l, _) in rows {
            let owned: Vec<(String, String)> = l
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            append_labels(&mut labels, &owned).unwrap();
        }
        let strings = |a: StringArray| -> ArrayRef {
            let a: ArrayRef = Arc::new(a);
            if dictionaries {
                Arc::new(dictionary(&a).unwrap())
            } else {
                a
            }
        };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampMillisecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())
                    .with_timezone(tables::TZ),
            ),
            strings(rows.iter().map(|r| Some(r.1)).collect()),
            strings(rows.iter().map(|_| Some("latency")).collect()),
            strings(rows.iter().map(|r| r.2).collect()),
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.4).collect::<Vec<_>>(),
            )),
            Arc::new(labels.finish()),
        ];
        let fields: Vec<Field> = ["timestamp", "service", "name", "version", "value", "labels"]
            .iter()
            .zip(&cols)
            .map(|(n, c)| Field::new(*n, c.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    }

    /// The fold's integer fast path, its string path (more labels than the fast path holds),
    /// label order, null versions and batches with different dictionaries all give the windows
    /// of a plain per-row grouping.
    #[test]
    fn fold_groups_rows_like_a_per_row_grouping() {
        let many = vec![("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")];
        let many_reordered = vec![("d", "4"), ("c", "3"), ("b", "2"), ("a", "1")];
        let first: Vec<Row> = vec![
            (0, "api", Some("v1"), vec![("endpoint", "/a")], 1.0),
            (10, "api", Some("v1"), vec![("endpoint", "/b")], 2.0),
            (20, "api", None, vec![("endpoint", "/a")], 3.0),
            (60_000, "api", Some("v1"), vec![("endpoint", "/a")], 4.0),
            (30, "db", Some("v1"), many.clone(), 5.0),
            (40, "db", Some("v1"), many_reordered.clone(), 6.0),
            (
                50,
                "db",
                Some("v1"),
                vec![("x", "1"), ("endpoint", "/a")],
                7.0,
            ),
            (
                55,
                "db",
                Some("v1"),
                vec![("endpoint", "/a"), ("x", "1")],
                8.0,
            ),
            (59_999, "api", Some("v1"), vec![("endpoint", "/a")], 9.0),
        ];
        // Another batch: other strings come first, so its dictionary keys differ; a row with
        // 40 labels makes its series codes overflow 64 bits, so it takes the string path.
        let wide: Vec<(&'static str, &'static str)> = (0..40)
            .map(|i| {
                let k: &'static str = Box::leak(format!("k{i:02}").into_boxed_str());
                (k, "v")
            })
            .collect();
        let second: Vec<Row> = vec![
            (7, "api", Some("v1"), wide.clone(), 14.0),
            (8, "api", Some("v1"), wide, 15.0),
            (61_000, "web", Some("v2"), vec![], 10.0),
            (70_000, "api", Some("v1"), vec![("endpoint", "/a")], 11.0),
            (5, "db", Some("v1"), many_reordered, 12.0),
            (6, "api", Some("v1"), vec![("endpoint", "/b")], 13.0),
        ];
        let mut expected: HashMap<(i64, SeriesKey), Vec<f64>> = HashMap::new();
        for (ts, svc, ver, labels, v) in first.iter().chain(&second) {
            let mut labels: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            labels.sort();
            let key = SeriesKey {
                service: svc.to_string(),
                name: "latency".into(),
                version: ver.map(str::to_string),
                labels,
            };
            expected
                .entry((window_of(*ts, 60_000), key))
                .or_default()
                .push(*v);
        }
        for dictionaries in [true, false] {
            let mut fold = MetricFold::default();
            fold.add(&batch(&first, dictionaries), 60_000).unwrap();
            fold.add(&batch(&second, dictionaries), 60_000).unwrap();
            let got = fold.finish();
            assert_eq!(got.len(), expected.len(), "dictionaries: {dictionaries}");
            for ((w, key), values) in &expected {
                let s = &got[&(*w, Arc::new(key.clone()))];
                assert_eq!(s.count(), values.len() as u64, "{w} {key:?}");
                assert_eq!(s.sum(), values.iter().sum::<f64>(), "{w} {key:?}");
            }
        }
    }
}
