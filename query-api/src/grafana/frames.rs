//! Query results in the shapes of the Grafana JSON datasource: time series
//! (`{"target", "datapoints": [[value, epoch_ms], ...]}`, value first) and tables
//! (`{"type": "table", "columns": [{"text", "type"}], "rows": [[...]]}`).

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, TimeUnit, TimestampMillisecondType};
use serde_json::{json, Value};

use crate::engine::encode;
use crate::engine::result::QueryResult;
use crate::http::error::ApiError;

fn is_time(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
    )
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric()
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("{e}"))
}

/// Epoch milliseconds of a time column (timestamps of any unit, dates).
fn time_ms(col: &dyn Array) -> Result<Vec<Option<i64>>, ApiError> {
    let target = DataType::Timestamp(TimeUnit::Millisecond, None);
    let c = match col.data_type() {
        DataType::Timestamp(_, tz) => {
            cast(col, &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()))
        }
        _ => cast(col, &target),
    }
    .map_err(internal)?;
    let a = c.as_primitive::<TimestampMillisecondType>();
    Ok((0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i)))
        .collect())
}

fn numbers(col: &dyn Array) -> Result<Vec<Option<f64>>, ApiError> {
    let c = cast(col, &DataType::Float64).map_err(internal)?;
    let a = c.as_primitive::<Float64Type>();
    Ok((0..a.len())
        .map(|i| (!a.is_null(i) && a.value(i).is_finite()).then(|| a.value(i)))
        .collect())
}

fn strings(col: &dyn Array) -> Result<Vec<Option<String>>, ApiError> {
    let c = cast(col, &DataType::Utf8).map_err(internal)?;
    let a = c.as_string::<i32>();
    Ok((0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
        .collect())
}

/// One element of a `/query` answer. Series serialize from plain tuples (`[value, ms]`), with
/// no JSON value built per datapoint.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Frame {
    /// A time series.
    Series {
        /// The series' name.
        target: String,
        /// (value, epoch ms) pairs.
        datapoints: Vec<(f64, i64)>,
    },
    /// A table, as Grafana's JSON datasource answers it.
    Table(Value),
}

/// Time series from a result: the first time column is the time; every other string column
/// names the series (joined with a space); every numeric column is one value series (named by
/// the column when there are several, suffixed with `suffix`). Null values are left out.
///
/// # Errors
/// 400 when the result has no time column or no numeric column.
pub fn time_series(r: &QueryResult, suffix: &str) -> Result<Vec<Frame>, ApiError> {
    let fields = r.schema.fields();
    let time_col = fields
        .iter()
        .position(|f| is_time(f.data_type()))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "a time series needs a time column (a timestamp or a date); use format table otherwise"
                    .into(),
            )
        })?;
    let value_cols: Vec<usize> = (0..fields.len())
        .filter(|i| *i != time_col && is_number(fields[*i].data_type()))
        .collect();
    if value_cols.is_empty() {
        return Err(ApiError::BadRequest(
            "a time series needs at least one numeric column".into(),
        ));
    }
    let label_cols: Vec<usize> = (0..fields.len())
        .filter(|i| *i != time_col && !value_cols.contains(i))
        .collect();
    let mut series: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for b in &r.batches {
        let times = time_ms(b.column(time_col).as_ref())?;
        let labels: Vec<Vec<Option<String>>> = label_cols
            .iter()
            .map(|i| strings(b.column(*i).as_ref()))
            .collect::<Result<_, _>>()?;
        for &vc in &value_cols {
            let values = numbers(b.column(vc).as_ref())?;
            for row in 0..b.num_rows() {
                let (Some(t), Some(v)) = (times[row], values[row]) else {
                    continue;
                };
                let mut name: Vec<String> = labels
                    .iter()
                    .map(|l| l[row].clone().unwrap_or_default())
                    .filter(|s| !s.is_empty())
                    .collect();
                if value_cols.len() > 1 || name.is_empty() {
                    name.push(fields[vc].name().clone());
                }
                let mut key = name.join(" ");
                if !suffix.is_empty() {
                    key.push(' ');
                    key.push_str(suffix);
                }
                series.entry(key).or_default().push((t, v));
            }
        }
    }
    Ok(series
        .into_iter()
        .map(|(target, mut points)| {
            points.sort_by_key(|p| p.0);
            Frame::Series {
                target,
                datapoints: points.into_iter().map(|(t, v)| (v, t)).collect(),
            }
        })
        .collect())
}

/// A table: time columns as epoch milliseconds (type `time`), numbers (type `number`), the
/// rest as text (type `string`; maps and lists as JSON text).
///
/// # Errors
/// When a column cannot be converted (a bug).
pub fn table(r: &QueryResult) -> Result<Value, ApiError> {
    let fields = r.schema.fields();
    let columns: Vec<Value> = fields
        .iter()
        .map(|f| {
            let t = if is_time(f.data_type()) {
                "time"
            } else if is_number(f.data_type()) {
                "number"
            } else {
                "string"
            };
            json!({"text": f.name(), "type": t})
        })
        .collect();
    let generic = encode::rows(&r.schema, &r.batches).map_err(internal)?;
    let mut rows: Vec<Vec<Value>> = generic
        .into_iter()
        .map(|v| match v {
            Value::Array(a) => a,
            other => vec![other],
        })
        .collect();
    let mut offset = 0;
    for b in &r.batches {
        for (i, f) in fields.iter().enumerate() {
            if is_time(f.data_type()) {
                let times = time_ms(b.column(i).as_ref())?;
                for (row, t) in times.into_iter().enumerate() {
                    rows[offset + row][i] = t.map_or(Value::Null, |t| json!(t));
                }
            } else if !is_number(f.data_type()) {
                for row in 0..b.num_rows() {
                    let cell = &mut rows[offset + row][i];
                    if !(cell.is_string() || cell.is_null()) {
                        *cell = Value::String(cell.to_string());
                    }
                }
            }
        }
        offset += b.num_rows();
    }
    Ok(json!({"type": "table", "columns": columns, "rows": rows}))
}
