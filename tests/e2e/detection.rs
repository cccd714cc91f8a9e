//! Regressions through the whole pipeline (Kafka, ingest, rollups, detection, SQL) on Apache
//! Otava's own cases: series far shorter than a day, one point per run, with and without a
//! change; and a benchmark's throughput, whose fall is a regression and whose rise is an
//! improvement.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::support::{wait_for, Broker, Setup, TestProducer};

const T0: i64 = 1_763_805_600_000; // 2025-11-22T10:00:00Z
const MINUTE: i64 = 60_000;

fn otava(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../shared/data/otava/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// A case: metric name, its points (one window each, `every` minutes apart), the samples of
/// each point, and the version deployed at each point.
struct Case {
    name: &'static str,
    every: i64,
    points: Vec<Vec<f64>>,
    versions: Vec<Option<String>>,
}

impl Case {
    fn single(name: &'static str, every: i64, values: Vec<f64>) -> Self {
        let n = values.len();
        Self {
            name,
            every,
            points: values.into_iter().map(|v| vec![v]).collect(),
            versions: vec![None; n],
        }
    }

    fn events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for (i, (samples, version)) in self.points.iter().zip(&self.versions).enumerate() {
            let t = T0 + i as i64 * self.every * MINUTE;
            for (k, v) in samples.iter().enumerate() {
                let mut e = json!({"timestamp": t + k as i64 * 1000, "service": "otava",
                    "name": self.name, "value": v});
                if let Some(version) = version {
                    e["version"] = json!(version);
                }
                out.push(e);
            }
        }
        out
    }

    /// The point index of a change recorded at `change_at`.
    fn index(&self, change_at: i64) -> i64 {
        (change_at - T0) / (self.every * MINUTE)
    }
}

fn cases() -> Vec<Case> {
    let expected: Value = serde_json::from_str(&otava("expected_change_points.json")).unwrap();
    let two = &expected["two_metric_series"];
    let sample = otava("sample.csv");
    let rows: Vec<Vec<&str>> = sample
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let column = |c: usize| -> Vec<f64> { rows.iter().map(|r| r[c].parse().unwrap()).collect() };
    let commits: Vec<Option<String>> = rows.iter().map(|r| Some(r[1].to_string())).collect();
    // Otava's sample.csv: one run every 10 minutes, each with its commit as the version.
    let mut metric1 = Case::single("metric1", 10, column(2));
    metric1.versions = commits.clone();
    let mut metric2 = Case::single("metric2", 10, column(3));
    metric2.versions = commits;
    // A benchmark's history: 365 runs, one a minute, 30 samples each; 11% slower from run 15,
    // 20% faster than that from run 71.
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let throughput = Case {
        name: "benchmark.throughput",
        every: 1,
        points: (0..365)
            .map(|i| {
                let level = match i {
                    i if i < 15 => 1000.0,
                    i if i < 71 => 890.0,
                    _ => 1068.0,
                };
                (0..30)
                    .map(|_| level * rng.random_range(0.97..1.03))
                    .collect()
            })
            .collect(),
        versions: vec![None; 365],
    };
    // Noise around a level, never a change.
    let steady = Case::single(
        "steady.duration",
        1,
        (0..200)
            .map(|_| 50.0 * rng.random_range(0.95..1.05))
            .collect(),
    );
    vec![
        Case::single("series1", 1, floats(&two["series1"])),
        Case::single("series2", 1, floats(&two["series2"])),
        // One run every 10 minutes: the last is still open (2 windows of lateness) when the
        // others are judged, and Otava finds both changes in the first ten.
        Case::single(
            "zeros",
            10,
            floats(&expected["div_by_zero_series"]["series1"]),
        ),
        metric1,
        metric2,
        throughput,
        steady,
    ]
}

/// A change recorded: point index, change_pct, version_before, version_after, kind.
type Found = (i64, f64, Value, Value, Value);

#[test]
fn otava_cases_and_a_benchmark_have_their_changes_in_regressions() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "otava");
    let opslake = setup.spawn("run", &[("OPSLAKE_PROCESSOR__INTERVAL", "1s")]);
    let api = opslake.api();
    let producer = TestProducer::new(&setup.brokers);
    let cases = cases();
    let events: Vec<Value> = cases.iter().flat_map(Case::events).collect();
    producer.send_all(&setup.topic("metrics"), &events);
    api.wait_for_rollups_of(events.len());
    // series1, series2, zeros (two), metric2 and the benchmark's two.
    let rows = wait_for(
        "the changes in regressions",
        Duration::from_secs(60),
        || {
            let rows = api.rows(
            "SELECT name, CAST(change_at AS BIGINT), change_pct, version_before, version_after, kind \
             FROM regressions WHERE service = 'otava' AND metric = 'p50' ORDER BY 1, 2",
        );
            (rows.len() >= 7).then_some(rows)
        },
    );
    let mut found: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    for r in &rows {
        let name = r[0].as_str().unwrap();
        let case = cases.iter().find(|c| c.name == name).unwrap();
        found.entry(name.to_string()).or_default().push((
            case.index(r[1].as_i64().unwrap()),
            r[2].as_f64().unwrap(),
            r[3].clone(),
            r[4].clone(),
            r[5].clone(),
        ));
    }
    let at = |name: &str| -> Vec<i64> {
        found
            .get(name)
            .map(|v| v.iter().map(|c| c.0).collect())
            .unwrap_or_default()
    };
    // Otava's expectations (its test suite): series1 at 6 (-49%), series2 at 4 (-11%),
    // sample.csv's metric2 at its seventh run (commit aaa6, -12.9%), none in metric1.
    assert_eq!(at("series1"), [6], "{rows:?}");
    assert_eq!(at("series2"), [4], "{rows:?}");
    assert_eq!(at("metric2"), [6], "{rows:?}");
    assert_eq!(at("zeros"), [3, 6], "{rows:?}");
    assert!(at("metric1").is_empty(), "{rows:?}");
    assert!(at("steady.duration").is_empty(), "{rows:?}");
    let m2 = &found["metric2"][0];
    assert!((m2.1 - -12.9).abs() < 2.0, "{m2:?}");
    assert_eq!((&m2.2, &m2.3), (&json!("aaa5"), &json!("aaa6")));
    assert_eq!(m2.4, json!("change"), "a metric named neither way: {m2:?}");
    // The benchmark: its fall is a regression, its rise an improvement, each with its sign.
    let bench = &found["benchmark.throughput"];
    let summary: Vec<(i64, Value)> = bench.iter().map(|c| (c.0, c.4.clone())).collect();
    assert_eq!(
        summary,
        [(15, json!("regression")), (71, json!("improvement"))],
        "{bench:?}"
    );
    assert!((bench[0].1 - -11.0).abs() < 2.0, "{bench:?}");
    assert!((bench[1].1 - 20.0).abs() < 2.0, "{bench:?}");

    // Detections of data older than `alerts.max_age` (this is 2025's) are recorded as alerts
    // and never notified: the fall is a regression alert, the rise is not.
    let alerts = wait_for(
        "the regression's alert in the history",
        Duration::from_secs(30),
        || {
            let rows = api.rows(
                "SELECT labels['name'], state, notified FROM alerts \
                 WHERE alertname = 'OpslakeRegression' ORDER BY at",
            );
            (!rows.is_empty()).then_some(rows)
        },
    );
    assert_eq!(
        alerts[0],
        vec![json!("benchmark.throughput"), json!("firing"), json!(false)],
        "{alerts:?}"
    );
    assert!(alerts
        .iter()
        .all(|r| r[0] == json!("benchmark.throughput") && r[2] == json!(false)));
}
