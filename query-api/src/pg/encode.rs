//! Query results as PostgreSQL rows: arrow-pg maps Arrow types to PostgreSQL's (timestamps with
//! a zone as `timestamptz`, sketches as `bytea`); maps, which PostgreSQL has no type for, are sent
//! as JSON text.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, MapArray, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::types::format::FormatOptions;

use crate::engine::result::QueryResult;

/// `schema` as clients see it: map columns become text.
pub(crate) fn pg_schema(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Map(..) => Field::new(f.name(), DataType::Utf8, true),
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new(fields)
}

/// The row descriptions of `schema` in `format`.
///
/// # Errors
/// When a column has a type PostgreSQL clients cannot read.
pub(crate) fn fields(
    schema: &Schema,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<Vec<FieldInfo>> {
    arrow_schema_to_pg_fields(&pg_schema(schema), format, options)
}

/// A result as PostgreSQL rows in `format`.
///
/// # Errors
/// When a column has a type PostgreSQL clients cannot read.
pub(crate) fn response(
    result: QueryResult,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<QueryResponse> {
    let schema: SchemaRef = Arc::new(pg_schema(&result.schema));
    let fields = Arc::new(arrow_schema_to_pg_fields(&schema, format, Some(options))?);
    let mut rows = Vec::new();
    for batch in result.batches {
        let batch = maps_as_json(batch, &schema)?;
        rows.extend(encode_recordbatch(Arc::clone(&fields), batch));
    }
    Ok(QueryResponse::new(fields, futures::stream::iter(rows)))
}

/// `batch` with its map columns as JSON objects of text, in `schema`.
fn maps_as_json(batch: RecordBatch, schema: &SchemaRef) -> PgWireResult<RecordBatch> {
    if !batch
        .columns()
        .iter()
        .any(|c| matches!(c.data_type(), DataType::Map(..)))
    {
        return Ok(batch);
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.as_any().downcast_ref::<MapArray>() {
            Some(map) => map_as_json(map),
            None => Ok(Arc::clone(c)),
        })
        .collect::<PgWireResult<_>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| PgWireError::ApiError(e.into()))
}

fn map_as_json(map: &MapArray) -> PgWireResult<ArrayRef> {
    let text = |a: &ArrayRef, i: usize| {
        array_value_to_string(a, i).map_err(|e| PgWireError::ApiError(e.into()))
    };
    let mut out = StringBuilder::new();
    for row in 0..map.len() {
        if map.is_null(row) {
            out.append_null();
            continue;
        }
        let entries = map.value(row);
        let (keys, values) = (entries.column(0), entries.column(1));
        let mut object = serde_json::Map::new();
        for i in 0..entries.len() {
            let value = if values.is_null(i) {
                serde_json::Value::Null
            } else {
                serde_json::Value::String(text(values, i)?)
            };
            object.insert(text(keys, i)?, value);
        }
        out.append_value(serde_json::Value::Object(object).to_string());
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, MapBuilder, StringBuilder as Strings};

    #[test]
    fn maps_become_json_text_and_other_columns_stay() {
        let mut labels = MapBuilder::new(None, Strings::new(), Strings::new());
        labels.keys().append_value("endpoint");
        labels.values().append_value("/api/pay");
        labels.keys().append_value("quote\"d");
        labels.values().append_null();
        labels.append(true).unwrap();
        labels.append(false).unwrap();
        let labels = labels.finish();
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("labels", labels.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![1, 2])), Arc::new(labels)],
        )
        .unwrap();
        let pg = Arc::new(pg_schema(&schema));
        assert_eq!(pg.field(1).data_type(), &DataType::Utf8);
        let out = maps_as_json(batch, &pg).unwrap();
        let text = out
            .column(1)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StringArray>()
            .unwrap();
        let first: serde_json::Value = serde_json::from_str(text.value(0)).unwrap();
        assert_eq!(
            first,
            serde_json::json!({"endpoint": "/api/pay", "quote\"d": null})
        );
        assert!(text.is_null(1), "a null map stays null");
        assert_eq!(out.column(0).len(), 2);
        let fields = fields(&schema, &Format::UnifiedText, None).unwrap();
        assert_eq!(fields[1].datatype(), &pgwire::api::Type::TEXT);
        assert_eq!(fields[0].datatype(), &pgwire::api::Type::INT8);
    }
}
