//! Writes a lake of synthetic metric events for `bench/rollups.py`, the way ingest commits
//! them (Parquet files per hour, offsets in the commit log), without a broker: the benchmark
//! measures rollups, not Kafka.
//!
//! Usage: `bench_lake <lake dir> <events> [seed]`

use std::time::Instant;

use opslake_ingest::batch::{Batch, Provenance};
use opslake_ingest::lake::{LogEntry, PartitionOffsets};
use opslake_ingest::sink::{data_file_path, encode_parquet, upload};
use opslake_ingest::Lake;
use opslake_schemas::{Event, MetricEvent, MetricKind};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};

const T0: i64 = 1_795_341_600_000; // 2026-11-22T10:00:00Z
const CHUNK: usize = 1_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).expect("lake directory");
    let n: usize = args.get(2).map_or(Ok(10_000_000), |s| s.parse())?;
    let seed: u64 = args.get(3).map_or(Ok(1), |s| s.parse())?;
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
    let span_ms = 2 * 3_600_000i64;
    let mut written = 0usize;
    while written < n {
        let m = CHUNK.min(n - written);
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
        let finished = batch.finish()?;
        let mut add = Vec::new();
        for ((table, date, hour), rb) in &finished.parts {
            let bytes = encode_parquet(std::slice::from_ref(rb))?;
            let rel = data_file_path(table.name(), date, *hour, "bench");
            add.push(upload(&lake, &rel, table.name(), rb.num_rows() as u64, bytes).await?);
        }
        let mut offsets = std::collections::BTreeMap::new();
        for ((t, p), (start, end)) in finished.offsets {
            offsets
                .entry(t)
                .or_insert_with(std::collections::BTreeMap::new)
                .insert(p, PartitionOffsets { start, end });
        }
        lake.commit(
            LogEntry {
                writer: "bench".into(),
                add,
                offsets,
                ..Default::default()
            },
            |_| Ok(()),
        )
        .await?;
        written += m;
        eprintln!("{written} events written ({:.0?})", started.elapsed());
    }
    Ok(())
}
