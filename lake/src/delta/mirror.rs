//! Catch-up of one table: every opslake entry after the table's mirrored version that touches
//! it becomes the table's next Delta version, created with `PutMode::Create`. Whoever creates a
//! version first wins it; a writer that loses reads what won, and plans again from there, so
//! racing mirrors write each entry once and in opslake's order. When the entries are gone
//! (trimmed behind opslake's checkpoint, or the table never had a log), one commit reconciles
//! the Delta state with the opslake snapshot instead.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::arrow::datatypes::SchemaRef;
use futures::StreamExt;
use object_store::{PutMode, PutOptions, PutPayload};
use serde_json::{json, Value};
use tracing::warn;

use super::actions::{
    commit_path, encode_path, to_ndjson, Action, Add, Format, MetaData, Protocol, Remove,
    StringMap, Txn, APP_ID,
};
use super::checkpoint::{self, CHECKPOINT_INTERVAL};
use super::replay::Head;
use super::schema::{self, Unsupported, PARTITION_COLUMNS};
use super::{stats, DeltaError};
use crate::{AddFile, Lake, LakeError, LogEntry, Snapshot};

/// Footers read at once when adding files.
const STATS_CONCURRENCY: usize = 8;

/// Rounds of planning after lost races before a table's catch-up gives up.
const MAX_ROUNDS: usize = 64;

/// A table the mirror keeps.
#[derive(Debug, Clone)]
pub(crate) struct TableDef {
    pub(crate) name: String,
    /// The Delta fields of its schema (code's columns, then the partition columns).
    fields: Result<Vec<Value>, Unsupported>,
    stats_columns: Vec<String>,
    partitioned: bool,
}

impl TableDef {
    pub(crate) fn new(name: &str, schema: &SchemaRef, partitioned: bool) -> Self {
        Self {
            name: name.to_string(),
            fields: schema::fields(schema, partitioned),
            stats_columns: stats::stats_columns(schema),
            partitioned,
        }
    }

    /// The path of a lake file inside this table's folder.
    fn relative<'a>(&self, lake_path: &'a str) -> Option<&'a str> {
        lake_path
            .strip_prefix(self.name.as_str())?
            .strip_prefix('/')
    }

    fn touched_by(&self, e: &LogEntry) -> bool {
        e.add.iter().any(|a| a.table == self.name)
            || e.remove.iter().any(|p| self.relative(p).is_some())
    }
}

/// Settings every commit uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// How long removed files stay readable (`delta.deletedFileRetentionDuration`), ms.
    pub(crate) grace_ms: i64,
}

/// What one table's catch-up did.
#[derive(Debug, Default)]
pub(crate) struct TableOutcome {
    pub(crate) written: Vec<u64>,
    pub(crate) reconciled: bool,
    pub(crate) raced: usize,
}

/// The opslake entries read by one catch-up, shared by its tables: those in `(from, upto]`.
#[derive(Debug)]
pub(crate) struct Entries {
    from: u64,
    list: Vec<LogEntry>,
}

impl Entries {
    pub(crate) fn new(upto: u64) -> Self {
        Self {
            from: upto,
            list: Vec::new(),
        }
    }

    /// The entries after `after`, reading the ones not read yet.
    async fn after(&mut self, lake: &Lake, after: u64) -> Result<&[LogEntry], LakeError> {
        if after < self.from {
            let mut older = lake.entries(after, self.from).await?;
            older.append(&mut self.list);
            self.list = older;
            self.from = after;
        }
        let start = self.list.partition_point(|e| e.version <= after);
        Ok(&self.list[start..])
    }
}

/// One Delta commit to make: files of the table added and removed, for opslake `version`.
struct Change<'a> {
    adds: Vec<&'a AddFile>,
    /// `remove.path`s (encoded, table-relative).
    removes: Vec<String>,
    version: u64,
    writer: &'a str,
    timestamp_ms: i64,
    reconcile: bool,
}

enum Outcome {
    Written(u64),
    /// Nothing of the table changes: no version.
    Nothing,
    /// Another writer created the version first.
    Raced,
}

/// Mirrors `snap`'s entries touching `def` into its Delta log.
///
/// # Errors
/// When the lake or the Delta log cannot be read or written.
pub(crate) async fn sync_table(
    lake: &Lake,
    settings: Settings,
    def: &TableDef,
    head: &mut Head,
    snap: &Snapshot,
    entries: &mut Entries,
) -> Result<TableOutcome, DeltaError> {
    let mut out = TableOutcome::default();
    for _ in 0..MAX_ROUNDS {
        if head.through >= snap.version {
            return Ok(out);
        }
        let mut raced = false;
        match entries.after(lake, head.through).await {
            Ok(list) => {
                for e in list.iter().filter(|e| def.touched_by(e)) {
                    match commit(lake, settings, def, head, entry_change(def, e)).await? {
                        Outcome::Written(v) => out.written.push(v),
                        Outcome::Nothing => {}
                        Outcome::Raced => {
                            raced = true;
                            break;
                        }
                    }
                    head.through = e.version;
                }
            }
            Err(LakeError::EntryGone { .. }) => {
                let change = reconcile_change(def, head, snap);
                match commit(lake, settings, def, head, change).await? {
                    Outcome::Written(v) => {
                        out.written.push(v);
                        out.reconciled = true;
                    }
                    Outcome::Nothing => {}
                    Outcome::Raced => raced = true,
                }
            }
            Err(e) => return Err(e.into()),
        }
        if !raced {
            head.through = snap.version;
            return Ok(out);
        }
        // Someone else created the version: read everything they wrote, and plan again from
        // the newest entry the log has.
        out.raced += 1;
        head.advance(lake, &def.name).await?;
        head.through = head.mirrored().unwrap_or(0);
    }
    Err(DeltaError::Contended {
        table: def.name.clone(),
        rounds: MAX_ROUNDS,
    })
}

/// Whether the Delta head holds exactly the table's live files of `snap`.
pub(crate) fn same_files(def: &TableDef, head: &Head, snap: &Snapshot) -> bool {
    let mut n = 0;
    for f in snap.table_files(&def.name) {
        match def.relative(&f.path) {
            Some(rel) if head.files.contains_key(&encode_path(rel)) => n += 1,
            _ => return false,
        }
    }
    n == head.files.len()
}

fn entry_change<'a>(def: &TableDef, e: &'a LogEntry) -> Change<'a> {
    Change {
        adds: e.add.iter().filter(|a| a.table == def.name).collect(),
        removes: e
            .remove
            .iter()
            .filter_map(|p| def.relative(p))
            .map(encode_path)
            .collect(),
        version: e.version,
        writer: &e.writer,
        timestamp_ms: e.timestamp_ms,
        reconcile: false,
    }
}

/// The commit that turns the Delta state into `snap`'s files of the table.
fn reconcile_change<'a>(def: &'a TableDef, head: &Head, snap: &'a Snapshot) -> Change<'a> {
    let wanted: BTreeMap<String, &AddFile> = snap
        .table_files(&def.name)
        .filter_map(|f| Some((encode_path(def.relative(&f.path)?), f)))
        .collect();
    Change {
        adds: wanted
            .iter()
            .filter(|(p, _)| !head.files.contains_key(*p))
            .map(|(_, f)| *f)
            .collect(),
        removes: head
            .files
            .keys()
            .filter(|p| !wanted.contains_key(*p))
            .cloned()
            .collect(),
        version: snap.version,
        writer: "",
        timestamp_ms: chrono::Utc::now().timestamp_millis(),
        reconcile: true,
    }
}

/// What a commit is, for `commitInfo` and `dataChange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Convert,
    Append,
    Overwrite,
    Delete,
    Optimize,
}

fn classify(change: &Change<'_>, version: u64, removed: &[&Add]) -> Operation {
    let (adds, removes) = (!change.adds.is_empty(), !removed.is_empty());
    if change.reconcile && version == 0 {
        return Operation::Convert;
    }
    if adds && removes && change.writer.contains("compact") {
        let added: u64 = change.adds.iter().map(|a| a.rows).sum();
        let removed_rows: Option<u64> = removed.iter().map(|a| num_records(a)).sum();
        if removed_rows == Some(added) {
            return Operation::Optimize;
        }
    }
    match (adds, removes) {
        (true, false) => Operation::Append,
        (false, _) => Operation::Delete,
        (true, true) => Operation::Overwrite,
    }
}

fn num_records(a: &Add) -> Option<u64> {
    let v: Value = serde_json::from_str(a.stats.as_deref()?).ok()?;
    v.get("numRecords")?.as_u64()
}

fn commit_info(
    change: &Change<'_>,
    op: Operation,
    version: u64,
    files: usize,
    parts: &[String],
) -> Value {
    let partition_by = Value::String(json!(parts).to_string());
    let (name, params) = match op {
        Operation::Convert => (
            "CONVERT",
            json!({"numFiles": files.to_string(), "partitionedBy": partition_by, "collectStats": "true"}),
        ),
        Operation::Append | Operation::Overwrite => {
            let mode = if op == Operation::Append {
                "Append"
            } else {
                "Overwrite"
            };
            let mut p = json!({"mode": mode});
            if version == 0 {
                p["partitionBy"] = partition_by;
            }
            ("WRITE", p)
        }
        Operation::Delete => ("DELETE", json!({"predicate": "[]"})),
        Operation::Optimize => ("OPTIMIZE", json!({"predicate": "[]", "zOrderBy": "[]"})),
    };
    let mut opslake = json!({"version": change.version});
    if change.reconcile {
        opslake["reconciled"] = Value::Bool(true);
    } else {
        opslake["writer"] = Value::String(change.writer.to_string());
    }
    json!({
        "timestamp": change.timestamp_ms,
        "operation": name,
        "operationParameters": params,
        "isBlindAppend": op == Operation::Append,
        "engineInfo": concat!("opslake/", env!("CARGO_PKG_VERSION")),
        "opslake": opslake,
    })
}

/// `metaData.configuration`: the table properties opslake sets.
fn configuration(def: &TableDef, settings: Settings) -> StringMap {
    let mut c = StringMap::new();
    c.insert(
        "delta.checkpointInterval".into(),
        Some(CHECKPOINT_INTERVAL.to_string()),
    );
    c.insert(
        "delta.deletedFileRetentionDuration".into(),
        Some(format!(
            "interval {} seconds",
            settings.grace_ms.max(0) / 1000
        )),
    );
    if !def.stats_columns.is_empty() {
        c.insert(
            "delta.dataSkippingStatsColumns".into(),
            Some(def.stats_columns.join(",")),
        );
    }
    c
}

/// The `metaData` the next commit must carry: the table's first, or the union with new
/// columns of the code's schema; `None` when the log's is current.
fn wanted_metadata(
    def: &TableDef,
    head: &Head,
    settings: Settings,
    now_ms: i64,
) -> Result<Option<MetaData>, DeltaError> {
    let fields = def.fields.as_ref().map_err(|u| DeltaError::Schema {
        table: def.name.clone(),
        column: u.column.clone(),
        data_type: u.data_type.clone(),
    })?;
    let Some(m) = &head.metadata else {
        return Ok(Some(MetaData {
            id: uuid::Uuid::new_v4().to_string(),
            name: Some(def.name.clone()),
            description: None,
            format: Format {
                provider: "parquet".into(),
                options: StringMap::new(),
            },
            schema_string: schema::schema_string(fields.clone()),
            partition_columns: if def.partitioned {
                PARTITION_COLUMNS.iter().map(|c| c.to_string()).collect()
            } else {
                Vec::new()
            },
            configuration: configuration(def, settings),
            created_time: Some(now_ms),
        }));
    };
    let existing = schema::parse_fields(&m.schema_string).ok_or_else(|| DeltaError::Corrupt {
        path: format!("{}/_delta_log", def.name),
        reason: "metaData.schemaString does not parse".into(),
    })?;
    Ok(schema::union(&existing, fields).map(|u| {
        let mut m = m.clone();
        m.schema_string = schema::schema_string(u);
        m.configuration.extend(configuration(def, settings));
        m
    }))
}

/// `partitionValues` of a table-relative path: each partition column's `<name>=<value>` folder.
fn partition_values(columns: &[String], rel: &str) -> StringMap {
    columns
        .iter()
        .map(|c| {
            let prefix = format!("{c}=");
            let v = rel
                .split('/')
                .find_map(|seg| seg.strip_prefix(prefix.as_str()))
                .map(str::to_string);
            (c.clone(), v)
        })
        .collect()
}

/// Creates the next version of the table with `change`, unless it changes nothing.
async fn commit(
    lake: &Lake,
    settings: Settings,
    def: &TableDef,
    head: &mut Head,
    change: Change<'_>,
) -> Result<Outcome, DeltaError> {
    let now = chrono::Utc::now().timestamp_millis();
    let version = head.next_version();
    let removed: Vec<&Add> = change
        .removes
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter_map(|p| head.files.get(p))
        .collect();
    let added: Vec<(&AddFile, &str)> = change
        .adds
        .iter()
        .filter_map(|a| Some((*a, def.relative(&a.path)?)))
        .collect();
    if added.len() < change.adds.len() {
        warn!(
            table = def.name,
            "a file of the table lies outside its folder; not mirrored"
        );
    }
    if added.is_empty() && removed.is_empty() {
        return Ok(Outcome::Nothing);
    }
    let op = classify(&change, version, &removed);
    let data_change = op != Operation::Optimize;
    let metadata = wanted_metadata(def, head, settings, now)?;
    let partition_columns = metadata
        .as_ref()
        .or(head.metadata.as_ref())
        .map(|m| m.partition_columns.clone())
        .unwrap_or_default();

    let mut actions = vec![Action::commit_info(commit_info(
        &change,
        op,
        version,
        added.len(),
        &partition_columns,
    ))];
    if head.protocol.is_none() {
        actions.push(Action::protocol(Protocol::opslake()));
    }
    actions.extend(metadata.map(Action::metadata));
    for r in &removed {
        actions.push(Action::remove(Remove {
            path: r.path.clone(),
            deletion_timestamp: Some(now),
            data_change,
            extended_file_metadata: Some(true),
            partition_values: Some(r.partition_values.clone()),
            size: Some(r.size),
        }));
    }
    let columns = &def.stats_columns;
    if added.len() >= 100 {
        // A backfill of an existing lake reads every live file's footer: say so.
        tracing::info!(
            table = def.name,
            files = added.len(),
            "reading the statistics of the files of a delta commit (a backfill)"
        );
    }
    // The futures are made before the stream (a closure making them would not be `Send` for
    // every lifetime, which a spawned task needs).
    let reads: Vec<_> = added
        .iter()
        .map(|(a, _)| stats_or_none(lake, &a.path, a.bytes, columns))
        .collect();
    let stats: Vec<Option<String>> = futures::stream::iter(reads)
        .buffered(STATS_CONCURRENCY)
        .collect()
        .await;
    for ((a, rel), stats) in added.iter().zip(stats) {
        actions.push(Action::add(Add {
            path: encode_path(rel),
            partition_values: partition_values(&partition_columns, rel),
            size: i64::try_from(a.bytes).unwrap_or(i64::MAX),
            modification_time: if a.created_ms > 0 {
                a.created_ms
            } else {
                change.timestamp_ms
            },
            data_change,
            stats,
            tags: None,
        }));
    }
    actions.push(Action::txn(Txn {
        app_id: APP_ID.to_string(),
        version: i64::try_from(change.version).unwrap_or(i64::MAX),
        last_updated: Some(now),
    }));

    let rel = commit_path(&def.name, version);
    let body = to_ndjson(&actions).map_err(|source| DeltaError::Encode {
        path: rel.clone(),
        source,
    })?;
    let opts = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match lake
        .store()
        .put_opts(&lake.path(&rel), PutPayload::from(body), opts)
        .await
    {
        Ok(_) => {}
        Err(object_store::Error::AlreadyExists { .. }) => return Ok(Outcome::Raced),
        Err(source) => return Err(DeltaError::Store { path: rel, source }),
    }
    head.apply(&actions);
    head.version = Some(version);
    if version > 0 && version.is_multiple_of(CHECKPOINT_INTERVAL) {
        if let Err(e) = checkpoint::write(lake, &def.name, head, settings.grace_ms, now).await {
            warn!(error = %e, table = def.name, version, "failed to write a delta checkpoint");
        }
    }
    Ok(Outcome::Written(version))
}

/// A file's `add.stats`, or none (with a warning) when its footer cannot be read.
async fn stats_or_none(lake: &Lake, path: &str, bytes: u64, columns: &[String]) -> Option<String> {
    match stats::file_stats(lake, path, bytes, columns).await {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, path, "no delta statistics for a file");
            None
        }
    }
}
