//! Query results as JSON (`{"columns": [...], "rows": [[...]]}`), CSV or Arrow IPC.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{make_encoder, EncoderOptions};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{json, Value};

use crate::engine::result::QueryResult;

/// `{"name", "type"}` of every column.
pub fn columns(schema: &SchemaRef) -> Vec<Value> {
    schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect()
}

/// Writes the rows as a JSON array of arrays (`[[c0, c1, ...], ...]`), cell by cell with
/// Arrow's JSON encoders, straight into `out`.
///
/// # Errors
/// When a column type has no JSON form.
pub fn write_rows(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut Vec<u8>,
) -> Result<(), ArrowError> {
    let options = EncoderOptions::default().with_explicit_nulls(true);
    out.push(b'[');
    let mut first = true;
    for b in batches {
        let mut encoders = schema
            .fields()
            .iter()
            .zip(b.columns())
            .map(|(f, c)| make_encoder(f, c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..b.num_rows() {
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'[');
            for (i, e) in encoders.iter_mut().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if e.is_null(row) {
                    out.extend_from_slice(b"null");
                } else {
                    e.encode(row, out);
                }
            }
            out.push(b']');
        }
    }
    out.push(b']');
    Ok(())
}

/// Rows as JSON objects, keyed by column name.
///
/// # Errors
/// When a column type has no JSON form.
pub fn objects(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<Value>, ArrowError> {
    let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    Ok(rows(schema, batches)?
        .into_iter()
        .map(|row| {
            let mut o = serde_json::Map::new();
            if let Value::Array(cells) = row {
                for (n, c) in names.iter().zip(cells) {
                    o.insert((*n).clone(), c);
                }
            }
            Value::Object(o)
        })
        .collect())
}

/// Rows as arrays of JSON values, in column order.
///
/// # Errors
/// When a column type has no JSON form.
pub fn rows(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<Value>, ArrowError> {
    let mut buf = Vec::new();
    write_rows(schema, batches, &mut buf)?;
    serde_json::from_slice(&buf).map_err(|e| ArrowError::JsonError(e.to_string()))
}

/// The JSON body of a query answer, as bytes: `{"columns", "rows", "truncated"}`.
///
/// # Errors
/// When a column type has no JSON form.
pub fn to_json_bytes(r: &QueryResult) -> Result<Vec<u8>, ArrowError> {
    let rows: usize = r.batches.iter().map(RecordBatch::num_rows).sum();
    let mut out = Vec::with_capacity(64 + rows * 16 * r.schema.fields().len().max(1));
    out.extend_from_slice(b"{\"columns\":");
    serde_json::to_writer(&mut out, &columns(&r.schema))
        .map_err(|e| ArrowError::JsonError(e.to_string()))?;
    out.extend_from_slice(b",\"rows\":");
    write_rows(&r.schema, &r.batches, &mut out)?;
    match r.truncation {
        Some(t) => {
            out.extend_from_slice(b",\"truncated\":true,\"truncated_by\":");
            serde_json::to_writer(&mut out, &t.label())
                .map_err(|e| ArrowError::JsonError(e.to_string()))?;
            out.push(b'}');
        }
        None if r.truncated => out.extend_from_slice(b",\"truncated\":true}"),
        None => out.extend_from_slice(b",\"truncated\":false}"),
    }
    Ok(out)
}

/// The JSON body of a query answer.
///
/// # Errors
/// When a column type has no JSON form.
pub fn to_json(r: &QueryResult) -> Result<Value, ArrowError> {
    serde_json::from_slice(&to_json_bytes(r)?).map_err(|e| ArrowError::JsonError(e.to_string()))
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
