//! Alerts and SLOs through the whole pipeline: live traffic into Kafka, rules evaluated by the
//! processor, notifications to a real Alertmanager process (Debian's `prometheus-alertmanager`)
//! and to webhook, Slack and PagerDuty receivers played by a local HTTP server that records
//! what it gets; SLOs over known traffic.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::openapi::Spec;
use crate::receivers::{Alertmanager, Recorder};
use crate::support::{wait_for, Api, Broker, Opslake, Setup, TestProducer};

/// Sends latency samples of services a, b and c every 200 ms, now-stamped, until dropped;
/// service a's are slow while `spike` is set.
struct Traffic {
    stop: Arc<AtomicBool>,
    spike: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(brokers: &str, topic: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let spike = Arc::new(AtomicBool::new(false));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&spike));
        let (brokers, topic) = (brokers.to_string(), topic.to_string());
        let thread = std::thread::spawn(move || {
            let producer = TestProducer::new(&brokers);
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                let now = chrono::Utc::now().timestamp_millis();
                let mut events = Vec::new();
                for svc in ["a", "b", "c"] {
                    for k in 0..10u64 {
                        i += 1;
                        let base = if svc == "a" && p.load(Ordering::Relaxed) {
                            900.0
                        } else {
                            100.0
                        };
                        events.push(json!({"timestamp": now, "service": svc,
                            "name": "http.server.duration", "value": base + ((i * 7 + k) % 100) as f64,
                            "unit": "ms"}));
                    }
                }
                producer.send_all(&topic, &events);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Self {
            stop,
            spike,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The P99High notifications of webhook bodies (Alertmanager's format): (service, status).
fn webhook_alerts(bodies: &[Value]) -> Vec<(String, String)> {
    bodies
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["alertname"] == "P99High")
        .map(|a| {
            (
                a["labels"]["service"].as_str().unwrap_or("").to_string(),
                a["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn start_opslake(setup: &Setup, config: &Path) -> Opslake {
    setup.spawn(
        "run",
        &[
            ("OPSLAKE_CONFIG", config.to_str().unwrap()),
            ("RUST_LOG", "info,rdkafka=warn,opslake_processor=debug"),
        ],
    )
}

/// A latency spike on one service fires once, reaches Alertmanager and every receiver, survives
/// a restart without firing again, and resolves once when it ends; the other services never
/// alert; a broken rule is reported; a receiver that fails at first gets its message.
#[test]
fn a_latency_spike_fires_once_everywhere_and_resolves_once() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, &dir.path().join("lake"), "alerts");
    let rec = Recorder::start();
    let am = Alertmanager::start(dir.path(), &format!("{}/am", rec.base));
    let config = dir.path().join("opslake.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[processor]
window = "5s"
interval = "1s"

[alerts]
interval = "1s"
resend_interval = "2s"

[[alerts.rules]]
name = "P99High"
sql = """SELECT service, quantile_merge(sketch, 0.99) AS value, max(window_start) AS at
         FROM metric_rollups_1m
         WHERE name = 'http.server.duration' AND window_start >= now() - INTERVAL '10 seconds'
         GROUP BY service HAVING quantile_merge(sketch, 0.99) > 500"""
for = "2s"
severity = "critical"
labels = {{ team = "payments" }}
annotations = {{ summary = "p99 of {{{{ service }}}} is {{{{ value }}}} ms" }}

[[alerts.budgets]]
scope = "provider"
key = "aws"
monthly = 1000.0

[[alerts.rules]]
name = "Broken"
sql = "SELECT service FROM no_such_table"

[[alerts.receivers]]
name = "am"
kind = "alertmanager"
url = "{am}"

[[alerts.receivers]]
name = "hook"
kind = "webhook"
url = "{rec}/webhook"
group_wait = "200ms"

[[alerts.receivers]]
name = "chat"
kind = "slack"
url = "{rec}/slack/T0KEN"
match = {{ team = "payments" }}

[[alerts.receivers]]
name = "pager"
kind = "pagerduty"
url = "{rec}/flaky-pd"
routing_key = "R0UTING-KEY"

[[alerts.receivers]]
name = "tickets"
kind = "webhook"
url = "{rec}/warnings"
match = {{ severity = "warning" }}
"#,
            am = am.url,
            rec = rec.base
        ),
    )
    .unwrap();
    let mut opslake = start_opslake(&setup, &config);
    let traffic = Traffic::start(&setup.brokers, &setup.topic("metrics"));
    let api = opslake.api();
    wait_for(
        "rollups of the three services",
        Duration::from_secs(60),
        || (api.count("SELECT count(DISTINCT service) FROM metric_rollups_1m") == 3).then_some(()),
    );
    // A rule whose query fails is reported, never silent.
    let broken = wait_for(
        "the broken rule to be reported",
        Duration::from_secs(30),
        || {
            let v: Value = api.get("/api/v1/alerts").json().ok()?;
            v["rule_errors"]
                .as_array()?
                .iter()
                .find(|e| e["rule"] == "Broken")
                .cloned()
        },
    );
    assert!(
        broken["error"].as_str().unwrap().contains("no_such_table"),
        "{broken}"
    );
    // The built-ins' own queries run (the only failing rule is the broken one).
    let listed: Value = api.get("/api/v1/alerts").json().unwrap();
    assert_eq!(
        listed["rule_errors"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    let active: Value = api.get("/api/v1/alerts").json().unwrap();
    assert!(
        active["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["alertname"] != "P99High"),
        "no spike, no alert: {active}"
    );

    traffic.spike.store(true, Ordering::Relaxed);
    let spiked = Instant::now();
    let in_am = wait_for(
        "Alertmanager to hold the alert",
        Duration::from_secs(60),
        || {
            am.alerts()
                .into_iter()
                .find(|a| a["labels"]["alertname"] == "P99High")
        },
    );
    println!(
        "alert in Alertmanager {:?} after the spike began",
        spiked.elapsed()
    );
    assert_eq!(in_am["labels"]["service"], "a");
    assert_eq!(in_am["labels"]["team"], "payments");
    assert_eq!(in_am["labels"]["severity"], "critical");
    assert!(in_am["annotations"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("p99 of a is 9"));
    wait_for(
        "every receiver to hear of it",
        Duration::from_secs(30),
        || {
            let am_hook = webhook_alerts(&rec.bodies("/am"));
            let hook = webhook_alerts(&rec.bodies("/webhook"));
            let slack = rec.bodies("/slack/T0KEN");
            let pd = rec.bodies("/flaky-pd");
            (am_hook.contains(&("a".into(), "firing".into()))
                && hook.contains(&("a".into(), "firing".into()))
                && !slack.is_empty()
                && !pd.is_empty())
            .then_some(())
        },
    );
    // PagerDuty's stand-in refused twice: retried with backoff, then delivered.
    let metrics = api.get("/metrics").text().unwrap();
    assert!(
        metrics.contains(
            "opslake_alert_notifications_total{outcome=\"retried\",receiver=\"pager\"} 2"
        ),
        "{metrics}"
    );
    let listed: Value = api.get("/api/v1/alerts?state=firing").json().unwrap();
    let mine = listed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alertname"] == "P99High")
        .cloned()
        .expect("the API lists the firing alert");
    assert_eq!(mine["labels"]["service"], "a");
    assert_eq!(mine["state"], "firing");
    let spec = Spec::opslake(&api.get("/api/v1/openapi.json").text().unwrap());
    spec.check("get", "/api/v1/alerts", 200, &listed);
    let fingerprint = mine["fingerprint"].as_str().unwrap().to_string();

    // Restart in the middle: the book in the lake says it is firing; nobody is told again.
    let before: Value = api.get("/api/v1/alerts").json().unwrap();
    let before = before["evaluated_at"].as_str().unwrap().to_string();
    assert_eq!(opslake.terminate(), Some(0), "{}", opslake.log());
    opslake = start_opslake(&setup, &config);
    let api = opslake.api();
    let after_restart = wait_for(
        "evaluations after the restart",
        Duration::from_secs(60),
        || {
            let v: Value = api.get("/api/v1/alerts").json().ok()?;
            let t = v["evaluated_at"].as_str()?.to_string();
            let firing = v["alerts"]
                .as_array()?
                .iter()
                .any(|a| a["fingerprint"] == fingerprint.as_str() && a["state"] == "firing");
            (firing && t > before).then_some(t)
        },
    );
    println!("evaluated after the restart at {after_restart}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        am.alerts()
            .iter()
            .any(|a| a["labels"]["alertname"] == "P99High"),
        "re-sends keep the alert active in Alertmanager"
    );

    traffic.spike.store(false, Ordering::Relaxed);
    wait_for("the resolve everywhere", Duration::from_secs(60), || {
        let am_hook = webhook_alerts(&rec.bodies("/am"));
        let hook = webhook_alerts(&rec.bodies("/webhook"));
        let pd = rec.bodies("/flaky-pd");
        let slack = rec.bodies("/slack/T0KEN");
        (am_hook.contains(&("a".into(), "resolved".into()))
            && hook.contains(&("a".into(), "resolved".into()))
            && pd.iter().any(|b| b["event_action"] == "resolve")
            && slack.iter().any(|b| {
                b["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("[RESOLVED"))
            })
            && !am
                .alerts()
                .iter()
                .any(|a| a["labels"]["alertname"] == "P99High"))
        .then_some(())
    });
    drop(traffic);

    // Once each, and only for service a.
    let hook = webhook_alerts(&rec.bodies("/webhook"));
    assert_eq!(
        hook,
        vec![
            ("a".to_string(), "firing".to_string()),
            ("a".into(), "resolved".into())
        ],
        "the webhook heard of it once firing and once resolved"
    );
    let am_hook = webhook_alerts(&rec.bodies("/am"));
    assert!(am_hook.iter().all(|(s, _)| s == "a"), "{am_hook:?}");
    let pd = rec.bodies("/flaky-pd");
    let actions: Vec<&str> = pd
        .iter()
        .filter_map(|b| b["event_action"].as_str())
        .collect();
    assert_eq!(actions, ["trigger", "resolve"], "{pd:?}");
    assert_eq!(pd[0]["dedup_key"], fingerprint.as_str());
    assert_eq!(pd[1]["dedup_key"], fingerprint.as_str());
    assert_eq!(pd[0]["routing_key"], "R0UTING-KEY");
    assert_eq!(pd[0]["payload"]["severity"], "critical");
    assert_eq!(pd[0]["payload"]["source"], "a");
    let slack = rec.bodies("/slack/T0KEN");
    let texts: Vec<&str> = slack.iter().filter_map(|b| b["text"].as_str()).collect();
    assert_eq!(texts, ["[FIRING:1] P99High", "[RESOLVED:1] P99High"]);
    for b in &slack {
        let fields = b["attachments"][0]["fields"].as_array().unwrap();
        assert!(
            fields
                .iter()
                .any(|f| f["title"] == "service" && f["value"] == "a"),
            "{b}"
        );
    }
    assert!(
        rec.bodies("/warnings").is_empty(),
        "routing: a critical alert is not a ticket"
    );

    // The history: once firing, once resolved.
    let rows = api.rows(
        "SELECT state, labels['service'] FROM alerts WHERE alertname = 'P99High' \
         AND state <> 'pending' ORDER BY at",
    );
    assert_eq!(
        rows,
        vec![
            vec![json!("firing"), json!("a")],
            vec![json!("resolved"), json!("a")]
        ]
    );
    let metrics = api.get("/metrics").text().unwrap();
    for receiver in ["am", "chat", "hook", "pager"] {
        assert!(
            metrics.contains(&format!(
                "opslake_alert_notifications_total{{outcome=\"sent\",receiver=\"{receiver}\"}}"
            )),
            "{metrics}"
        );
    }
    assert!(metrics.contains("opslake_alert_rule_errors_total{rule=\"Broken\"}"));
    let log = opslake.log();
    assert!(
        !log.contains("R0UTING-KEY") && !log.contains("T0KEN"),
        "secrets never logged"
    );
}

/// SLOs over known traffic: exact counts, SLI, budget and burn rates, `quantile_rank` agreeing
/// with them, and a fast burn paging through the built-in alert.
#[test]
fn slos_count_known_traffic_exactly() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, &dir.path().join("lake"), "slos");
    let config = dir.path().join("opslake.toml");
    std::fs::write(
        &config,
        r#"
[processor]
interval = "1s"

[alerts]
interval = "1s"

[[slos]]
name = "pay-latency"
kind = "latency"
service = "pay"
metric = "http.server.duration"
filter = { endpoint = "/api/pay" }
threshold = 300.0
objective = 0.9

[[slos]]
name = "pay-errors"
kind = "errors"
service = "pay"
objective = 0.99
"#,
    )
    .unwrap();
    let opslake = start_opslake(&setup, &config);
    let api = opslake.api();
    let t0 = chrono::Utc::now().timestamp_millis() - 120_000;
    let mut metrics = Vec::new();
    for i in 0..1000i64 {
        // 890 fast, 10 at the threshold itself, 100 slow; and other endpoints' samples that the
        // filter leaves out.
        let v = match i {
            0..890 => 100.0 + (i % 150) as f64,
            890..900 => 300.0,
            _ => 400.0 + (i % 500) as f64,
        };
        metrics.push(
            json!({"timestamp": t0 + i * 10, "service": "pay", "name": "http.server.duration",
            "value": v, "labels": {"endpoint": "/api/pay"}}),
        );
        metrics.push(
            json!({"timestamp": t0 + i * 10, "service": "pay", "name": "http.server.duration",
            "value": 5000.0, "labels": {"endpoint": "/api/other"}}),
        );
    }
    let mut logs = Vec::new();
    for i in 0..400i64 {
        let (level, status) = match i {
            0..10 => ("error", None),
            10..15 => ("fatal", None),
            15..23 => ("info", Some(503)),
            23..26 => ("error", Some(500)),
            _ => ("info", Some(200)),
        };
        let mut e =
            json!({"timestamp": t0 + i * 10, "service": "pay", "level": level, "message": "m"});
        if let Some(s) = status {
            e["status_code"] = json!(s);
        }
        logs.push(e);
    }
    let producer = TestProducer::new(&setup.brokers);
    producer.send_all(&setup.topic("metrics"), &metrics);
    producer.send_all(&setup.topic("logs"), &logs);
    api.wait_for_rollups_of(2000);
    let slos = wait_for(
        "both SLOs with all their events",
        Duration::from_secs(60),
        || {
            let v: Value = api.get("/api/v1/slos").json().ok()?;
            let by: BTreeMap<String, Value> = v["slos"]
                .as_array()?
                .iter()
                .map(|s| (s["slo"].as_str().unwrap().to_string(), s.clone()))
                .collect();
            let done =
                by.get("pay-latency")?["total"] == 1000 && by.get("pay-errors")?["total"] == 400;
            done.then_some(by)
        },
    );
    let listed: Value = api.get("/api/v1/slos").json().unwrap();
    Spec::opslake(&api.get("/api/v1/openapi.json").text().unwrap()).check(
        "get",
        "/api/v1/slos",
        200,
        &listed,
    );
    let errors = &slos["pay-errors"];
    assert_eq!(errors["good"], 374, "{errors}");
    let close = |v: &Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-9;
    assert!(close(&errors["sli"], 374.0 / 400.0), "{errors}");
    // 6.5% bad against a 1% budget: spent six and a half times over.
    assert!(
        close(&errors["error_budget_remaining"], 1.0 - 6.5),
        "{errors}"
    );
    for w in ["5m", "1h", "6h", "1d"] {
        assert!(
            close(&errors[format!("burn_rate_{w}")], 6.5),
            "{w}: {errors}"
        );
    }
    let latency = &slos["pay-latency"];
    // The 10 samples at exactly 300 share the threshold's bucket: good is 890 or 900.
    let good = latency["good"].as_i64().unwrap();
    assert!(good == 890 || good == 900, "{latency}");
    let bad_fraction = (1000 - good) as f64 / 1000.0;
    assert!(
        close(&latency["burn_rate_1h"], bad_fraction / 0.1),
        "{latency}"
    );
    assert!(close(&latency["sli"], good as f64 / 1000.0), "{latency}");
    // Users get the same rank from SQL.
    let rank = api.rows(
        "SELECT quantile_rank(sketch, 300) FROM metric_rollups_1m \
         WHERE service = 'pay' AND labels['endpoint'] = '/api/pay'",
    );
    assert!(close(&rank[0][0], good as f64 / 1000.0), "{rank:?}");
    // 6.5x over 6h and 30m: the workbook's second page.
    let page = wait_for("the burn-rate page", Duration::from_secs(30), || {
        let v: Value = api.get("/api/v1/alerts").json().ok()?;
        v["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["alertname"] == "OpslakeSLOBurnRate" && a["labels"]["slo"] == "pay-errors")
            .cloned()
    });
    assert_eq!(page["severity"], "critical", "{page}");
    assert!(
        page["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("6.5x over 6h"),
        "{page}"
    );

    // Grafana's JSON datasource draws the budget, the burn rates and the alerts' changes.
    let now = chrono::Utc::now();
    let range =
        json!({"from": (now - chrono::Duration::minutes(10)).to_rfc3339(), "to": now.to_rfc3339()});
    let grafana = |target: &str, payload: Value| -> Value {
        let body = json!({"range": range, "interval": "1s", "intervalMs": 1000, "maxDataPoints": 600,
            "targets": [{"target": target, "refId": "A", "payload": payload}]});
        let r = Api::client()
            .post(format!("{}/grafana/query", api.base))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{target}");
        r.json().unwrap()
    };
    let budget = grafana("slo", json!({"slo": "pay-errors", "show": "budget"}));
    assert_eq!(budget[0]["target"], "pay-errors", "{budget}");
    let last = budget[0]["datapoints"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!((last[0].as_f64().unwrap() + 5.5).abs() < 1e-9, "{budget}");
    let burn = grafana("slo", json!({"slo": "pay-errors", "show": "burn"}));
    assert_eq!(burn.as_array().unwrap().len(), 7, "{burn}");
    let changes = grafana("alerts", json!({"alertname": "OpslakeSLOBurnRate"}));
    let cols: Vec<&str> = changes[0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(&cols[..4], ["time", "title", "text", "tags"]);
    assert_eq!(
        changes[0]["rows"][0][1], "OpslakeSLOBurnRate firing",
        "{changes}"
    );
    let counts = grafana("alert_counts", json!({"group_by": "severity"}));
    assert_eq!(counts[0]["target"], "critical", "{counts}");
}

/// Ingest stops while events keep arriving: `OpslakePipeline` says how many messages wait on the
/// brokers, from the lake's own offsets and the brokers' watermarks; when ingest is back and
/// has caught up, the alert resolves.
#[test]
fn stuck_ingest_pages_with_the_events_waiting() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, &dir.path().join("lake"), "stuck");
    let env = [
        ("OPSLAKE_PROCESSOR__INTERVAL", "1s"),
        ("OPSLAKE_ALERTS__INTERVAL", "1s"),
        ("OPSLAKE_ALERTS__STUCK_AFTER", "3s"),
    ];
    let producer = TestProducer::new(&setup.brokers);
    let event = |i: i64| {
        json!({"timestamp": chrono::Utc::now().timestamp_millis(), "service": "s",
            "name": "http.server.duration", "value": i})
    };
    let mut run = setup.spawn("run", &env);
    producer.send_all(&setup.topic("metrics"), &[event(1)]);
    run.api().wait_for_rollups_of(1);
    assert_eq!(run.terminate(), Some(0));

    // The processor and the API run; ingest does not.
    let _process = setup.spawn_listening("process", &env);
    let serve = setup.spawn("serve", &env);
    let api = serve.api();
    // One event per message, each in a record batch of its own (Tansu's high watermark counts
    // a batch as one), on partitions the lake may have no offset of yet.
    for i in 0..250 {
        producer.send(
            &setup.topic("metrics"),
            None,
            event(i).to_string().as_bytes(),
        );
        producer.flush();
    }
    // Each partition counts once its messages have waited `stuck_after`: all 250 soon.
    let alert = wait_for("the stuck-ingest alert", Duration::from_secs(60), || {
        let v: Value = api.get("/api/v1/alerts").json().ok()?;
        v["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["problem"] == "consumer_lag" && a["value"] == 250.0)
            .cloned()
    });
    assert_eq!(alert["alertname"], "OpslakePipeline");
    assert_eq!(alert["labels"]["topic"], setup.topic("metrics").as_str());
    assert!(alert["annotations"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("250 messages of"));

    // Ingest is back: the backlog drains and the alert resolves.
    let _ingest = setup.spawn_listening("ingest", &env);
    wait_for("the resolve", Duration::from_secs(60), || {
        let v: Value = api.get("/api/v1/alerts").json().ok()?;
        let open = v["alerts"]
            .as_array()?
            .iter()
            .any(|a| a["labels"]["problem"] == "consumer_lag");
        (!open).then_some(())
    });
}
