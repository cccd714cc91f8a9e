//! OpenTelemetry in (CONTRACT section 9): requests made by the real OpenTelemetry Python SDK,
//! as the Collector's Kafka exporter writes them (`otlp_proto` and `otlp_json` on one topic),
//! land in `metrics`, `metric_histograms` and `logs`: counters and gauges exact, histogram
//! counts equal to what was recorded after cumulative-to-delta (with ingest killed in the
//! middle, a redelivered request, and a restarted process whose counts begin again), p99 of
//! an exponential histogram within its bucket accuracy plus the sketch's, in the raw table and
//! in the rollups; logs with levels, ids and status codes; malformed requests and points in
//! `dead_letters` with their reasons; `opslake produce --otlp` in both encodings.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{wait_for, Broker, Setup, TestProducer};

/// Runs `tests/clients/otel_payloads.py` into `dir`; answers its `expected.json`.
fn sdk_payloads(dir: &Path) -> Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/otel_payloads.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(dir)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "otel_payloads.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// `(base − 1) / (base + 1)` of an exponential histogram of `scale`: how far a value may be
/// from the one its bucket stands for.
fn bucket_accuracy(scale: i64) -> f64 {
    let base = (-(scale as f64)).exp2().exp2();
    (base - 1.0) / (base + 1.0)
}

fn within(what: &str, got: f64, exact: f64, scale: i64) {
    // The histogram's own bucket accuracy plus the sketch's 1%.
    let bound = bucket_accuracy(scale) + 0.01;
    assert!(
        (got - exact).abs() <= bound * exact,
        "{what}: {got} is not within {:.2}% of the exact {exact}",
        bound * 100.0
    );
}

/// The message key, as the Collector's exporter sets it with
/// `partition_metrics_by_resource_attributes`: a resource's cumulative points reach one
/// partition.
const KEY: Option<&str> = Some("otel-shop");

#[test]
fn otel_sdk_metrics_and_logs_land_exactly_with_histograms_as_sketches() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, &dir.path().join("lake"), "otlp");
    let payloads = dir.path().join("payloads");
    let expected = sdk_payloads(&payloads);
    let file = |i: usize| {
        let name = expected["files"][i].as_str().unwrap();
        std::fs::read(payloads.join(name)).unwrap()
    };
    let (metrics_topic, logs_topic) = (setup.topic("otlp_metrics"), setup.topic("otlp_logs"));
    let producer = TestProducer::new(&setup.brokers);

    let mut opslake = setup.spawn("run", &[]);
    let api = opslake.api();
    // Phase 1 (protobuf) and 2 (JSON) of one process: cumulative points with one start time.
    producer.send(&metrics_topic, KEY, &file(0));
    producer.send(&metrics_topic, KEY, &file(1));
    // Not a request; and a request with a good gauge and a histogram whose buckets do not add
    // up to its count.
    producer.send(&metrics_topic, None, b"\x08\x96\x01 certainly not OTLP");
    let bad_point = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"otel-bad"}}]},
      "scopeMetrics":[{"metrics":[
        {"name":"ok.gauge","gauge":{"dataPoints":[{"asDouble":1.5,"timeUnixNano":"1764000000000000000"}]}},
        {"name":"bad.hist","histogram":{"aggregationTemporality":1,"dataPoints":[{"timeUnixNano":"1764000000000000000",
          "count":"9","bucketCounts":["1","2"],"explicitBounds":[10]}]}}]}]}]}"#;
    producer.send(&metrics_topic, None, bad_point.as_bytes());
    producer.flush();
    let histogram_rows = |name: &str| {
        api.count(&format!(
            "SELECT count(*) FROM metric_histograms WHERE service = 'otel-shop' AND name = '{name}'"
        ))
    };
    wait_for(
        "phase 1 and 2 in metric_histograms",
        Duration::from_secs(60),
        || {
            (histogram_rows("rpc.duration") == 2
                && histogram_rows("http.server.request.duration") == 2)
                .then_some(())
        },
    );

    // Ingest dies; the exporter sends phase 2 again (a retry), then the service restarts.
    opslake.kill();
    drop(opslake);
    let opslake = setup.spawn("run", &[]);
    let api = opslake.api();
    producer.send(&metrics_topic, KEY, &file(1));
    for i in 2..=4 {
        producer.send(&metrics_topic, KEY, &file(i));
    }
    producer.send(&logs_topic, KEY, &file(5));
    producer.send(&logs_topic, KEY, &file(6));
    producer.flush();

    let counted = |name: &str| {
        api.count(&format!(
            "SELECT coalesce(sum(count), 0) FROM metric_histograms WHERE name = '{name}'"
        ))
    };
    let http_count = expected["http_count"].as_i64().unwrap();
    let rpc_count = expected["rpc_count"].as_i64().unwrap();
    let batch_count = expected["batch_count"].as_i64().unwrap();
    wait_for("every histogram point", Duration::from_secs(60), || {
        (counted("batch.size") == batch_count && counted("rpc.duration") == rpc_count).then_some(())
    });
    // Counts equal what was recorded: phase 2's retry was refused (the state of phase 2
    // survived the kill in the lake), the restart's counts began again.
    assert_eq!(counted("http.server.request.duration"), http_count);
    assert_eq!(counted("rpc.duration"), rpc_count);
    assert_eq!(counted("batch.size"), batch_count);
    let dead = api.rows(
        "SELECT error, _index FROM dead_letters WHERE topic = 'otlp.otlp_metrics' ORDER BY error",
    );
    let errors: Vec<&str> = dead.iter().map(|r| r[0].as_str().unwrap()).collect();
    assert_eq!(dead.len(), 4, "{errors:?}");
    assert!(
        errors[0].contains("not an OTLP ExportMetricsServiceRequest (otlp_proto)"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("metric \"bad.hist\": bucketCounts add up to 3, count is 9"),
        "{errors:?}"
    );
    assert!(
        errors[2].contains("http.server.request.duration") && errors[2].contains("not after"),
        "{errors:?}"
    );
    assert!(
        errors[3].contains("rpc.duration") && errors[3].contains("not after"),
        "{errors:?}"
    );
    assert_eq!(
        api.rows("SELECT value FROM metrics WHERE service = 'otel-bad'"),
        vec![vec![Value::from(1.5)]],
        "the rest of a request with a refused point is accepted"
    );

    // Counters and gauges exact, with the resource's columns and labels.
    let values = |name: &str| -> Vec<f64> {
        api.rows(&format!(
            "SELECT DISTINCT value FROM metrics WHERE service = 'otel-shop' AND name = '{name}' ORDER BY value"
        ))
        .iter()
        .map(|r| r[0].as_f64().unwrap())
        .collect()
    };
    let sorted = |v: &Value| {
        let mut v = f64s(v);
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    assert_eq!(values("orders"), sorted(&expected["orders"]));
    assert_eq!(values("inflight"), sorted(&expected["inflight"]));
    assert_eq!(values("temperature"), sorted(&expected["temperature"]));
    let row = api.rows(
        "SELECT kind, version, host, labels['region'], labels['deployment.environment'] \
         FROM metrics WHERE name = 'orders' LIMIT 1",
    );
    assert_eq!(
        row[0],
        vec![
            Value::from("counter"),
            Value::from("2.0.1"),
            Value::from("otel-host-1"),
            Value::from("eu"),
            Value::from("test")
        ]
    );
    assert_eq!(
        api.rows("SELECT DISTINCT kind FROM metrics WHERE name IN ('inflight', 'temperature')"),
        vec![vec![Value::from("gauge")]]
    );

    // p99 of the exponential histogram, and p50 of the delta one, from the raw table.
    let rpc_scale = expected["rpc_scale"].as_i64().unwrap();
    let p99 = api.rows(
        "SELECT quantile_merge(sketch, 0.99) FROM metric_histograms WHERE name = 'rpc.duration'",
    );
    within(
        "raw p99",
        p99[0][0].as_f64().unwrap(),
        expected["rpc_p99"].as_f64().unwrap(),
        rpc_scale,
    );
    let p50 = api.rows(
        "SELECT quantile_merge(sketch, 0.5) FROM metric_histograms WHERE name = 'batch.size'",
    );
    within(
        "raw p50 of deltas",
        p50[0][0].as_f64().unwrap(),
        expected["batch_p50"].as_f64().unwrap(),
        expected["batch_scale"].as_i64().unwrap(),
    );
    // The rollups cover histogram points like samples.
    wait_for("histograms in the rollups", Duration::from_secs(90), || {
        (api.count(
            "SELECT coalesce(sum(count), 0) FROM metric_rollups_1m WHERE service = 'otel-shop' AND name = 'rpc.duration'",
        ) == rpc_count)
            .then_some(())
    });
    let p99 = api.rows(
        "SELECT quantile_merge(sketch, 0.99) FROM metric_rollups_1m WHERE name = 'rpc.duration'",
    );
    within(
        "rollup p99",
        p99[0][0].as_f64().unwrap(),
        expected["rpc_p99"].as_f64().unwrap(),
        rpc_scale,
    );
    // The hour rollups, which the console's pages and the Grafana datasource's pickers read,
    // hold the service's histograms like any other series.
    wait_for(
        "histograms in the hour rollups",
        Duration::from_secs(90),
        || {
            (api.count(
            "SELECT coalesce(sum(count), 0) FROM metric_rollups_1h WHERE service = 'otel-shop' AND name = 'rpc.duration'",
        ) == rpc_count)
            .then_some(())
        },
    );

    // Logs: levels, message, ids, status codes.
    let levels = api.rows("SELECT level, count(*) FROM logs WHERE service = 'otel-shop' GROUP BY level ORDER BY level");
    let want: Vec<Vec<Value>> = ["debug", "error", "info", "warn"]
        .iter()
        .map(|l| vec![Value::from(*l), expected["logs"][*l].clone()])
        .collect();
    assert_eq!(levels, want);
    let errors = api.rows(
        "SELECT DISTINCT status_code, trace_id, attributes['span_id'] FROM logs WHERE level = 'error'",
    );
    assert_eq!(
        errors,
        vec![vec![
            Value::from(502),
            Value::from("5b8efff798038103d269b633813fc60c"),
            Value::from("eee19b7ec3c1b174")
        ]]
    );
    assert_eq!(
        api.count("SELECT count(*) FROM logs WHERE message = 'info event 4'"),
        1
    );

    // `opslake produce --otlp`, in both encodings: every synthetic event one point or record.
    setup.produce(&[
        "--otlp", "json", "--only", "metrics", "--count", "20", "--batch", "5",
    ]);
    setup.produce(&["--otlp", "--only", "logs", "--count", "10", "--batch", "3"]);
    wait_for("produced OTLP rows", Duration::from_secs(60), || {
        let metrics = api.count(
            "SELECT count(*) FROM metrics WHERE _topic = 'otlp.otlp_metrics' AND service NOT LIKE 'otel-%'",
        );
        let logs = api.count(
            "SELECT count(*) FROM logs WHERE _topic = 'otlp.otlp_logs' AND service <> 'otel-shop'",
        );
        (metrics == 100 && logs == 30).then_some(())
    });
    drop(opslake);
}
