//! Events produced with known content arrive in the raw tables exactly as sent.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{wait_for, Broker, Setup, TestProducer};

#[test]
fn events_arrive_in_raw_tables_exactly_as_sent() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "raw");
    let opslake = setup.spawn("run", &[]);
    let api = opslake.api();
    let p = TestProducer::new(&setup.brokers);

    // A metric with an RFC 3339 timestamp and offset, and an array with epoch milliseconds.
    p.send(
        &setup.topic("metrics"),
        Some("k1"),
        br#"{"timestamp": "2026-11-22T11:00:00.123+01:00", "service": "checkout", "name": "http.server.duration",
            "value": 12.5, "unit": "ms", "kind": "sample", "host": "web-1", "version": "1.4.2",
            "labels": {"endpoint": "/api/pay", "method": "POST", "status": "200"}}"#,
    );
    p.send(
        &setup.topic("metrics"),
        None,
        br#"[{"timestamp": 1763805600123, "service": "search", "name": "cpu.utilization", "value": 0.5, "kind": "gauge"},
             {"timestamp": 1763805600124, "service": "search", "name": "queue.depth", "value": -3, "kind": "COUNTER", "labels": {}}]"#,
    );
    p.send(
        &setup.topic("logs"),
        None,
        br#"{"timestamp": 1763805600123, "service": "checkout", "level": "WARNING", "message": "payment failed",
            "host": "web-1", "version": "1.4.2", "trace_id": "4bf92f3577b34da6", "duration_ms": 830.2,
            "status_code": 502, "attributes": {"region": "eu-west-1", "retries": 3}}"#,
    );
    // A billing event under FOCUS column names, with decimal strings and tags as a JSON string.
    p.send(
        &setup.topic("billing"),
        None,
        br#"{"ChargePeriodStart": "2024-09-18 22:00:00", "ChargePeriodEnd": "2024-09-18 23:00:00", "ProviderName": "AWS",
            "ServiceName": "Amazon Simple Queue Service", "ServiceCategory": "Integration", "ResourceId": "arn:sqs:1",
            "ResourceType": "queue", "RegionId": "us-west-2", "ConsumedQuantity": "2.000000000000000", "ConsumedUnit": "Requests",
            "BilledCost": "0.00000080000", "EffectiveCost": "-0.5", "BillingCurrency": "USD", "ChargeCategory": "Credit",
            "x_Utilization": "0.25", "Tags": "{\"team\": \"pay\", \"env\": \"prod\"}", "BillingAccountId": "1234567890123"}"#,
    );
    p.flush();

    wait_for(
        "4 rows in metrics and logs and 1 in billing",
        Duration::from_secs(60),
        || {
            let m = api.count("SELECT count(*) FROM metrics");
            let l = api.count("SELECT count(*) FROM logs");
            let b = api.count("SELECT count(*) FROM billing");
            (m == 3 && l == 1 && b == 1).then_some(())
        },
    );

    let rows = api.rows(
        "SELECT CAST(timestamp AS VARCHAR) AS ts, service, name, value, unit, kind, host, version, labels['endpoint'], labels['method'], labels['status'], \
         _topic, _partition >= 0, _offset >= 0, _index FROM metrics ORDER BY timestamp DESC, name",
    );
    assert_eq!(rows[0][0], json!("2026-11-22T10:00:00.123Z"));
    assert_eq!(
        &rows[0][1..11],
        &[
            json!("checkout"),
            json!("http.server.duration"),
            json!(12.5),
            json!("ms"),
            json!("sample"),
            json!("web-1"),
            json!("1.4.2"),
            json!("/api/pay"),
            json!("POST"),
            json!("200")
        ]
    );
    assert_eq!(rows[0][11], json!(setup.topic("metrics")));
    assert_eq!(rows[0][14], json!(0));
    assert_eq!(rows[1][0], json!("2025-11-22T10:00:00.124Z"));
    assert_eq!(
        &rows[1][2..6],
        &[
            json!("queue.depth"),
            json!(-3.0),
            Value::Null,
            json!("counter")
        ]
    );
    assert_eq!(rows[1][14], json!(1));
    assert_eq!(
        &rows[2][2..6],
        &[
            json!("cpu.utilization"),
            json!(0.5),
            Value::Null,
            json!("gauge")
        ]
    );
    assert_eq!(rows[2][14], json!(0));

    // Labels, attributes and tags filter in SQL.
    assert_eq!(
        api.count("SELECT count(*) FROM metrics WHERE labels['endpoint'] = '/api/pay'"),
        1
    );

    let logs = api.rows(
        "SELECT CAST(timestamp AS VARCHAR) AS ts, service, level, message, host, version, trace_id, duration_ms, status_code, \
         attributes['region'], attributes['retries'] FROM logs",
    );
    assert_eq!(
        logs[0],
        vec![
            json!("2025-11-22T10:00:00.123Z"),
            json!("checkout"),
            json!("warn"),
            json!("payment failed"),
            json!("web-1"),
            json!("1.4.2"),
            json!("4bf92f3577b34da6"),
            json!(830.2),
            json!(502),
            json!("eu-west-1"),
            json!("3")
        ]
    );

    let bill = api.rows(
        "SELECT CAST(charge_period_start AS VARCHAR), CAST(charge_period_end AS VARCHAR), provider, service, service_category, resource_id, \
         resource_type, region, usage_quantity, usage_unit, cost, effective_cost, currency, charge_category, utilization, \
         tags['team'], extra['BillingAccountId'] FROM billing",
    );
    assert_eq!(
        bill[0],
        vec![
            json!("2024-09-18T22:00:00Z"),
            json!("2024-09-18T23:00:00Z"),
            json!("AWS"),
            json!("Amazon Simple Queue Service"),
            json!("Integration"),
            json!("arn:sqs:1"),
            json!("queue"),
            json!("us-west-2"),
            json!(2.0),
            json!("Requests"),
            json!(0.0000008),
            json!(-0.5),
            json!("USD"),
            json!("Credit"),
            json!(0.25),
            json!("pay"),
            json!("1234567890123")
        ]
    );

    // Time columns are SQL timestamps, partitions are by event time.
    let types = api.sql("SELECT timestamp, date, hour FROM metrics LIMIT 1");
    assert_eq!(types["columns"][0]["type"], json!("Timestamp(ms, \"UTC\")"));
    assert_eq!(
        api.count("SELECT count(*) FROM metrics WHERE date = '2026-11-22' AND hour = '10'"),
        1
    );
    let files: Vec<_> = walk(lake.path())
        .into_iter()
        .filter(|p| p.ends_with(".parquet"))
        .collect();
    assert!(
        files
            .iter()
            .any(|f| f.contains("metrics/date=2026-11-22/hour=10/")),
        "{files:?}"
    );
    assert!(
        files
            .iter()
            .any(|f| f.contains("billing/date=2024-09-18/hour=22/")),
        "{files:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn focus_bill_replayed_with_produce_arrives_whole() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "focus");
    let opslake = setup.spawn("run", &[]);
    let api = opslake.api();
    let focus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/focus/focus_sample.csv");
    let printed = setup.produce(&["--file", focus.to_str().unwrap()]);
    assert!(printed.contains("produced 1000 messages"));
    wait_for("1000 billing rows", Duration::from_secs(60), || {
        (api.count("SELECT count(*) FROM billing") == 1000).then_some(())
    });
    assert_eq!(api.count("SELECT count(*) FROM dead_letters"), 0);
    // The bill's totals to its 4 decimals (a float sum's last digits depend on its order).
    let totals = api.rows("SELECT sum(cost), sum(effective_cost) FROM billing");
    for (got, want) in totals[0].iter().zip([20.5202, 14.9765]) {
        let got = got.as_f64().unwrap();
        assert!((got - want).abs() < 5e-5, "{got} vs {want}");
    }
    // Credits stay negative; tags are queryable; other FOCUS columns are kept.
    assert!(api.count("SELECT count(*) FROM billing WHERE cost < 0") > 0);
    assert!(api.count("SELECT count(*) FROM billing WHERE tags['environment'] = 'prod'") > 0);
    assert_eq!(
        api.count("SELECT count(*) FROM billing WHERE extra['BillingAccountId'] IS NOT NULL"),
        1000
    );
}

/// `opslake retention` removes the days before its cut-off, from the chosen tables only, and
/// the API stops seeing them at once.
#[test]
fn retention_trims_old_days_and_keeps_the_rest() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "retention");
    let opslake = setup.spawn("run", &[]);
    let api = opslake.api();
    let p = TestProducer::new(&setup.brokers);
    let now = chrono::Utc::now().timestamp_millis();
    let day = 86_400_000;
    for (i, age_days) in [40, 31, 10, 0].iter().enumerate() {
        let t = now - age_days * day;
        p.send(
            &setup.topic("metrics"),
            None,
            json!({"timestamp": t, "service": "s", "name": "m", "value": i, "kind": "gauge"})
                .to_string()
                .as_bytes(),
        );
        p.send(
            &setup.topic("logs"),
            None,
            json!({"timestamp": t, "service": "s", "level": "INFO", "message": "m"})
                .to_string()
                .as_bytes(),
        );
    }
    p.flush();
    wait_for("8 raw rows", Duration::from_secs(60), || {
        (api.count("SELECT count(*) FROM metrics") == 4
            && api.count("SELECT count(*) FROM logs") == 4)
            .then_some(())
    });
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_opslake"))
            .arg("retention")
            .args(args)
            .env("OPSLAKE_LAKE", lake.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let dry = run(&["--older-than", "30d", "--tables", "metrics", "--dry-run"]);
    assert!(
        dry.contains("would remove") && dry.contains("metrics: 2 files, 2 rows"),
        "{dry}"
    );
    assert_eq!(
        api.count("SELECT count(*) FROM metrics"),
        4,
        "a dry run removes nothing"
    );

    let done = run(&[
        "--older-than",
        "30d",
        "--tables",
        "metrics",
        "--grace",
        "0s",
    ]);
    assert!(
        done.contains("metrics: 2 files, 2 rows") && done.contains("deleted 2 files"),
        "{done}"
    );
    let left: Vec<i64> = api
        .rows("SELECT CAST(value AS BIGINT) AS v FROM metrics ORDER BY v")
        .iter()
        .map(|r| r[0].as_i64().unwrap())
        .collect();
    assert_eq!(left, [2, 3], "the days within 30 days stay");
    assert_eq!(
        api.count("SELECT count(*) FROM logs"),
        4,
        "other tables are untouched"
    );
    let again = run(&["--older-than", "30d", "--tables", "metrics"]);
    assert!(again.contains("nothing before"), "{again}");

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_opslake"))
        .args(["retention", "--older-than", "30d", "--tables", "metricz"])
        .env("OPSLAKE_LAKE", lake.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no table `metricz`"));
}
