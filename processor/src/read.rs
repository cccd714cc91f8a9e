//! Reading the lake's Parquet files: the raw metric files folded into windows in parallel,
//! with the columns rollups need decoded as dictionaries, and whole files for the rest.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use object_store::ObjectStoreExt;
use opslake_lake::write::to_millis;
use opslake_lake::{Lake, LakeError};

use crate::error::ProcessError;
use crate::rollup::{merge_windows, MetricFold, MetricWindows};

/// Columns of `metrics` that rollups read; the rest of a raw file is never decoded.
pub(crate) const METRIC_FOLD_COLUMNS: [&str; 6] =
    ["timestamp", "service", "name", "version", "value", "labels"];

/// Columns of `metrics` the fold reads as dictionaries (with the keys and values of `labels`).
pub(crate) const METRIC_DICTIONARY_COLUMNS: [&str; 4] = ["service", "name", "version", "labels"];

/// Columns the fold reads from files whose every row has its `series` (all that ingest writes
/// since the column exists): one dictionary column instead of three strings and a map.
pub(crate) const METRIC_FOLD_SERIES_COLUMNS: [&str; 3] = ["timestamp", "value", "series"];

/// Columns of `metric_histograms` that rollups read: each row's sketch merges into its window.
pub(crate) const HISTOGRAM_FOLD_COLUMNS: [&str; 3] = ["timestamp", "sketch", "series"];

/// Which columns of a file to read, and which of them as dictionaries.
pub(crate) type Projection = (Option<&'static [&'static str]>, &'static [&'static str]);

/// The fold's columns of a raw metric file: the `series` column when the file's statistics show
/// it in every row, else the columns a series is made of.
pub(crate) fn metric_fold_projection(meta: &ArrowReaderMetadata) -> Projection {
    let parquet = meta.metadata();
    let column = parquet
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().string() == "series");
    let complete = column.is_some_and(|c| {
        parquet
            .row_groups()
            .iter()
            .all(|rg| rg.column(c).statistics().and_then(|s| s.null_count_opt()) == Some(0))
    });
    if complete {
        (Some(&METRIC_FOLD_SERIES_COLUMNS), &["series"])
    } else {
        (Some(&METRIC_FOLD_COLUMNS), &METRIC_DICTIONARY_COLUMNS)
    }
}

/// Hours whose raw files are folded together, so that every core has a file to fold; bounded
/// so that a long backfill does not hold the windows of every hour in memory at once.
pub(crate) const HOURS_FOLDED_TOGETHER: usize = 4;

/// Folds raw metric files into windows by the group each file belongs to (its hour): one
/// worker per core takes the next file, and keeps one fold per group across all the files it
/// takes, so that a window's sketch is built once per core rather than once per file (fewer
/// sketches to allocate and merge). Sketches merge exactly, so the split does not change a
/// single rollup.
pub(crate) async fn fold_metric_files(
    lake: &Arc<Lake>,
    groups: &[Vec<String>],
    window_ms: i64,
) -> Result<Vec<MetricWindows>, ProcessError> {
    let files: Vec<(usize, String)> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, raw)| raw.iter().map(move |p| (g, p.clone())))
        .collect();
    let parallel = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .min(files.len().max(1));
    let queue = Arc::new(std::sync::Mutex::new(files.into_iter()));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..parallel {
        let (lake, queue) = (Arc::clone(lake), Arc::clone(&queue));
        workers.spawn(async move {
            let mut folds: HashMap<usize, MetricFold> = HashMap::new();
            loop {
                let next = queue.lock().expect("not poisoned").next();
                let Some((group, path)) = next else { break };
                let bytes = fetch(&lake, &path).await?;
                let fold = folds.remove(&group).unwrap_or_default();
                let file = path.clone();
                let fold = tokio::task::spawn_blocking(move || {
                    let mut fold = fold;
                    let histograms = path.starts_with("metric_histograms/");
                    let reader = if histograms {
                        reader(bytes, &path, |_| {
                            (Some(&HISTOGRAM_FOLD_COLUMNS), &["series"])
                        })?
                    } else {
                        reader(bytes, &path, metric_fold_projection)?
                    };
                    for b in reader {
                        let b = b.map_err(|e| ProcessError::Read {
                            path: path.clone(),
                            source: e.into(),
                        })?;
                        let folded = if histograms {
                            fold.add_histograms(&b, window_ms)
                        } else {
                            fold.add(&b, window_ms)
                        };
                        folded.map_err(|source| ProcessError::Rows {
                            path: path.clone(),
                            source,
                        })?;
                    }
                    Ok::<_, ProcessError>(fold)
                })
                .await
                .map_err(ProcessError::from)
                .and_then(|r| r)
                // The group's fold went with a file that failed: the whole cycle is abandoned.
                .map_err(|e| e.of_raw_file(&file))?;
                folds.insert(group, fold);
            }
            Ok::<_, ProcessError>(folds)
        });
    }
    let mut out: Vec<MetricWindows> = groups.iter().map(|_| MetricWindows::default()).collect();
    while let Some(part) = workers.join_next().await {
        for (group, fold) in part?? {
            merge_windows(&mut out[group], fold.finish());
        }
    }
    Ok(out)
}

pub(crate) async fn fetch(lake: &Lake, rel: &str) -> Result<Bytes, ProcessError> {
    Ok(lake
        .store()
        .get(&lake.path(rel))
        .await
        .map_err(|source| LakeError::Store {
            path: rel.to_string(),
            source,
        })?
        .bytes()
        .await
        .map_err(|source| LakeError::Store {
            path: rel.to_string(),
            source,
        })?)
}

/// Decodes a whole Parquet file.
pub(crate) fn decode(bytes: Bytes, rel: &str) -> Result<Vec<RecordBatch>, ProcessError> {
    reader(bytes, rel, |_| (None, &[]))?
        .map(|b| {
            b.map_err(|e| ProcessError::Read {
                path: rel.to_string(),
                source: e.into(),
            })
        })
        .collect()
}

/// A reader of a Parquet file's batches, time columns in milliseconds. `projection` picks,
/// from the file's metadata, the columns to read (top-level names; all when `None`) and the
/// strings to read as dictionary arrays (top-level names; a map's keys and values), which the
/// dictionary-encoded pages of the lake's files turn into without decoding a string.
pub(crate) fn reader(
    bytes: Bytes,
    rel: &str,
    projection: impl FnOnce(&ArrowReaderMetadata) -> Projection,
) -> Result<Batches, ProcessError> {
    let err = |source| ProcessError::Read {
        path: rel.to_string(),
        source,
    };
    let mut meta = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new()).map_err(err)?;
    let (columns, dictionaries) = projection(&meta);
    if !dictionaries.is_empty() {
        let schema = with_dictionaries(meta.schema(), dictionaries);
        if &schema != meta.schema() {
            let options = ArrowReaderOptions::new().with_schema(schema);
            meta =
                ArrowReaderMetadata::try_new(Arc::clone(meta.metadata()), options).map_err(err)?;
        }
    }
    let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, meta);
    if let Some(cols) = columns {
        let indices: Vec<usize> = builder
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| cols.contains(&f.name().as_str()))
            .map(|(i, _)| i)
            .collect();
        let mask =
            datafusion::parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), indices);
        builder = builder.with_projection(mask);
    }
    // Batches of 8,192 rows (~400 KB decoded) stay in a core's 1 MiB L2 next to the sketches
    // being filled; 65,536-row batches evicted them, and the fold took 10% longer.
    let batches: ParquetRecordBatchReader =
        builder.with_batch_size(8 * 1024).build().map_err(err)?;
    // Files hold microseconds (milliseconds before the lake became Delta tables): the jobs
    // compute in milliseconds.
    Ok(batches.map(in_millis))
}

/// The batches of a lake file, time columns in milliseconds.
pub(crate) type Batches = std::iter::Map<ParquetRecordBatchReader, BatchInMillis>;

type BatchInMillis = fn(Result<RecordBatch, ArrowError>) -> Result<RecordBatch, ArrowError>;

fn in_millis(b: Result<RecordBatch, ArrowError>) -> Result<RecordBatch, ArrowError> {
    b.and_then(to_millis)
}

/// `schema` with the string fields named in `names` (and the keys and values of maps so named)
/// read as `Dictionary(Int32, Utf8)`.
pub(crate) fn with_dictionaries(schema: &SchemaRef, names: &[&str]) -> SchemaRef {
    fn dict(f: &Field) -> Field {
        match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => f.clone().with_data_type(
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            ),
            DataType::Map(entries, sorted) => match entries.data_type() {
                DataType::Struct(kv) => {
                    let kv: Fields = kv.iter().map(|f| dict(f)).collect();
                    f.clone().with_data_type(DataType::Map(
                        Arc::new(
                            entries
                                .as_ref()
                                .clone()
                                .with_data_type(DataType::Struct(kv)),
                        ),
                        *sorted,
                    ))
                }
                _ => f.clone(),
            },
            _ => f.clone(),
        }
    }
    let fields: Fields = schema
        .fields()
        .iter()
        .map(|f| {
            if names.contains(&f.name().as_str()) {
                Arc::new(dict(f))
            } else {
                Arc::clone(f)
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

pub(crate) async fn read_batches(lake: &Lake, rel: &str) -> Result<Vec<RecordBatch>, ProcessError> {
    let bytes = fetch(lake, rel).await?;
    let rel = rel.to_string();
    tokio::task::spawn_blocking(move || decode(bytes, &rel)).await?
}

/// Reads every batch of the lake file `rel` into `load`; rows it refuses name the file.
pub(crate) async fn load_file(
    lake: &Lake,
    rel: &str,
    mut load: impl FnMut(&RecordBatch) -> Result<(), ArrowError>,
) -> Result<(), ProcessError> {
    for b in read_batches(lake, rel).await? {
        load(&b).map_err(|source| ProcessError::Rows {
            path: rel.to_string(),
            source,
        })?;
    }
    Ok(())
}
