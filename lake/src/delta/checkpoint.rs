//! Classic (V1) single-file checkpoints: `_delta_log/<version:020>.checkpoint.parquet` holds
//! the table's state at that version, one action per row in its own struct column (`txn`,
//! `add`, `remove`, `metaData`, `protocol`; never `commitInfo`), then `_last_checkpoint` points
//! at it. Written after the commit of every [`CHECKPOINT_INTERVAL`]th version by whoever
//! created it; a plain put, since any writer writes equivalent content.
//!
//! Rows go through JSON both ways: the actions' JSON lines are decoded into the checkpoint
//! schema by arrow's JSON reader, and a checkpoint's rows are encoded back to the same JSON by
//! arrow's JSON writer, so one set of serde structs serves commits and checkpoints.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::arrow::json::{LineDelimitedWriter, ReaderBuilder};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use object_store::{ObjectStoreExt, PutPayload};

use super::actions::{
    checkpoint_path, from_ndjson, last_checkpoint_path, to_ndjson, Action, LastCheckpoint,
};
use super::replay::{read_file, Head};
use super::DeltaError;
use crate::Lake;

/// A checkpoint is written at every version divisible by this (the table property
/// `delta.checkpointInterval` says so to other readers).
pub(crate) const CHECKPOINT_INTERVAL: u64 = 100;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn string_map() -> DataType {
    let entries = Field::new(
        "key_value",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

fn string_list() -> DataType {
    DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)))
}

fn nullable_struct(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}

/// The checkpoint schema of PROTOCOL.md's appendix, with the fields opslake writes (every
/// column nullable; readers treat a missing column as null).
pub(crate) fn schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let i64f = |n: &str| Field::new(n, DataType::Int64, true);
    let b = |n: &str| Field::new(n, DataType::Boolean, true);
    let m = |n: &str| Field::new(n, string_map(), true);
    Arc::new(Schema::new(vec![
        nullable_struct(
            "txn",
            vec![s("appId"), i64f("version"), i64f("lastUpdated")],
        ),
        nullable_struct(
            "add",
            vec![
                s("path"),
                m("partitionValues"),
                i64f("size"),
                i64f("modificationTime"),
                b("dataChange"),
                s("stats"),
                m("tags"),
            ],
        ),
        nullable_struct(
            "remove",
            vec![
                s("path"),
                i64f("deletionTimestamp"),
                b("dataChange"),
                b("extendedFileMetadata"),
                m("partitionValues"),
                i64f("size"),
            ],
        ),
        nullable_struct(
            "metaData",
            vec![
                s("id"),
                s("name"),
                s("description"),
                nullable_struct("format", vec![s("provider"), m("options")]),
                s("schemaString"),
                Field::new("partitionColumns", string_list(), true),
                m("configuration"),
                i64f("createdTime"),
            ],
        ),
        nullable_struct(
            "protocol",
            vec![
                Field::new("minReaderVersion", DataType::Int32, true),
                Field::new("minWriterVersion", DataType::Int32, true),
                Field::new("readerFeatures", string_list(), true),
                Field::new("writerFeatures", string_list(), true),
            ],
        ),
    ]))
}

/// The actions of a checkpoint of `head`: protocol, metadata, every `txn`, every live file,
/// and the tombstones younger than `tombstone_retention_ms` (older ones are dropped from
/// `head` too).
fn actions(head: &mut Head, tombstone_retention_ms: i64, now_ms: i64) -> Vec<Action> {
    head.tombstones.retain(|_, r| {
        r.deletion_timestamp
            .is_none_or(|t| t.saturating_add(tombstone_retention_ms) >= now_ms)
    });
    let mut out =
        Vec::with_capacity(2 + head.txns.len() + head.files.len() + head.tombstones.len());
    out.extend(head.protocol.clone().map(Action::protocol));
    out.extend(head.metadata.clone().map(Action::metadata));
    out.extend(head.txns.values().cloned().map(Action::txn));
    out.extend(head.files.values().cloned().map(Action::add));
    out.extend(head.tombstones.values().cloned().map(Action::remove));
    out
}

/// Encodes the checkpoint of `head` as Parquet; returns the file and its number of rows.
fn encode(actions: &[Action]) -> Result<(Bytes, usize), BoxError> {
    let lines = to_ndjson(actions)?;
    let schema = schema();
    let reader = ReaderBuilder::new(Arc::clone(&schema))
        .with_batch_size(actions.len().max(1))
        .build(std::io::Cursor::new(lines))?;
    let batches = reader.collect::<Result<Vec<RecordBatch>, _>>()?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, schema, Some(props))?;
    for b in &batches {
        writer.write(b)?;
    }
    writer.close()?;
    Ok((Bytes::from(buf), actions.len()))
}

/// Writes the checkpoint of `head` (at its version) and then `_last_checkpoint`.
///
/// # Errors
/// When the checkpoint cannot be encoded or written.
pub(crate) async fn write(
    lake: &Lake,
    table: &str,
    head: &mut Head,
    tombstone_retention_ms: i64,
    now_ms: i64,
) -> Result<LastCheckpoint, DeltaError> {
    let Some(version) = head.version else {
        return Err(DeltaError::Corrupt {
            path: table.to_string(),
            reason: "no version to checkpoint".into(),
        });
    };
    let rel = checkpoint_path(table, version);
    let actions = actions(head, tombstone_retention_ms, now_ms);
    let (body, rows) = encode(&actions).map_err(|source| DeltaError::Checkpoint {
        path: rel.clone(),
        source,
    })?;
    let last = LastCheckpoint {
        version,
        size: rows as u64,
        size_in_bytes: Some(body.len() as u64),
        num_of_add_files: Some(head.files.len() as u64),
    };
    put(lake, &rel, body).await?;
    let pointer = last_checkpoint_path(table);
    let body = serde_json::to_vec(&last).map_err(|e| DeltaError::Checkpoint {
        path: pointer.clone(),
        source: Box::new(e),
    })?;
    put(lake, &pointer, Bytes::from(body)).await?;
    Ok(last)
}

async fn put(lake: &Lake, rel: &str, body: Bytes) -> Result<(), DeltaError> {
    lake.store()
        .put(&lake.path(rel), PutPayload::from(body))
        .await
        .map(|_| ())
        .map_err(|source| DeltaError::Store {
            path: rel.to_string(),
            source,
        })
}

/// The actions of the checkpoint of `version`; `None` when the file does not exist.
///
/// # Errors
/// When it cannot be read or decoded.
pub(crate) async fn read(
    lake: &Lake,
    table: &str,
    version: u64,
) -> Result<Option<Vec<Action>>, DeltaError> {
    let rel = checkpoint_path(table, version);
    let Some(body) = read_file(lake, &rel).await? else {
        return Ok(None);
    };
    decode(body)
        .map(Some)
        .map_err(|source| DeltaError::Checkpoint { path: rel, source })
}

fn decode(body: Bytes) -> Result<Vec<Action>, BoxError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(body)?.build()?;
    let mut lines = Vec::new();
    {
        let mut writer = LineDelimitedWriter::new(&mut lines);
        for b in reader {
            writer.write(&b?)?;
        }
        writer.finish()?;
    }
    Ok(from_ndjson(&lines)?)
}

#[cfg(test)]
mod tests {
    use super::super::actions::{Add, MetaData, Protocol, Remove, Txn};
    use super::*;

    #[test]
    fn a_checkpoint_decodes_to_the_actions_it_was_made_of() {
        let mut head = Head {
            version: Some(100),
            protocol: Some(Protocol::opslake()),
            metadata: Some(MetaData {
                id: "id".into(),
                name: Some("metrics".into()),
                description: None,
                format: super::super::actions::Format {
                    provider: "parquet".into(),
                    options: Default::default(),
                },
                schema_string: "{}".into(),
                partition_columns: vec!["date".into(), "hour".into()],
                configuration: [("delta.checkpointInterval".to_string(), Some("100".into()))]
                    .into(),
                created_time: Some(1),
            }),
            ..Head::default()
        };
        head.txns.insert(
            "opslake".into(),
            Txn {
                app_id: "opslake".into(),
                version: 7,
                last_updated: Some(2),
            },
        );
        let pv = [
            ("date".to_string(), Some("2026-11-22".to_string())),
            ("hour".to_string(), Some("07".to_string())),
        ];
        head.files.insert(
            "a".into(),
            Add {
                path: "a".into(),
                partition_values: pv.clone().into(),
                size: 10,
                modification_time: 3,
                data_change: true,
                stats: Some(r#"{"numRecords":1}"#.into()),
                tags: None,
            },
        );
        let tomb = |path: &str, at: i64| Remove {
            path: path.into(),
            deletion_timestamp: Some(at),
            data_change: true,
            extended_file_metadata: Some(true),
            partition_values: Some(pv.clone().into()),
            size: Some(5),
        };
        head.tombstones.insert("old".into(), tomb("old", 0));
        head.tombstones.insert("new".into(), tomb("new", 9_000));
        let actions = actions(&mut head, 1_000, 9_500);
        assert_eq!(actions.len(), 5, "the expired tombstone is dropped");
        let (body, rows) = encode(&actions).unwrap();
        assert_eq!(rows, 5);
        assert_eq!(decode(body).unwrap(), actions);
    }
}
