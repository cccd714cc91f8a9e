//! The Grafana JSON datasource and the API's OpenAPI document, on a real server over data that
//! went through the whole pipeline: every endpoint with the spec's own request examples and
//! with opslake's targets, responses validated against the plugin's `openapi.yaml` and against
//! `GET /api/v1/openapi.json`; annotations from regressions; ad hoc filters; the result cache
//! (hits, then invalidation when new data lands in range); every panel, annotation and variable
//! of the shipped dashboards; CORS for browser access.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::openapi::Spec;
use crate::support::{wait_for, Api, Broker, Setup, TestProducer};

const STEP: i64 = 300_000;

/// Inlines `$ref`s to `#/components/schemas/...` and turns OpenAPI's `nullable: true` into a
/// JSON Schema type union, so a JSON Schema validator can check responses.
fn post(api: &Api, path: &str, body: &Value) -> (u16, Value) {
    let r = Api::client()
        .post(format!("{}{path}", api.base))
        .json(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn rfc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A query request as Grafana sends it.
fn query(from: i64, to: i64, max_points: i64, targets: Value, filters: Value) -> Value {
    json!({"panelId": 1, "range": {"from": rfc(from), "to": rfc(to), "raw": {"from": "now-2d", "to": "now"}},
        "rangeRaw": {"from": "now-2d", "to": "now"}, "interval": "5m", "intervalMs": 300_000,
        "maxDataPoints": max_points, "targets": targets, "filters": filters,
        "scopedVars": {"__interval": {"text": "5m", "value": "5m"}, "__interval_ms": {"text": 300_000, "value": 300_000}}})
}

/// Two days of a service's latency (5-minute windows, a daily cycle, a deploy that makes it 40%
/// slower, one spike), its logs with an error burst, and five weeks of a small fleet's bill.
fn history(now: i64) -> (Vec<Value>, Vec<Value>, Vec<Value>, i64, i64) {
    let t0 = now - now.rem_euclid(STEP) - 2 * 86_400_000;
    let deploy = t0 + 400 * STEP;
    let spike = t0 + 300 * STEP;
    let labels = json!({"endpoint": "/charge", "method": "POST"});
    let metrics =
        opslake_lake::test_util::payments_charge(t0, STEP, deploy, Some(spike), &labels, 5);
    let (mut logs, mut bill) = (Vec::new(), Vec::new());
    for w in 0..2 * 288 {
        let t = t0 + w * STEP;
        let slow = if t >= deploy { 1.4 } else { 1.0 };
        for i in 0..4 {
            let level = if w % 50 == 0 && i < 2 {
                "error"
            } else {
                "info"
            };
            logs.push(
                json!({"timestamp": t + i * 60_000, "service": "payments", "level": level,
                "message": "charge", "duration_ms": 80.0 * slow}),
            );
        }
    }
    let first_day = now / 86_400_000 - 35;
    for d in 0..35 {
        let start = (first_day + d) * 86_400_000;
        for (id, provider, cost, util) in [("vm-1", "aws", 24.0, 0.6), ("vm-2", "gcp", 20.0, 0.1)] {
            bill.push(json!({"charge_period_start": start, "charge_period_end": start + 86_400_000,
                "provider": provider, "service": "compute", "resource_id": id, "resource_type": "compute",
                "usage_quantity": 24, "usage_unit": "Hours", "cost": cost * (1.0 + 0.01 * (d % 7) as f64),
                "utilization": util}));
        }
    }
    (metrics, logs, bill, deploy, t0)
}

/// Replaces `$var` in a panel's payload the way Grafana would for "All" / the first value.
fn interpolate(v: &Value, vars: &[(String, Value)]) -> Value {
    match v {
        Value::String(s) => {
            for (name, val) in vars {
                if s == &format!("${name}") {
                    return val.clone();
                }
            }
            Value::String(s.clone())
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| interpolate(x, vars)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), interpolate(x, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn grafana_datasource_dashboards_cache_and_openapi() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "grafana");
    let opslake = setup.spawn(
        "run",
        &[
            ("OPSLAKE_PROCESSOR__INTERVAL", "1s"),
            ("OPSLAKE_PROCESSOR__WINDOW", "5m"),
            (
                "OPSLAKE_QUERY__CORS_ORIGINS",
                "[\"https://grafana.example.com\"]",
            ),
        ],
    );
    let api = opslake.api();
    let now = chrono::Utc::now().timestamp_millis();
    let (metrics, logs, bill, deploy, t0) = history(now);
    let p = TestProducer::new(&setup.brokers);
    // One refused item, so the pipeline dashboard's rejection panel has a series.
    p.send(&setup.topic("metrics"), None, b"{not json");
    for (topic, events) in [("metrics", &metrics), ("logs", &logs), ("billing", &bill)] {
        for chunk in events.chunks(400) {
            p.send(
                &setup.topic(topic),
                None,
                Value::from(chunk.to_vec()).to_string().as_bytes(),
            );
        }
    }
    p.flush();
    wait_for(
        "rollups, regressions and forecasts",
        Duration::from_secs(180),
        || {
            let done = api.count("SELECT coalesce(sum(count), 0) FROM metric_rollups_1m")
                == metrics.len() as i64
                && api.count("SELECT count(*) FROM regressions") > 0
                && api.count("SELECT count(*) FROM cost_forecasts") > 0
                && api.count("SELECT coalesce(sum(count), 0) FROM log_rollups_1m")
                    == logs.len() as i64;
            done.then_some(())
        },
    );

    let spec = Spec::grafana();
    let ours_text = Api::client()
        .get(format!("{}/api/v1/openapi.json", api.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let ours = Spec::opslake(&ours_text);
    let both = |method: &str, path: &str, status: u16, body: &Value| {
        spec.check(method, path, status, body);
        ours.check(method, &format!("/grafana{path}"), status, body);
    };

    // Connection test.
    let r = api.get("/grafana/");
    assert_eq!(r.status(), 200);
    assert_eq!(api.get("/grafana").status(), 200);

    // /metrics, with the spec's request example and with none.
    for req in [spec.example("/metrics"), json!({})] {
        let (s, body) = post(&api, "/grafana/metrics", &req);
        assert_eq!(s, 200);
        both("post", "/metrics", 200, &body);
        let names: Vec<&str> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap())
            .collect();
        for n in [
            "latency",
            "error_rate",
            "throughput",
            "cost",
            "cost_forecast",
            "anomalies",
            "regressions",
            "sql",
        ] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
    }

    // Payload pickers filled from the data; the spec's example names a metric we do not have.
    let (s, body) = post(
        &api,
        "/grafana/metric-payload-options",
        &spec.example("/metric-payload-options"),
    );
    assert_eq!((s, body.clone()), (200, json!([])));
    for (metric, name, payload, want) in [
        ("latency", "service", json!({}), "payments"),
        (
            "latency",
            "name",
            json!({"service": ["payments"]}),
            "http.server.duration",
        ),
        (
            "latency",
            "labels",
            json!({"service": "payments"}),
            "endpoint=/charge",
        ),
        ("latency", "group_by", json!({}), "label:endpoint"),
        ("cost_forecast", "key", json!({"scope": "provider"}), "aws"),
        ("error_rate", "service", json!({}), "payments"),
    ] {
        let (s, body) = post(
            &api,
            "/grafana/metric-payload-options",
            &json!({"metric": metric, "payload": payload, "name": name}),
        );
        assert_eq!(s, 200, "{body}");
        both("post", "/metric-payload-options", 200, &body);
        assert!(
            body.as_array()
                .unwrap()
                .iter()
                .any(|o| o["value"] == json!(want)),
            "{metric}/{name}: {body}"
        );
    }

    // /query: the spec's example (an unknown target answers a series named with the reason,
    // without points: what the spec allows).
    let (s, body) = post(&api, "/grafana/query", &spec.example_query());
    assert_eq!(s, 200, "{body}");
    both("post", "/query", 200, &body);
    assert!(body[0]["target"]
        .as_str()
        .unwrap()
        .contains("unknown target"));
    assert_eq!(body[0]["datapoints"], json!([]));

    // Latency percentiles: value first, epoch ms, within the range and maxDataPoints.
    let (from, to) = (t0, now + 60_000);
    let (s, body) = post(
        &api,
        "/grafana/query",
        &query(
            from,
            to,
            200,
            json!([{"target": "latency", "refId": "A", "payload": {"service": ["payments"], "percentile": ["p50", "p99"]}}]),
            json!([]),
        ),
    );
    assert_eq!(s, 200, "{body}");
    both("post", "/query", 200, &body);
    let series = body.as_array().unwrap();
    let targets: Vec<&str> = series
        .iter()
        .map(|s| s["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["payments p50", "payments p99"]);
    let p50 = series[0]["datapoints"].as_array().unwrap();
    assert!(p50.len() <= 200 && p50.len() >= 48, "{}", p50.len());
    for dp in p50 {
        let (v, t) = (dp[0].as_f64().unwrap(), dp[1].as_i64().unwrap());
        assert!(v > 10.0 && v < 1000.0, "value first: {dp}");
        assert!(t >= from - 86_400_000 && t <= to, "epoch ms: {dp}");
    }
    // The same time of day, a day apart, across the deploy: 40% slower.
    let at: std::collections::HashMap<i64, f64> = p50
        .iter()
        .map(|dp| (dp[1].as_i64().unwrap(), dp[0].as_f64().unwrap()))
        .collect();
    let ratios: Vec<f64> = at
        .iter()
        .filter(|(t, _)| **t > deploy + 3_600_000)
        .filter_map(|(t, v)| at.get(&(t - 86_400_000)).map(|before| v / before))
        .collect();
    assert!(ratios.len() > 20, "{}", ratios.len());
    let ratio = ratios.iter().sum::<f64>() / ratios.len() as f64;
    assert!(
        (1.25..1.55).contains(&ratio),
        "the deploy made p50 40% slower: {ratio}"
    );

    // Every target of the catalog answers in the spec's shapes.
    let costs_from = now - 40 * 86_400_000;
    let costs_to = now + 31 * 86_400_000;
    for (target, payload, from, to) in [
        ("throughput", json!({"group_by": "version"}), t0, now),
        ("error_rate", json!({}), t0, now),
        (
            "cost",
            json!({"group_by": "provider"}),
            costs_from,
            costs_to,
        ),
        (
            "cost_forecast",
            json!({"scope": "total"}),
            costs_from,
            costs_to,
        ),
        ("anomalies", json!({}), t0, now),
        ("regressions", json!({"service": "payments"}), t0, now),
        ("opportunities", json!({}), t0, now),
        ("log_errors", json!({}), t0, now),
        (
            "sql",
            json!({"format": "table", "sql": "SELECT service, count(*) AS n FROM logs WHERE $__timeFilter(timestamp) AND $__partitionFilter GROUP BY service"}),
            t0,
            now,
        ),
        (
            "sql",
            json!({"sql": "SELECT $__timeGroup(window_start, 1h) AS time, service, avg(p95) AS p95 FROM metric_rollups_1m WHERE $__timeFilter(window_start) GROUP BY 1, 2 ORDER BY 1"}),
            t0,
            now,
        ),
    ] {
        let (s, body) = post(
            &api,
            "/grafana/query",
            &query(
                from,
                to,
                500,
                json!([{"target": target, "refId": "A", "payload": payload}]),
                json!([]),
            ),
        );
        assert_eq!(s, 200, "{target}: {body}");
        both("post", "/query", 200, &body);
        assert!(!body.as_array().unwrap().is_empty(), "{target}: {body}");
    }
    let (_, forecast) = post(
        &api,
        "/grafana/query",
        &query(
            costs_from,
            costs_to,
            500,
            json!([{"target": "cost_forecast", "payload": {"scope": "total"}}]),
            json!([]),
        ),
    );
    let names: Vec<&str> = forecast
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "total actual",
            "total forecast",
            "total lower_80",
            "total lower_95",
            "total upper_80",
            "total upper_95"
        ]
    );

    // Regressions as annotations: time, title, text and tags columns.
    let (_, body) = post(
        &api,
        "/grafana/query",
        &query(
            t0,
            now,
            500,
            json!([{"target": "regressions", "payload": {"service": "payments"}}]),
            json!([]),
        ),
    );
    let t = &body[0];
    let cols: Vec<&str> = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(&cols[..4], ["time", "title", "text", "tags"]);
    let p50_change = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[6] == json!("p50"))
        .expect("the p50 change point");
    assert!(
        (p50_change[0].as_i64().unwrap() - deploy).abs() <= 2 * STEP,
        "{p50_change}"
    );
    assert!(
        p50_change[1].as_str().unwrap().contains("p50 +"),
        "{p50_change}"
    );
    assert!(
        p50_change[2]
            .as_str()
            .unwrap()
            .contains("version 1.9.0 to 2.0.0"),
        "{p50_change}"
    );

    // Ad hoc filters narrow every metric query.
    for (value, empty) in [("/charge", false), ("/nope", true)] {
        let (s, body) = post(
            &api,
            "/grafana/query",
            &query(
                t0,
                now,
                100,
                json!([{"target": "latency"}]),
                json!([{"key": "endpoint", "operator": "=", "value": value}]),
            ),
        );
        assert_eq!(s, 200);
        assert_eq!(
            body.as_array().unwrap().is_empty(),
            empty,
            "{value}: {body}"
        );
    }
    let (s, body) = post(
        &api,
        "/grafana/query",
        &query(
            t0,
            now,
            100,
            json!([{"target": "latency", "payload": {"percentile": "p200"}}]),
            json!([]),
        ),
    );
    assert_eq!(s, 400);
    ours.check("post", "/grafana/query", 400, &body);

    // Variables, the spec's example included, and ad hoc filter keys and values.
    let (s, body) = post(
        &api,
        "/grafana/variable",
        &json!({"payload": {"target": "systems"}, "range": {"from": rfc(t0), "to": rfc(now)}}),
    );
    assert_eq!((s, body.clone()), (200, json!([])));
    for (target, want) in [
        ("services", "payments"),
        ("label_values(endpoint)", "/charge"),
        ("providers", "aws"),
        ("forecast_keys(provider)", "gcp"),
        (
            "SELECT DISTINCT version FROM metric_rollups_1m WHERE $__timeFilter(window_start)",
            "2.0.0",
        ),
    ] {
        let (s, body) = post(
            &api,
            "/grafana/variable",
            &json!({"payload": {"target": target}, "range": {"from": rfc(t0), "to": rfc(now)}}),
        );
        assert_eq!(s, 200, "{target}: {body}");
        both("post", "/variable", 200, &body);
        assert!(
            body.as_array()
                .unwrap()
                .iter()
                .any(|v| v["__value"] == json!(want)),
            "{target}: {body}"
        );
    }
    let (s, keys) = post(&api, "/grafana/tag-keys", &json!({}));
    assert_eq!(s, 200);
    both("post", "/tag-keys", 200, &keys);
    assert!(keys
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["text"] == json!("endpoint")));
    let (s, vals) = post(&api, "/grafana/tag-values", &json!({"key": "endpoint"}));
    assert_eq!((s, vals.clone()), (200, json!([{"text": "/charge"}])));
    ours.check("post", "/grafana/tag-values", 200, &vals);
    let (s, _) = post(&api, "/grafana/tag-values", &json!({"key": "City"}));
    assert_eq!(s, 200);

    // The cache: the same panel again is a hit; new data in its range is not served stale.
    let cache = |outcome: &str| -> i64 {
        let m = api.get("/metrics").text().unwrap();
        m.lines()
            .find(|l| {
                l.starts_with(&format!(
                    "opslake_api_cache_requests_total{{outcome=\"{outcome}\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0, |v| v.parse().unwrap())
    };
    let panel = query(
        t0,
        now,
        100,
        json!([{"target": "throughput", "payload": {"service": "payments", "group_by": "none"}}]),
        json!([]),
    );
    let (_, first) = post(&api, "/grafana/query", &panel);
    let hits = cache("hit");
    let (_, again) = post(&api, "/grafana/query", &panel);
    assert_eq!(first, again);
    assert!(
        cache("hit") > hits,
        "a repeated panel is answered from the cache"
    );
    let total = |b: &Value| -> f64 {
        b[0]["datapoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d[0].as_f64().unwrap())
            .sum()
    };
    p.send(
        &setup.topic("metrics"),
        None,
        json!({"timestamp": t0 + 10 * STEP + 1_000, "service": "payments", "name": "http.server.duration", "value": 5.0, "version": "1.9.0", "labels": {"endpoint": "/charge", "method": "POST"}}).to_string().as_bytes(),
    );
    p.flush();
    wait_for(
        "the late event in the cached panel",
        Duration::from_secs(60),
        || {
            let (_, now_body) = post(&api, "/grafana/query", &panel);
            (total(&now_body) > total(&first)).then_some(())
        },
    );

    // Every panel, annotation and variable of the shipped dashboards answers without error.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/dashboards");
    // Consumer lag comes from librdkafka's statistics, every 5 s.
    let metrics_text = wait_for("consumer lag in /metrics", Duration::from_secs(30), || {
        let t = api.get("/metrics").text().unwrap();
        t.contains("# TYPE opslake_ingest_consumer_lag ")
            .then_some(t)
    });
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let mut vars: Vec<(String, Value)> = Vec::new();
        for v in dash["templating"]["list"].as_array().unwrap() {
            if v["datasource"]["uid"] != json!("opslake") || v["type"] != json!("query") {
                continue;
            }
            let target = v["query"]["payload"].as_str().unwrap();
            let (s, body) = post(
                &api,
                "/grafana/variable",
                &json!({"payload": {"target": target}, "range": {"from": rfc(costs_from), "to": rfc(now)}}),
            );
            assert_eq!(s, 200, "{name} variable {target}: {body}");
            let value = if v["includeAll"] == json!(true) {
                json!("$__all")
            } else {
                body[0]["__value"].clone()
            };
            assert!(!value.is_null(), "{name} variable {target} has values");
            vars.push((v["name"].as_str().unwrap().to_string(), value));
        }
        let (from, to) = if dash["time"]["to"] == json!("now") {
            (t0, now)
        } else {
            (costs_from, costs_to)
        };
        let mut targets: Vec<(String, Value)> = Vec::new();
        for panel in dash["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().unwrap() {
                targets.push((panel["title"].as_str().unwrap().to_string(), t.clone()));
            }
        }
        for a in dash["annotations"]["list"].as_array().unwrap() {
            targets.push((a["name"].as_str().unwrap().to_string(), a["target"].clone()));
        }
        for (title, t) in targets {
            if t["datasource"]["uid"] == json!("opslake-postgres") {
                // Through the PostgreSQL wire protocol: tests/e2e/sql_protocols.rs runs these.
                continue;
            }
            if t["datasource"]["uid"] == json!("prometheus") {
                // No Prometheus here: every opslake metric the panel reads must exist.
                let expr = t["expr"].as_str().unwrap();
                for m in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if let Some(base) = m.strip_prefix("opslake_") {
                        let family = base.trim_end_matches("_bucket");
                        assert!(
                            metrics_text.contains(&format!("# TYPE opslake_{family} ")),
                            "{name} / {title}: opslake_{family} is not exported"
                        );
                    }
                }
                checked += 1;
                continue;
            }
            let t = interpolate(&t, &vars);
            let (s, body) = post(
                &api,
                "/grafana/query",
                &query(from, to, 800, json!([t]), json!([])),
            );
            assert_eq!(s, 200, "{name} / {title}: {body}");
            both("post", "/query", 200, &body);
            assert!(
                !body.to_string().contains("unknown target"),
                "{name} / {title}: {body}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} panel queries checked");

    // The rest of the API against its OpenAPI document.
    let get_json = |path: &str| -> (u16, Value) {
        let r = api.get(path);
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    };
    for path in ["/healthz", "/readyz", "/api/v1/tables", "/api/v1/reports"] {
        let (s, body) = get_json(path);
        assert_eq!(s, 200, "{path}");
        ours.check("get", path, s, &body);
    }
    for (sql, status) in [
        (
            "SELECT service, count(*) AS n FROM metrics GROUP BY service",
            200,
        ),
        ("DROP TABLE metrics", 400),
        ("SELECT * FROM read_parquet('/etc/passwd')", 400),
    ] {
        let (s, body) = api.sql_status(sql);
        assert_eq!(s, status, "{sql}: {body}");
        ours.check("post", "/api/v1/sql", s, &body);
    }

    // CORS for Grafana's browser access: a preflight from the configured origin is allowed.
    let r = Api::client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/grafana/query", api.base),
        )
        .header("Origin", "https://grafana.example.com")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://grafana.example.com"
    );
}

impl Spec {
    /// The spec's `/query` request example (its schema's examples, assembled).
    fn example_query(&self) -> Value {
        json!({"panelId": 1,
            "range": {"from": "2016-10-31T06:33:44.866Z", "to": "2016-10-31T12:33:44.866Z", "raw": {"from": "now-6h", "to": "now"}},
            "rangeRaw": {"from": "now-6h", "to": "now"}, "interval": "30s", "intervalMs": 30000, "maxDataPoints": 550,
            "targets": [{"target": "Packets", "refId": "A", "payload": {"additional": "optional json"}}, {"target": "Errors", "refId": "B"}],
            "scopedVars": {"__interval": {"text": "1s", "value": "1s"}, "__interval_ms": {"text": 1000, "value": 1000}},
            "filters": [{"key": "City", "operator": "=", "value": "Berlin"}]})
    }
}
