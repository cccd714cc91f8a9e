//! The processor's tests: rollups against exact answers, races, rebuilds, late events and
//! detections through whole cycles.

use super::*;
use crate::read::*;
use crate::rollup::{
    load_log_rollups, load_metric_rollups, LogWindows, MetricFold, MetricWindows, SeriesInterner,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_lake::batch::{Batch, Provenance};
use opslake_lake::write::encode_parquet;
use opslake_lake::{AddFile, LakeError};
use opslake_schemas::decode::{decode_value, EventKind};
use opslake_sketch::{DDSketch, DEFAULT_ALPHA};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Commits `events` the way ingest does: one file per table and hour, with the Kafka
/// offsets they cover (partition 0, from `offset`).
use datafusion::arrow::array::{Array, AsArray};

/// A metric file as ingest writes it, with `n` generated events.
fn metric_file(n: usize, seed: u64) -> RecordBatch {
    let events = generated(n, seed);
    let mut batch = Batch::new();
    for (i, e) in events.iter().enumerate() {
        let ev = decode_value(EventKind::Metric, e).expect("valid test event");
        batch.push_event(
            &ev,
            &Provenance {
                topic: "t",
                partition: 0,
                offset: i as i64,
                index: 0,
                ingested_at_ms: 0,
            },
        );
    }
    let mut finished = batch.finish().unwrap();
    assert_eq!(finished.parts.len(), 1, "the test events share an hour");
    finished.parts.remove(0).1
}

/// `batch` as a file written before the `series` column existed.
fn without_series(batch: &RecordBatch) -> RecordBatch {
    let keep: Vec<usize> = (0..batch.num_columns())
        .filter(|&i| batch.schema().field(i).name() != "series")
        .collect();
    batch.project(&keep).unwrap()
}

/// The fold reads the strings of the lake's metric files as dictionaries, so that no
/// string is decoded or hashed per row: the `series` column alone in the files ingest
/// writes, and the columns a series is made of (the labels' keys and values included) in
/// files without it.
#[test]
fn metric_files_are_read_as_dictionaries() {
    let file = metric_file(2_000, 7);
    let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let read = |batch: &RecordBatch| {
        let bytes = encode_parquet(std::slice::from_ref(batch)).unwrap();
        reader(bytes, "test", metric_fold_projection)
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };

    let batches = read(&file);
    assert_eq!(
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        2_000
    );
    for b in &batches {
        assert_eq!(b.num_columns(), METRIC_FOLD_SERIES_COLUMNS.len());
        assert_eq!(b.column_by_name("series").unwrap().data_type(), &dict);
    }

    let batches = read(&without_series(&file));
    assert_eq!(
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        2_000
    );
    for b in &batches {
        assert_eq!(b.num_columns(), METRIC_FOLD_COLUMNS.len());
        for c in ["service", "name", "version"] {
            assert_eq!(b.column_by_name(c).unwrap().data_type(), &dict, "{c}");
        }
        let labels = b.column_by_name("labels").unwrap();
        let labels = labels.as_map();
        assert_eq!(labels.keys().data_type(), &dict);
        assert_eq!(labels.values().data_type(), &dict);
    }
}

/// Folding by the `series` column gives exactly the windows of folding by the columns it
/// is made of, and each series' string is its parts.
#[test]
fn the_series_column_folds_as_its_parts_do() {
    let file = metric_file(5_000, 11);
    let fold = |batch: &RecordBatch| {
        let mut fold = MetricFold::default();
        for chunk in [batch.slice(0, 1_000), batch.slice(1_000, 4_000)] {
            fold.add(&chunk, 60_000).unwrap();
        }
        fold.finish()
            .into_iter()
            .map(|((w, k), s)| ((w, (*k).clone()), s))
            .collect::<BTreeMap<_, _>>()
    };
    let by_series = fold(&file);
    let by_parts = fold(&without_series(&file));
    assert!(by_series.len() > 10, "{} windows", by_series.len());
    assert_eq!(by_series, by_parts);

    let series = file.column_by_name("series").unwrap().as_string::<i32>();
    for row in [0, 1, 4_999] {
        let (service, name, version, labels) =
            opslake_schemas::series::parse_series_key(series.value(row)).unwrap();
        let service_col = file.column_by_name("service").unwrap().as_string::<i32>();
        assert_eq!(service, service_col.value(row));
        let name_col = file.column_by_name("name").unwrap().as_string::<i32>();
        assert_eq!(name, name_col.value(row));
        let version_col = file.column_by_name("version").unwrap().as_string::<i32>();
        assert_eq!(
            version.as_deref(),
            version_col.is_valid(row).then(|| version_col.value(row))
        );
        let mut pairs = Vec::new();
        crate::columns::map_entries(
            file.column_by_name("labels").unwrap().as_map(),
            row,
            &mut pairs,
        );
        let pairs: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(labels, pairs);
    }
}

pub(crate) async fn ingest_commit(
    lake: &Lake,
    kind: EventKind,
    events: &[serde_json::Value],
    offset: i64,
) {
    let topic = format!("t.{kind:?}");
    let events: Vec<_> = events
        .iter()
        .map(|e| decode_value(kind, e).expect("valid test event"))
        .collect();
    opslake_lake::test_util::commit_events(lake, &topic, offset, &events)
        .await
        .unwrap();
}

fn metric(ts: i64, service: &str, endpoint: &str, version: &str, value: f64) -> serde_json::Value {
    serde_json::json!({"timestamp": ts, "service": service, "name": "http.server.duration",
        "value": value, "version": version, "labels": {"endpoint": endpoint}})
}

/// Every stored 1m rollup of the lake: (window, series) -> sketch.
pub(crate) async fn stored(lake: &Lake, table: &str) -> MetricWindows {
    let snap = lake.snapshot().await.unwrap();
    let mut interner = SeriesInterner::default();
    let mut out = MetricWindows::default();
    for f in snap.table_files(table) {
        for b in read_batches(lake, &f.path).await.unwrap() {
            load_metric_rollups(&b, &mut interner, &mut out).unwrap();
        }
    }
    out
}

fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let r = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
    sorted[lo] + (r - lo as f64) * (sorted[hi] - sorted[lo])
}

const T0: i64 = 1_763_805_600_000; // 2025-11-22T10:00:00Z

fn generated(n: usize, seed: u64) -> Vec<serde_json::Value> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dist = LogNormal::new(3.0, 0.8).unwrap();
    (0..n)
        .map(|_| {
            let ts = T0 + rng.random_range(0..5 * 60_000);
            let svc = ["checkout", "search"][rng.random_range(0..2)];
            let ep = ["/a", "/b"][rng.random_range(0..2)];
            metric(ts, svc, ep, "1.0", dist.sample(&mut rng))
        })
        .collect()
}

/// Exact percentiles of the generated events per (window, service, endpoint).
fn exact_windows(events: &[serde_json::Value]) -> HashMap<(i64, String, String), Vec<f64>> {
    let mut m: HashMap<(i64, String, String), Vec<f64>> = HashMap::new();
    for e in events {
        let w = crate::rollup::window_of(e["timestamp"].as_i64().unwrap(), 60_000);
        m.entry((
            w,
            e["service"].as_str().unwrap().into(),
            e["labels"]["endpoint"].as_str().unwrap().into(),
        ))
        .or_default()
        .push(e["value"].as_f64().unwrap());
    }
    for v in m.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    m
}

fn check_against_exact(stored: &MetricWindows, events: &[serde_json::Value]) {
    let exact = exact_windows(events);
    assert_eq!(
        stored.len(),
        exact.len(),
        "one rollup row per window and series"
    );
    for ((w, key), s) in stored {
        let values = &exact[&(*w, key.service.clone(), key.labels[0].1.clone())];
        assert_eq!(s.count(), values.len() as u64);
        assert_eq!(s.min(), values.first().copied());
        assert_eq!(s.max(), values.last().copied());
        for q in [0.5, 0.9, 0.95, 0.99] {
            let want = exact_quantile(values, q);
            let got = s.quantile(q).unwrap();
            assert!(
                (got - want).abs() <= DEFAULT_ALPHA * want,
                "p{q} of {key:?} at {w}: {got} vs exact {want}"
            );
        }
    }
}

#[tokio::test]
async fn rollups_equal_exact_percentiles_and_hours_merge_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let events = generated(4000, 1);
    ingest_commit(&lake, EventKind::Metric, &events[..2500], 0).await;
    ingest_commit(&lake, EventKind::Metric, &events[2500..], 2500).await;
    let p = Processor::new(Arc::clone(&lake), ProcessorConfig::default());
    let r = p.cycle().await.unwrap();
    assert!(r.committed.is_some());
    check_against_exact(&stored(&lake, METRIC_ROLLUPS_1M).await, &events);
    let hourly = stored(&lake, METRIC_ROLLUPS_1H).await;
    assert_eq!(hourly.len(), 4, "2 services x 2 endpoints in one hour");
    assert_eq!(hourly.values().map(DDSketch::count).sum::<u64>(), 4000);
    // Nothing new: the next cycle is idle and changes nothing.
    assert_eq!(p.cycle().await.unwrap().committed, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_behind_a_trimmed_log_rebuilds_and_counts_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    lake.set_log_retention(Duration::ZERO);
    let events = generated(1500, 9);
    ingest_commit(&lake, EventKind::Metric, &events[..1000], 0).await;
    let p = Processor::new(Arc::clone(&lake), ProcessorConfig::default());
    p.cycle().await.unwrap();
    // 250 more ingest commits while the processor is away: checkpoint 200 trims the log
    // up to version 100, past the processor's progress.
    for (i, e) in events[1000..1250].iter().enumerate() {
        ingest_commit(
            &lake,
            EventKind::Metric,
            std::slice::from_ref(e),
            1000 + i as i64,
        )
        .await;
    }
    assert!(matches!(
        lake.entries(2, 4).await,
        Err(LakeError::EntryGone { .. })
    ));
    assert!(p.cycle().await.unwrap().committed.is_some());
    check_against_exact(&stored(&lake, METRIC_ROLLUPS_1M).await, &events[..1250]);
    // And it goes on incrementally from there.
    ingest_commit(&lake, EventKind::Metric, &events[1250..], 1250).await;
    p.cycle().await.unwrap();
    check_against_exact(&stored(&lake, METRIC_ROLLUPS_1M).await, &events);
}

#[tokio::test]
async fn a_late_event_updates_its_window_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let mut events = generated(2000, 2);
    ingest_commit(&lake, EventKind::Metric, &events, 0).await;
    let p = Processor::new(Arc::clone(&lake), ProcessorConfig::default());
    p.cycle().await.unwrap();
    let before = stored(&lake, METRIC_ROLLUPS_1M).await;
    // New data in a later hour, then one event that is two hours late.
    let later = vec![metric(T0 + 3 * 3_600_000, "checkout", "/a", "1.1", 50.0)];
    ingest_commit(&lake, EventKind::Metric, &later, 2000).await;
    p.cycle().await.unwrap();
    let late = metric(T0 + 61_000, "checkout", "/a", "1.0", 9999.0);
    ingest_commit(&lake, EventKind::Metric, std::slice::from_ref(&late), 2001).await;
    // A restarted processor picks up where the lake says.
    let p2 = Processor::new(Arc::clone(&lake), ProcessorConfig::default());
    p2.cycle().await.unwrap();
    let after = stored(&lake, METRIC_ROLLUPS_1M).await;
    assert_eq!(
        after.len(),
        before.len() + 1,
        "the later hour added one window"
    );
    let mut changed = 0;
    for (k, s) in &before {
        if after[k] != *s {
            changed += 1;
            assert_eq!(k.0, T0 + 60_000, "only the late event's window changes");
            assert_eq!(after[k].count(), s.count() + 1);
            assert_eq!(after[k].max(), Some(9999.0));
        }
    }
    assert_eq!(changed, 1);
    events.push(late);
    events.extend(later);
    check_against_exact(&after, &events);
}

#[tokio::test]
async fn two_processors_racing_count_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    let lake_a = Lake::open(&path).unwrap();
    let lake_b = Lake::open(&path).unwrap();
    let events = generated(3000, 3);
    let a = Processor::new(Arc::clone(&lake_a), ProcessorConfig::default());
    let b = Processor::new(Arc::clone(&lake_b), ProcessorConfig::default());
    for (i, chunk) in events.chunks(500).enumerate() {
        ingest_commit(&lake_a, EventKind::Metric, chunk, (i * 500) as i64).await;
        let (ra, rb) = tokio::join!(a.cycle(), b.cycle());
        ra.unwrap();
        rb.unwrap();
    }
    a.cycle().await.unwrap();
    check_against_exact(&stored(&lake_a, METRIC_ROLLUPS_1M).await, &events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_compacted_before_processing_are_recomputed_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let events = generated(2000, 4);
    let p = Processor::new(Arc::clone(&lake), ProcessorConfig::default());
    ingest_commit(&lake, EventKind::Metric, &events[..1000], 0).await;
    p.cycle().await.unwrap();
    ingest_commit(&lake, EventKind::Metric, &events[1000..1500], 1000).await;
    ingest_commit(&lake, EventKind::Metric, &events[1500..], 1500).await;
    // Compaction merges every file of the hour, including two the processor has not read.
    let snap = lake.snapshot().await.unwrap();
    let files: Vec<AddFile> = snap.table_files("metrics").cloned().collect();
    let dir_of = files[0].path.rsplit_once('/').unwrap().0.to_string();
    let merged = opslake_lake::compact::merge(&lake, &dir_of, &files, "test")
        .await
        .unwrap();
    assert_eq!(merged, 2000);
    p.cycle().await.unwrap();
    check_against_exact(&stored(&lake, METRIC_ROLLUPS_1M).await, &events);
}

#[tokio::test]
async fn log_rollups_count_levels_and_duration_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let mut events = Vec::new();
    for i in 0..200i64 {
        let level = match i % 10 {
            0 => "ERROR",
            1 => "fatal",
            2 | 3 => "warning",
            _ => "info",
        };
        events.push(
            serde_json::json!({"timestamp": T0 + i * 100, "service": "api",
            "level": level, "message": "m", "duration_ms": (i + 1) as f64}),
        );
    }
    ingest_commit(&lake, EventKind::Log, &events, 0).await;
    Processor::new(Arc::clone(&lake), ProcessorConfig::default())
        .cycle()
        .await
        .unwrap();
    let snap = lake.snapshot().await.unwrap();
    let mut windows = LogWindows::new();
    for f in snap.table_files(LOG_ROLLUPS_1M) {
        for b in read_batches(&lake, &f.path).await.unwrap() {
            load_log_rollups(&b, &mut windows).unwrap();
        }
    }
    // 200 events 100 ms apart: windows of 600 and... all within the first 20 s.
    assert_eq!(windows.len(), 1);
    let agg = &windows[&(T0, "api".to_string())];
    assert_eq!(agg.count(), 200);
    assert_eq!(agg.errors(), 40);
    assert_eq!(agg.levels[3], 40, "warning counts as warn");
    let p95 = agg.duration.quantile(0.95).unwrap();
    assert!((p95 - 190.05).abs() <= 1.9006, "{p95}");
}

/// Reads the detections of the lake: (metric, window or change time) pairs.
async fn detections(
    lake: &Lake,
    table: &str,
    time_col: &str,
) -> Vec<(String, i64, Option<String>, Option<String>)> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::TimestampMillisecondType;
    let snap = lake.snapshot().await.unwrap();
    let mut out = Vec::new();
    for f in snap.table_files(table) {
        for b in read_batches(lake, &f.path).await.unwrap() {
            let m = b
                .column_by_name("metric")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let t = b
                .column_by_name(time_col)
                .unwrap()
                .as_primitive::<TimestampMillisecondType>()
                .clone();
            let vb = b
                .column_by_name("version_before")
                .map(|c| c.as_string::<i32>().clone());
            let va = b
                .column_by_name("version_after")
                .map(|c| c.as_string::<i32>().clone());
            for i in 0..b.num_rows() {
                let v = |c: &Option<datafusion::arrow::array::StringArray>| {
                    c.as_ref()
                        .and_then(|c| (!c.is_null(i)).then(|| c.value(i).to_string()))
                };
                out.push((m.value(i).to_string(), t.value(i), v(&vb), v(&va)));
            }
        }
    }
    out.sort();
    out
}

/// Three days of 5-minute windows with a daily cycle, one spike, and a deploy that makes the
/// service 40% slower on the third day.
fn three_days() -> (Vec<serde_json::Value>, i64, i64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let step = 300_000i64;
    let windows = 3 * 288;
    let spike = T0 + 700 * step;
    let deploy = T0 + 780 * step;
    let mut out = Vec::new();
    for w in 0..windows {
        let t = T0 + w * step;
        let daily = 1.0 + 0.3 * (2.0 * std::f64::consts::PI * (w % 288) as f64 / 288.0).sin();
        let (version, slow) = if t >= deploy {
            ("2.0", 1.4)
        } else {
            ("1.0", 1.0)
        };
        for i in 0..12 {
            let noise: f64 = rng.random_range(0.95..1.05);
            let mut v = 100.0 * daily * slow * noise;
            if t == spike && i < 11 {
                v *= 6.0;
            }
            out.push(metric(t + i * 20_000, "checkout", "/pay", version, v));
        }
    }
    (out, spike, deploy)
}

fn five_minutes() -> ProcessorConfig {
    ProcessorConfig {
        window: Duration::from_secs(300),
        ..Default::default()
    }
}

#[tokio::test]
async fn detections_are_found_once_on_event_time_however_the_history_arrives() {
    let (events, spike, deploy) = three_days();
    // All at once (a replay of history).
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    ingest_commit(&lake, EventKind::Metric, &events, 0).await;
    let p = Processor::new(Arc::clone(&lake), five_minutes());
    p.cycle().await.unwrap();
    let anomalies = detections(&lake, "anomalies", "window_start").await;
    let regressions = detections(&lake, "regressions", "change_at").await;
    assert!(
        anomalies.iter().any(|a| a.1 == spike),
        "spike found: {anomalies:?}"
    );
    let p50: Vec<_> = regressions.iter().filter(|r| r.0 == "p50").collect();
    assert_eq!(p50.len(), 1, "{regressions:?}");
    assert!(
        (p50[0].1 - deploy).abs() <= 2 * 300_000,
        "{p50:?} vs {deploy}"
    );
    assert_eq!(
        (p50[0].2.as_deref(), p50[0].3.as_deref()),
        (Some("1.0"), Some("2.0"))
    );

    // The same history arriving live, a few hours at a time, with restarts in between.
    let dir2 = tempfile::tempdir().unwrap();
    let lake2 = Lake::open(dir2.path().to_str().unwrap()).unwrap();
    for (i, chunk) in events.chunks(12 * 36).enumerate() {
        ingest_commit(&lake2, EventKind::Metric, chunk, (i * 12 * 36) as i64).await;
        Processor::new(Arc::clone(&lake2), five_minutes())
            .cycle()
            .await
            .unwrap();
    }
    assert_eq!(
        detections(&lake2, "anomalies", "window_start").await,
        anomalies
    );
    let live_p50: Vec<_> = detections(&lake2, "regressions", "change_at")
        .await
        .into_iter()
        .filter(|r| r.0 == "p50")
        .collect();
    assert_eq!(live_p50.len(), 1, "{live_p50:?}");
    // Nothing new: nothing recorded twice.
    Processor::new(Arc::clone(&lake2), five_minutes())
        .cycle()
        .await
        .unwrap();
    assert_eq!(
        detections(&lake2, "anomalies", "window_start").await,
        anomalies
    );
}

/// Two days that start mid-morning, with a deploy inside the only full calendar day: the
/// change is found at the deploy (not at the next midnight), with the versions around it.
#[tokio::test]
async fn a_deploy_inside_the_only_full_day_is_found_where_it_happened() {
    for (off, dw) in [(0, 400), (150, 330), (200, 470)] {
        deploy_found_however_it_arrives(off, dw).await;
    }
}

async fn deploy_found_however_it_arrives(off: i64, dw: i64) {
    let step = 300_000i64;
    let t0 = T0 - 2 * 3_600_000 + 10 * 60_000 + off * step; // from 07:50, plus `off` windows
    let deploy = t0 + dw * step;
    let labels = serde_json::json!({"endpoint": "/charge"});
    let events = opslake_lake::test_util::payments_charge(t0, step, deploy, None, &labels, 5);
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    ingest_commit(&lake, EventKind::Metric, &events, 0).await;
    Processor::new(Arc::clone(&lake), five_minutes())
        .cycle()
        .await
        .unwrap();
    let p50: Vec<_> = detections(&lake, "regressions", "change_at")
        .await
        .into_iter()
        .filter(|r| r.0 == "p50")
        .collect();
    assert_eq!(
        p50.len(),
        1,
        "start +{off} windows, deploy at {dw}: {p50:?}"
    );
    assert!((p50[0].1 - deploy).abs() <= 2 * step, "{p50:?} vs {deploy}");
    assert_eq!(
        (p50[0].2.as_deref(), p50[0].3.as_deref()),
        (Some("1.9.0"), Some("2.0.0"))
    );

    // The same history arriving in pieces, a cycle after each: the same one change.
    for pieces in [7, 24, 48] {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let per = events.len().div_ceil(pieces);
        for (i, chunk) in events.chunks(per).enumerate() {
            ingest_commit(&lake, EventKind::Metric, chunk, (i * per) as i64).await;
            Processor::new(Arc::clone(&lake), five_minutes())
                .cycle()
                .await
                .unwrap();
        }
        let live: Vec<_> = detections(&lake, "regressions", "change_at")
            .await
            .into_iter()
            .filter(|r| r.0 == "p50")
            .collect();
        assert_eq!(
            live, p50,
            "start +{off}, deploy at {dw}, in {pieces} pieces"
        );
    }
}

#[tokio::test]
async fn an_error_rate_burst_is_an_anomaly_and_a_fall_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let step = 300_000i64;
    let burst = T0 + 400 * step;
    let mut events = Vec::new();
    for w in 0..2 * 288 {
        let t = T0 + w * step;
        for i in 0..50 {
            let error = if t == burst { i % 2 == 0 } else { i == 0 };
            events.push(
                serde_json::json!({"timestamp": t + i * 1000, "service": "api",
                "level": if error { "error" } else { "info" }, "message": "m"}),
            );
            // Another service whose 10% error rate falls to none for one window: good
            // news, not an anomaly.
            let error = t != burst && i % 10 == 0;
            events.push(
                serde_json::json!({"timestamp": t + i * 1000, "service": "quiet",
                "level": if error { "error" } else { "info" }, "message": "m"}),
            );
        }
    }
    ingest_commit(&lake, EventKind::Log, &events, 0).await;
    Processor::new(Arc::clone(&lake), five_minutes())
        .cycle()
        .await
        .unwrap();
    let found = detections(&lake, "anomalies", "window_start").await;
    assert_eq!(found, vec![("error_rate".to_string(), burst, None, None)]);
}

#[test]
fn window_must_divide_an_hour() {
    let bad = ProcessorConfig {
        window: Duration::from_secs(7 * 60),
        ..Default::default()
    };
    assert!(
        matches!(bad.validate().unwrap_err(), opslake_schemas::ConfigError::Key { key, .. } if key == "processor.window")
    );
    assert!(ProcessorConfig::default().validate().is_ok());
}

/// A raw file that does not fold (here: not Parquet at all) once failed every cycle of its
/// job for good; now it is set aside with the reason, recorded in the lake, and the job goes
/// on with every other file.
#[tokio::test(flavor = "multi_thread")]
async fn a_raw_file_that_does_not_fold_is_quarantined_and_the_rest_rolls_up() {
    use opslake_lake::state_keys::QUARANTINE_PREFIX;
    use opslake_lake::{LogEntry, PartitionOffsets};
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let events = generated(800, 5);
    ingest_commit(&lake, EventKind::Metric, &events, 0).await;
    let rel = "metrics/date=2025-11-22/hour=10/part-broken.parquet";
    let add = opslake_lake::write::upload(&lake, rel, "metrics", 7, "not parquet".into())
        .await
        .unwrap();
    let offsets = BTreeMap::from([(
        "t.Metric".to_string(),
        BTreeMap::from([(
            0,
            PartitionOffsets {
                start: 800,
                end: 807,
            },
        )]),
    )]);
    let entry = LogEntry {
        writer: "test-ingest".into(),
        add: vec![add],
        offsets,
        ..Default::default()
    };
    lake.commit(entry, |_| Ok(())).await.unwrap();
    let p = Processor::new(Arc::clone(&lake), ProcessorConfig::default());
    let first = p.cycle().await.unwrap();
    assert_eq!(first.quarantined, 1, "{first:?}");
    p.cycle().await.unwrap();
    check_against_exact(&stored(&lake, METRIC_ROLLUPS_1M).await, &events);
    let snap = lake.snapshot().await.unwrap();
    let record = &snap.state[&format!("{QUARANTINE_PREFIX}{rel}")];
    assert_eq!(record["job"], "metrics");
    assert!(
        record["reason"]
            .as_str()
            .unwrap()
            .contains("does not decode"),
        "{record}"
    );
    // Nothing left to do: the next cycle is idle, the file stays set aside.
    assert_eq!(p.cycle().await.unwrap().quarantined, 0);
}
