//! Stopping the processor in the middle of a backfill: each stop is clean (exit 0) and within
//! the shutdown timeout, and after a last start the rollups equal the raw rows, window by
//! window.

use std::time::{Duration, Instant};

use opslake_lake::test_util::{commit_events, metric};
use opslake_schemas::Event;
use rand::{Rng, SeedableRng};

use crate::support::{assert_same_answers, wait_for, Broker, Setup};

const T0: i64 = 1_795_305_600_000; // 2026-11-22T00:00:00Z
const HOUR: i64 = 3_600_000;
const HOURS: i64 = 96;
const PER_HOUR: i64 = 2_500;

/// Four days of metrics of four services, committed as ingest would have, a day per commit.
fn backfill(lake: &std::path::Path, topic: &str) -> i64 {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let lake = opslake_lake::Lake::open(lake.to_str().unwrap()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let mut offset = 0;
    for day in 0..HOURS / 24 {
        let events: Vec<Event> = (day * 24..(day + 1) * 24)
            .flat_map(|h| (0..PER_HOUR).map(move |i| (h, i)))
            .map(|(h, i)| {
                metric(
                    T0 + h * HOUR + i * HOUR / PER_HOUR,
                    &format!("svc-{}", i % 4),
                    "latency",
                    rng.random_range(1.0..500.0),
                )
            })
            .collect();
        runtime
            .block_on(commit_events(&lake, topic, offset, &events))
            .unwrap();
        offset += events.len() as i64;
    }
    offset
}

#[test]
fn sigterm_during_a_backfill_exits_0_in_time_and_the_rollups_end_exact() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "backfill");
    let n = backfill(lake.path(), &setup.topic("metrics"));
    let timeout = Duration::from_secs(10);
    let env = [
        ("OPSLAKE_SHUTDOWN_TIMEOUT", "10s"),
        ("OPSLAKE_PROCESSOR__INTERVAL", "1s"),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let mut abandoned = 0;
    for stop in 0..4 {
        let mut process = setup.spawn_listening("process", &env);
        wait_for(
            "the processor to take its jobs",
            Duration::from_secs(60),
            || {
                process
                    .log()
                    .contains("processor jobs assigned")
                    .then_some(())
            },
        );
        // A random moment of the first cycle's rollups (0.75 s here in the dev profile; the
        // detection after them is one unit of work per series, which a stop waits for).
        std::thread::sleep(Duration::from_millis(rng.random_range(20..300)));
        let asked = Instant::now();
        let code = process.terminate();
        let took = asked.elapsed();
        let log = process.log();
        assert_eq!(code, Some(0), "stop {stop} exits 0; log:\n{log}");
        assert!(
            took < timeout,
            "stop {stop} took {took:?}, more than the shutdown timeout"
        );
        if log.contains("abandoned at shutdown") {
            abandoned += 1;
        }
        eprintln!("stop {stop}: exit 0 after {took:?}");
    }
    assert!(
        abandoned > 0,
        "no stop came during a cycle: the backfill is too small to test stopping in it"
    );

    let run = setup.spawn("run", &env);
    let api = run.api();
    let started = Instant::now();
    wait_for(
        "the rollups of every raw row",
        Duration::from_secs(300),
        || (api.count("SELECT coalesce(sum(count), 0) FROM metric_rollups_1m") == n).then_some(()),
    );
    eprintln!(
        "backfill of {n} events rolled up {:?} after the last start",
        started.elapsed()
    );
    let rollups = api.rows(
        "SELECT CAST(window_start AS BIGINT), service, count FROM metric_rollups_1m \
         ORDER BY 1, 2",
    );
    let raw = api.rows(
        "SELECT CAST(date_trunc('minute', timestamp) AS BIGINT), service, count(*) FROM metrics \
         GROUP BY 1, 2 ORDER BY 1, 2",
    );
    if rollups != raw {
        // Kept for a look: the lake, and each rollup file's windows against its hour.
        let kept = lake.keep();
        eprintln!(
            "rollups differ from the raw rows; lake kept at {}",
            kept.display()
        );
        eprintln!("{}", rollup_files_against_their_hours(&kept));
        eprintln!("processes' logs:\n{}", run.log());
    }
    assert_same_answers(&rollups, &raw, "rollup counts against the raw rows");
    assert_eq!(api.count("SELECT count(*) FROM metrics"), n);
}

/// Each live `metric_rollups_1m` file: its hour by path, the hours of the windows it holds,
/// its rows and the commit that added it; a line per file.
fn rollup_files_against_their_hours(lake: &std::path::Path) -> String {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::TimestampMillisecondType;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let l = opslake_lake::Lake::open(lake.to_str().unwrap()).unwrap();
    let snap = runtime.block_on(l.snapshot()).unwrap();
    let mut out = String::new();
    for f in snap.table_files("metric_rollups_1m") {
        let file = std::fs::File::open(lake.join(&f.path)).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let (mut lo, mut hi, mut rows) = (i64::MAX, i64::MIN, 0);
        for b in reader {
            let b = b.unwrap();
            let ws = b.column_by_name("window_start").unwrap();
            let ws = ws.as_primitive::<TimestampMillisecondType>();
            for i in 0..ws.len() {
                lo = lo.min(ws.value(i));
                hi = hi.max(ws.value(i));
            }
            rows += b.num_rows();
        }
        out.push_str(&format!(
            "{} rows={rows} windows {}..{} created_ms={}\n",
            f.path,
            chrono::DateTime::from_timestamp_millis(lo).unwrap_or_default(),
            chrono::DateTime::from_timestamp_millis(hi).unwrap_or_default(),
            f.created_ms
        ));
    }
    out
}
