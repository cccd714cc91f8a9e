//! The HTTP API on a real socket: health, readiness, formats, refusals, tables, metrics, token.

use std::time::Duration;

use serde_json::json;

use crate::support::{wait_for, Api, Broker, Setup, TestProducer};

#[test]
fn api_answers_formats_refusals_and_health() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "api");
    let opslake = setup.spawn("run", &[("OPSLAKE_API_TOKEN", "s3cret")]);
    let base = opslake.api().base;
    let client = Api::client();

    // Health needs no token; everything else does.
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let ready = wait_for("readiness", Duration::from_secs(30), || {
        let r = client.get(format!("{base}/readyz")).send().unwrap();
        (r.status() == 200).then(|| r.json::<serde_json::Value>().unwrap())
    });
    assert_eq!(ready["broker"], json!("ok"));
    let r = client
        .post(format!("{base}/api/v1/sql"))
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .post(format!("{base}/api/v1/sql"))
        .bearer_auth("wrong")
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    let p = TestProducer::new(&setup.brokers);
    for i in 0..10 {
        p.send(
            &setup.topic("metrics"),
            None,
            format!(
                r#"{{"timestamp": {}, "service": "s{}", "name": "n", "value": {i}}}"#,
                1_763_805_600_000i64 + i,
                i % 2
            )
            .as_bytes(),
        );
    }
    p.flush();
    let sql = |body: serde_json::Value, accept: &str| {
        client
            .post(format!("{base}/api/v1/sql"))
            .bearer_auth("s3cret")
            .header("Accept", accept)
            .json(&body)
            .send()
            .unwrap()
    };
    wait_for("10 metrics", Duration::from_secs(60), || {
        let r: serde_json::Value = sql(
            json!({"sql": "SELECT count(*) FROM metrics"}),
            "application/json",
        )
        .json()
        .unwrap();
        (r["rows"][0][0] == json!(10)).then_some(())
    });

    let r: serde_json::Value = sql(json!({"sql": "SELECT service, sum(value) AS total FROM metrics GROUP BY service ORDER BY service"}), "application/json").json().unwrap();
    assert_eq!(
        r["columns"],
        json!([{"name": "service", "type": "Utf8"}, {"name": "total", "type": "Float64"}])
    );
    assert_eq!(r["rows"], json!([["s0", 20.0], ["s1", 25.0]]));
    assert_eq!(r["truncated"], json!(false));

    let csv = sql(
        json!({"sql": "SELECT service, sum(value) AS total FROM metrics GROUP BY service ORDER BY service"}),
        "text/csv",
    );
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(csv.text().unwrap(), "service,total\ns0,20.0\ns1,25.0\n");

    let arrow = sql(
        json!({"sql": "SELECT value FROM metrics ORDER BY value"}),
        "application/vnd.apache.arrow.stream",
    );
    assert_eq!(
        arrow.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = arrow.bytes().unwrap();
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(
        std::io::Cursor::new(bytes.to_vec()),
        None,
    )
    .unwrap();
    let n: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(n, 10);

    // Refusals: 400 with a message, and nothing runs.
    for q in [
        "INSERT INTO metrics SELECT * FROM metrics",
        "COPY metrics TO '/tmp/opslake-copy.parquet'",
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc/'",
        "DROP TABLE metrics",
        "SET datafusion.execution.batch_size = 1",
        "SELECT * FROM no_such_table",
        "SELEC 1",
    ] {
        let r = sql(json!({ "sql": q }), "application/json");
        assert_eq!(r.status(), 400, "{q}");
        let body: serde_json::Value = r.json().unwrap();
        assert!(!body["error"].as_str().unwrap().is_empty(), "{q}");
    }
    assert!(!std::path::Path::new("/tmp/opslake-copy.parquet").exists());
    let r: serde_json::Value = sql(
        json!({"sql": "SELECT count(*) FROM metrics"}),
        "application/json",
    )
    .json()
    .unwrap();
    assert_eq!(r["rows"][0][0], json!(10), "the table is still there");

    // On a connection of its own: the server answers 413 without reading the body and closes
    // the connection, which a pooled client could otherwise reuse for the next request.
    let r = Api::client()
        .post(format!("{base}/api/v1/sql"))
        .bearer_auth("s3cret")
        .json(&json!({"sql": "x".repeat(2 << 20)}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);

    let tables: serde_json::Value = client
        .get(format!("{base}/api/v1/tables"))
        .bearer_auth("s3cret")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<&str> = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for t in ["billing", "dead_letters", "logs", "metrics"] {
        assert!(names.contains(&t), "{names:?}");
    }

    let m = client
        .get(format!("{base}/metrics"))
        .bearer_auth("s3cret")
        .send()
        .unwrap()
        .text()
        .unwrap();
    for name in [
        "opslake_ingest_messages_consumed_total",
        "opslake_ingest_rows_written_total{table=\"metrics\"}",
        "opslake_ingest_files_written_total",
        "opslake_ingest_flush_duration_seconds_bucket",
        "opslake_api_requests_total",
    ] {
        assert!(m.contains(name), "{name} missing from /metrics");
    }
}
