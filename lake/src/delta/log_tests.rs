//! The mirror's log beyond single commits: checkpoints, schema changes, unpartitioned tables
//! and files whose statistics cannot be read.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::datatypes::Schema;
use object_store::ObjectStoreExt;
use serde_json::Value;

use super::tests::{
    add, commit, fake, log_dir, metrics_mirror, of, open, remove, txn, LakeDir, GRACE, T0,
};
use super::*;
use crate::test_util::{commit_events, metric};
use crate::LogEntry;

#[tokio::test]
async fn a_checkpoint_every_hundred_versions() {
    let dir = LakeDir::new(Some("checkpoint"));
    let lake = open(&dir);
    let path = |i: u64| format!("date=2025-11-22/hour=10/part-{i}.parquet");
    for i in 0..=100u64 {
        let remove = if i > 0 {
            vec![format!("metrics/{}", path(i - 1))]
        } else {
            Vec::new()
        };
        lake.commit(
            LogEntry {
                writer: "test".into(),
                add: vec![fake("metrics", &path(i))],
                remove,
                ..Default::default()
            },
            |_| Ok(()),
        )
        .await
        .unwrap();
    }
    let mirror = metrics_mirror();
    let report = mirror.catch_up(&lake).await.unwrap();
    assert_eq!(report.written["metrics"].len(), 101);
    let log = log_dir(&dir, "metrics");
    assert!(log.join(format!("{:020}.checkpoint.parquet", 100)).exists());
    assert!(!log.join(format!("{:020}.checkpoint.parquet", 0)).exists());
    let last: Value =
        serde_json::from_slice(&std::fs::read(log.join("_last_checkpoint")).unwrap()).unwrap();
    assert_eq!(last["version"], 100);
    assert_eq!(last["numOfAddFiles"], 1);
    // protocol, metaData, txn, the live file, and the 100 fresh tombstones.
    assert_eq!(last["size"], 104);
    let actions = checkpoint::read(&lake, "metrics", 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(actions.iter().filter(|a| a.add.is_some()).count(), 1);
    assert_eq!(actions.iter().filter(|a| a.remove.is_some()).count(), 100);
    assert!(actions.iter().all(|a| a.commit_info.is_none()));

    // Without the commits before it, the log opens from the checkpoint.
    for v in 0..100 {
        std::fs::remove_file(log.join(format!("{v:020}.json"))).unwrap();
    }
    let k = add(&lake, vec![fake("metrics", &path(101))]).await;
    let fresh = metrics_mirror();
    assert_eq!(
        fresh.catch_up(&lake).await.unwrap().written["metrics"],
        [101]
    );
    assert_eq!(txn(&commit(&dir, "metrics", 101)), k);
    let heads = fresh.heads.lock().await;
    assert_eq!(heads["metrics"].files.len(), 2);
    assert_eq!(heads["metrics"].version, Some(101));
}

#[tokio::test]
async fn new_columns_come_as_a_metadata_union() {
    let dir = LakeDir::new(Some("union"));
    let lake = open(&dir);
    let full = opslake_schemas::tables::metrics();
    let older: Vec<_> = full
        .fields()
        .iter()
        .filter(|f| f.name() != "series")
        .cloned()
        .collect();
    let older = Arc::new(Schema::new(older));
    let old_mirror = DeltaMirror::for_tables(GRACE, vec![("metrics".into(), older, true)]);
    commit_events(&lake, "t", 0, &[metric(T0, "s", "n", 1.0)])
        .await
        .unwrap();
    old_mirror.catch_up(&lake).await.unwrap();
    let v0 = commit(&dir, "metrics", 0);
    let m0 = of(&v0, "metaData")[0].clone();
    assert!(!m0["schemaString"].as_str().unwrap().contains("\"series\""));

    // The upgraded binary's next commit carries the union.
    commit_events(&lake, "t", 1, &[metric(T0, "s", "n", 1.0)])
        .await
        .unwrap();
    commit_events(&lake, "t", 2, &[metric(T0, "s", "n", 1.0)])
        .await
        .unwrap();
    assert_eq!(
        metrics_mirror().catch_up(&lake).await.unwrap().written["metrics"],
        [1, 2]
    );
    let v1 = commit(&dir, "metrics", 1);
    let m1 = of(&v1, "metaData");
    assert_eq!(m1.len(), 1);
    assert_eq!(m1[0]["id"], m0["id"], "the table's id stays");
    let schema: Value = serde_json::from_str(m1[0]["schemaString"].as_str().unwrap()).unwrap();
    let fields = schema["fields"].as_array().unwrap();
    let names: Vec<&str> = fields.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(&names[names.len() - 3..], ["series", "date", "hour"]);
    assert_eq!(fields[names.len() - 3]["nullable"], true);
    assert_eq!(fields.len(), full.fields().len() + 2);
    assert_eq!(
        of(&v1, "add").len(),
        1,
        "in the same version as its first file"
    );
    assert!(of(&commit(&dir, "metrics", 2), "metaData").is_empty());
}

#[tokio::test]
async fn unpartitioned_tables_and_files_without_statistics() {
    let dir = LakeDir::new(Some("unpartitioned"));
    let lake = open(&dir);
    let mirror = DeltaMirror::for_tables(
        GRACE,
        vec![(
            "anomalies".into(),
            opslake_schemas::tables::anomalies(),
            false,
        )],
    );
    let odd = fake("anomalies", "part-a b:c.parquet");
    lake.store()
        .put(
            &lake.path(&odd.path),
            Bytes::from_static(b"not parquet").into(),
        )
        .await
        .unwrap();
    add(&lake, vec![odd.clone()]).await;
    mirror.catch_up(&lake).await.unwrap();
    let v0 = commit(&dir, "anomalies", 0);
    assert_eq!(
        of(&v0, "metaData")[0]["partitionColumns"],
        serde_json::json!([])
    );
    let a = of(&v0, "add")[0];
    assert_eq!(a["path"], "part-a%20b%3Ac.parquet");
    assert_eq!(a["partitionValues"], serde_json::json!({}));
    assert!(
        a.get("stats").is_none(),
        "an unreadable footer leaves the stats out"
    );
    remove(&lake, vec![odd.path.clone()]).await;
    mirror.catch_up(&lake).await.unwrap();
    let v1 = commit(&dir, "anomalies", 1);
    assert_eq!(of(&v1, "remove")[0]["path"], "part-a%20b%3Ac.parquet");
    assert_eq!(
        of(&v1, "remove")[0]["partitionValues"],
        serde_json::json!({})
    );
    // Tables nothing was written to have no log.
    let all = DeltaMirror::new(GRACE);
    assert!(all.catch_up(&lake).await.unwrap().written.is_empty());
    assert!(!dir.path().join("metrics").exists());
}
