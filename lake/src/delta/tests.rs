//! The mirror on a local lake: the JSON it writes for appends, compaction and retention, racing
//! and restarted mirrors, trimmed entries, checkpoints and schema changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use serde_json::Value;

use super::*;
use crate::compact::{self, CompactionPolicy};
use crate::test_util::{commit_events, metric};
use crate::{retention, AddFile, LogEntry};

/// 2025-11-22T10:00:00Z.
pub(super) const T0: i64 = 1_763_805_600_000;
pub(super) const HOUR: i64 = 3_600_000;
pub(super) const GRACE: Duration = Duration::from_secs(300);

pub(super) fn metrics_mirror() -> DeltaMirror {
    DeltaMirror::for_tables(
        GRACE,
        vec![("metrics".into(), opslake_schemas::tables::metrics(), true)],
    )
}

/// A temporary lake directory, or the one `OPSLAKE_DELTA_TEST_LAKE` names (emptied first), to
/// look at with other Delta readers (`tests/clients/delta_read.py`).
pub(super) enum LakeDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl LakeDir {
    pub(super) fn new(keep_as: Option<&str>) -> Self {
        match (keep_as, std::env::var_os("OPSLAKE_DELTA_TEST_LAKE")) {
            (Some(name), Some(root)) => {
                let p = PathBuf::from(root).join(name);
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).unwrap();
                Self::Kept(p)
            }
            _ => Self::Temp(tempfile::tempdir().unwrap()),
        }
    }

    pub(super) fn path(&self) -> &Path {
        match self {
            Self::Temp(t) => t.path(),
            Self::Kept(p) => p,
        }
    }
}

pub(super) fn open(dir: &LakeDir) -> Arc<Lake> {
    Lake::open(dir.path().to_str().unwrap()).unwrap()
}

pub(super) fn log_dir(dir: &LakeDir, table: &str) -> PathBuf {
    dir.path().join(table).join("_delta_log")
}

/// The commit versions in `table`'s log, in order.
pub(super) fn versions(dir: &LakeDir, table: &str) -> Vec<u64> {
    let Ok(read) = std::fs::read_dir(log_dir(dir, table)) else {
        return Vec::new();
    };
    let mut v: Vec<u64> = read
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    v.sort_unstable();
    v
}

/// The actions of commit `version` of `table`, one JSON value per line.
pub(super) fn commit(dir: &LakeDir, table: &str, version: u64) -> Vec<Value> {
    let body = std::fs::read_to_string(log_dir(dir, table).join(format!("{version:020}.json")))
        .unwrap_or_else(|e| panic!("{table} version {version}: {e}"));
    assert!(body.ends_with('\n'), "one action per line: {body}");
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The actions of one kind (`add`, `remove`, ...) of a commit.
pub(super) fn of<'a>(actions: &'a [Value], kind: &str) -> Vec<&'a Value> {
    actions.iter().filter_map(|a| a.get(kind)).collect()
}

pub(super) fn txn(actions: &[Value]) -> u64 {
    let t = of(actions, "txn");
    assert_eq!(t.len(), 1, "one txn per commit");
    assert_eq!(t[0]["appId"], "opslake");
    t[0]["version"].as_u64().unwrap()
}

pub(super) fn operation(actions: &[Value]) -> String {
    let c = of(actions, "commitInfo");
    assert_eq!(c.len(), 1);
    c[0]["operation"].as_str().unwrap().to_string()
}

pub(super) fn stats(add: &Value) -> Value {
    serde_json::from_str(add["stats"].as_str().expect("stats")).unwrap()
}

/// A file entry as opslake writes it: `rows` rows, no file behind it.
pub(super) fn fake(table: &str, rel: &str) -> AddFile {
    AddFile {
        path: format!("{table}/{rel}"),
        table: table.into(),
        rows: 1,
        bytes: 100,
        created_ms: T0,
    }
}

pub(super) async fn add(lake: &Lake, files: Vec<AddFile>) -> u64 {
    lake.commit(
        LogEntry {
            writer: "test-writer".into(),
            add: files,
            ..Default::default()
        },
        |_| Ok(()),
    )
    .await
    .unwrap()
}

pub(super) async fn remove(lake: &Lake, paths: Vec<String>) -> u64 {
    lake.commit(
        LogEntry {
            writer: "test-writer".into(),
            remove: paths,
            ..Default::default()
        },
        |_| Ok(()),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn appends_become_one_version_each_in_opslake_order() {
    let dir = LakeDir::new(None);
    let lake = open(&dir);
    for i in 0..3 {
        let e = metric(T0 + i * HOUR + 7, "checkout", "cpu", 1.0);
        commit_events(&lake, "t", i, &[e]).await.unwrap();
    }
    // A commit that touches no table makes no version.
    lake.commit(LogEntry::default(), |_| Ok(())).await.unwrap();
    let mirror = metrics_mirror();
    let report = mirror.catch_up(&lake).await.unwrap();
    assert_eq!(report.version, 4);
    assert_eq!(report.written["metrics"], [0, 1, 2]);
    assert!(report.reconciled.is_empty());
    assert_eq!(versions(&dir, "metrics"), [0, 1, 2]);

    let v0 = commit(&dir, "metrics", 0);
    assert_eq!(operation(&v0), "WRITE");
    let info = of(&v0, "commitInfo")[0];
    assert_eq!(info["operationParameters"]["mode"], "Append");
    assert_eq!(
        info["operationParameters"]["partitionBy"],
        r#"["date","hour"]"#
    );
    assert_eq!(info["isBlindAppend"], true);
    assert_eq!(info["opslake"]["version"], 1);
    assert_eq!(info["opslake"]["writer"], "test-ingest");
    assert_eq!(
        of(&v0, "protocol"),
        [&serde_json::json!({"minReaderVersion": 1, "minWriterVersion": 2})]
    );
    let meta = of(&v0, "metaData")[0];
    assert_eq!(meta["name"], "metrics");
    assert_eq!(meta["format"]["provider"], "parquet");
    assert_eq!(
        meta["partitionColumns"],
        serde_json::json!(["date", "hour"])
    );
    let conf = &meta["configuration"];
    assert_eq!(
        conf["delta.deletedFileRetentionDuration"],
        "interval 300 seconds"
    );
    assert_eq!(conf["delta.checkpointInterval"], "100");
    assert_eq!(
        conf["delta.dataSkippingStatsColumns"],
        "service,name,timestamp,_ingested_at"
    );
    let schema: Value = serde_json::from_str(meta["schemaString"].as_str().unwrap()).unwrap();
    let names: Vec<&str> = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"timestamp"));
    assert_eq!(&names[names.len() - 2..], ["date", "hour"]);

    let snap = lake.snapshot().await.unwrap();
    let adds = of(&v0, "add");
    assert_eq!(adds.len(), 1);
    let a = adds[0];
    let path = a["path"].as_str().unwrap();
    assert!(
        path.starts_with("date=2025-11-22/hour=10/part-test-ingest-"),
        "{path}"
    );
    let file = &snap.files[&format!("metrics/{path}")];
    assert_eq!(a["size"].as_u64(), Some(file.bytes));
    assert_eq!(a["modificationTime"].as_i64(), Some(file.created_ms));
    assert_eq!(a["dataChange"], true);
    assert_eq!(
        a["partitionValues"],
        serde_json::json!({"date": "2025-11-22", "hour": "10"})
    );
    let s = stats(a);
    assert_eq!(s["numRecords"], 1);
    assert_eq!(s["minValues"]["timestamp"], "2025-11-22T10:00:00.007Z");
    assert_eq!(s["maxValues"]["timestamp"], "2025-11-22T10:00:00.007Z");
    assert_eq!(s["minValues"]["service"], "checkout");
    assert_eq!(s["maxValues"]["name"], "cpu");
    assert_eq!(s["nullCount"]["timestamp"], 0);
    assert!(s["minValues"].get("labels").is_none());
    assert_eq!(txn(&v0), 1);

    let v2 = commit(&dir, "metrics", 2);
    assert!(of(&v2, "protocol").is_empty() && of(&v2, "metaData").is_empty());
    assert_eq!(
        of(&v2, "add")[0]["partitionValues"],
        serde_json::json!({"date": "2025-11-22", "hour": "12"})
    );
    assert_eq!(txn(&v2), 3);

    // Nothing new: nothing written, and nothing read from the Delta logs.
    let again = mirror.catch_up(&lake).await.unwrap();
    assert!(again.written.is_empty(), "{again:?}");
    assert_eq!(versions(&dir, "metrics"), [0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_is_optimize_and_retention_a_delete() {
    let dir = LakeDir::new(Some("compaction"));
    let lake = open(&dir);
    let day2 = T0 + 14 * HOUR; // 2025-11-23T00:00:00Z
    let events =
        |t: i64, svc: &str| vec![metric(t, svc, "cpu", 1.0), metric(t + 1, svc, "mem", 2.0)];
    commit_events(&lake, "t", 0, &events(T0, "a"))
        .await
        .unwrap();
    commit_events(&lake, "t", 2, &events(day2 + 5, "b"))
        .await
        .unwrap();
    commit_events(&lake, "t", 4, &events(day2 + 9, "c"))
        .await
        .unwrap();
    let mirror = metrics_mirror();
    assert_eq!(
        mirror.catch_up(&lake).await.unwrap().written["metrics"],
        [0, 1, 2]
    );

    let snap = lake.snapshot().await.unwrap();
    let policy = CompactionPolicy {
        quiet_for: Duration::ZERO,
        ..Default::default()
    };
    let groups = compact::plan(&snap, &policy, chrono::Utc::now().timestamp_millis() + 1);
    assert_eq!(groups.len(), 1, "only the second day's hour has two files");
    let merged = compact::merge(&lake, &groups[0].0, &groups[0].1, "compact-1a2b")
        .await
        .unwrap();
    assert_eq!(merged, 4);
    let cutoff = NaiveDate::from_ymd_opt(2025, 11, 23).unwrap();
    let (gone, _) = retention::remove(&lake, &["metrics".to_string()], cutoff, "retention-9")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone.len(), 1);

    let report = mirror.catch_up(&lake).await.unwrap();
    assert_eq!(report.written["metrics"], [3, 4]);

    let v3 = commit(&dir, "metrics", 3);
    assert_eq!(operation(&v3), "OPTIMIZE");
    assert_eq!(txn(&v3), 4);
    let removes = of(&v3, "remove");
    assert_eq!(removes.len(), 2);
    for r in &removes {
        assert_eq!(r["dataChange"], false);
        assert_eq!(r["extendedFileMetadata"], true);
        assert_eq!(
            r["partitionValues"],
            serde_json::json!({"date": "2025-11-23", "hour": "00"})
        );
        assert!(r["deletionTimestamp"].as_i64().unwrap() > T0);
        assert!(r["size"].as_u64().unwrap() > 0);
    }
    let adds = of(&v3, "add");
    assert_eq!(adds.len(), 1);
    assert_eq!(adds[0]["dataChange"], false);
    let s = stats(adds[0]);
    assert_eq!(s["numRecords"], 4);
    assert_eq!(s["minValues"]["service"], "b");
    assert_eq!(s["maxValues"]["service"], "c");
    assert_eq!(s["minValues"]["timestamp"], "2025-11-23T00:00:00.005Z");
    assert_eq!(s["maxValues"]["timestamp"], "2025-11-23T00:00:00.010Z");
    // The removed paths are the added ones, byte for byte.
    let v1 = commit(&dir, "metrics", 1);
    let v2 = commit(&dir, "metrics", 2);
    let mut earlier: Vec<&Value> = vec![&of(&v1, "add")[0]["path"], &of(&v2, "add")[0]["path"]];
    let mut removed: Vec<&Value> = removes.iter().map(|r| &r["path"]).collect();
    earlier.sort_by_key(|v| v.to_string());
    removed.sort_by_key(|v| v.to_string());
    assert_eq!(earlier, removed);

    let v4 = commit(&dir, "metrics", 4);
    assert_eq!(operation(&v4), "DELETE");
    assert_eq!(txn(&v4), 5);
    let r = of(&v4, "remove");
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0]["path"],
        of(&commit(&dir, "metrics", 0), "add")[0]["path"]
    );
    assert_eq!(r[0]["dataChange"], true);
    assert!(of(&v4, "add").is_empty());
}

#[tokio::test]
async fn racing_mirrors_write_each_entry_once() {
    let dir = LakeDir::new(None);
    let (lake_a, lake_b) = (open(&dir), open(&dir));
    for i in 0..5 {
        let e = metric(T0 + i * 60_000, "s", "n", 1.0);
        commit_events(&lake_a, "t", i, &[e]).await.unwrap();
    }
    let (a, b) = (metrics_mirror(), metrics_mirror());
    let (ra, rb) = tokio::join!(a.catch_up(&lake_a), b.catch_up(&lake_b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let written = ra.written.get("metrics").map_or(0, Vec::len)
        + rb.written.get("metrics").map_or(0, Vec::len);
    assert_eq!(written, 5, "{ra:?} {rb:?}");
    assert_eq!(versions(&dir, "metrics"), [0, 1, 2, 3, 4]);
    let txns: Vec<u64> = (0..5).map(|v| txn(&commit(&dir, "metrics", v))).collect();
    assert_eq!(txns, [1, 2, 3, 4, 5]);

    // One more commit, mirrored by a; b's cached head is behind, finds the version taken, and
    // reads it instead of writing it again.
    commit_events(&lake_a, "t", 5, &[metric(T0, "s", "n", 2.0)])
        .await
        .unwrap();
    assert_eq!(a.catch_up(&lake_a).await.unwrap().written["metrics"], [5]);
    let rb = b.catch_up(&lake_b).await.unwrap();
    assert!(rb.written.is_empty(), "{rb:?}");
    assert_eq!(rb.raced, 1);
    assert_eq!(versions(&dir, "metrics"), [0, 1, 2, 3, 4, 5]);
    let heads = b.heads.lock().await;
    assert_eq!(heads["metrics"].files.len(), 6);
    assert_eq!(heads["metrics"].mirrored(), Some(6));
}

#[tokio::test]
async fn a_restart_completes_the_prefix_a_crash_left() {
    let dir = LakeDir::new(None);
    let lake = open(&dir);
    for i in 0..2 {
        commit_events(&lake, "t", i, &[metric(T0, "s", "n", 1.0)])
            .await
            .unwrap();
    }
    metrics_mirror().catch_up(&lake).await.unwrap();
    // Three more commits while no mirror runs (the process crashed after committing them).
    for i in 2..5 {
        commit_events(&lake, "t", i, &[metric(T0, "s", "n", 1.0)])
            .await
            .unwrap();
    }
    let restarted = metrics_mirror();
    let report = restarted.catch_up(&lake).await.unwrap();
    assert_eq!(report.written["metrics"], [2, 3, 4]);
    let txns: Vec<u64> = versions(&dir, "metrics")
        .into_iter()
        .map(|v| txn(&commit(&dir, "metrics", v)))
        .collect();
    assert_eq!(txns, [1, 2, 3, 4, 5]);
    // A mirror started afresh on a caught-up log writes nothing.
    assert!(metrics_mirror()
        .catch_up(&lake)
        .await
        .unwrap()
        .written
        .is_empty());
}

#[tokio::test]
async fn a_mirror_that_skipped_entries_plans_again_from_what_a_racer_wrote() {
    let dir = LakeDir::new(None);
    let lake = open(&dir);
    let x = fake("metrics", "date=2025-11-22/hour=10/part-x.parquet");
    let y = fake("metrics", "date=2025-11-22/hour=10/part-y.parquet");
    // b mirrors X's addition, but its version lands only later (it was slow).
    let b = metrics_mirror();
    let k = add(&lake, vec![x.clone()]).await;
    b.catch_up(&lake).await.unwrap();
    let v0 = log_dir(&dir, "metrics").join(format!("{:020}.json", 0));
    let landed = std::fs::read(&v0).unwrap();
    std::fs::remove_file(&v0).unwrap();
    // X is removed; a starts now, sees the log agree with the lake (both empty), and skips the
    // entries so far.
    remove(&lake, vec![x.path.clone()]).await;
    let a = metrics_mirror();
    assert!(a.catch_up(&lake).await.unwrap().written.is_empty());
    let ky = add(&lake, vec![y.clone()]).await;
    std::fs::write(&v0, landed).unwrap();
    // a's version 0 is taken by b's (X added): a reads it and mirrors X's removal after it.
    let report = a.catch_up(&lake).await.unwrap();
    assert_eq!(report.raced, 1);
    assert_eq!(report.written["metrics"], [1, 2]);
    let txns: Vec<u64> = (0..3).map(|v| txn(&commit(&dir, "metrics", v))).collect();
    assert_eq!(txns, [k, k + 1, ky]);
    let heads = a.heads.lock().await;
    let live: Vec<&String> = heads["metrics"].files.keys().collect();
    assert_eq!(live, ["date=2025-11-22/hour=10/part-y.parquet"]);
}

#[tokio::test]
async fn trimmed_entries_are_reconciled_in_one_commit() {
    let dir = LakeDir::new(None);
    let lake = open(&dir);
    for i in 0..3 {
        commit_events(&lake, "t", i, &[metric(T0 + i * HOUR, "s", "n", 1.0)])
            .await
            .unwrap();
    }
    assert_eq!(lake.snapshot().await.unwrap().version, 3);
    // Entries 1 and 2 were trimmed before any mirror ran (delta was off, say).
    for v in [1, 2] {
        std::fs::remove_file(dir.path().join(format!("_opslake_log/{v:020}.json"))).unwrap();
    }
    let mirror = metrics_mirror();
    let report = mirror.catch_up(&lake).await.unwrap();
    assert_eq!(report.written["metrics"], [0]);
    assert_eq!(report.reconciled, ["metrics"]);
    let v0 = commit(&dir, "metrics", 0);
    assert_eq!(operation(&v0), "CONVERT");
    let info = of(&v0, "commitInfo")[0];
    assert_eq!(info["operationParameters"]["numFiles"], "3");
    assert_eq!(info["opslake"]["reconciled"], true);
    assert_eq!(of(&v0, "add").len(), 3);
    assert_eq!(of(&v0, "protocol").len(), 1);
    assert_eq!(of(&v0, "metaData").len(), 1);
    assert_eq!(txn(&v0), 3);
    assert!(of(&v0, "add").iter().all(|a| stats(a)["numRecords"] == 1));

    // Entries from then on are mirrored one by one.
    let k = add(
        &lake,
        vec![fake("metrics", "date=2025-11-22/hour=13/part-a.parquet")],
    )
    .await;
    let gone = add(
        &lake,
        vec![fake("metrics", "date=2025-11-22/hour=13/part-b.parquet")],
    )
    .await;
    let last = remove(
        &lake,
        vec!["metrics/date=2025-11-22/hour=13/part-a.parquet".into()],
    )
    .await;
    assert_eq!(
        mirror.catch_up(&lake).await.unwrap().written["metrics"],
        [1, 2, 3]
    );
    assert_eq!(txn(&commit(&dir, "metrics", 1)), k);
    assert_eq!(operation(&commit(&dir, "metrics", 3)), "DELETE");
    assert_eq!(txn(&commit(&dir, "metrics", 3)), last);

    // An entry trimmed after the mirror's last version: the rest comes as one commit.
    let c = add(
        &lake,
        vec![fake("metrics", "date=2025-11-22/hour=14/part-c.parquet")],
    )
    .await;
    let d = remove(
        &lake,
        vec!["metrics/date=2025-11-22/hour=13/part-b.parquet".into()],
    )
    .await;
    std::fs::remove_file(dir.path().join(format!("_opslake_log/{c:020}.json"))).unwrap();
    let fresh = metrics_mirror();
    let report = fresh.catch_up(&lake).await.unwrap();
    assert_eq!(report.written["metrics"], [4]);
    assert_eq!(report.reconciled, ["metrics"]);
    let v4 = commit(&dir, "metrics", 4);
    assert_eq!(operation(&v4), "WRITE");
    assert_eq!(
        of(&v4, "commitInfo")[0]["operationParameters"]["mode"],
        "Overwrite"
    );
    assert_eq!(txn(&v4), d);
    assert_eq!(
        of(&v4, "add")[0]["path"],
        "date=2025-11-22/hour=14/part-c.parquet"
    );
    assert_eq!(
        of(&v4, "remove")[0]["path"],
        "date=2025-11-22/hour=13/part-b.parquet"
    );
    assert!(gone < d);
}
