//! The lake as Delta Lake tables (CONTRACT section 11), read by engines other than opslake:
//! Python's `deltalake` (delta-rs) and Polars see every row that opslake's SQL sees, each
//! once, on local disk and on S3, and the Delta log says which opslake commit it reached.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{wait_for, Api, Broker, S3Server, Setup, TestProducer};

/// One table read by `tests/clients/delta_read.py` (at a Delta version, or the latest), or
/// the reason it could not be.
fn delta_read_at(setup: &Setup, table: &str, version: Option<u64>) -> Result<Value, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/delta_read.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(setup.lake.display().to_string())
        .arg(table)
        .args(version.map(|v| v.to_string()))
        .envs(setup.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

fn delta_read(setup: &Setup, table: &str) -> Result<Value, String> {
    delta_read_at(setup, table, None)
}

/// opslake's SQL per service, as `delta_read.py`'s `by_service`: {service: [rows, sum]}.
fn by_service(api: &Api) -> Value {
    let rows = api.rows("SELECT service, count(*), sum(value) FROM metrics GROUP BY service");
    Value::Object(
        rows.into_iter()
            .map(|r| (r[0].as_str().unwrap().to_string(), json!([r[1], r[2]])))
            .collect(),
    )
}

/// Whether two `by_service` maps agree: counts exactly, sums to 1e-9 relative.
fn same_services(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return false;
    };
    a.len() == b.len()
        && a.iter().all(|(k, x)| {
            b.get(k).is_some_and(|y| {
                x[0].as_i64() == y[0].as_i64()
                    && (x[1].as_f64().unwrap_or(f64::NAN) - y[1].as_f64().unwrap_or(f64::NAN)).abs()
                        <= 1e-9 * x[1].as_f64().unwrap_or(0.0).abs().max(1.0)
            })
        })
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

/// A kill -9 while ingest writes, compaction of the quiet hours, retention of an old day: after
/// each, both Delta readers see exactly opslake's rows (per service, each row once), the log's
/// history names the operations, and an old version still reads as it was.
#[test]
fn delta_holds_through_a_kill_compaction_retention_and_time_travel() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "deltafaults");
    let fast = [
        ("OPSLAKE_PROCESSOR__INTERVAL", "1s"),
        ("OPSLAKE_INGEST__FLUSH_INTERVAL", "500ms"),
        ("OPSLAKE_INGEST__COMPACT_QUIET", "3s"),
    ];
    let mut opslake = setup.spawn("run", &fast);
    let now = chrono::Utc::now().timestamp_millis();
    // 4,000 events over the last few hours, and 300 of three days ago (for retention).
    let mut all = events(4_000, now);
    all.extend((0..300).map(|i| {
        json!({"timestamp": now - 3 * 86_400_000 + i, "service": "old", "name": "m",
            "value": 1.0, "kind": "gauge"})
    }));
    // Four rounds over the same hours, each committed before the next is sent (so each hour
    // has several files for compaction to merge); the fourth is sent and opslake killed at
    // once, while ingest has it in hand.
    let p = TestProducer::new(&setup.brokers);
    let api = opslake.api();
    let rounds = 4;
    for r in 0..rounds {
        let round: Vec<Value> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % rounds == r)
            .map(|(_, e)| e.clone())
            .collect();
        for chunk in round.chunks(50) {
            p.send(
                &setup.topic("metrics"),
                None,
                Value::Array(chunk.to_vec()).to_string().as_bytes(),
            );
        }
        p.flush();
        if r + 1 == rounds {
            break;
        }
        let sent = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % rounds <= r)
            .count() as i64;
        wait_for("a round of events", Duration::from_secs(60), || {
            (api.count("SELECT count(*) FROM metrics") == sent).then_some(())
        });
    }
    opslake.kill();
    let opslake = setup.spawn("run", &fast);
    let api = opslake.api();
    let total = all.len() as i64;
    wait_for("every event once", Duration::from_secs(90), || {
        (api.count("SELECT count(*) FROM metrics") == total).then_some(())
    });
    let expected = by_service(&api);
    let read = wait_for(
        "the Delta readers after the kill",
        Duration::from_secs(60),
        || {
            delta_read(&setup, "metrics")
                .ok()
                .filter(|r| same_services(&r["by_service"], &expected))
        },
    );
    assert_eq!(read["rows"], json!(total), "{read}");
    assert_eq!(read["polars_rows"], json!(total), "{read}");
    assert_eq!(
        read["distinct_provenance"],
        json!(total),
        "each row once: {read}"
    );

    // Compaction of the quiet hours: OPTIMIZE versions, the same rows.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let read = loop {
        let read = delta_read(&setup, "metrics");
        let optimized = read.as_ref().is_ok_and(|r| {
            r["operations"]
                .as_array()
                .is_some_and(|o| o.contains(&json!("OPTIMIZE")))
        });
        if optimized {
            break read.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction in the Delta log after 90 s: {read:?}\n{}",
            opslake.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(read["distinct_provenance"], json!(total), "{read}");
    assert!(same_services(&read["by_service"], &expected), "{read}");

    // Time travel: version 0 is the first commit mirrored, a prefix of the rows.
    let v0 = delta_read_at(&setup, "metrics", Some(0)).unwrap();
    let rows0 = v0["rows"].as_i64().unwrap();
    assert!(rows0 > 0 && rows0 < total, "{v0}");
    assert_eq!(v0["distinct_provenance"], json!(rows0), "{v0}");

    // Retention of the days before yesterday: a DELETE, and the old rows gone for both.
    let out = Command::new(env!("CARGO_BIN_EXE_opslake"))
        .args([
            "retention",
            "--older-than",
            "2d",
            "--tables",
            "metrics",
            "--grace",
            "0s",
        ])
        .env("OPSLAKE_LAKE", lake.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kept = total - 300;
    wait_for(
        "opslake without the old day",
        Duration::from_secs(30),
        || (api.count("SELECT count(*) FROM metrics") == kept).then_some(()),
    );
    let expected = by_service(&api);
    let read = wait_for(
        "the Delta readers after retention",
        Duration::from_secs(60),
        || {
            delta_read(&setup, "metrics")
                .ok()
                .filter(|r| r["rows"] == json!(kept))
        },
    );
    assert!(same_services(&read["by_service"], &expected), "{read}");
    assert!(
        read["operations"]
            .as_array()
            .is_some_and(|o| o.contains(&json!("DELETE"))),
        "{read}"
    );
}
