//! The lake as Delta Lake tables (CONTRACT section 11), read by engines other than opslake:
//! Python's `deltalake` (delta-rs) and Polars see every row that opslake's SQL sees, each
//! once, on local disk and on S3, and the Delta log says which opslake commit it reached.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{wait_for, Api, Broker, S3Server, Setup, TestProducer};

/// One table read by `tests/clients/delta_read.py`, or the reason it could not be.
fn delta_read(setup: &Setup, table: &str) -> Result<Value, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/delta_read.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(setup.lake.display().to_string())
        .arg(table)
        .envs(setup.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

fn events(n: i64, now: i64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"timestamp": now - 7_200_000 + i * 900, "service": format!("svc-{}", i % 3),
                "name": "http.server.duration", "value": (i % 97) as f64 + 0.5,
                "kind": "sample", "labels": {"endpoint": "/ä/ü", "n": (i % 5).to_string()}})
        })
        .collect()
}

/// Sends `n` metric events and waits until opslake's SQL and both Delta readers agree on them.
fn check(setup: &Setup, api: &Api, n: i64) {
    let p = TestProducer::new(&setup.brokers);
    let now = chrono::Utc::now().timestamp_millis();
    for chunk in events(n, now).chunks(200) {
        p.send(
            &setup.topic("metrics"),
            None,
            Value::Array(chunk.to_vec()).to_string().as_bytes(),
        );
    }
    p.flush();
    wait_for("every event in opslake", Duration::from_secs(60), || {
        (api.count("SELECT count(*) FROM metrics") == n).then_some(())
    });
    let read = wait_for(
        "the Delta readers to see every event",
        Duration::from_secs(60),
        || {
            delta_read(setup, "metrics")
                .ok()
                .filter(|r| r["rows"] == json!(n))
        },
    );
    assert_eq!(read["polars_rows"], json!(n), "{read}");
    assert_eq!(
        read["distinct_provenance"],
        json!(n),
        "each row once: {read}"
    );
    assert!(
        read["timestamp_type"]
            .as_str()
            .unwrap_or("")
            .starts_with("timestamp"),
        "{read}"
    );
    // The Delta log's application transaction is an opslake version the lake holds.
    let txn = read["txn"].as_i64().expect("txn of appId opslake");
    assert!(txn >= 1, "{read}");
    // A derived table too: the processor's rollups, as many rows as opslake's SQL has.
    let rollups = api.count("SELECT count(*) FROM metric_rollups_1m");
    if rollups > 0 {
        wait_for(
            "metric_rollups_1m in Delta",
            Duration::from_secs(60),
            || {
                let r = delta_read(setup, "metric_rollups_1m").ok()?;
                (r["rows"].as_i64()? == api.count("SELECT count(*) FROM metric_rollups_1m"))
                    .then_some(())
            },
        );
    }
}

#[test]
fn delta_readers_see_what_opslake_sees_on_disk_and_on_s3() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let local = Setup::new(&broker, lake.path(), "delta");
    let fast = [
        ("OPSLAKE_PROCESSOR__INTERVAL", "1s"),
        ("OPSLAKE_INGEST__FLUSH_INTERVAL", "1s"),
    ];
    let opslake = local.spawn("run", &fast);
    check(&local, &opslake.api(), 3_000);
    assert!(
        lake.path()
            .join("metrics/_delta_log/00000000000000000000.json")
            .exists(),
        "the Delta log sits beside the table's folders"
    );
    drop(opslake);

    let s3 = S3Server::start();
    s3.endpoint.create_bucket("delta");
    let remote = Setup::on_s3(&broker, &s3.endpoint, "delta", "delta-s3");
    let opslake = remote.spawn("run", &fast);
    check(&remote, &opslake.api(), 2_000);
}

#[test]
fn lake_delta_false_writes_no_delta_log() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "nodelta");
    let opslake = setup.spawn("run", &[("OPSLAKE_LAKE_DELTA", "false")]);
    let api = opslake.api();
    let p = TestProducer::new(&setup.brokers);
    let now = chrono::Utc::now().timestamp_millis();
    p.send_all(&setup.topic("metrics"), &events(100, now));
    p.flush();
    wait_for("the events", Duration::from_secs(60), || {
        (api.count("SELECT count(*) FROM metrics") == 100).then_some(())
    });
    assert!(!lake.path().join("metrics/_delta_log").exists());
}
