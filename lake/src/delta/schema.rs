//! Arrow schemas as Delta's `schemaString`: the file columns with their Delta types, then the
//! partition columns `date` and `hour` as nullable strings (as opslake's SQL and the folder
//! names show them). Schemas only widen: a column the code has and the log lacks is appended,
//! nullable; a column the log has stays.

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use serde_json::{json, Value};

/// The partition columns of a table partitioned by `date=`/`hour=` folders.
pub(crate) const PARTITION_COLUMNS: [&str; 2] = ["date", "hour"];

/// An Arrow type Delta has no type for (unsigned integers, time zone-less timestamps, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsupported {
    /// The column (dotted path for a nested field).
    pub(crate) column: String,
    /// The Arrow type.
    pub(crate) data_type: String,
}

/// The Delta type of an Arrow type.
fn delta_type(column: &str, t: &DataType) -> Result<Value, Unsupported> {
    let name = match t {
        // UTC instants: `timestamp` (µs in new files; ms files read as well). A timestamp
        // without a time zone would be `timestamp_ntz`, which needs a table feature.
        DataType::Timestamp(_, Some(_)) => "timestamp",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary",
        DataType::Int8 => "byte",
        DataType::Int16 => "short",
        DataType::Int32 => "integer",
        DataType::Int64 => "long",
        DataType::Float32 => "float",
        DataType::Float64 => "double",
        DataType::Boolean => "boolean",
        DataType::Date32 => "date",
        DataType::Decimal128(p, s) => return Ok(Value::String(format!("decimal({p},{s})"))),
        DataType::Dictionary(_, v) => return delta_type(column, v),
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(unsupported(column, t));
            };
            let (Some(k), Some(v)) = (kv.first(), kv.get(1)) else {
                return Err(unsupported(column, t));
            };
            return Ok(json!({
                "type": "map",
                "keyType": delta_type(column, k.data_type())?,
                "valueType": delta_type(column, v.data_type())?,
                "valueContainsNull": v.is_nullable(),
            }));
        }
        DataType::List(item) | DataType::LargeList(item) => {
            return Ok(json!({
                "type": "array",
                "elementType": delta_type(column, item.data_type())?,
                "containsNull": item.is_nullable(),
            }));
        }
        DataType::Struct(fields) => {
            let fields = fields
                .iter()
                .map(|f| struct_field(&format!("{column}.{}", f.name()), f))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(json!({"type": "struct", "fields": fields}));
        }
        _ => return Err(unsupported(column, t)),
    };
    Ok(Value::String(name.to_string()))
}

fn unsupported(column: &str, t: &DataType) -> Unsupported {
    Unsupported {
        column: column.to_string(),
        data_type: t.to_string(),
    }
}

fn struct_field(column: &str, f: &Field) -> Result<Value, Unsupported> {
    Ok(json!({
        "name": f.name(),
        "type": delta_type(column, f.data_type())?,
        "nullable": f.is_nullable(),
        "metadata": {},
    }))
}

fn partition_field(name: &str) -> Value {
    json!({"name": name, "type": "string", "nullable": true, "metadata": {}})
}

/// The Delta struct fields of a table's file columns, then of its partition columns.
pub(crate) fn fields(schema: &Schema, partitioned: bool) -> Result<Vec<Value>, Unsupported> {
    let mut out = schema
        .fields()
        .iter()
        .map(|f| struct_field(f.name(), f))
        .collect::<Result<Vec<_>, _>>()?;
    if partitioned {
        out.extend(PARTITION_COLUMNS.iter().map(|c| partition_field(c)));
    }
    Ok(out)
}

/// `schemaString` of `fields`.
pub(crate) fn schema_string(fields: Vec<Value>) -> String {
    json!({"type": "struct", "fields": fields}).to_string()
}

/// The top-level fields of a `schemaString`, or `None` when it does not parse.
pub(crate) fn parse_fields(schema_string: &str) -> Option<Vec<Value>> {
    let v: Value = serde_json::from_str(schema_string).ok()?;
    v.get("fields")?.as_array().cloned()
}

fn field_name(f: &Value) -> Option<&str> {
    f.get("name").and_then(Value::as_str)
}

/// The union of the log's fields (`existing`, kept as they are) and the code's (`wanted`), or
/// `None` when the log has every column already. New columns come before the partition
/// columns, and are nullable whatever the code says: files written before lack them.
pub(crate) fn union(existing: &[Value], wanted: &[Value]) -> Option<Vec<Value>> {
    let has = |name: &str| existing.iter().any(|f| field_name(f) == Some(name));
    let added: Vec<Value> = wanted
        .iter()
        .filter(|f| field_name(f).is_some_and(|n| !has(n)))
        .map(|f| {
            let mut f = f.clone();
            if let Some(o) = f.as_object_mut() {
                o.insert("nullable".into(), Value::Bool(true));
            }
            f
        })
        .collect();
    if added.is_empty() {
        return None;
    }
    let is_partition = |f: &Value| field_name(f).is_some_and(|n| PARTITION_COLUMNS.contains(&n));
    let mut out: Vec<Value> = existing
        .iter()
        .filter(|f| !is_partition(f))
        .cloned()
        .collect();
    out.extend(added);
    out.extend(existing.iter().filter(|f| is_partition(f)).cloned());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_opslake_table_has_a_delta_schema() {
        let raw = opslake_schemas::tables::raw_tables()
            .into_iter()
            .map(|(n, s)| (n, s, true));
        for (name, schema, partitioned) in raw.chain(opslake_schemas::tables::derived_tables()) {
            let f = fields(&schema, partitioned).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let s = schema_string(f.clone());
            assert_eq!(parse_fields(&s).unwrap(), f, "{name}");
        }
        let metrics = fields(&opslake_schemas::tables::metrics(), true).unwrap();
        let by_name = |n: &str| metrics.iter().find(|f| field_name(f) == Some(n)).unwrap();
        assert_eq!(by_name("timestamp")["type"], "timestamp");
        assert_eq!(by_name("timestamp")["nullable"], false);
        assert_eq!(
            by_name("labels")["type"],
            json!({"type": "map", "keyType": "string", "valueType": "string", "valueContainsNull": true})
        );
        assert_eq!(by_name("_partition")["type"], "integer");
        assert_eq!(by_name("_offset")["type"], "long");
        let last: Vec<&str> = metrics[metrics.len() - 2..]
            .iter()
            .filter_map(field_name)
            .collect();
        assert_eq!(last, ["date", "hour"]);
        assert_eq!(by_name("hour"), &partition_field("hour"));
    }

    #[test]
    fn a_union_only_adds_nullable_columns_before_the_partitions() {
        let old = vec![
            json!({"name": "a", "type": "long", "nullable": false, "metadata": {}}),
            partition_field("date"),
            partition_field("hour"),
        ];
        let new = vec![
            json!({"name": "a", "type": "integer", "nullable": false, "metadata": {}}),
            json!({"name": "b", "type": "string", "nullable": false, "metadata": {}}),
            partition_field("date"),
            partition_field("hour"),
        ];
        let u = union(&old, &new).unwrap();
        let names: Vec<&str> = u.iter().filter_map(field_name).collect();
        assert_eq!(names, ["a", "b", "date", "hour"]);
        assert_eq!(u[0]["type"], "long", "an existing column is kept as it is");
        assert_eq!(u[1]["nullable"], true);
        assert!(union(&u, &new).is_none());
    }
}
