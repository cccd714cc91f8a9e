//! The web console in a real headless Chromium: every page loads with demo data, shows the
//! figures SQL answers, draws its charts, logs no error in the browser's console, fits a
//! phone's width; the SQL page runs queries from its URL and its editor and downloads CSV; the
//! token is asked for once and never put in a URL. Screenshots of every page land in
//! `target/console-screenshots/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::openapi::Spec;
use crate::support::{wait_for, Api, Broker, Setup, TestProducer};

const HOUR_MS: i64 = 3_600_000;

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots")
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn f64_of(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
        "{what}: the page shows {a}, SQL answers {b}"
    );
}

/// The `data-value` of the element at `css`.
fn value_at(b: &Browser, css: &str) -> f64 {
    let v = b.js(
        "const e = document.querySelector(arguments[0]); return e ? e.dataset.value : null",
        vec![json!(css)],
    );
    f64_of(&v)
}

/// Checks the page fits `width` (no horizontal scrolling) and logged no error.
fn fits_and_is_clean(b: &Browser, page: &str) {
    let widths = b.js(
        "return [document.documentElement.scrollWidth, window.innerWidth]",
        vec![],
    );
    assert!(
        widths[0].as_i64() <= widths[1].as_i64(),
        "{page} scrolls sideways: {widths}"
    );
    let errors = b.console_errors();
    assert!(errors.is_empty(), "{page} logged errors: {errors:#?}");
}

/// Every page with demo data, on a laptop's and a phone's screen.
#[test]
fn every_console_page_shows_what_sql_answers() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "console");
    let config = lake.path().join("opslake.toml");
    std::fs::write(
        &config,
        r#"
[[slos]]
name = "checkout-latency"
kind = "latency"
service = "checkout"
metric = "http.server.duration"
threshold = 300.0
objective = 0.95

[[alerts.budgets]]
scope = "total"
monthly = 20000.0
"#,
    )
    .unwrap();
    let opslake = setup.spawn("run", &[("OPSLAKE_CONFIG", config.to_str().unwrap())]);
    let api = opslake.api();

    // Six weeks of bills, then six hours of full demo traffic ending now, and one bad message.
    let now = now_ms();
    let six_hours_ago = now - now.rem_euclid(60_000) - 6 * HOUR_MS;
    let weeks_ago = six_hours_ago - 45 * 24 * HOUR_MS;
    setup.produce(&[
        "--only",
        "billing",
        "--start",
        &rfc3339(weeks_ago - weeks_ago.rem_euclid(HOUR_MS)),
        "--end",
        &rfc3339(six_hours_ago),
        "--step",
        "1h",
        "--seed",
        "1",
    ]);
    setup.produce(&[
        "--start",
        &rfc3339(six_hours_ago),
        "--step",
        "500ms",
        "--count",
        "43000",
        "--seed",
        "1",
    ]);
    let producer = TestProducer::new(&setup.brokers);
    producer.send(&setup.topic("metrics"), None, b"{\"service\": 42}");
    producer.flush();

    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let metrics = api.count("SELECT count(*) FROM metrics");
        let rolled = api.count("SELECT coalesce(sum(count), 0) FROM metric_rollups_1m");
        let logs = api.count("SELECT count(*) FROM logs");
        let log_rolled = api.count("SELECT coalesce(sum(count), 0) FROM log_rollups_1m");
        let forecasts = api.count("SELECT count(*) FROM cost_forecasts");
        let slo = api.count("SELECT count(*) FROM slo_status");
        let dead = api.count("SELECT count(*) FROM dead_letters");
        // The dead letter's alert firing: the alerts have settled before pages are compared.
        let alerts = api.get("/api/v1/alerts").json::<Value>().unwrap();
        let evaluated = alerts["evaluated_at"].is_string()
            && alerts["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["alertname"] == "OpslakePipeline" && a["state"] == "firing");
        let state = format!(
            "metrics {metrics} (rolled up {rolled}), logs {logs} (rolled up {log_rolled}), \
             forecasts {forecasts}, slo_status {slo}, dead letters {dead}, evaluated and firing {evaluated}"
        );
        if metrics > 0
            && rolled == metrics
            && log_rolled == logs
            && forecasts > 0
            && slo > 0
            && dead == 1
            && evaluated
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the demo data was not rolled up, costed and alerted on in time: {state}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let base = api.base.clone();
    let browser = Browser::start(1280, 900);
    let shots = screenshots();

    // A screenshot of the whole page, then the window as it was.
    let shot = |name: &str| {
        browser.screenshot_page(&shots.join(format!("{name}.png")), 1280);
        browser.resize(1280, 900);
    };
    overview(&browser, &api, &base);
    shot("overview");
    let service = service_page(&browser, &api);
    shot("service");
    costs(&browser, &api, &base);
    shot("costs");
    alerts(&browser, &api, &base);
    shot("alerts");
    sql_page(&browser, &api, &base);
    shot("sql");
    pipeline(&browser, &api, &base);
    shot("pipeline");

    // The range picker puts the range in the URL and draws the page again; auto refresh
    // draws it again on its own.
    browser.open(&format!("{base}/alerts"));
    browser.js(
        "const s = document.getElementById('range'); s.value = '7d'; \
         s.dispatchEvent(new Event('change'))",
        vec![],
    );
    browser.wait_ready("the alerts page over 7 days");
    assert!(browser.current_url().ends_with("/alerts?range=7d"));
    browser.open(&format!("{base}/alerts?range=7d&refresh=10s"));
    let first = browser.text("#updated");
    wait_for("an automatic refresh", Duration::from_secs(40), || {
        (browser.text("#updated") != first).then_some(())
    });
    assert!(browser.count("[data-chart=error-budget] svg") == 1);
    fits_and_is_clean(&browser, "/alerts after a refresh");

    // A phone: every page renders without sideways scrolling, charts included.
    browser.resize(390, 844);
    for (name, path) in [
        ("overview", "/?range=24h".to_string()),
        ("service", format!("/services/{service}?range=24h")),
        ("costs", "/costs".to_string()),
        ("alerts", "/alerts".to_string()),
        ("sql", "/sql?q=SELECT%20service%2C%20count(*)%20AS%20n%20FROM%20metrics%20GROUP%20BY%20service".to_string()),
        ("pipeline", "/pipeline".to_string()),
    ] {
        browser.open(&format!("{base}{path}"));
        assert!(browser.count(".chart svg") > 0 || name == "sql", "{name} draws a chart on a phone");
        fits_and_is_clean(&browser, &format!("{name} on a phone"));
        browser.screenshot(&shots.join(format!("phone-{name}.png")));
    }
}

/// Alerts firing now.
fn firing(api: &Api) -> f64 {
    api.get("/api/v1/alerts").json::<Value>().unwrap()["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "firing")
        .count() as f64
}

/// The page's count of alerts firing is the API's, before or after it loaded (an evaluation
/// may land in between).
fn firing_as_the_api_says(shown: f64, before: f64, after: f64) {
    assert!(
        shown == before || shown == after,
        "the page shows {shown} alerts firing, the API {before} then {after}"
    );
}

fn overview(b: &Browser, api: &Api, base: &str) {
    let before = firing(api);
    b.open(&format!("{base}/?range=24h"));
    assert_eq!(b.text("h1"), "Services");
    let want = api.rows(
        "SELECT service, sum(count), quantile_merge(sketch, 0.99) FROM metric_rollups_1m \
         WHERE name = 'http.server.duration' GROUP BY service ORDER BY service",
    );
    let mut names: Vec<String> = want
        .iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect();
    for r in api.rows("SELECT DISTINCT service FROM log_rollups_1m") {
        let s = r[0].as_str().unwrap().to_string();
        if !names.contains(&s) {
            names.push(s);
        }
    }
    names.sort();
    let shown: Vec<String> = serde_json::from_value(b.js(
        "return [...document.querySelectorAll('td[data-value]:first-child')].map(td => td.dataset.value)",
        vec![],
    ))
    .unwrap();
    let mut sorted = shown.clone();
    sorted.sort();
    assert_eq!(sorted, names, "the services table lists every service");
    for row in &want {
        let service = row[0].as_str().unwrap();
        let i = shown.iter().position(|s| s == service).unwrap() + 1;
        let css = format!("tbody tr:nth-child({i}) td:nth-child(6)");
        close(
            value_at(b, &css),
            f64_of(&row[2]),
            &format!("p99 of {service}"),
        );
        let css = format!("tbody tr:nth-child({i}) td:nth-child(2)");
        close(
            value_at(b, &css),
            f64_of(&row[1]),
            &format!("requests of {service}"),
        );
    }
    let total = api.rows(
        "SELECT sum(count), quantile_merge(sketch, 0.99) FROM metric_rollups_1m \
         WHERE name = 'http.server.duration'",
    );
    close(
        value_at(b, "[data-figure=requests]"),
        f64_of(&total[0][0]),
        "requests",
    );
    close(
        value_at(b, "[data-figure=p99]"),
        f64_of(&total[0][1]),
        "overall p99",
    );
    let errors =
        api.rows("SELECT sum(error_count + fatal_count) * 1.0 / sum(count) FROM log_rollups_1m");
    close(
        value_at(b, "[data-figure=error-rate]"),
        f64_of(&errors[0][0]),
        "error rate",
    );
    firing_as_the_api_says(value_at(b, "[data-figure=alerts]"), before, firing(api));
    assert_eq!(
        b.count("[data-chart=p99-by-service] path.line"),
        names.len(),
        "one p99 line per service"
    );
    assert_eq!(
        b.count("td svg.spark path"),
        names.len(),
        "a sparkline per service"
    );
    assert!(b.text("[data-figure=p99] .figure-value").ends_with("ms"));
    fits_and_is_clean(b, "/");
}

/// Follows the overview's first service link; answers the service.
fn service_page(b: &Browser, api: &Api) -> String {
    // Detection may judge a window while the page loads: counts are read before and after.
    let first = b.text("tbody tr:first-child td:first-child a");
    let anomalies = |s: &str| {
        api.count(&format!(
            "SELECT count(*) FROM anomalies WHERE service = '{s}' \
             AND name = 'http.server.duration' AND window_start >= now() - INTERVAL '24 hours'"
        ))
    };
    let regressions = |s: &str| {
        api.rows(&format!(
            "SELECT version_before, version_after FROM regressions WHERE service = '{s}' \
             AND name = 'http.server.duration' AND change_at >= now() - INTERVAL '24 hours'"
        ))
    };
    let anomalies_before = anomalies(&first);
    let regressions_before = regressions(&first);
    b.click("tbody tr:first-child td:first-child a");
    b.wait_ready("a service page");
    let url = b.current_url();
    let service = url
        .split("/services/")
        .nth(1)
        .and_then(|s| s.split('?').next())
        .unwrap()
        .to_string();
    assert!(url.contains("range=24h"), "the link keeps the range: {url}");
    assert!(b.text("h1").ends_with(&service));
    let want = api.rows(&format!(
        "SELECT sum(count), quantile_merge(sketch, 0.5), quantile_merge(sketch, 0.95), \
         quantile_merge(sketch, 0.99) FROM metric_rollups_1m \
         WHERE service = '{service}' AND name = 'http.server.duration'"
    ));
    for (i, k) in ["requests", "p50", "p95", "p99"].iter().enumerate() {
        close(
            value_at(b, &format!("[data-figure={k}]")),
            f64_of(&want[0][i]),
            &format!("{service} {k}"),
        );
    }
    assert_eq!(
        b.count("[data-chart=latency] path.line"),
        3,
        "p50, p95 and p99"
    );
    assert_eq!(service, first);
    let markers = b.count("[data-chart=latency] circle.marker") as i64;
    let after = anomalies(&service);
    assert!(
        (anomalies_before..=after).contains(&markers),
        "{markers} anomaly markers, SQL {anomalies_before} then {after}"
    );
    let lines = b.count("[data-chart=latency] g.vline");
    let after = regressions(&service).len();
    assert!(
        (regressions_before.len()..=after).contains(&lines),
        "{lines} regression lines, SQL {} then {after}",
        regressions_before.len()
    );
    let regressions = regressions_before;
    let labels = b.texts("[data-chart=latency] g.vline text");
    for r in &regressions {
        let v = format!(
            "{} → {}",
            r[0].as_str().unwrap_or("?"),
            r[1].as_str().unwrap_or("?")
        );
        assert!(labels.iter().any(|l| l.contains(&v)), "{v} in {labels:?}");
    }
    // Pointing at the latency chart shows the percentiles at that time.
    let tip = b.js(
        "const svg = document.querySelector('[data-chart=latency] svg'); \
         const r = svg.getBoundingClientRect(); \
         svg.dispatchEvent(new PointerEvent('pointermove', \
           {clientX: r.left + r.width * 0.9, clientY: r.top + r.height / 2, bubbles: true})); \
         const tip = document.querySelector('[data-chart=latency] .tip'); \
         return tip.hidden ? null : tip.innerText",
        vec![],
    );
    let tip = tip.as_str().expect("a tooltip");
    for p in ["p50: ", "p95: ", "p99: ", " ms"] {
        assert!(tip.contains(p), "{p} in the tooltip {tip:?}");
    }
    assert!(b.count("[data-chart=error-rate] path.line") >= 1);
    assert!(b.count("[data-chart=throughput] path.line") >= 1);
    let endpoints: Vec<String> = api
        .rows(&format!(
            "SELECT DISTINCT labels['endpoint'] FROM metric_rollups_1m WHERE service = '{service}'"
        ))
        .iter()
        .map(|r| r[0].as_str().unwrap_or("").to_string())
        .collect();
    let body = b.text("body");
    for e in &endpoints {
        assert!(body.contains(e.as_str()), "endpoint {e} listed");
    }
    fits_and_is_clean(b, "a service page");
    service
}

fn costs(b: &Browser, api: &Api, base: &str) {
    b.open(&format!("{base}/costs"));
    let mtd = api.rows(
        "SELECT coalesce(sum(cost), 0) FROM cost_daily \
         WHERE date >= date_trunc('month', now())",
    );
    close(
        value_at(b, "[data-figure=month-to-date]"),
        f64_of(&mtd[0][0]),
        "month to date",
    );
    let next30 = api.rows(
        "SELECT sum(forecast) FROM (SELECT forecast FROM cost_forecasts \
         WHERE scope = 'total' AND generated_at = (SELECT max(generated_at) FROM cost_forecasts \
         WHERE scope = 'total') ORDER BY date LIMIT 30)",
    );
    close(
        value_at(b, "[data-figure=next-30-days]"),
        f64_of(&next30[0][0]),
        "next 30 days",
    );
    assert!(
        b.count("[data-chart=daily-cost] .bars rect") > 0,
        "daily cost bars"
    );
    assert_eq!(
        b.count("[data-chart=daily-cost] path.band"),
        2,
        "the 80% and 95% bands"
    );
    assert_eq!(b.count("[data-chart=daily-cost] path.line.forecast"), 1);
    let opportunities = api
        .count("SELECT count(*) FROM cost_opportunities")
        .min(100);
    let savings = b.js(
        "return [...document.querySelectorAll('td[data-value]')].length",
        vec![],
    );
    assert_eq!(
        savings.as_i64().unwrap(),
        opportunities,
        "one row per opportunity"
    );
    if opportunities > 0 {
        // The first opportunity shows its resource's daily cost.
        assert!(b.count("[data-chart=resource-cost] .bars rect") > 0);
    }
    assert!(b.text("body").contains("$20,000"), "the budget is listed");
    fits_and_is_clean(b, "/costs");
}

fn alerts(b: &Browser, api: &Api, base: &str) {
    let before = firing(api);
    b.open(&format!("{base}/alerts"));
    firing_as_the_api_says(value_at(b, "[data-figure=firing]"), before, firing(api));
    let slos = api.get("/api/v1/slos").json::<Value>().unwrap();
    let budget = f64_of(&slos["slos"][0]["error_budget_remaining"]);
    let shown = b.js(
        "return [...document.querySelectorAll('td[data-value]')].map(td => Number(td.dataset.value))",
        vec![],
    );
    close(f64_of(&shown[0]), budget, "the SLO's error budget left");
    assert!(b.text("body").contains("checkout-latency"));
    assert!(
        b.count("[data-chart=error-budget] path.line") == 1,
        "the burn-down"
    );
    fits_and_is_clean(b, "/alerts");
}

fn sql_page(b: &Browser, api: &Api, base: &str) {
    // From the URL.
    let q = "SELECT service, count(*) AS n FROM metrics GROUP BY service ORDER BY service";
    b.open(&format!(
        "{base}/sql?q={}",
        q.replace(' ', "%20")
            .replace('*', "%2A")
            .replace(',', "%2C")
    ));
    let want = api.rows(q);
    let rows = b.texts("#sql-table tbody tr");
    assert_eq!(rows.len(), want.len());
    for (shown, r) in rows.iter().zip(&want) {
        assert_eq!(
            shown.split_whitespace().collect::<Vec<_>>().join(" "),
            format!("{} {}", r[0].as_str().unwrap(), r[1]),
        );
    }
    assert!(
        b.count("[data-chart=sql] .cat rect") > 0,
        "a bar chart of the result"
    );
    // From the editor: the query lands in the URL.
    let q2 = "SELECT window_start, sum(count) AS n FROM metric_rollups_1m GROUP BY window_start ORDER BY window_start";
    b.type_into("#sql-editor", q2);
    b.click("#sql-run");
    wait_for("the editor's query to run", Duration::from_secs(30), || {
        (b.current_url().contains("window_start")
            && b.js("return document.body.dataset.state", vec![]) == "ready")
            .then_some(())
    });
    let want = api.rows(q2);
    assert_eq!(b.count("#sql-table tbody tr"), want.len().min(1000));
    assert_eq!(
        b.count("[data-chart=sql] path.line"),
        1,
        "a time series chart"
    );
    // A bad query answers the engine's error, and the page stays usable.
    b.type_into("#sql-editor", "SELECT nope FROM metrics");
    b.click("#sql-run");
    wait_for("the error", Duration::from_secs(30), || {
        (b.count("#sql-error") == 1).then_some(())
    });
    assert!(b.text("#sql-error").contains("nope"));
    let _ = b.console_errors(); // the 400 of the bad query is expected
                                // CSV download equals the API's CSV.
    b.type_into("#sql-editor", q);
    b.click("#sql-csv");
    let file = b.downloaded("opslake.csv", Duration::from_secs(30));
    let got = std::fs::read_to_string(file).unwrap();
    let csv = Api::client()
        .post(format!("{base}/api/v1/sql"))
        .header("accept", "text/csv")
        .json(&json!({ "sql": q }))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(got, csv);
    fits_and_is_clean(b, "/sql");
}

fn pipeline(b: &Browser, api: &Api, base: &str) {
    // The console's own endpoints answer as the OpenAPI document says.
    let spec = Spec::opslake(&api.get("/api/v1/openapi.json").text().unwrap());
    let answer = api.get("/api/v1/pipeline").json::<Value>().unwrap();
    spec.check("get", "/api/v1/pipeline", 200, &answer);
    assert!(
        answer["backlog"]["checked_at"].is_string(),
        "the processor measured the backlog: {answer}"
    );
    for job in answer["processor"].as_array().unwrap() {
        assert!(
            job["version"].is_u64(),
            "every rollup job has progress: {job}"
        );
    }
    let budgets = api.get("/api/v1/budgets").json::<Value>().unwrap();
    spec.check("get", "/api/v1/budgets", 200, &budgets);
    assert_eq!(budgets["budgets"][0]["monthly"], 20000.0);

    b.open(&format!("{base}/pipeline?range=24h"));
    let reason = api.rows("SELECT error FROM dead_letters");
    assert!(
        b.text("body").contains(reason[0][0].as_str().unwrap()),
        "the dead letter's reason shows"
    );
    let metrics = api.count("SELECT count(*) FROM metrics");
    let tables: Vec<String> = serde_json::from_value(b.js(
        "return [...document.querySelectorAll('td[data-value]')].map(td => td.dataset.value)",
        vec![],
    ))
    .unwrap();
    assert!(
        tables.contains(&format!("metrics={metrics}")),
        "the lake's metrics rows: {tables:?}"
    );
    assert!(
        b.count("[data-chart=ingest-rate] .bars rect") > 0,
        "the ingest rate"
    );
    assert_eq!(b.count("[data-chart=dead-letters] .bars rect"), 1);
    fits_and_is_clean(b, "/pipeline");
}

/// With a token set, the console asks for it once, keeps it out of every URL, and refuses a
/// wrong one.
#[test]
fn console_asks_for_the_token_once() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "console-token");
    let token = "console-test-token-5d1e";
    let opslake = setup.spawn("run", &[("OPSLAKE_API_TOKEN", token)]);
    let base = opslake.api().base;
    // The page and its assets need no token; the data does.
    let api = opslake.api();
    for (path, status) in [
        ("/", 200),
        ("/console/app.js", 200),
        ("/api/v1/alerts", 401),
    ] {
        assert_eq!(api.get(path).status().as_u16(), status, "{path}");
    }

    let b = Browser::start(1280, 900);
    b.goto(&format!("{base}/pipeline"));
    wait_for("the token dialog", Duration::from_secs(30), || {
        (b.count("dialog#login[open]") == 1).then_some(())
    });
    b.type_into("#login-token", "wrong");
    b.click("#login-submit");
    wait_for("the wrong token refused", Duration::from_secs(30), || {
        (b.count("dialog#login[open]") == 1
            && b.js(
                "return !document.getElementById('login-error').hidden",
                vec![],
            ) == true)
            .then_some(())
    });
    b.type_into("#login-token", token);
    b.click("#login-submit");
    b.wait_ready("the pipeline page with the token");
    assert_eq!(b.count("dialog#login[open]"), 0);
    assert!(b.text("h1") == "Pipeline");
    // Another page, and a reload: no question asked again.
    b.open(&format!("{base}/alerts"));
    assert_eq!(b.count("dialog#login[open]"), 0);
    let urls = b.js(
        "return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)]",
        vec![],
    );
    assert!(
        !urls.to_string().contains(token),
        "the token is in no URL: {urls}"
    );
    assert!(b.text("h1") == "Alerts");
    // Only the refused requests were errors.
    let errors = b.console_errors();
    assert!(
        errors.iter().all(|e| e.contains("401")),
        "errors other than the refusals: {errors:#?}"
    );
}
