//! Produced events -> raw tables -> rollups through the real processor, checked against exact
//! percentiles computed here from the events themselves.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::support::{wait_for, Broker, Setup, TestProducer};

const T0: i64 = 1_763_805_600_000; // 2025-11-22T10:00:00Z

fn exact(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let r = q * (values.len() - 1) as f64;
    let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
    values[lo] + (r - lo as f64) * (values[hi] - values[lo])
}

fn within_1pct(got: &Value, want: f64, what: &str) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {got} is not a number"));
    assert!(
        (got - want).abs() <= 0.01 * want.abs(),
        "{what}: {got} is not within 1% of the exact {want}"
    );
}

#[test]
fn produced_events_become_rollups_with_exact_within_1pct_percentiles() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "rollups");
    let opslake = setup.spawn("run", &[("OPSLAKE_PROCESSOR__INTERVAL", "1s")]);
    let api = opslake.api();
    let producer = TestProducer::new(&setup.brokers);

    // 6000 latencies over 3 minutes, 2 services x 2 endpoints, lognormal by Box-Muller.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut by_window: HashMap<(i64, String, String), Vec<f64>> = HashMap::new();
    let mut by_service: HashMap<String, Vec<f64>> = HashMap::new();
    let mut events = Vec::new();
    for _ in 0..6000 {
        let ts = T0 + rng.random_range(0..180_000);
        let service = ["checkout", "search"][rng.random_range(0..2)];
        let endpoint = ["/pay", "/cart"][rng.random_range(0..2)];
        let (u1, u2): (f64, f64) = (rng.random_range(1e-6..1.0), rng.random());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let value = (3.5 + 0.9 * z).exp();
        by_window
            .entry((ts - ts % 60_000, service.into(), endpoint.into()))
            .or_default()
            .push(value);
        by_service.entry(service.into()).or_default().push(value);
        events.push(
            json!({"timestamp": ts, "service": service, "name": "http.server.duration",
            "value": value, "version": "1.0.0", "labels": {"endpoint": endpoint}}),
        );
    }
    for chunk in events.chunks(200) {
        producer.send(
            &setup.topic("metrics"),
            None,
            Value::from(chunk.to_vec()).to_string().as_bytes(),
        );
    }
    // Logs: 1 in 10 is an error, durations 1..=300 ms.
    let logs: Vec<Value> = (0..300)
        .map(|i| {
            let level = if i % 10 == 0 { "error" } else { "info" };
            json!({"timestamp": T0 + i * 100, "service": "checkout", "level": level,
                "message": "done", "duration_ms": (i + 1) as f64})
        })
        .collect();
    producer.send(
        &setup.topic("logs"),
        None,
        Value::from(logs).to_string().as_bytes(),
    );
    producer.flush();

    let rolled = "SELECT coalesce(sum(count), 0) FROM metric_rollups_1m";
    wait_for(
        "6000 events in the rollups",
        Duration::from_secs(90),
        || (api.count(rolled) == 6000).then_some(()),
    );

    // Every window's percentiles against the exact values.
    let rows = api.rows(
        "SELECT CAST(window_start AS BIGINT), service, labels['endpoint'], count, min, max, p50, p90, p95, p99, \
         CAST(window_end AS BIGINT) - CAST(window_start AS BIGINT) \
         FROM metric_rollups_1m ORDER BY 1, 2, 3",
    );
    assert_eq!(rows.len(), by_window.len(), "one row per window and series");
    for r in &rows {
        let key = (
            r[0].as_i64().unwrap(),
            r[1].as_str().unwrap().to_string(),
            r[2].as_str().unwrap().to_string(),
        );
        let values = by_window
            .get_mut(&key)
            .unwrap_or_else(|| panic!("unexpected window {key:?}"));
        assert_eq!(r[3].as_i64().unwrap(), values.len() as i64, "{key:?} count");
        assert_eq!(r[10].as_i64().unwrap(), 60_000, "1-minute windows");
        within_1pct(&r[4], exact(values, 0.0), "min");
        within_1pct(&r[5], exact(values, 1.0), "max");
        for (i, q) in [0.5, 0.9, 0.95, 0.99].into_iter().enumerate() {
            within_1pct(
                &r[6 + i],
                exact(values, q),
                &format!("{key:?} p{}", q * 100.0),
            );
        }
    }

    // quantile_merge over all windows of a service equals the exact percentile of its events.
    let merged = api.rows(
        "SELECT service, quantile_merge(sketch, 0.99), quantile_merge(sketch, 0.5) \
         FROM metric_rollups_1m WHERE window_start >= TIMESTAMP '2025-11-22T00:00:00Z' \
         GROUP BY service ORDER BY service",
    );
    assert_eq!(merged.len(), 2);
    for r in &merged {
        let values = by_service.get_mut(r[0].as_str().unwrap()).unwrap();
        within_1pct(&r[1], exact(values, 0.99), "quantile_merge p99");
        within_1pct(&r[2], exact(values, 0.5), "quantile_merge p50");
    }
    // Hours are merged minutes.
    let hourly = api.rows("SELECT count(*), sum(count) FROM metric_rollups_1h");
    assert_eq!(hourly[0], vec![json!(4), json!(6000)]);
    let from_hours = api.rows(
        "SELECT quantile_merge(sketch, 0.99) FROM metric_rollups_1h WHERE service = 'checkout'",
    );
    within_1pct(
        &from_hours[0][0],
        exact(by_service.get_mut("checkout").unwrap(), 0.99),
        "1h p99",
    );

    // Log rollups.
    wait_for("300 logs in the rollups", Duration::from_secs(60), || {
        (api.count("SELECT coalesce(sum(count), 0) FROM log_rollups_1m") == 300).then_some(())
    });
    let l = api.rows(
        "SELECT sum(error_count), sum(info_count), max(error_rate), quantile_merge(duration_sketch, 0.95) FROM log_rollups_1m",
    );
    assert_eq!(l[0][0], json!(30));
    assert_eq!(l[0][1], json!(270));
    within_1pct(&l[0][2], 0.1, "error rate");
    let mut durations: Vec<f64> = (1..=300).map(f64::from).collect();
    within_1pct(&l[0][3], exact(&mut durations, 0.95), "log duration p95");

    // A late event lands in its window within a cycle, and changes only that window.
    let before = api.rows("SELECT CAST(window_start AS BIGINT), service, labels['endpoint'], count FROM metric_rollups_1m ORDER BY 1, 2, 3");
    producer.send(
        &setup.topic("metrics"),
        None,
        json!({"timestamp": T0 + 61_000, "service": "search", "name": "http.server.duration",
            "value": 12.0, "version": "1.0.0", "labels": {"endpoint": "/pay"}})
        .to_string()
        .as_bytes(),
    );
    producer.flush();
    wait_for(
        "the late event in the rollups",
        Duration::from_secs(60),
        || (api.count(rolled) == 6001).then_some(()),
    );
    let after = api.rows("SELECT CAST(window_start AS BIGINT), service, labels['endpoint'], count FROM metric_rollups_1m ORDER BY 1, 2, 3");
    let changed: Vec<_> = before.iter().zip(&after).filter(|(a, b)| a != b).collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].1[0], json!(T0 + 60_000));
    assert_eq!(changed[0].1[1], json!("search"));

    // The processor's own metrics.
    let m = api.get("/metrics").text().unwrap();
    for name in [
        "opslake_processor_cycles_total",
        "opslake_processor_windows_written_total",
        "opslake_processor_cycle_seconds",
        "opslake_processor_lag_seconds",
    ] {
        assert!(m.contains(name), "/metrics lacks {name}");
    }

    // quantile_merge works in `opslake sql` too.
    let out = Command::new(env!("CARGO_BIN_EXE_opslake"))
        .args([
            "sql",
            "--format",
            "csv",
            "SELECT round(quantile_merge(sketch, 0.5), 3) AS p50 FROM metric_rollups_1h",
        ])
        .env("OPSLAKE_LAKE", lake.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let p50: f64 = text.lines().nth(1).unwrap().parse().unwrap();
    let mut all: Vec<f64> = by_service
        .values()
        .flatten()
        .copied()
        .chain([12.0])
        .collect();
    within_1pct(
        &json!(p50),
        exact(&mut all, 0.5),
        "opslake sql quantile_merge",
    );
    drop(opslake);
}

/// Two days of 5-minute windows produced at once (a replay of history): a latency spike and a
/// deploy that makes the service 40% slower are found on event time, through SQL.
#[test]
fn replayed_history_yields_anomalies_and_regressions_through_sql() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "detect");
    let opslake = setup.spawn(
        "run",
        &[
            ("OPSLAKE_PROCESSOR__INTERVAL", "1s"),
            ("OPSLAKE_PROCESSOR__WINDOW", "5m"),
        ],
    );
    let api = opslake.api();
    let producer = TestProducer::new(&setup.brokers);
    let step = 300_000i64;
    let spike = T0 + 400 * step;
    let deploy = T0 + 500 * step;
    let labels = json!({"endpoint": "/charge"});
    let events =
        opslake_lake::test_util::payments_charge(T0, step, deploy, Some(spike), &labels, 11);
    producer.send_all(&setup.topic("metrics"), &events);
    api.wait_for_rollups_of(events.len());
    let anomalies = wait_for("the spike in anomalies", Duration::from_secs(60), || {
        let rows = api.rows(
            "SELECT CAST(window_start AS BIGINT), metric, observed, expected, severity, method, labels['endpoint'] \
             FROM anomalies WHERE service = 'payments' ORDER BY 1",
        );
        rows.iter().any(|r| r[0] == json!(spike)).then_some(rows)
    });
    let hit = anomalies.iter().find(|r| r[0] == json!(spike)).unwrap();
    assert!(
        hit[2].as_f64().unwrap() > 3.0 * hit[3].as_f64().unwrap(),
        "{hit:?}"
    );
    assert_eq!(hit[6], json!("/charge"));
    let regressions = api.rows(
        "SELECT CAST(change_at AS BIGINT), metric, round(change_pct), version_before, version_after \
         FROM regressions WHERE service = 'payments' AND metric = 'p50'",
    );
    assert_eq!(regressions.len(), 1, "{regressions:?}");
    let r = &regressions[0];
    assert!((r[0].as_i64().unwrap() - deploy).abs() <= 2 * step, "{r:?}");
    assert!((r[2].as_f64().unwrap() - 40.0).abs() <= 8.0, "{r:?}");
    assert_eq!(
        (r[3].clone(), r[4].clone()),
        (json!("1.9.0"), json!("2.0.0"))
    );
    drop(opslake);
}
