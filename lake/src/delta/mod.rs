//! The lake as Delta Lake tables (CONTRACT section 11): every table is also a Delta table at
//! `<lake>/<table>/`, its `_delta_log/` beside the `date=`/`hour=` folders, so that any Delta
//! reader (delta-rs, Polars, DuckDB, Spark, Trino) reads what opslake's SQL reads.
//!
//! opslake's own log (`_opslake_log`) stays the source of truth; the Delta logs mirror it. Each
//! opslake commit that touches table `T` becomes exactly one Delta version of `T`, in opslake's
//! order, carrying `txn {appId: "opslake", version: N}` with N the opslake version (so
//! `DeltaTable.transaction_version("opslake")` says how far a table is mirrored):
//! - appends (ingest, processor outputs) are `WRITE` (`Append`) with `add`s;
//! - compaction is `OPTIMIZE`: `remove` + `add` with `dataChange: false`;
//! - retention is `DELETE`: `remove`s; a processor rebuild is `WRITE` (`Overwrite`);
//! - a table whose entries are gone (trimmed, or written while mirroring was off) gets one
//!   commit that reconciles it with the opslake snapshot (`CONVERT` for its version 0);
//! - a column the code has and the log lacks comes as a new `metaData` (same table id, the
//!   union of the columns, new ones nullable) in the next commit.
//!
//! Versions are created with `PutMode::Create`, like opslake's own entries: mirrors racing in
//! several processes write each entry once, and a crash leaves a prefix that the next
//! [`DeltaMirror::catch_up`] completes. Every 100th version has a classic checkpoint beside it.
//! The log is written by hand (JSON lines and one Parquet file per checkpoint), following
//! PROTOCOL.md at reader version 1 and writer version 2, with no table features. Old commits
//! and checkpoints are never deleted (no metadata cleanup), and removed data files are deleted
//! by opslake itself after its grace period (`delta.deletedFileRetentionDuration`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;

use crate::{Lake, LakeError};

mod actions;
mod checkpoint;
#[cfg(test)]
mod log_tests;
mod mirror;
mod replay;
mod schema;
mod stats;
#[cfg(test)]
mod tests;

use mirror::{Entries, Settings, TableDef};
use replay::Head;

/// Errors of mirroring the lake into Delta logs.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The opslake log could not be read.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// A read, write or list of a Delta log file failed.
    #[error("object store operation on {path} failed")]
    Store {
        /// Lake-relative path of the file.
        path: String,
        /// The object store's error.
        source: object_store::Error,
    },
    /// A Delta log file does not parse, or the log cannot be replayed.
    #[error("delta log file {path} is not valid: {reason}")]
    Corrupt {
        /// Lake-relative path of the file (or of the log folder).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A commit could not be encoded.
    #[error("failed to encode delta commit {path}")]
    Encode {
        /// Lake-relative path of the commit.
        path: String,
        /// The JSON encoder's error.
        source: serde_json::Error,
    },
    /// A checkpoint could not be encoded or decoded.
    #[error("failed to encode or decode delta checkpoint {path}")]
    Checkpoint {
        /// Lake-relative path of the checkpoint.
        path: String,
        /// The Parquet, Arrow or JSON error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A column of the table has a type Delta has none for.
    #[error("column {column} of table {table} has type {data_type}, which delta has no type for")]
    Schema {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Its Arrow type.
        data_type: String,
    },
    /// Other writers kept creating the versions this mirror planned to.
    #[error("delta log of {table} kept changing under the mirror ({rounds} rounds)")]
    Contended {
        /// The table.
        table: String,
        /// Rounds of planning tried.
        rounds: usize,
    },
}

/// What one [`DeltaMirror::catch_up`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorReport {
    /// The opslake version every table is now mirrored through.
    pub version: u64,
    /// The Delta versions this call created, by table (tables it wrote to only).
    pub written: BTreeMap<String, Vec<u64>>,
    /// Tables whose entries were gone, brought up to date by one reconciling commit.
    pub reconciled: Vec<String>,
    /// Versions another writer had created first (read instead of written).
    pub raced: usize,
}

/// The Delta mirror of a lake's tables: create one per process, keep it, and call
/// [`catch_up`](Self::catch_up) once on start and after every commit. It keeps each table's
/// Delta head in memory, so that a catch-up with nothing new reads nothing but the opslake
/// entries it has not seen.
#[derive(Debug)]
pub struct DeltaMirror {
    tables: Vec<TableDef>,
    settings: Settings,
    heads: tokio::sync::Mutex<HashMap<String, Head>>,
}

impl DeltaMirror {
    /// A mirror of every opslake table (`opslake_schemas::tables::raw_tables` and
    /// `derived_tables`). `delete_grace` is how long opslake keeps a removed file before
    /// deleting it (compaction's `delete_grace`): the tables' `deletedFileRetentionDuration`.
    #[must_use]
    pub fn new(delete_grace: Duration) -> Self {
        let raw = opslake_schemas::tables::raw_tables()
            .into_iter()
            .map(|(name, schema)| (name, schema, true));
        let tables = raw
            .chain(opslake_schemas::tables::derived_tables())
            .map(|(name, schema, partitioned)| (name.to_string(), schema, partitioned))
            .collect();
        Self::for_tables(delete_grace, tables)
    }

    /// A mirror of the tables given: (name, schema of its files, partitioned by
    /// `date=`/`hour=`).
    #[must_use]
    pub fn for_tables(delete_grace: Duration, tables: Vec<(String, SchemaRef, bool)>) -> Self {
        Self {
            tables: tables
                .iter()
                .map(|(name, schema, partitioned)| TableDef::new(name, schema, *partitioned))
                .collect(),
            settings: Settings {
                grace_ms: i64::try_from(delete_grace.as_millis()).unwrap_or(i64::MAX),
            },
            heads: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Mirrors every opslake commit up to the lake's newest into the Delta logs of the tables
    /// it touches. Every table is tried; a table that fails is read again from its log on the
    /// next call.
    ///
    /// # Errors
    /// The first table's error when the opslake log or a Delta log cannot be read or written.
    pub async fn catch_up(&self, lake: &Lake) -> Result<MirrorReport, DeltaError> {
        let snap = lake.snapshot().await?;
        let mut heads = self.heads.lock().await;
        let mut entries = Entries::new(snap.version);
        let mut report = MirrorReport {
            version: snap.version,
            ..MirrorReport::default()
        };
        let mut first_error = None;
        for def in &self.tables {
            let mut head = match heads.remove(&def.name) {
                Some(h) => h,
                None => match replay::load(lake, &def.name).await {
                    Ok(mut h) => {
                        // A table whose log already holds the snapshot's files needs none of
                        // the entries before it (a racing mirror that writes them anyway is
                        // read, and planned from, when its version is found).
                        if mirror::same_files(def, &h, &snap) {
                            h.through = h.through.max(snap.version);
                        }
                        h
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, table = def.name, "cannot read the delta log");
                        first_error.get_or_insert(e);
                        continue;
                    }
                },
            };
            match mirror::sync_table(lake, self.settings, def, &mut head, &snap, &mut entries).await
            {
                Ok(out) => {
                    if !out.written.is_empty() {
                        report.written.insert(def.name.clone(), out.written);
                    }
                    if out.reconciled {
                        tracing::info!(
                            table = def.name,
                            through = snap.version,
                            "delta log brought up to the lake in one commit (a backfill, or \
                             entries no longer in opslake's log)"
                        );
                        report.reconciled.push(def.name.clone());
                    }
                    report.raced += out.raced;
                    heads.insert(def.name.clone(), head);
                }
                Err(e) => {
                    tracing::warn!(error = %e, table = def.name, "cannot mirror the table into its delta log");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

/// Mirrors the lake into its Delta logs once, with a new [`DeltaMirror`] (which reads every
/// table's log first): for a one-off command, such as retention.
///
/// # Errors
/// As [`DeltaMirror::catch_up`].
pub async fn catch_up(lake: &Lake, delete_grace: Duration) -> Result<MirrorReport, DeltaError> {
    DeltaMirror::new(delete_grace).catch_up(lake).await
}
