//! Prepared statement handles. A handle holds the statement's SQL and, once bound, its
//! parameters (an Arrow IPC stream of one row), so any instance can run it and nothing is kept
//! per client.

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::{ParamValues, ScalarValue};

use crate::engine::error::QueryError;

/// A prepared statement: its SQL and the parameters bound to it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prepared {
    pub(crate) sql: String,
    pub(crate) parameters: Option<RecordBatch>,
}

impl Prepared {
    /// The handle: the SQL's length (4 bytes, big-endian), the SQL, then the parameters.
    pub(crate) fn encode(&self) -> Result<Bytes, QueryError> {
        let sql = self.sql.as_bytes();
        let len = u32::try_from(sql.len())
            .map_err(|_| QueryError::Invalid("prepared statement too long".into()))?;
        let mut out = len.to_be_bytes().to_vec();
        out.extend_from_slice(sql);
        if let Some(batch) = &self.parameters {
            let mut w = StreamWriter::try_new(&mut out, &batch.schema())
                .map_err(|e| QueryError::Internal(e.into()))?;
            w.write(batch).map_err(|e| QueryError::Internal(e.into()))?;
            w.finish().map_err(|e| QueryError::Internal(e.into()))?;
        }
        Ok(out.into())
    }

    /// Reads a handle of [`Self::encode`].
    pub(crate) fn decode(handle: &[u8]) -> Result<Self, QueryError> {
        let bad = || QueryError::Invalid("not a prepared statement handle of opslake".into());
        let (len, rest) = handle.split_first_chunk::<4>().ok_or_else(bad)?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(bad());
        }
        let (sql, params) = rest.split_at(len);
        let sql = std::str::from_utf8(sql).map_err(|_| bad())?.to_string();
        let parameters = if params.is_empty() {
            None
        } else {
            let mut reader = StreamReader::try_new(params, None).map_err(|_| bad())?;
            reader.next().transpose().map_err(|_| bad())?
        };
        Ok(Self { sql, parameters })
    }

    /// The bound parameters as `$1`, `$2`, ... (the first row of the batch).
    pub(crate) fn param_values(&self) -> Result<Option<ParamValues>, QueryError> {
        let Some(batch) = &self.parameters else {
            return Ok(None);
        };
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        let values = batch
            .columns()
            .iter()
            .map(|c| ScalarValue::try_from_array(c, 0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(crate::engine::error::from_datafusion)?;
        Ok(Some(ParamValues::from(values)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn a_handle_round_trips_with_and_without_parameters() {
        let bare = Prepared {
            sql: "SELECT $1".into(),
            parameters: None,
        };
        assert_eq!(Prepared::decode(&bare.encode().unwrap()).unwrap(), bare);
        let schema = Arc::new(Schema::new(vec![
            Field::new("$1", DataType::Utf8, true),
            Field::new("$2", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["checkout"])),
                Arc::new(Int64Array::from(vec![7])),
            ],
        )
        .unwrap();
        let bound = Prepared {
            sql: "SELECT * FROM metrics WHERE service = $1 LIMIT $2".into(),
            parameters: Some(batch),
        };
        let back = Prepared::decode(&bound.encode().unwrap()).unwrap();
        assert_eq!(back, bound);
        let ParamValues::List(values) = back.param_values().unwrap().unwrap() else {
            panic!("positional parameters");
        };
        assert_eq!(values.len(), 2);
        assert!(Prepared::decode(b"\0\0\0\x09SELECT").is_err());
    }
}
