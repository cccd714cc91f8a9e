//! Hostile input through every door (issue: nothing a producer or a client sends can stop
//! opslake): each input once stopped a role, changed what other clients get, or grew without
//! bound. Sent through the real doors (Kafka, HTTP, psql and psycopg, ADBC), then the same
//! process must still answer, other clients' settings must be unchanged, and events sent
//! afterwards must all arrive and roll up.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::receivers::Recorder;
use crate::support::{python_client, wait_for, Api, Broker, Proxy, Setup, TestProducer};

const T0_NS: u64 = 1_795_341_600_000_000_000; // 2026-11-22T10:00:00Z

/// An OTLP/JSON metrics request of one delta histogram metric with `points`.
fn otlp_histogram(service: &str, name: &str, points: Value) -> Vec<u8> {
    otlp_histogram_of(service, name, 1, points)
}

/// The same, of temporality `temporality` (1 delta, 2 cumulative).
fn otlp_histogram_of(service: &str, name: &str, temporality: u8, points: Value) -> Vec<u8> {
    json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeMetrics": [{"metrics": [{
            "name": name,
            "histogram": {"aggregationTemporality": temporality, "dataPoints": points}
        }]}]
    }]})
    .to_string()
    .into_bytes()
}

fn point(t_ns: u64, extra: Value) -> Value {
    let mut p = json!({
        "startTimeUnixNano": (t_ns - 1_000_000_000).to_string(),
        "timeUnixNano": t_ns.to_string(),
    });
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

/// The bytes of an opslake sketch (format 1) of three values whose min (10) is above its max
/// (5): it once panicked every quantile walk.
fn sketch_min_above_max() -> String {
    let mut b = vec![b'D', 1];
    b.extend_from_slice(&0.009f64.to_le_bytes());
    b.push(3); // count
    b.push(0); // zero
    b.extend_from_slice(&6.0f64.to_le_bytes()); // sum
    b.extend_from_slice(&10.0f64.to_le_bytes()); // min
    b.extend_from_slice(&5.0f64.to_le_bytes()); // max
    b.push(1); // one positive bucket
    b.push(2); // key 1, zigzag
    b.push(3); // count 3
    b.push(0); // no negative bucket
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `psql -c` against `port`: (exit code, stdout, stderr).
fn psql(port: &str, sql: &str) -> (i32, String, String) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-U",
            "mallory",
            "-d",
            "opslake",
            "-X",
            "-A",
            "-t",
        ])
        .args(["-c", sql])
        .env("PGPASSWORD", "")
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGSSLMODE", "disable")
        .output()
        .expect("psql runs (scripts/test.sh installs postgresql-client)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Still answering, with the engine's settings as they were.
fn still_answers(api: &Api, what: &str) {
    let (status, body) = api.sql_status("SELECT count(*) AS n FROM information_schema.tables");
    assert_eq!(status, 200, "after {what}: {body}");
    let (status, body) = api.sql_status(
        "SELECT value FROM information_schema.df_settings \
         WHERE name = 'datafusion.execution.batch_size'",
    );
    assert_eq!(status, 200, "after {what}: {body}");
    assert_eq!(body["rows"][0][0], json!("8192"), "after {what}: {body}");
}

#[test]
fn hostile_input_at_every_door_stops_nothing_and_loses_nothing() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "hostile");
    let run = setup.spawn(
        "run",
        &[
            ("OPSLAKE_PG_LISTEN", "127.0.0.1:0"),
            ("OPSLAKE_FLIGHT_LISTEN", "127.0.0.1:0"),
            ("OPSLAKE_PROCESSOR__INTERVAL", "1s"),
            ("OPSLAKE_QUERY__MAX_RESULT_BYTES", "8000000"),
        ],
    );
    let api = run.api();
    let producer = TestProducer::new(&setup.brokers);

    // Kafka, OTLP: legal and odd points.
    let otlp = setup.topic("otlp_metrics");
    let t = T0_NS;
    // One bucket and no bounds (legal): once a panic that stopped ingest for good.
    producer.send(
        &otlp,
        None,
        &otlp_histogram(
            "hostile",
            "one.bucket",
            json!([point(
                t,
                json!({"count": "5", "sum": 50.0, "bucketCounts": ["5"]})
            )]),
        ),
    );
    // A minimum above every value its buckets hold: refused, with the reason.
    producer.send(
        &otlp,
        None,
        &otlp_histogram("hostile", "min.above", json!([point(t, json!({"count": "3", "min": 10.0, "bucketCounts": ["3", "0"], "explicitBounds": [5.0]}))])),
    );
    // A name over the limit on many points: each refusal refers to the first.
    let long_name = "n".repeat(100_000);
    let many: Vec<Value> = (0..2_000u64)
        .map(|i| point(t + i, json!({"count": "1", "bucketCounts": ["1"]})))
        .collect();
    let long_message = otlp_histogram("hostile", &long_name, json!(many));
    producer.send(&otlp, None, &long_message);
    producer.flush();
    wait_for("the odd OTLP points", Duration::from_secs(60), || {
        let n =
            api.count("SELECT count(*) FROM dead_letters WHERE error LIKE '%min 10 is above 5%'");
        let hist = api.count("SELECT count(*) FROM metric_histograms WHERE name = 'one.bucket'");
        let long = api.count("SELECT count(*) FROM dead_letters");
        (n == 1 && hist == 1 && long == 2_001).then_some(())
    });
    // The long name's 2,000 refusals: the first says why, the others refer to it.
    let refusals = api.rows(
        "SELECT count(*), sum(length(payload)), max(length(error)) FROM dead_letters \
         WHERE error NOT LIKE '%min 10 is above 5%'",
    );
    assert_eq!(refusals[0][0], json!(2_000), "every point is one refusal");
    let payload_bytes = refusals[0][1].as_i64().unwrap();
    assert!(
        (payload_bytes as usize) < 2 * long_message.len(),
        "the message is kept once, not copied into each refusal: {payload_bytes} bytes of \
         payloads for a message of {}",
        long_message.len()
    );
    assert!(refusals[0][2].as_i64().unwrap() < 400, "{refusals:?}");
    // A resource of 5,000 attributes over 1,000 points (under the producer's 1 MB).
    let attributes: Vec<Value> = (0..5_000)
        .map(|i| json!({"key": format!("k{i}"), "value": {"stringValue": "v".repeat(100)}}))
        .collect();
    let points: Vec<Value> = (0..1_000u64)
        .map(|i| json!({"timeUnixNano": (t + i).to_string(), "asDouble": 1.0}))
        .collect();
    let wide = json!({"resourceMetrics": [{
        "resource": {"attributes": attributes},
        "scopeMetrics": [{"metrics": [{"name": "wide", "gauge": {"dataPoints": points}}]}]
    }]});
    producer.send(&otlp, None, wide.to_string().as_bytes());
    producer.flush();
    wait_for(
        "the wide resource's refusals",
        Duration::from_secs(30),
        || (api.count("SELECT count(*) FROM dead_letters") == 3_001).then_some(()),
    );
    assert_eq!(
        api.count(
            "SELECT count(*) FROM dead_letters \
             WHERE error LIKE '%resource attributes: 5000 entries%'"
        ),
        1
    );

    // One cumulative series sent over several partitions (an exporter that does not partition
    // by resource): each partition counts its first point whole, which the operator is told.
    let start = (t - 60_000_000_000).to_string();
    for i in 0..12u64 {
        let p = json!({"startTimeUnixNano": start, "timeUnixNano": (t + i * 1_000_000_000).to_string(),
                       "count": (i + 1).to_string(), "bucketCounts": [(i + 1).to_string()]});
        let msg = otlp_histogram_of("hostile", "split.series", 2, json!([p]));
        producer.send(&otlp, Some(&format!("key-{i}")), &msg);
    }
    producer.flush();
    let split = wait_for("the split series reported", Duration::from_secs(30), || {
        let p: Value = api.get("/api/v1/pipeline").json().unwrap();
        let s = p["otlp_split_series"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (!s.is_empty()).then_some(s)
    });
    assert_eq!(split[0]["key"], json!(otlp), "{split:?}");
    assert!(
        split[0]["series"]
            .as_str()
            .unwrap()
            .contains("split.series"),
        "{split:?}"
    );
    assert!(run
        .log()
        .contains("partition_metrics_by_resource_attributes"));

    // HTTP: a sketch whose min is above its max, from SQL.
    let bad = sketch_min_above_max();
    let (status, body) = api.sql_status(&format!("SELECT quantile_merge(X'{bad}', 0.5)"));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("min is above max"),
        "{body}"
    );
    // A result far larger than its bytes limit: answered truncated, on every format.
    let (status, body) =
        api.sql_status("SELECT repeat('x', 20000) AS x FROM generate_series(1, 100000)");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["truncated"], json!(true));
    assert_eq!(body["truncated_by"], json!("bytes=8000000"));
    let kept = body["rows"].as_array().unwrap().len();
    assert!(kept > 0 && kept < 1_000, "{kept} rows of 20 KB within 8 MB");
    let csv = Api::client()
        .post(format!("{}/api/v1/sql", api.base))
        .header("accept", "text/csv")
        .json(&json!({"sql": "SELECT repeat('x', 20000) AS x FROM generate_series(1, 100000)"}))
        .send()
        .unwrap();
    assert_eq!(
        csv.headers()["x-opslake-truncated"].to_str().unwrap(),
        "bytes=8000000"
    );
    // Grafana: multi-byte text before an unclosed macro.
    let resp = Api::client()
        .post(format!("{}/grafana/query", api.base))
        .json(&json!({"targets": [{"target": "sql", "payload": {"sql": "SELECT 'ééééééééééééééééé' $__timeFilter(timestamp"}}]}))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    still_answers(&api, "HTTP");

    // PostgreSQL: SET of engine settings is refused; the session's own settings stay its own.
    let pg = run.pg.clone().expect("a PostgreSQL listener");
    let pg_port = pg.rsplit(':').next().unwrap().to_string();
    for sql in [
        "SET datafusion.execution.batch_size = 1",
        "SET datafusion.catalog.information_schema = false",
        "SET datafusion.runtime.memory_limit = '1M'",
    ] {
        let (code, _, err) = psql(&pg_port, sql);
        assert_ne!(code, 0, "{sql} is refused");
        assert!(err.contains("refused"), "{sql}: {err}");
    }
    let (code, out, err) = psql(
        &pg_port,
        "SET application_name = 'mallory'; SHOW application_name",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim().lines().last(), Some("mallory"), "{out}");
    let (code, _, err) = psql(
        &pg_port,
        &format!("SELECT quantile_merge(decode('{bad}', 'hex'), 0.5)"),
    );
    assert_ne!(code, 0);
    assert!(err.contains("min is above max"), "{err}");
    let answers = python_client(
        &["psycopg", "127.0.0.1", &pg_port, ""],
        &json!([
            {"sql": "SET datafusion.execution.batch_size = 1"},
            {"sql": "SET TIME ZONE 'Europe/Paris'"},
            {"sql": format!("SELECT quantile_merge(decode('{bad}', 'hex'), 0.5)"), "prepare": true},
            {"sql": "SELECT 1 AS one", "prepare": true},
        ]),
    );
    assert_eq!(answers[0]["sqlstate"], json!("25006"), "{answers:?}");
    assert!(answers[1].get("error").is_none(), "{answers:?}");
    assert!(answers[2].get("error").is_some(), "{answers:?}");
    assert_eq!(answers[3]["rows"], json!([[1]]), "{answers:?}");
    assert_eq!(answers[4]["after_errors"], json!(1));
    still_answers(&api, "PostgreSQL");

    // Flight SQL: the bad sketch, then a query on the same connection.
    let flight = run.flight.clone().expect("a Flight SQL listener");
    let answers = python_client(
        &["adbc", &format!("grpc://{flight}"), ""],
        &json!([
            {"sql": format!("SELECT quantile_merge(X'{bad}', 0.5)")},
            {"sql": "SELECT 2 AS two"},
        ]),
    );
    assert!(answers[0].get("error").is_some(), "{answers:?}");
    assert_eq!(answers[1]["rows"], json!([[2]]), "{answers:?}");
    still_answers(&api, "Flight SQL");

    // Afterwards, every event arrives and rolls up.
    let metrics = setup.topic("metrics");
    let events: Vec<Value> = (0..3_000)
        .map(|i| {
            json!({"timestamp": 1_795_341_600_000i64 + i * 100, "service": "after",
                   "name": "latency", "value": (i % 97) as f64})
        })
        .collect();
    producer.send_all(&metrics, &events);
    wait_for(
        "the events sent afterwards, rolled up",
        Duration::from_secs(90),
        || {
            let raw = api.count("SELECT count(*) FROM metrics WHERE service = 'after'");
            let rolled = api.count(
                "SELECT coalesce(sum(count), 0) FROM metric_rollups_1m WHERE service = 'after'",
            );
            (raw == 3_000 && rolled == 3_000).then_some(())
        },
    );
    let (status, body) = api.sql_status(
        "SELECT quantile_merge(sketch, 0.5) AS p50 FROM metric_histograms WHERE name = 'one.bucket'",
    );
    assert_eq!(status, 200, "the one-bucket point's sketch answers: {body}");
}

/// A notification owed when the process is killed is delivered after the restart, with the
/// same keys: the outbox is in the lake, not in memory.
#[test]
fn a_notification_owed_at_a_kill_is_delivered_after_the_restart() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "outbox");
    let recorder = Recorder::start();
    let recorder_port: u16 = recorder.base.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = Proxy::start(recorder_port);
    proxy.down();
    let config = lake.path().join("alerts.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[alerts]
interval = "1s"
disable_builtin = ["OpslakeAnomaly", "OpslakeRegression", "OpslakeSLOBurnRate", "OpslakeCostBudget", "OpslakePipeline"]

[[alerts.rules]]
name = "AlwaysOn"
sql = "SELECT 'checkout' AS service, 1.0 AS value"
for = "0s"
severity = "critical"
annotations = {{ summary = "always on for {{{{ service }}}}" }}

[[alerts.receivers]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{}/hook"
"#,
            proxy.port
        ),
    )
    .unwrap();
    let env = [("OPSLAKE_CONFIG", config.to_str().unwrap())];
    let mut first = setup.spawn("run", &env);
    let api = first.api();
    wait_for(
        "the alert to fire and be owed",
        Duration::from_secs(60),
        || {
            let firing = api.count("SELECT count(*) FROM alerts WHERE state = 'firing'");
            let log = first.log();
            (firing >= 1 && log.contains("retrying")).then_some(())
        },
    );
    assert!(recorder.bodies("/hook").is_empty());
    first.kill();
    proxy.up(recorder_port);
    let second = setup.spawn("run", &env);
    let bodies = wait_for("the owed notification", Duration::from_secs(60), || {
        let b = recorder.bodies("/hook");
        (!b.is_empty()).then_some(b)
    });
    let firing: Vec<&Value> = bodies
        .iter()
        .flat_map(|b| b["alerts"].as_array().unwrap())
        .filter(|a| a["status"] == "firing")
        .collect();
    assert!(!firing.is_empty(), "{bodies:?}");
    let fingerprints: std::collections::BTreeSet<&str> = firing
        .iter()
        .map(|a| a["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(fingerprints.len(), 1, "one alert, one key: {bodies:?}");
    let group_keys: std::collections::BTreeSet<&str> = bodies
        .iter()
        .map(|b| b["groupKey"].as_str().unwrap())
        .collect();
    assert_eq!(group_keys.len(), 1, "{bodies:?}");
    // Delivered, then no longer owed: nothing more is sent for it.
    std::thread::sleep(Duration::from_secs(3));
    let again = recorder.bodies("/hook").len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(recorder.bodies("/hook").len(), again, "{:?}", second.log());
}
