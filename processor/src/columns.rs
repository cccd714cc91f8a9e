//! Typed access to the columns of lake files, whatever encoding a file holds them in.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, DictionaryArray, MapArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int32Type};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_schemas::tables;

/// A column by name, or an error naming it.
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

/// A timestamp column in milliseconds, whatever unit the file holds.
pub(crate) fn timestamps(batch: &RecordBatch, name: &str) -> Result<ArrayRef, ArrowError> {
    let c = column(batch, name)?;
    match c.data_type() {
        DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, _) => Ok(c),
        _ => cast(&c, &tables::ts()),
    }
}

/// The (key, value) pairs of a map column's row into `out` (a null value reads as "").
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

/// A string column as keys into its distinct values, whatever string type the file holds.
///
/// # Errors
/// When the column is not a string column.
pub(crate) fn dictionary(c: &ArrayRef) -> Result<DictionaryArray<Int32Type>, ArrowError> {
    let want = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let c = if c.data_type() == &want {
        Arc::clone(c)
    } else {
        cast(c, &want)?
    };
    Ok(c.as_dictionary::<Int32Type>().clone())
}
