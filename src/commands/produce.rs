//! `opslake produce`: synthetic load, or NDJSON and FOCUS files replayed, into the topics.

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

use crate::cli::{OtlpFormat, ProduceArgs};
use crate::config::Config;
use crate::produce::{produce_blocking, Pace, Source, SyntheticOptions};
use crate::supervisor::spawn_signal_handler;
use opslake_schemas::otlp::OtlpEncoding;

fn resolve_topic(cfg: &Config, name: &str) -> String {
    match name {
        "metrics" => cfg.ingest.topics.metrics.clone(),
        "logs" => cfg.ingest.topics.logs.clone(),
        "billing" => cfg.ingest.topics.billing.clone(),
        "otlp_metrics" => cfg.ingest.topics.otlp_metrics.clone(),
        "otlp_logs" => cfg.ingest.topics.otlp_logs.clone(),
        other => other.to_string(),
    }
}

pub(crate) async fn produce(cfg: Config, args: ProduceArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    opslake_ingest::kafka::ensure_topics(&cfg.brokers, &cfg.ingest)
        .await
        .context("failed to reach the broker to create topics")?;
    let source = match &args.file {
        Some(path) => {
            let is_csv = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            if is_csv {
                let topic = resolve_topic(&cfg, args.topic.as_deref().unwrap_or("billing"));
                Source::FocusCsv {
                    path: path.clone(),
                    topic,
                }
            } else {
                let Some(t) = args.topic.as_deref() else {
                    bail!("--topic is required for an NDJSON file (metrics, logs, billing or a topic name)");
                };
                Source::Ndjson {
                    path: path.clone(),
                    topic: resolve_topic(&cfg, t),
                }
            }
        }
        None => {
            let start_ms = match &args.start {
                Some(s) => Some(
                    chrono::DateTime::parse_from_rfc3339(s)
                        .with_context(|| format!("--start {s:?} is not an RFC 3339 timestamp"))?
                        .timestamp_millis(),
                ),
                None => None,
            };
            let end_ms = match args.end.as_deref() {
                None => None,
                Some("now") => Some(chrono::Utc::now().timestamp_millis()),
                Some(s) => Some(
                    chrono::DateTime::parse_from_rfc3339(s)
                        .with_context(|| format!("--end {s:?} is not an RFC 3339 timestamp"))?
                        .timestamp_millis(),
                ),
            };
            if end_ms.is_some() && start_ms.is_none() {
                bail!("--end needs --start (it bounds a backfill's simulated time)");
            }
            Source::Synthetic(SyntheticOptions {
                seed: args.seed,
                start_ms,
                step_ms: args.step.as_secs_f64() * 1000.0,
                per_message: args.batch,
                only: args.only.clone(),
                end_ms,
                incidents: !args.no_incidents,
            })
        }
    };
    let pace = Pace {
        rate: args.rate,
        count: args.count,
        duration: args.duration,
        progress: !args.no_progress,
        otlp: args.otlp.map(|o| match o {
            OtlpFormat::Proto => OtlpEncoding::Proto,
            OtlpFormat::Json => OtlpEncoding::Json,
        }),
    };
    let brokers = cfg.brokers.clone();
    let kafka = cfg.ingest.kafka.clone();
    let topics = cfg.ingest.topics.clone();
    let report = tokio::task::spawn_blocking(move || {
        produce_blocking(&brokers, &kafka, &topics, source, &pace, &shutdown)
    })
    .await
    .context("producer thread panicked")??;
    println!(
        "produced {} messages ({} bytes)",
        report.messages, report.bytes
    );
    for (topic, n) in &report.by_topic {
        println!("  {topic}: {n}");
    }
    Ok(())
}
