//! `opslake produce`: a realistic synthetic load for all three topics, and replay of NDJSON and
//! FOCUS CSV files.
//!
//! The generator models what opslake is for: services with endpoints whose latencies are
//! lognormal, a daily traffic and latency cycle, deploys of new versions that change latency,
//! error bursts, and a fleet of cloud resources (aws, azure, gcp, on-prem) with hourly billing,
//! trends, weekly cycles and utilization gauges, some of them idle or oversized on purpose.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use opslake_ingest::Topics;
use opslake_kafka::client_config;

use generator::Generator;

mod generator;
mod otlp;
mod resources;

/// Errors of `opslake produce`.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("failed to create kafka producer for {brokers}")]
    Producer { brokers: String, source: KafkaError },
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to read CSV {path}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("failed to produce to {topic}")]
    Send { topic: String, source: KafkaError },
}

/// What to send.
#[derive(Debug, Clone)]
pub enum Source {
    /// Synthetic events of all three kinds.
    Synthetic(SyntheticOptions),
    /// Each line of an NDJSON file is one message value, sent as is (invalid lines included).
    Ndjson { path: PathBuf, topic: String },
    /// Each row of a FOCUS CSV file becomes one billing event (`NULL` and empty cells are null).
    FocusCsv { path: PathBuf, topic: String },
}

/// Settings of the synthetic generator.
#[derive(Debug, Clone)]
pub struct SyntheticOptions {
    pub seed: u64,
    /// Event time of the first event; `None`: the wall clock (live).
    pub start_ms: Option<i64>,
    /// Simulated milliseconds between events when `start_ms` is set.
    pub step_ms: f64,
    /// Events per message (1 sends objects, more sends arrays).
    pub per_message: usize,
    /// Only events of this kind (`metrics`, `logs` or `billing`); `None`: all three.
    pub only: Option<String>,
    /// Stop when simulated time reaches this (epoch ms); only with `start_ms`.
    pub end_ms: Option<i64>,
    /// Error bursts (3 minutes every 2 hours per service) and deploys that change latency
    /// (every third 35% slower); without them, deploys leave latency as it was.
    pub incidents: bool,
}

/// How fast and how much.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    /// Messages per second; `None`: as fast as the broker takes them.
    pub rate: Option<f64>,
    /// Stop after this many messages.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Show a progress bar.
    pub progress: bool,
    /// Send metrics and logs as OTLP requests in this encoding, to the OTLP topics.
    pub otlp: Option<opslake_schemas::otlp::OtlpEncoding>,
}

/// What was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceReport {
    pub messages: u64,
    pub bytes: u64,
    pub by_topic: std::collections::BTreeMap<String, u64>,
}

/// Sends messages from `source` until it is exhausted, the pace says stop, or `shutdown`.
/// Blocking; run it on its own thread.
///
/// # Errors
/// When the producer cannot be created, a file cannot be read, or the broker refuses a message.
pub fn produce_blocking(
    brokers: &str,
    kafka: &opslake_schemas::KafkaProperties,
    topics: &Topics,
    source: Source,
    pace: &Pace,
    shutdown: &CancellationToken,
) -> Result<ProduceReport, ProduceError> {
    let producer: BaseProducer = client_config(brokers, kafka)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "500000")
        .set("compression.type", "lz4")
        .create()
        .map_err(|source| ProduceError::Producer {
            brokers: brokers.to_string(),
            source,
        })?;
    let mut sender = Sender::new(&producer, pace, shutdown);
    match source {
        Source::Synthetic(opts) => {
            let mut generator = Generator::new(&opts, topics);
            while sender.go_on() {
                let Some((topic, value)) = generator.next_message() else {
                    break;
                };
                let otlp = pace.otlp.and_then(|encoding| {
                    let logs = topic == topics.logs;
                    if !logs && topic != topics.metrics {
                        return None;
                    }
                    let request = otlp::to_otlp(&value, logs, encoding)?;
                    let to = if logs {
                        &topics.otlp_logs
                    } else {
                        &topics.otlp_metrics
                    };
                    Some((to, request))
                });
                match otlp {
                    Some((to, request)) => sender.send(to, None, &request)?,
                    None => sender.send(&topic, None, value.as_bytes())?,
                }
            }
        }
        Source::Ndjson { path, topic } => {
            let file = std::fs::File::open(&path).map_err(|source| ProduceError::Read {
                path: path.clone(),
                source,
            })?;
            for line in std::io::BufReader::new(file).split(b'\n') {
                let line = line.map_err(|source| ProduceError::Read {
                    path: path.clone(),
                    source,
                })?;
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if !sender.go_on() {
                    break;
                }
                sender.send(&topic, None, line)?;
            }
        }
        Source::FocusCsv { path, topic } => {
            for row in focus_rows(&path)? {
                if !sender.go_on() {
                    break;
                }
                sender.send(&topic, None, row.as_bytes())?;
            }
        }
    }
    sender.finish()
}

/// The rows of a FOCUS CSV file as JSON objects: header names as keys, cells as strings,
/// `NULL` and empty cells as null.
///
/// # Errors
/// When the file cannot be read as CSV.
pub fn focus_rows(path: &Path) -> Result<Vec<String>, ProduceError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|source| ProduceError::Csv {
            path: path.to_path_buf(),
            source,
        })?;
    let headers = reader
        .headers()
        .map_err(|source| ProduceError::Csv {
            path: path.to_path_buf(),
            source,
        })?
        .clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|source| ProduceError::Csv {
            path: path.to_path_buf(),
            source,
        })?;
        let mut obj = serde_json::Map::new();
        for (h, cell) in headers.iter().zip(record.iter()) {
            let v = if cell.is_empty() || cell == "NULL" {
                Value::Null
            } else {
                Value::String(cell.to_string())
            };
            obj.insert(h.to_string(), v);
        }
        rows.push(Value::Object(obj).to_string());
    }
    Ok(rows)
}

struct Sender<'a> {
    producer: &'a BaseProducer,
    pace: &'a Pace,
    shutdown: &'a CancellationToken,
    started: Instant,
    report: ProduceReport,
    bar: Option<ProgressBar>,
}

impl<'a> Sender<'a> {
    fn new(producer: &'a BaseProducer, pace: &'a Pace, shutdown: &'a CancellationToken) -> Self {
        let bar = pace.progress.then(|| {
            let bar = match pace.count {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new_spinner(),
            };
            let style = if pace.count.is_some() {
                "{elapsed_precise} [{wide_bar}] {pos}/{len} messages ({per_sec}, eta {eta})"
            } else {
                "{elapsed_precise} {spinner} {pos} messages ({per_sec}) {msg}"
            };
            bar.set_style(ProgressStyle::with_template(style).expect("valid template"));
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            producer,
            pace,
            shutdown,
            started: Instant::now(),
            report: ProduceReport::default(),
            bar,
        }
    }

    /// Whether to send another message; sleeps to keep the rate.
    fn go_on(&mut self) -> bool {
        if self.shutdown.is_cancelled() {
            return false;
        }
        if self.pace.count.is_some_and(|n| self.report.messages >= n) {
            return false;
        }
        if self
            .pace
            .duration
            .is_some_and(|d| self.started.elapsed() >= d)
        {
            return false;
        }
        if let Some(rate) = self.pace.rate {
            let due = self.started + Duration::from_secs_f64(self.report.messages as f64 / rate);
            let now = Instant::now();
            if due > now {
                self.producer.poll(Duration::ZERO);
                std::thread::sleep(due - now);
            }
        }
        true
    }

    fn send(&mut self, topic: &str, key: Option<&[u8]>, value: &[u8]) -> Result<(), ProduceError> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    self.producer.poll(Duration::from_millis(10));
                    record = r;
                }
                Err((source, _)) => {
                    return Err(ProduceError::Send {
                        topic: topic.to_string(),
                        source,
                    })
                }
            }
        }
        self.report.messages += 1;
        self.report.bytes += value.len() as u64;
        *self.report.by_topic.entry(topic.to_string()).or_default() += 1;
        if self.report.messages.is_multiple_of(1024) {
            self.producer.poll(Duration::ZERO);
            if let Some(bar) = &self.bar {
                bar.set_position(self.report.messages);
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<ProduceReport, ProduceError> {
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|source| ProduceError::Send {
                topic: "(flush)".into(),
                source,
            })?;
        if let Some(bar) = &self.bar {
            bar.set_position(self.report.messages);
            bar.finish();
        }
        Ok(self.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opslake_schemas::{decode_message, EventKind};

    #[test]
    fn focus_sample_rows_are_all_billing_events() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/focus/focus_sample.csv");
        let rows = focus_rows(&path).unwrap();
        assert_eq!(rows.len(), 1000);
        let (mut billed, mut effective) = (0.0, 0.0);
        for r in &rows {
            let d = decode_message(EventKind::Billing, r.as_bytes());
            assert_eq!(d.refused.len(), 0, "{r}: {:?}", d.refused);
            if let opslake_schemas::Event::Billing(b) = &d.events[0].1 {
                billed += b.cost;
                effective += b.effective_cost;
            }
        }
        assert_eq!(format!("{billed:.4}"), "20.5202");
        assert_eq!(format!("{effective:.4}"), "14.9765");
    }
}
