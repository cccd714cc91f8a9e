//! Billing through Kafka into daily costs, forecasts and opportunities, and forecast reports
//! that appear on a schedule without a manual step: stored, listed and served by the API,
//! POSTed to a webhook and produced to a topic; and `opslake report forecast` on demand.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{json, Value};

use crate::support::{assert_same_answers, wait_for, Api, Broker, Setup, TestProducer};

/// 2026-09-01, a Tuesday.
const FIRST: i64 = 1_788_220_800_000;
const DAY: i64 = 86_400_000;
const DAYS: i64 = 35;

fn rfc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Daily billing rows of a fleet with one resource of each opportunity kind, three healthy ones
/// and, on one day, a spike; FOCUS names and contract names mixed.
fn fleet() -> Vec<Value> {
    let res = [
        ("vm-a", "gcp", "compute", 10.0),
        ("vm-b", "azure", "compute", 10.5),
        ("vm-c", "aws", "compute", 11.0),
        ("db-idle", "gcp", "database", 20.0),
        ("db-under", "azure", "database", 20.0),
        ("db-over", "aws", "database", 20.0),
        ("dc-1", "on-prem", "compute", 20.0),
    ];
    let mut out = Vec::new();
    for d in 0..DAYS {
        let start = FIRST + d * DAY;
        let weekend = if matches!(d % 7, 4 | 5) { 0.8 } else { 1.0 };
        for (i, (id, provider, rtype, cost)) in res.iter().enumerate() {
            let util = match *id {
                "db-idle" if d >= DAYS - 3 => 0.003,
                "db-under" => 0.1 + 0.02 * (d % 3) as f64,
                "db-over" => 0.35 + 0.02 * (d % 4) as f64,
                _ => 0.55 + 0.1 * ((d + i as i64) % 4) as f64,
            };
            let cost = cost * weekend * (1.0 + 0.005 * d as f64);
            let event = if i % 2 == 0 {
                json!({"ChargePeriodStart": rfc(start), "ChargePeriodEnd": rfc(start + DAY),
                    "ProviderName": provider, "ServiceName": format!("{rtype} service"),
                    "ResourceId": id, "ResourceType": rtype, "RegionId": "region-1",
                    "ConsumedQuantity": "24", "ConsumedUnit": "Hours",
                    "BilledCost": format!("{cost:.6}"), "x_Utilization": util,
                    "Tags": "{\"team\": \"platform\"}"})
            } else {
                json!({"charge_period_start": start, "charge_period_end": start + DAY,
                    "provider": provider, "service": format!("{rtype} service"),
                    "resource_id": id, "resource_type": rtype, "region": "region-1",
                    "usage_quantity": 24, "usage_unit": "Hours", "cost": cost,
                    "utilization": util, "tags": {"team": "data"}})
            };
            out.push(event);
        }
    }
    out
}

/// A tiny HTTP server that answers 200 to every request and keeps the bodies of POSTs.
struct Webhook {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Webhook {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_ok() {
                    keep.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&body).into_owned());
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            }
        });
        Self { url, bodies }
    }
}

fn report_ids_on_topic(brokers: &str, topic: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "e2e-report-reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut ids = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let body: Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            assert_eq!(
                m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                body["report_id"].as_str().map(str::to_string),
                "the message key is the report id"
            );
            ids.push(body["report_id"].as_str().unwrap().to_string());
        }
    }
    ids
}

#[test]
fn billing_becomes_costs_forecasts_opportunities_and_scheduled_reports() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "costs");
    let hook = Webhook::start();
    let report_topic = setup.topic("reports");
    // A budget the month will overrun, and one it will not.
    let config = lake.path().join("budgets.toml");
    std::fs::write(
        &config,
        "[alerts]\ninterval = \"1s\"\n\
         [[alerts.budgets]]\nscope = \"total\"\nmonthly = 100.0\n\
         [[alerts.budgets]]\nscope = \"provider\"\nkey = \"aws\"\nmonthly = 1e9\n",
    )
    .unwrap();
    let opslake = setup.spawn(
        "run",
        &[
            ("OPSLAKE_CONFIG", config.to_str().unwrap()),
            ("OPSLAKE_PROCESSOR__INTERVAL", "1s"),
            ("OPSLAKE_REPORTS__SCHEDULE", "*/3 * * * * *"),
            ("OPSLAKE_REPORTS__WEBHOOK_URL", &hook.url),
            ("OPSLAKE_REPORTS__TOPIC", &report_topic),
            ("OPSLAKE_REPORTS__RETRY_DELAY", "1s"),
        ],
    );
    let api = opslake.api();

    let events = fleet();
    let p = TestProducer::new(&setup.brokers);
    for chunk in events.chunks(40) {
        p.send(
            &setup.topic("billing"),
            None,
            Value::Array(chunk.to_vec()).to_string().as_bytes(),
        );
    }
    p.flush();
    let n = events.len() as i64;
    wait_for("every billing row", Duration::from_secs(60), || {
        (api.count("SELECT count(*) FROM billing") == n).then_some(())
    });
    wait_for("the total's forecast", Duration::from_secs(60), || {
        (api.count("SELECT count(*) FROM cost_forecasts WHERE scope = 'total'") == 30).then_some(())
    });

    // cost_daily is exactly what the raw rows imply.
    let from_raw = api.rows(
        "SELECT CAST(charge_period_start AS DATE) AS d, sum(cost), count(*) \
         FROM billing GROUP BY 1 ORDER BY 1",
    );
    let daily = api
        .rows("SELECT date, sum(cost), sum(\"rows\") FROM cost_daily GROUP BY date ORDER BY date");
    assert_eq!(daily.len(), DAYS as usize);
    // Sums of floats in another order: equal but for the last digits.
    assert_same_answers(&daily, &from_raw, "cost_daily against the raw rows");

    // Forecasts start the day after the last complete day and come with ordered intervals.
    let f = api.rows(
        "SELECT min(date), max(date), min(as_of), \
         sum(CASE WHEN lower_95 <= lower_80 AND lower_80 <= forecast AND forecast <= upper_80 \
             AND upper_80 <= upper_95 THEN 1 ELSE 0 END), count(*) \
         FROM cost_forecasts WHERE scope = 'total'",
    );
    assert_eq!(f[0][0], json!("2026-10-06"));
    assert_eq!(f[0][1], json!("2026-11-04"));
    assert_eq!(f[0][2], json!("2026-10-05"));
    assert_eq!(f[0][3], f[0][4]);
    let methods = api.rows(
        "SELECT scope, count(DISTINCT key) FROM forecast_accuracy WHERE chosen GROUP BY scope ORDER BY scope",
    );
    assert_eq!(
        methods,
        vec![
            vec![json!("provider"), json!(4)],
            vec![json!("resource"), json!(7)],
            vec![json!("service"), json!(2)],
            vec![json!("total"), json!(1)],
        ]
    );

    // One opportunity of each kind; the healthy machines are left alone.
    let kinds = api.rows(
        "SELECT resource_id, kind, estimated_monthly_savings > 0 AND recommendation <> '' \
         FROM cost_opportunities ORDER BY resource_id",
    );
    assert_eq!(
        kinds,
        vec![
            vec![json!("db-idle"), json!("idle"), json!(true)],
            vec![json!("db-over"), json!("oversized"), json!(true)],
            vec![json!("db-under"), json!("underutilized"), json!(true)],
            vec![json!("dc-1"), json!("provider_disparity"), json!(true)],
        ]
    );

    // A scheduled report with the forecast appears by itself.
    let client = Api::client();
    let listed = wait_for(
        "a scheduled report with a forecast",
        Duration::from_secs(60),
        || {
            let r: Value = client
                .get(format!("{}/api/v1/reports", api.base))
                .send()
                .unwrap()
                .json()
                .unwrap();
            r["reports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["trigger"] == json!("schedule") && !r["month_end_forecast"].is_null())
                .cloned()
        },
    );
    let id = listed["report_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("forecast-"), "{id}");
    let doc: Value = client
        .get(format!("{}/api/v1/reports/{id}", api.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(doc["report_id"], json!(id));
    assert_eq!(doc["as_of"], json!("2026-10-05"));
    assert_eq!(doc["period_start"], json!("2026-10-01"));
    assert_eq!(doc["opportunities"].as_array().unwrap().len(), 4);
    assert!(doc["month_end"]["lower_80"].as_f64() <= doc["month_end"]["forecast"].as_f64());

    // The month-end forecast over the total's budget pages, with the report's figures.
    let over = wait_for("the budget alert", Duration::from_secs(30), || {
        let v: Value = client
            .get(format!("{}/api/v1/alerts", api.base))
            .send()
            .ok()?
            .json()
            .ok()?;
        let found: Vec<Value> = v["alerts"]
            .as_array()?
            .iter()
            .filter(|a| a["alertname"] == "OpslakeCostBudget")
            .cloned()
            .collect();
        (!found.is_empty()).then_some(found)
    });
    assert_eq!(over.len(), 1, "only the total is over: {over:?}");
    assert_eq!(over[0]["labels"]["scope"], "total");
    let forecast = doc["month_end"]["forecast"].as_f64().unwrap();
    let value = over[0]["value"].as_f64().unwrap();
    assert!(
        (value - forecast).abs() <= 1e-6 * forecast,
        "{value} against {forecast}"
    );
    assert!(
        over[0]["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("against a budget of 100"),
        "{over:?}"
    );
    let page = client
        .get(format!("{}/api/v1/reports/{id}", api.base))
        .header("Accept", "text/html")
        .send()
        .unwrap();
    assert!(page
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = page.text().unwrap();
    assert!(page.contains("<svg") && page.contains("db-idle") && page.contains(&id));
    assert_eq!(
        client
            .get(format!("{}/api/v1/reports/no-such-report", api.base))
            .send()
            .unwrap()
            .status(),
        404
    );

    // Delivered: POSTed to the webhook and produced to the topic.
    wait_for("the webhook's copy", Duration::from_secs(30), || {
        hook.bodies
            .lock()
            .unwrap()
            .iter()
            .any(|b| serde_json::from_str::<Value>(b).is_ok_and(|v| v["report_id"] == json!(id)))
            .then_some(())
    });
    wait_for("the topic's copy", Duration::from_secs(30), || {
        report_ids_on_topic(&setup.brokers, &report_topic)
            .contains(&id)
            .then_some(())
    });

    // On demand, from the command line.
    let out_dir = tempfile::tempdir().unwrap();
    let html = out_dir.path().join("report.html");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opslake"))
        .args(["report", "forecast", "--no-refresh", "--html"])
        .arg(&html)
        .env("OPSLAKE_LAKE", &setup.lake)
        .env("OPSLAKE_BROKERS", &setup.brokers)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("month-end forecast"), "{stdout}");
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
    let manual = stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("report "))
        .unwrap()
        .to_string();
    wait_for(
        "the manual report in the list",
        Duration::from_secs(10),
        || {
            let r: Value = client
                .get(format!("{}/api/v1/reports", api.base))
                .send()
                .unwrap()
                .json()
                .unwrap();
            r["reports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["report_id"] == json!(manual) && r["trigger"] == json!("manual"))
                .then_some(())
        },
    );
}

/// Bills are free text: a currency, a service and a resource id holding markup reach the report
/// (the file and the API's page) escaped, never as markup.
#[test]
fn markup_in_a_bill_never_reaches_a_report_as_markup() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "xss");
    let opslake = setup.spawn("run", &[("OPSLAKE_PROCESSOR__INTERVAL", "1s")]);
    let api = opslake.api();
    let payloads = [
        "<img src=x onerror=alert(1)>",
        "<script>alert(2)</script>",
        "\"><svg onload=alert(3)>",
    ];
    let p = TestProducer::new(&setup.brokers);
    let mut sent = 0;
    for d in 0..21 {
        for (i, x) in payloads.iter().enumerate() {
            let event = json!({"charge_period_start": FIRST + d * DAY,
                "charge_period_end": FIRST + (d + 1) * DAY, "provider": "aws",
                "service": x, "resource_id": format!("{x}-{i}"), "currency": x,
                "resource_type": "compute", "cost": 10.0 + i as f64, "utilization": 0.001});
            p.send(&setup.topic("billing"), None, event.to_string().as_bytes());
            sent += 1;
        }
    }
    p.flush();
    wait_for("the bills in cost_daily", Duration::from_secs(90), || {
        (api.count("SELECT coalesce(sum(\"rows\"), 0) FROM cost_daily") == sent).then_some(())
    });
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("report.html");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opslake"))
        .args(["report", "forecast", "--no-refresh", "--html"])
        .arg(&file)
        .env("OPSLAKE_LAKE", &setup.lake)
        .env("OPSLAKE_BROKERS", &setup.brokers)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("report "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no report id in {stdout}"))
        .to_string();
    let served = Api::client()
        .get(format!("{}/api/v1/reports/{id}", api.base))
        .header("Accept", "text/html")
        .send()
        .unwrap();
    let csp = served.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "no script may run: {csp}");
    for (what, page) in [
        ("the file", std::fs::read_to_string(&file).unwrap()),
        ("the API's page", served.text().unwrap()),
    ] {
        for raw in ["<img", "<script", "onload=alert(3)>", "\"><svg"] {
            assert!(!page.contains(raw), "{what} holds {raw} unescaped");
        }
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{what} shows the bill's text, escaped"
        );
    }
}
