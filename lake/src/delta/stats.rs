//! `add.stats`: the number of rows, and the min, max and null count of the columns readers skip
//! files by (the time columns and the table's cluster columns), from the Parquet footer of the
//! file. Timestamps are ISO 8601 in UTC with milliseconds (a µs max is rounded up, so that it
//! stays an upper bound); a string max longer than [`STRING_PREFIX`] characters is left out (a
//! cut max is no upper bound); NaN, maps, lists and binary columns have no min or max.

use std::collections::BTreeMap;

use bytes::Bytes;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::parquet::basic::{ConvertedType, LogicalType, TimeUnit};
use datafusion::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use datafusion::parquet::file::statistics::Statistics;
use object_store::ObjectStoreExt;
use serde::Serialize;
use serde_json::Value;

use crate::Lake;

/// Longest string whose max goes in the stats (Spark's and delta-rs' prefix length).
pub(crate) const STRING_PREFIX: usize = 32;

/// Bytes read from the end of a file in one request: the footer of a lake file fits.
const TAIL_BYTES: u64 = 64 * 1024;

/// The columns of `schema` whose statistics the log carries: its cluster columns
/// (`opslake_schemas::tables::cluster_columns`), then its other time columns.
pub(crate) fn stats_columns(schema: &Schema) -> Vec<String> {
    let mut out: Vec<String> = opslake_schemas::tables::cluster_columns(schema)
        .into_iter()
        .map(str::to_string)
        .collect();
    for f in schema.fields() {
        if matches!(f.data_type(), DataType::Timestamp(_, _)) && !out.contains(f.name()) {
            out.push(f.name().clone());
        }
    }
    out
}

/// The statistics of one file, serialized.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FileStats {
    num_records: i64,
    min_values: BTreeMap<String, Value>,
    max_values: BTreeMap<String, Value>,
    null_count: BTreeMap<String, i64>,
}

/// Why a file's statistics could not be read (the file is then added without them).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StatsError {
    #[error("failed to read the footer")]
    Read(#[from] object_store::Error),
    #[error("not a parquet file: {0}")]
    NotParquet(&'static str),
    #[error("failed to decode the footer")]
    Decode(#[from] datafusion::parquet::errors::ParquetError),
    #[error("failed to serialize the statistics")]
    Json(#[from] serde_json::Error),
}

/// The `add.stats` JSON of the lake file `rel` (`size` bytes), for `columns`.
///
/// # Errors
/// When the footer cannot be read or decoded.
pub(crate) async fn file_stats(
    lake: &Lake,
    rel: &str,
    size: u64,
    columns: &[String],
) -> Result<String, StatsError> {
    let meta = footer(lake, rel, size).await?;
    Ok(serde_json::to_string(&summarize(&meta, columns))?)
}

async fn footer(lake: &Lake, rel: &str, size: u64) -> Result<ParquetMetaData, StatsError> {
    if size < 12 {
        return Err(StatsError::NotParquet("too short"));
    }
    let path = lake.path(rel);
    let start = size.saturating_sub(TAIL_BYTES);
    let tail: Bytes = lake.store().get_range(&path, start..size).await?;
    let n = tail.len();
    if n < 8 || tail.get(n - 4..) != Some(b"PAR1".as_slice()) {
        return Err(StatsError::NotParquet("no PAR1 magic at the end"));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&tail[n - 8..n - 4]);
    let len = u64::from(u32::from_le_bytes(len));
    if len + 8 > size {
        return Err(StatsError::NotParquet("footer longer than the file"));
    }
    let meta = if len + 8 <= n as u64 {
        let from = n - 8 - len as usize;
        ParquetMetaDataReader::decode_metadata(&tail[from..n - 8])?
    } else {
        let bytes = lake
            .store()
            .get_range(&path, size - 8 - len..size - 8)
            .await?;
        ParquetMetaDataReader::decode_metadata(&bytes)?
    };
    Ok(meta)
}

/// A bound of a column in one row group.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Bound {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

/// How a column's values become JSON.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A timestamp: ticks per millisecond (1, 1000 or 1_000_000).
    Timestamp(i64),
    Date,
    Number,
    String,
}

fn summarize(meta: &ParquetMetaData, columns: &[String]) -> FileStats {
    let mut stats = FileStats {
        num_records: meta.file_metadata().num_rows(),
        min_values: BTreeMap::new(),
        max_values: BTreeMap::new(),
        null_count: BTreeMap::new(),
    };
    let descr = meta.file_metadata().schema_descr();
    for name in columns {
        // Top-level primitive columns only: a map's or a list's leaves are not the column.
        let Some(i) = descr
            .columns()
            .iter()
            .position(|c| c.path().parts() == [name.as_str()])
        else {
            continue;
        };
        let column = descr.column(i);
        let kind = match (column.logical_type_ref(), column.converted_type()) {
            (Some(LogicalType::Timestamp(t)), _) => Kind::Timestamp(match t.unit {
                TimeUnit::MILLIS => 1,
                TimeUnit::MICROS => 1000,
                TimeUnit::NANOS => 1_000_000,
            }),
            (_, ConvertedType::TIMESTAMP_MILLIS) => Kind::Timestamp(1),
            (_, ConvertedType::TIMESTAMP_MICROS) => Kind::Timestamp(1000),
            (Some(LogicalType::Date), _) | (_, ConvertedType::DATE) => Kind::Date,
            (Some(LogicalType::String), _) | (_, ConvertedType::UTF8) => Kind::String,
            _ => Kind::Number,
        };
        let mut nulls = Some(0i64);
        let mut min: Option<Bound> = None;
        let mut max: Option<Bound> = None;
        let mut bounds_known = true;
        for rg in meta.row_groups() {
            let Some(s) = rg.column(i).statistics() else {
                nulls = None;
                bounds_known = false;
                continue;
            };
            let rg_nulls = s.null_count_opt().and_then(|n| i64::try_from(n).ok());
            nulls = nulls.zip(rg_nulls).map(|(a, b)| a + b);
            if rg_nulls == Some(rg.num_rows()) {
                continue; // only nulls: no bounds to take
            }
            match bounds(s, kind) {
                Some((lo, hi)) => {
                    if min.as_ref().is_none_or(|m| lo < *m) {
                        min = Some(lo);
                    }
                    if max.as_ref().is_none_or(|m| hi > *m) {
                        max = Some(hi);
                    }
                }
                None => bounds_known = false,
            }
        }
        if let Some(n) = nulls {
            stats.null_count.insert(name.clone(), n);
        }
        if !bounds_known {
            continue;
        }
        if let Some(v) = min.and_then(|b| to_json(b, kind, false)) {
            stats.min_values.insert(name.clone(), v);
        }
        if let Some(v) = max.and_then(|b| to_json(b, kind, true)) {
            stats.max_values.insert(name.clone(), v);
        }
    }
    stats
}

/// A row group's (min, max) of a column, when the statistics have usable ones: exact or, for
/// the max of strings, dropped later when too long.
fn bounds(s: &Statistics, kind: Kind) -> Option<(Bound, Bound)> {
    match (s, kind) {
        (Statistics::Int64(v), Kind::Timestamp(_) | Kind::Number) => {
            Some((Bound::Int(*v.min_opt()?), Bound::Int(*v.max_opt()?)))
        }
        (Statistics::Int32(v), Kind::Date | Kind::Number) => Some((
            Bound::Int(i64::from(*v.min_opt()?)),
            Bound::Int(i64::from(*v.max_opt()?)),
        )),
        (Statistics::Double(v), Kind::Number) => {
            let (lo, hi) = (*v.min_opt()?, *v.max_opt()?);
            (lo.is_finite() && hi.is_finite()).then_some((Bound::Float(lo), Bound::Float(hi)))
        }
        (Statistics::Float(v), Kind::Number) => {
            let (lo, hi) = (f64::from(*v.min_opt()?), f64::from(*v.max_opt()?));
            (lo.is_finite() && hi.is_finite()).then_some((Bound::Float(lo), Bound::Float(hi)))
        }
        (Statistics::Boolean(v), _) => {
            Some((Bound::Bool(*v.min_opt()?), Bound::Bool(*v.max_opt()?)))
        }
        (Statistics::ByteArray(v), Kind::String) => {
            let lo = std::str::from_utf8(v.min_opt()?.data()).ok()?.to_string();
            // A max the writer cut is no upper bound: leave it out (an empty string sorts
            // below every other, and the max is dropped below).
            let hi = if v.max_is_exact() {
                std::str::from_utf8(v.max_opt()?.data()).ok()?.to_string()
            } else {
                "\u{10FFFF}".repeat(STRING_PREFIX + 1)
            };
            Some((Bound::Str(lo), Bound::Str(hi)))
        }
        _ => None,
    }
}

/// The JSON of a bound; `None` when it cannot be one (a long string max, a timestamp out of
/// range).
fn to_json(b: Bound, kind: Kind, is_max: bool) -> Option<Value> {
    match (b, kind) {
        (Bound::Int(v), Kind::Timestamp(per_ms)) => {
            let ms = if is_max {
                v.checked_add(per_ms - 1)?.div_euclid(per_ms)
            } else {
                v.div_euclid(per_ms)
            };
            let t = chrono::DateTime::from_timestamp_millis(ms)?;
            Some(Value::String(
                t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            ))
        }
        (Bound::Int(days), Kind::Date) => {
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
            let d = epoch.checked_add_signed(chrono::Duration::try_days(days)?)?;
            Some(Value::String(d.format("%Y-%m-%d").to_string()))
        }
        (Bound::Int(v), _) => Some(Value::from(v)),
        (Bound::Float(v), _) => serde_json::Number::from_f64(v).map(Value::Number),
        (Bound::Bool(v), _) => Some(Value::Bool(v)),
        (Bound::Str(s), _) => {
            if is_max {
                (s.chars().count() <= STRING_PREFIX).then_some(Value::String(s))
            } else {
                // A prefix of the min is still a lower bound.
                Some(Value::String(s.chars().take(STRING_PREFIX).collect()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_outward_to_milliseconds() {
        let min = to_json(
            Bound::Int(1_763_805_600_007_999),
            Kind::Timestamp(1000),
            false,
        );
        let max = to_json(
            Bound::Int(1_763_805_600_007_001),
            Kind::Timestamp(1000),
            true,
        );
        assert_eq!(min, Some(Value::from("2025-11-22T10:00:00.007Z")));
        assert_eq!(max, Some(Value::from("2025-11-22T10:00:00.008Z")));
        let exact = to_json(
            Bound::Int(1_763_805_600_007_000),
            Kind::Timestamp(1000),
            true,
        );
        assert_eq!(exact, Some(Value::from("2025-11-22T10:00:00.007Z")));
        let ms = to_json(Bound::Int(1_763_805_600_007), Kind::Timestamp(1), true);
        assert_eq!(ms, Some(Value::from("2025-11-22T10:00:00.007Z")));
    }

    #[test]
    fn long_string_maxes_are_left_out_and_mins_cut() {
        let long = "x".repeat(40);
        assert_eq!(to_json(Bound::Str(long.clone()), Kind::String, true), None);
        assert_eq!(
            to_json(Bound::Str(long), Kind::String, false),
            Some(Value::from("x".repeat(32)))
        );
        assert_eq!(to_json(Bound::Float(f64::NAN), Kind::Number, true), None);
        assert_eq!(
            to_json(Bound::Int(20_000), Kind::Date, true),
            Some(Value::from("2024-10-04"))
        );
    }
}
