//! Parquet encoding of record batches, and the upload of files into the lake.
//!
//! Time columns are milliseconds, in memory and in the files. Delta's `timestamp` type is
//! microseconds, and every Delta reader tried (delta-rs, Polars) reads millisecond files under
//! it as microseconds; writing microseconds instead was tried and left alone: DataFusion 55's
//! file statistics of a table mixing both units gave a wrong unfiltered `max(timestamp)`
//! (ARCHITECTURE, "Reading the lake from other engines"). Every reader that decodes lake files
//! itself still applies [`to_millis`], so that files in another unit read the same.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, Encoding};
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use object_store::{ObjectStoreExt, PutPayload};

use crate::{AddFile, Lake, LakeError};

/// Rows per Parquet row group: large enough for good compression and few footers, small
/// enough that a filtered scan skips most of a big file.
pub const ROW_GROUP_ROWS: usize = 256 * 1024;

/// Rows per data page, at most: the unit a filter skips by the page index. A compacted hour is
/// sorted by service, so pages this small let a filter on one service read little more than
/// that service's rows.
pub const PAGE_ROWS: usize = 4096;

/// Columns that grow almost monotonically within a file: event time (ingest batches arrive in
/// roughly time order) and the Kafka offsets.
const DELTA_COLUMNS: [&str; 3] = ["timestamp", "_offset", "_ingested_at"];

/// Writer settings of every lake file: LZ4, page statistics for pruning, and delta encoding
/// for the nearly sorted integer columns. Their dictionaries held nearly one entry per row;
/// deltas pack to a few bits per row (`bench/rollups`' raw files: 104 MB before, 64 MB after,
/// and a third of the compression work of a rollup cycle).
///
/// LZ4 rather than zstd: queries decompress every column they read, and zstd took a fifth of
/// a full scan plus a decoder and an encoder context set up for every column chunk read
/// (the Parquet reader's codec holds both); LZ4 decodes several times faster and needs no
/// context. `bench/query`'s ten queries at 2M events, A/B in one run: 0.82 of the time, for
/// 20% more bytes (9.6 → 11.5 bytes per compacted metric event).
pub fn writer_properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page);
    for c in DELTA_COLUMNS {
        let c = ColumnPath::from(c);
        b = b
            .set_column_dictionary_enabled(c.clone(), false)
            .set_column_encoding(c, Encoding::DELTA_BINARY_PACKED);
    }
    b.build()
}

/// `batch` with every top-level timestamp column in `unit` (the time zone kept); `None` when
/// it has none in another unit.
fn with_unit(batch: &RecordBatch, unit: TimeUnit) -> Result<Option<RecordBatch>, ArrowError> {
    let schema = batch.schema();
    let retyped = |f: &Field| match f.data_type() {
        DataType::Timestamp(u, tz) if *u != unit => Some(DataType::Timestamp(unit, tz.clone())),
        _ => None,
    };
    if !schema.fields().iter().any(|f| retyped(f).is_some()) {
        return Ok(None);
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        match retyped(f) {
            Some(t) => {
                columns.push(cast(c, &t)?);
                fields.push(f.as_ref().clone().with_data_type(t));
            }
            None => {
                columns.push(Arc::clone(c));
                fields.push(f.as_ref().clone());
            }
        }
    }
    let schema: SchemaRef = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    RecordBatch::try_new(schema, columns).map(Some)
}

/// `batch` with its timestamp columns in milliseconds, as opslake computes with them: what a
/// reader that decodes lake files itself applies to every batch (files hold microseconds,
/// or milliseconds when written before the Delta tables).
///
/// # Errors
/// When a column cannot be cast (a value out of range).
pub fn to_millis(batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
    Ok(with_unit(&batch, TimeUnit::Millisecond)?.unwrap_or(batch))
}

/// Encodes record batches of one schema as one Parquet file.
///
/// # Errors
/// When the Parquet writer fails.
pub fn encode_parquet(batches: &[RecordBatch]) -> Result<Bytes, ParquetError> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| ParquetError::General("no batches to encode".into()))?;
    let mut buf = Vec::with_capacity(
        batches
            .iter()
            .map(|b| b.get_array_memory_size())
            .sum::<usize>()
            / 4,
    );
    let mut writer = ArrowWriter::try_new(&mut buf, schema, Some(writer_properties()))?;
    for b in batches {
        writer.write(b)?;
    }
    writer.close()?;
    Ok(Bytes::from(buf))
}

/// Uploads an encoded file to the lake. The file is not part of the lake until a log entry adds
/// it, so a crash after this leaves only an unreferenced file.
///
/// # Errors
/// When the object store refuses the write.
pub async fn upload(
    lake: &Lake,
    rel: &str,
    table: &str,
    rows: u64,
    bytes: Bytes,
) -> Result<AddFile, LakeError> {
    let size = bytes.len() as u64;
    lake.store()
        .put(&lake.path(rel), PutPayload::from(bytes))
        .await
        .map_err(|source| LakeError::Store {
            path: rel.to_string(),
            source,
        })?;
    Ok(AddFile {
        path: rel.to_string(),
        table: table.to_string(),
        rows,
        bytes: size,
        created_ms: chrono::Utc::now().timestamp_millis(),
    })
}
