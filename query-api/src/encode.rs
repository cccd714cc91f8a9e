//! Query results as JSON (`{"columns": [...], "rows": [[...]]}`), CSV or Arrow IPC.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{JsonArray, WriterBuilder};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{json, Value};

use crate::engine::QueryResult;

/// `{"name", "type"}` of every column.
pub fn columns(schema: &SchemaRef) -> Vec<Value> {
    schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect()
}

/// Rows as arrays of JSON values, in column order. Arrow's JSON writer makes objects keyed by
/// column name; columns are renamed to positions first so duplicate names cannot collide.
///
/// # Errors
/// When a column type has no JSON form.
pub fn rows(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<Value>, ArrowError> {
    let n = schema.fields().len();
    let renamed = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let mut buf = Vec::new();
    {
        let mut writer = WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, JsonArray>(&mut buf);
        for b in batches {
            let rb = RecordBatch::try_new(Arc::clone(&renamed), b.columns().to_vec())?;
            writer.write(&rb)?;
        }
        writer.finish()?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    let objects: Vec<serde_json::Map<String, Value>> =
        serde_json::from_slice(&buf).map_err(|e| ArrowError::JsonError(e.to_string()))?;
    Ok(objects
        .into_iter()
        .map(|mut o| {
            Value::Array(
                (0..n)
                    .map(|i| o.remove(&format!("c{i}")).unwrap_or(Value::Null))
                    .collect(),
            )
        })
        .collect())
}

/// The JSON body of a query answer.
///
/// # Errors
/// When a column type has no JSON form.
pub fn to_json(r: &QueryResult) -> Result<Value, ArrowError> {
    Ok(json!({
        "columns": columns(&r.schema),
        "rows": rows(&r.schema, &r.batches)?,
        "truncated": r.truncated,
    }))
}

/// CSV with a header line.
///
/// # Errors
/// When a column type has no CSV form.
pub fn to_csv(r: &QueryResult) -> Result<Vec<u8>, ArrowError> {
    let mut buf = Vec::new();
    {
        let mut w = datafusion::arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buf);
        if r.batches.is_empty() {
            w.write(&RecordBatch::new_empty(Arc::clone(&r.schema)))?;
        }
        for b in &r.batches {
            w.write(b)?;
        }
    }
    Ok(buf)
}

/// An Arrow IPC stream.
///
/// # Errors
/// When the IPC writer fails.
pub fn to_arrow_ipc(r: &QueryResult) -> Result<Vec<u8>, ArrowError> {
    let mut buf = Vec::new();
    {
        let mut w = datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut buf, &r.schema)?;
        for b in &r.batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    Ok(buf)
}
