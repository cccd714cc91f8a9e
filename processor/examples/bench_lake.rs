//! Writes a lake of synthetic metric events for `bench/rollups.py` and `bench/query.py`, the
//! way ingest commits them (Parquet files per hour, offsets in the commit log), without a
//! broker: the benchmarks measure rollups and queries, not Kafka.
//!
//! Usage: `bench_lake <lake dir> <events> [seed] [span hours] [billing days] [compact]`: metric
//! events spread evenly over `span hours` (default 2) after 2026-11-22T10:00Z, and, with
//! `billing days`, a daily bill of 200 resources across four providers for that many days
//! before it. With `compact`, the lake is then compacted as `opslake run` compacts hours that
//! have gone quiet (the same code), and the cost of it is printed.

use std::time::Instant;

use object_store::ObjectStoreExt;
use opslake_lake::batch::{Batch, Provenance};
use opslake_lake::Lake;
use opslake_schemas::{BillingEvent, Event, MetricEvent, MetricKind};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};

const T0: i64 = 1_795_341_600_000; // 2026-11-22T10:00:00Z
/// Events per commit, at most: ingest commits many files per hour, which compaction merges.
const MAX_CHUNK: usize = 1_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).expect("lake directory");
    let n: usize = args.get(2).map_or(Ok(10_000_000), |s| s.parse())?;
    let seed: u64 = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let span_hours: i64 = args.get(4).map_or(Ok(2), |s| s.parse())?;
    let billing_days: i64 = args.get(5).map_or(Ok(0), |s| s.parse())?;
    let compact = args.get(6).is_some_and(|s| s == "compact");
    let lake = Lake::open(dir)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let services: Vec<String> = (0..20).map(|i| format!("service-{i:02}")).collect();
    let endpoints = [
        "/api/pay",
        "/api/cart",
        "/api/search",
        "/api/items",
        "/api/login",
    ];
    let started = Instant::now();
    let span_ms = span_hours * 3_600_000i64;
    if billing_days > 0 {
        let providers = ["aws", "azure", "gcp", "on-prem"];
        let types = ["compute", "storage", "database", "network"];
        let mut events = Vec::new();
        for d in 0..billing_days {
            let start = T0 - T0.rem_euclid(86_400_000) - (billing_days - d) * 86_400_000;
            for r in 0..200usize {
                let provider = providers[r % providers.len()];
                let base = 5.0 + (r % 17) as f64 * (if provider == "aws" { 1.6 } else { 1.0 });
                events.push(Event::Billing(BillingEvent {
                    charge_period_start_ms: start,
                    charge_period_end_ms: start + 86_400_000,
                    provider: provider.into(),
                    service: Some(format!("service-{:02}", r % 20)),
                    service_category: None,
                    resource_id: Some(format!("{provider}:r{r:03}")),
                    resource_type: Some(types[r % types.len()].into()),
                    region: Some("region-1".into()),
                    usage_quantity: Some(24.0),
                    usage_unit: Some("Hours".into()),
                    cost: base * rng.random_range(0.95..1.05),
                    effective_cost: base,
                    currency: "USD".into(),
                    charge_category: Some("Usage".into()),
                    utilization: Some(if r % 9 == 0 { 0.1 } else { 0.6 }),
                    tags: Vec::new(),
                    extra: Vec::new(),
                }));
            }
        }
        let count = events.len();
        let mut batch = Batch::new();
        for (i, ev) in events.iter().enumerate() {
            batch.cover("bench.billing", 0, i as i64, i as i64, 100);
            batch.push_event(
                ev,
                &Provenance {
                    topic: "bench.billing",
                    partition: 0,
                    offset: i as i64,
                    index: 0,
                    ingested_at_ms: 0,
                },
            );
        }
        commit(&lake, batch).await?;
        eprintln!("{count} billing rows written");
    }
    let mut written = 0usize;
    // About ten commits per hour of events, as ingest leaves an hour before compaction.
    let chunk = (n / (span_hours.max(1) as usize * 10)).clamp(10_000, MAX_CHUNK);
    while written < n {
        let m = chunk.min(n - written);
        let mut batch = Batch::new();
        for i in 0..m {
            let o = (written + i) as i64;
            let s = rng.random_range(0..services.len());
            let e = rng.random_range(0..endpoints.len());
            let v = rng.random_range(0..2);
            let mu = 3.0 + 0.1 * s as f64 + 0.3 * v as f64;
            let value = LogNormal::new(mu, 0.6).unwrap().sample(&mut rng);
            let ev = Event::Metric(MetricEvent {
                timestamp_ms: T0 + (o * span_ms) / n as i64,
                service: services[s].clone(),
                name: "http.server.duration".into(),
                value: (value * 1000.0).round() / 1000.0,
                unit: Some("ms".into()),
                kind: MetricKind::Sample,
                host: Some(format!("host-{}", rng.random_range(0..4))),
                version: Some(format!("1.{v}.0")),
                labels: vec![
                    ("endpoint".into(), endpoints[e].into()),
                    ("method".into(), "GET".into()),
                ],
            });
            batch.cover("bench.metrics", 0, o, o, 100);
            batch.push_event(
                &ev,
                &Provenance {
                    topic: "bench.metrics",
                    partition: 0,
                    offset: o,
                    index: 0,
                    ingested_at_ms: 0,
                },
            );
        }
        commit(&lake, batch).await?;
        written += m;
        if written % MAX_CHUNK < m || written == n {
            eprintln!("{written} events written ({:.0?})", started.elapsed());
        }
    }
    let snap = lake.snapshot().await?;
    if n > 0 {
        let secs = started.elapsed().as_secs_f64();
        println!(
            "written: {n} events in {secs:.1} s ({:.0} events/s), {}",
            n as f64 / secs,
            metric_files(&snap)
        );
    }
    if compact {
        let started = Instant::now();
        let policy = opslake_lake::compact::CompactionPolicy {
            quiet_for: std::time::Duration::ZERO,
            ..Default::default()
        };
        let now = chrono::Utc::now().timestamp_millis() + 1;
        let mut rows = 0;
        for (dir, files) in opslake_lake::compact::plan(&snap, &policy, now) {
            rows += opslake_lake::compact::merge(&lake, &dir, &files, "bench").await?;
            // As `opslake run` does after its grace period (nothing reads them here): the
            // directories then hold the live files only, for DuckDB to read.
            for f in &files {
                lake.store().delete(&lake.path(&f.path)).await?;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "compacted: {rows} rows of every table in {secs:.1} s ({:.0} rows/s), {}",
            rows as f64 / secs,
            metric_files(&lake.snapshot().await?)
        );
    }
    Ok(())
}

/// The size of the `metrics` table: bytes per row and files.
fn metric_files(snap: &opslake_lake::Snapshot) -> String {
    let (rows, bytes) = snap
        .table_files("metrics")
        .fold((0, 0), |(r, b), f| (r + f.rows, b + f.bytes));
    format!(
        "metrics: {:.1} bytes/event in {} files",
        bytes as f64 / rows.max(1) as f64,
        snap.table_files("metrics").count()
    )
}

/// Writes a batch's files and commits them with the offsets they cover, as ingest does.
async fn commit(lake: &Lake, batch: Batch) -> anyhow::Result<()> {
    opslake_lake::test_util::commit_batch(lake, batch, "bench")
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(())
}
