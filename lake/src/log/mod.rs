//! The lake's commit log: versioned JSON entries, replayed into a [`Snapshot`].

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::{Lake, LakeError};

mod trim;

/// A checkpoint (the whole snapshot in one file) is written every this many versions, so that
/// opening the lake reads at most this many entries after the newest checkpoint.
pub const CHECKPOINT_EVERY: u64 = 100;

pub(crate) const LOG_DIR: &str = "_opslake_log";

/// The format of log entries and checkpoints this version writes and reads. Each entry and
/// checkpoint carries it (`format`; absent means 1); a lake written in a newer format is
/// refused with a clear error rather than misread.
pub const LOG_FORMAT: u32 = 1;

fn format_one() -> u32 {
    1
}

/// Where the newest checkpoint is: `_opslake_log/_last_checkpoint`, so opening a lake reads one
/// small file instead of listing every checkpoint.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct LastCheckpoint {
    version: u64,
    #[serde(default = "format_one")]
    format: u32,
}

/// Offsets of one Kafka partition covered by a commit: `start` is the first offset the commit
/// covers, `end` the next offset to read (last + 1), as Kafka expects it in a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffsets {
    /// First offset the commit covers.
    pub start: i64,
    /// Next offset to read (last covered + 1).
    pub end: i64,
}

/// A data file added to the lake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddFile {
    /// Lake-relative path, e.g. `metrics/date=2026-11-22/hour=10/part-....parquet`.
    pub path: String,
    /// Table the file belongs to.
    pub table: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file, bytes.
    pub bytes: u64,
    /// When the file was written, epoch milliseconds.
    #[serde(default)]
    pub created_ms: i64,
}

/// One commit: files added and removed, Kafka offsets covered, and role state (e.g. a
/// processor's progress), all applied together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The version this entry is (its file name; set on commit).
    #[serde(default)]
    pub version: u64,
    /// The log format it was written in ([`LOG_FORMAT`]; set on commit).
    #[serde(default = "format_one")]
    pub format: u32,
    /// Commit time, epoch milliseconds.
    #[serde(default)]
    pub timestamp_ms: i64,
    /// Who wrote it (role and instance), for operators.
    #[serde(default)]
    pub writer: String,
    /// Data files this commit adds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<AddFile>,
    /// Lake-relative paths of files this commit removes (compaction, rewrites).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// topic -> partition -> offsets covered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub offsets: BTreeMap<String, BTreeMap<i32, PartitionOffsets>>,
    /// Role state set by this commit (key -> value; replaces the previous value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub state: BTreeMap<String, serde_json::Value>,
}

/// The lake at one version: its live files, the next offset of every Kafka partition it holds,
/// and the role state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The newest log version applied.
    pub version: u64,
    /// The log format of a checkpoint ([`LOG_FORMAT`]; set when one is written).
    #[serde(default = "format_one")]
    pub format: u32,
    /// Live data files by lake-relative path.
    pub files: Arc<BTreeMap<String, AddFile>>,
    /// topic -> partition -> next offset to read.
    pub offsets: Arc<BTreeMap<String, BTreeMap<i32, i64>>>,
    /// Role state (processor progress, marks, heartbeats) by key.
    pub state: Arc<BTreeMap<String, serde_json::Value>>,
}

/// Why a commit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Another writer changed what this commit depends on; nothing was written.
    #[error("commit conflicts with the lake: {0}")]
    Conflict(String),
    /// The lake could not be read or written.
    #[error(transparent)]
    Lake(#[from] LakeError),
}

impl Snapshot {
    /// Next offset to read of a partition, if the lake holds any of it.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets
            .get(topic)
            .and_then(|p| p.get(&partition))
            .copied()
    }

    /// Live files of one table.
    pub fn table_files<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a AddFile> + 'a {
        self.files.values().filter(move |f| f.table == table)
    }

    /// Applies one entry; entries must come in version order.
    pub fn apply(&mut self, entry: &LogEntry) {
        if !entry.add.is_empty() || !entry.remove.is_empty() {
            let files = Arc::make_mut(&mut self.files);
            for r in &entry.remove {
                files.remove(r);
            }
            for a in &entry.add {
                files.insert(a.path.clone(), a.clone());
            }
        }
        if !entry.offsets.is_empty() {
            let offsets = Arc::make_mut(&mut self.offsets);
            for (topic, parts) in &entry.offsets {
                let t = offsets.entry(topic.clone()).or_default();
                for (p, o) in parts {
                    t.insert(*p, o.end);
                }
            }
        }
        if !entry.state.is_empty() {
            let state = Arc::make_mut(&mut self.state);
            for (k, v) in &entry.state {
                if v.is_null() {
                    state.remove(k);
                } else {
                    state.insert(k.clone(), v.clone());
                }
            }
        }
        self.version = entry.version;
    }

    /// Reads log entries newer than this snapshot. On first use it starts from the newest
    /// checkpoint.
    pub(super) async fn refresh(&mut self, lake: &Lake) -> Result<(), LakeError> {
        let began = std::time::Instant::now();
        if self.version == 0 {
            if let Some(cp) = newest_checkpoint(lake).await? {
                *self = cp;
            }
        }
        loop {
            let next = self.version + 1;
            match read_entry(lake, next).await? {
                Some(entry) => self.apply(&entry),
                // The end of the log, or an entry removed behind a newer checkpoint: then this
                // snapshot lags behind the log, and goes on from that checkpoint (so a writer
                // never creates a removed version again).
                None if lake.head_seen_recently() => break,
                None => match newer_checkpoint(lake, self.version).await? {
                    Some(cp) => *self = cp,
                    None => break,
                },
            }
        }
        lake.saw_head(began);
        Ok(())
    }
}

fn entry_path(version: u64) -> String {
    format!("{LOG_DIR}/{version:020}.json")
}

fn checkpoint_dir() -> String {
    format!("{LOG_DIR}/_checkpoint")
}

async fn read_json<T: serde::de::DeserializeOwned>(
    lake: &Lake,
    rel: &str,
) -> Result<Option<T>, LakeError> {
    let path = lake.path(rel);
    match lake.store.get(&path).await {
        Ok(r) => {
            let bytes = r.bytes().await.map_err(|source| LakeError::Store {
                path: rel.to_string(),
                source,
            })?;
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| LakeError::Corrupt {
                    path: rel.to_string(),
                    reason: e.to_string(),
                })
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(LakeError::Store {
            path: rel.to_string(),
            source,
        }),
    }
}

pub(super) async fn read_entry(lake: &Lake, version: u64) -> Result<Option<LogEntry>, LakeError> {
    let path = entry_path(version);
    let mut entry: Option<LogEntry> = read_json(lake, &path).await?;
    if let Some(e) = entry.as_mut() {
        supported(&path, e.format)?;
        e.version = version;
    }
    Ok(entry)
}

/// Refuses a file written in a log format newer than this version reads.
fn supported(path: &str, found: u32) -> Result<(), LakeError> {
    if found > LOG_FORMAT {
        return Err(LakeError::NewerFormat {
            path: path.to_string(),
            found,
            supported: LOG_FORMAT,
        });
    }
    Ok(())
}

fn last_checkpoint_path() -> String {
    format!("{LOG_DIR}/_last_checkpoint")
}

fn checkpoint_path(version: u64) -> String {
    format!("{}/{version:020}.json", checkpoint_dir())
}

/// Reads a checkpoint file, refusing a newer format.
async fn read_checkpoint(lake: &Lake, rel: &str) -> Result<Option<Snapshot>, LakeError> {
    let snap: Option<Snapshot> = read_json(lake, rel).await?;
    if let Some(s) = &snap {
        supported(rel, s.format)?;
    }
    Ok(snap)
}

/// The newest checkpoint: the one `_last_checkpoint` names, or, in a lake written before the
/// pointer existed (or when the file it names is gone), the newest one listed.
async fn newest_checkpoint(lake: &Lake) -> Result<Option<Snapshot>, LakeError> {
    let pointer = last_checkpoint_path();
    if let Some(last) = read_json::<LastCheckpoint>(lake, &pointer).await? {
        supported(&pointer, last.format)?;
        if let Some(snap) = read_checkpoint(lake, &checkpoint_path(last.version)).await? {
            return Ok(Some(snap));
        }
    }
    listed_checkpoint(lake).await
}

/// The newest checkpoint when `_last_checkpoint` names one newer than `version`.
async fn newer_checkpoint(lake: &Lake, version: u64) -> Result<Option<Snapshot>, LakeError> {
    let pointer = last_checkpoint_path();
    match read_json::<LastCheckpoint>(lake, &pointer).await? {
        Some(last) if last.version > version => {
            supported(&pointer, last.format)?;
            Ok(newest_checkpoint(lake)
                .await?
                .filter(|cp| cp.version > version))
        }
        _ => Ok(None),
    }
}

async fn listed_checkpoint(lake: &Lake) -> Result<Option<Snapshot>, LakeError> {
    use futures::TryStreamExt;
    let dir = checkpoint_dir();
    let prefix = lake.path(&dir);
    let metas: Vec<_> = lake
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| LakeError::Store {
            path: dir.clone(),
            source,
        })?;
    let newest = metas
        .iter()
        .filter_map(|m| m.location.filename().map(str::to_string))
        .filter(|n| n.ends_with(".json"))
        .max();
    match newest {
        Some(name) => read_checkpoint(lake, &format!("{dir}/{name}")).await,
        None => Ok(None),
    }
}

pub(super) async fn commit<F>(
    lake: &Lake,
    snap: &mut Snapshot,
    entry: &mut LogEntry,
    check: F,
) -> Result<u64, CommitError>
where
    F: Fn(&Snapshot) -> Result<(), String>,
{
    loop {
        snap.refresh(lake).await?;
        check(snap).map_err(CommitError::Conflict)?;
        let version = snap.version + 1;
        entry.version = version;
        entry.format = LOG_FORMAT;
        entry.timestamp_ms = chrono::Utc::now().timestamp_millis();
        let body = serde_json::to_vec(entry).expect("log entries serialize");
        let rel = entry_path(version);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match lake
            .store
            .put_opts(&lake.path(&rel), PutPayload::from(Bytes::from(body)), opts)
            .await
        {
            Ok(_) => {
                snap.apply(entry);
                if version.is_multiple_of(CHECKPOINT_EVERY) && write_checkpoint(lake, snap).await {
                    trim::trim_log(lake, version - CHECKPOINT_EVERY, lake.log_retention()).await;
                }
                return Ok(version);
            }
            // Another writer took this version: read it and try the next one.
            Err(object_store::Error::AlreadyExists { .. }) => continue,
            Err(source) => return Err(LakeError::Store { path: rel, source }.into()),
        }
    }
}

/// Writes a checkpoint, then points `_last_checkpoint` at it; a failure only costs readers
/// time, so it is logged, and `false` returned (nothing is trimmed then).
async fn write_checkpoint(lake: &Lake, snap: &Snapshot) -> bool {
    let rel = checkpoint_path(snap.version);
    let mut checkpoint = snap.clone();
    checkpoint.format = LOG_FORMAT;
    let body = serde_json::to_vec(&checkpoint).expect("snapshots serialize");
    let pointer = LastCheckpoint {
        version: snap.version,
        format: LOG_FORMAT,
    };
    let pointer_body = serde_json::to_vec(&pointer).expect("pointers serialize");
    for (path, body) in [(rel, body), (last_checkpoint_path(), pointer_body)] {
        if let Err(e) = lake
            .store
            .put(&lake.path(&path), PutPayload::from(Bytes::from(body)))
            .await
        {
            tracing::warn!(error = %e, path, "failed to write lake checkpoint");
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(path: &str) -> AddFile {
        AddFile {
            path: path.into(),
            table: "metrics".into(),
            rows: 1,
            bytes: 1,
            created_ms: 0,
        }
    }

    fn offsets(
        topic: &str,
        p: i32,
        start: i64,
        end: i64,
    ) -> BTreeMap<String, BTreeMap<i32, PartitionOffsets>> {
        BTreeMap::from([(
            topic.to_string(),
            BTreeMap::from([(p, PartitionOffsets { start, end })]),
        )])
    }

    #[tokio::test]
    async fn two_writers_never_commit_the_same_version() {
        let dir = tempfile::tempdir().unwrap();
        let a = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let b = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let va = a
            .commit(
                LogEntry {
                    add: vec![add("a")],
                    ..Default::default()
                },
                |_| Ok(()),
            )
            .await
            .unwrap();
        let vb = b
            .commit(
                LogEntry {
                    add: vec![add("b")],
                    ..Default::default()
                },
                |_| Ok(()),
            )
            .await
            .unwrap();
        assert_eq!((va, vb), (1, 2));
        let snap = a.snapshot().await.unwrap();
        assert_eq!(snap.files.keys().collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[tokio::test]
    async fn a_stale_offset_claim_is_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let a = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let b = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let claim = |start: i64| {
            move |s: &Snapshot| match s.next_offset("t", 0) {
                None if start == 0 => Ok(()),
                Some(n) if n == start => Ok(()),
                other => Err(format!("lake is at {other:?}, not {start}")),
            }
        };
        a.commit(
            LogEntry {
                offsets: offsets("t", 0, 0, 10),
                ..Default::default()
            },
            claim(0),
        )
        .await
        .unwrap();
        let r = b
            .commit(
                LogEntry {
                    offsets: offsets("t", 0, 0, 7),
                    ..Default::default()
                },
                claim(0),
            )
            .await;
        assert!(matches!(r, Err(CommitError::Conflict(_))));
        b.commit(
            LogEntry {
                offsets: offsets("t", 0, 10, 12),
                ..Default::default()
            },
            claim(10),
        )
        .await
        .unwrap();
        assert_eq!(a.snapshot().await.unwrap().next_offset("t", 0), Some(12));
    }

    #[tokio::test]
    async fn reopening_reads_from_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let a = Lake::open(dir.path().to_str().unwrap()).unwrap();
        for i in 0..(CHECKPOINT_EVERY + 5) {
            let remove = if i > 0 {
                vec![format!("f{}", i - 1)]
            } else {
                vec![]
            };
            a.commit(
                LogEntry {
                    add: vec![add(&format!("f{i}"))],
                    remove,
                    ..Default::default()
                },
                |_| Ok(()),
            )
            .await
            .unwrap();
        }
        // Opening follows `_last_checkpoint`, not a listing: a stray file that sorts last in
        // the checkpoint folder is never read.
        let log = dir.path().join("_opslake_log");
        std::fs::write(
            log.join("_checkpoint").join("99999999999999999999.json"),
            "not json",
        )
        .unwrap();
        let pointer = std::fs::read_to_string(log.join("_last_checkpoint")).unwrap();
        assert!(
            pointer.contains(&format!("\"version\":{CHECKPOINT_EVERY}")),
            "{pointer}"
        );
        let b = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let snap = b.snapshot().await.unwrap();
        assert_eq!(snap.version, CHECKPOINT_EVERY + 5);
        assert_eq!(snap.files.len(), 1);
        assert!(snap
            .files
            .contains_key(&format!("f{}", CHECKPOINT_EVERY + 4)));
        // A lake written before the pointer existed still opens, from the listing.
        std::fs::remove_file(log.join("_checkpoint").join("99999999999999999999.json")).unwrap();
        std::fs::remove_file(log.join("_last_checkpoint")).unwrap();
        let c = Lake::open(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(c.snapshot().await.unwrap().version, CHECKPOINT_EVERY + 5);
    }

    #[tokio::test]
    async fn a_log_in_a_newer_format_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let a = Lake::open(dir.path().to_str().unwrap()).unwrap();
        a.commit(LogEntry::default(), |_| Ok(())).await.unwrap();
        let written = std::fs::read_to_string(
            dir.path()
                .join("_opslake_log")
                .join(format!("{:020}.json", 1)),
        )
        .unwrap();
        assert!(written.contains("\"format\":1"), "{written}");
        std::fs::write(
            dir.path()
                .join("_opslake_log")
                .join(format!("{:020}.json", 2)),
            r#"{"format": 2, "writer": "a future opslake"}"#,
        )
        .unwrap();
        let b = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let e = b.snapshot().await.unwrap_err().to_string();
        assert!(
            e.contains("00000000000000000002.json") && e.contains("format 2"),
            "{e}"
        );
    }
}
