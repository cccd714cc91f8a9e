//! Decoding speed: serde_json against simd-json producing the same `serde_json::Value`, and the
//! whole decoder (parse + rules) on realistic metric messages: the reference path (a `Value`,
//! then the rules) and `decode_message` (the typed fast path of metrics).
//!
//! `cargo bench -p opslake-schemas --bench decode`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use opslake_schemas::decode::decode_values;
use opslake_schemas::{decode_message, EventKind};

fn messages() -> Vec<Vec<u8>> {
    (0..1000)
        .map(|i| {
            format!(
                r#"{{"timestamp": {}, "service": "checkout", "name": "http.server.duration", "value": {}.25, "unit": "ms", "kind": "sample", "host": "web-{}", "version": "1.4.2", "labels": {{"endpoint": "/api/pay", "method": "POST", "status": "200"}}}}"#,
                1_795_341_600_000i64 + i,
                i % 700,
                i % 7
            )
            .into_bytes()
        })
        .collect()
}

fn parse(c: &mut Criterion) {
    let msgs = messages();
    let bytes: u64 = msgs.iter().map(|m| m.len() as u64).sum();
    let mut g = c.benchmark_group("parse_1000_metric_messages");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("serde_json", |b| {
        b.iter(|| {
            for m in &msgs {
                let v: serde_json::Value = serde_json::from_slice(m).unwrap();
                std::hint::black_box(v);
            }
        })
    });
    g.bench_function("simd_json_to_serde_value", |b| {
        b.iter_batched(
            || msgs.clone(),
            |mut owned| {
                for m in &mut owned {
                    let v: serde_json::Value = simd_json::serde::from_slice(m).unwrap();
                    std::hint::black_box(v);
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("simd_json_borrowed_value", |b| {
        b.iter_batched(
            || msgs.clone(),
            |mut owned| {
                for m in &mut owned {
                    let v = simd_json::to_borrowed_value(m).unwrap();
                    std::hint::black_box(&v);
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("opslake_reference_path", |b| {
        b.iter(|| {
            for m in &msgs {
                std::hint::black_box(decode_values(EventKind::Metric, m));
            }
        })
    });
    g.bench_function("opslake_decode_message", |b| {
        b.iter(|| {
            for m in &msgs {
                std::hint::black_box(decode_message(EventKind::Metric, m));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
