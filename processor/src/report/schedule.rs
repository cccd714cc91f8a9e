//! Generating, storing, scheduling and delivering forecast reports.
//!
//! A report is three lake files committed together: its JSON and HTML documents under
//! `_reports/` and its row of the `reports` table. A scheduled report belongs to a slot of the
//! cron schedule; the commit records the slot and is refused when another instance recorded it
//! first, so any number of schedulers (in `opslake run` and `opslake process`) produce one report
//! per slot. A failed report is retried with backoff and logged; it never stops the pipeline.
//! Delivery (a webhook POST, a Kafka topic) happens after the commit, with its own retries.

use std::collections::BTreeMap;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{ArrayRef, Float64Builder, StringBuilder};
use datafusion::arrow::record_batch::RecordBatch;
use object_store::ObjectStoreExt;
use opslake_lake::write::{encode_parquet, upload};
use opslake_lake::Lake;
use opslake_lake::{CommitError, LogEntry};
use opslake_schemas::{KafkaProperties, Secret};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{build, html, ForecastReport, ReportInputs};
use crate::cost::daily::load_daily;
use crate::cost::{load_accuracy, load_forecasts, load_opportunities};
use crate::cost::{COST_DAILY, COST_FORECASTS, COST_OPPORTUNITIES, FORECAST_ACCURACY};
use crate::error::ProcessError;
use crate::metrics::METRICS;
use crate::read::read_batches;
use crate::rollup::ts_builder;

/// The `reports` table.
pub const REPORTS: &str = "reports";
/// Where report documents live (not a table).
pub const REPORT_FILES: &str = "_reports";
/// State key of the last scheduled slot reported.
pub const SLOT_KEY: &str = "reports.forecast.last_slot";

/// Settings of scheduled reports (`[reports]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// Generate forecast reports on the schedule (in `opslake run` and `opslake process`).
    pub enabled: bool,
    /// Cron schedule in UTC: `minute hour day month weekday`, or with seconds first.
    pub schedule: String,
    /// URL the report's JSON is POSTed to once it is stored; a secret (such URLs carry their
    /// credentials), never printed.
    pub webhook_url: Option<Secret>,
    /// Kafka topic the report's JSON is produced to (key: the report id), e.g.
    /// `telemetry.reports`.
    pub topic: Option<String>,
    /// Attempts of a failing report or delivery before giving up until the next slot.
    pub attempts: u32,
    /// Wait after the first failed attempt; it doubles after each further one.
    #[serde(with = "humantime_serde")]
    pub retry_delay: Duration,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            schedule: "0 6 * * *".into(),
            webhook_url: None,
            topic: None,
            attempts: 4,
            retry_delay: Duration::from_secs(30),
        }
    }
}

impl ReportConfig {
    /// The parsed schedule.
    ///
    /// # Errors
    /// Names the key and what is wrong with the pattern.
    pub fn cron(&self) -> Result<croner::Cron, opslake_schemas::ConfigError> {
        croner::Cron::from_str(&self.schedule).map_err(|e| {
            opslake_schemas::ConfigError::key(
                "reports.schedule",
                format!(
                    "{e} in {:?} (expected cron fields `minute hour day month weekday`, optionally with seconds first, e.g. \"0 6 * * *\")",
                    self.schedule
                ),
            )
        })
    }

    /// Checks the settings; the error names the key.
    ///
    /// # Errors
    /// When the schedule or the webhook URL does not parse, or attempts is 0.
    pub fn validate(&self) -> Result<(), opslake_schemas::ConfigError> {
        use opslake_schemas::ConfigError;
        self.cron()?;
        if let Some(u) = &self.webhook_url {
            let ok = reqwest::Url::parse(u.expose())
                .map(|u| matches!(u.scheme(), "http" | "https"))
                .unwrap_or(false);
            if !ok {
                // The value is not repeated: it is a secret.
                return Err(ConfigError::key(
                    "reports.webhook_url",
                    "not an http(s) URL",
                ));
            }
        }
        if self.attempts == 0 {
            return Err(ConfigError::key("reports.attempts", "at least 1"));
        }
        Ok(())
    }
}

/// Why a report was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `opslake report forecast` or the API.
    Manual,
    /// A slot of the schedule (epoch ms).
    Scheduled {
        /// The slot (epoch ms).
        slot_ms: i64,
    },
}

/// Errors of generating a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The cost tables could not be read.
    #[error("failed to read the cost tables: {0}")]
    Read(#[from] ProcessError),
    /// The report could not be stored in the lake.
    #[error("failed to store the report: {0}")]
    Store(#[from] opslake_lake::LakeError),
    /// The report row could not be encoded.
    #[error("failed to encode the report row: {0}")]
    Encode(#[from] datafusion::parquet::errors::ParquetError),
    /// The report row could not be built.
    #[error("failed to build the report row: {0}")]
    Row(#[from] datafusion::arrow::error::ArrowError),
}

fn stamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// Reads the cost tables of the lake's current snapshot.
///
/// # Errors
/// When a file cannot be read.
pub async fn load_inputs(lake: &Lake) -> Result<ReportInputs, ReportError> {
    let snap = lake.snapshot().await?;
    let mut inputs = ReportInputs::default();
    for (table, kind) in [
        (COST_DAILY, 0),
        (COST_FORECASTS, 1),
        (FORECAST_ACCURACY, 2),
        (COST_OPPORTUNITIES, 3),
    ] {
        for f in snap.table_files(table) {
            for b in read_batches(lake, &f.path).await? {
                let r = match kind {
                    0 => load_daily(&b, &mut inputs.daily),
                    1 => load_forecasts(&b, &mut inputs.forecasts),
                    2 => load_accuracy(&b, &mut inputs.accuracy),
                    _ => load_opportunities(&b, &mut inputs.opportunities),
                };
                r.map_err(|source| ProcessError::Rows {
                    path: f.path.clone(),
                    source,
                })?;
            }
        }
    }
    Ok(inputs)
}

fn report_row(
    r: &ForecastReport,
    generated_ms: i64,
    json: &str,
    html: &str,
) -> Result<RecordBatch, ReportError> {
    let date_ms = |d: &str| {
        chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(generated_ms, |t| t.and_utc().timestamp_millis())
    };
    let s = |v: &str| {
        let mut b = StringBuilder::new();
        b.append_value(v);
        Arc::new(b.finish()) as ArrayRef
    };
    let t = |v: i64| {
        let mut b = ts_builder(1);
        b.append_value(v);
        Arc::new(b.finish()) as ArrayRef
    };
    let f = |v: Option<f64>| {
        let mut b = Float64Builder::new();
        b.append_option(v);
        Arc::new(b.finish()) as ArrayRef
    };
    Ok(RecordBatch::try_new(
        opslake_schemas::tables::reports(),
        vec![
            s(&r.report_id),
            s(&r.kind),
            t(generated_ms),
            t(date_ms(&r.period_start)),
            t(date_ms(&r.period_end)),
            s(&r.summary),
            s(&r.trigger),
            f(Some(r.spend.month_to_date)),
            f(r.month_end.map(|e| e.forecast)),
            f(r.next_30_days.map(|e| e.forecast)),
            s(&r.currency),
            s(json),
            s(html),
        ],
    )?)
}

/// A stored report.
#[derive(Debug, Clone)]
pub struct StoredReport {
    /// The report.
    pub report: ForecastReport,
    /// Lake path of its JSON.
    pub json_path: String,
    /// Lake path of its HTML page.
    pub html_path: String,
    /// Lake version that recorded it.
    pub version: u64,
}

/// Builds a report from the lake's cost tables and commits it. For a scheduled trigger the
/// commit is refused when the slot was reported already (by this or another instance):
/// `Ok(None)` then.
///
/// # Errors
/// When the tables cannot be read or the report cannot be stored.
pub async fn generate(
    lake: &Lake,
    writer: &str,
    trigger: Trigger,
) -> Result<Option<StoredReport>, ReportError> {
    let inputs = load_inputs(lake).await?;
    let now = Utc::now().timestamp_millis();
    let (id, trigger_name) = match trigger {
        Trigger::Scheduled { slot_ms } => (format!("forecast-{}", stamp(slot_ms)), "schedule"),
        Trigger::Manual => (
            format!(
                "forecast-{}-manual-{}",
                stamp(now),
                &uuid::Uuid::new_v4().simple().to_string()[..6]
            ),
            "manual",
        ),
    };
    let report = build(&id, trigger_name, now, &inputs);
    let page = html::render(&report);
    let json = serde_json::to_vec_pretty(&report).expect("reports serialize");
    let json_path = format!("{REPORT_FILES}/{id}.json");
    let html_path = format!("{REPORT_FILES}/{id}.html");
    let row = report_row(&report, now, &json_path, &html_path)?;
    let row_bytes = tokio::task::spawn_blocking(move || encode_parquet(&[row]))
        .await
        .map_err(ProcessError::Join)??;
    let mut add = Vec::new();
    add.push(upload(lake, &json_path, REPORT_FILES, 0, Bytes::from(json)).await?);
    add.push(
        upload(
            lake,
            &html_path,
            REPORT_FILES,
            0,
            Bytes::from(page.into_bytes()),
        )
        .await?,
    );
    add.push(
        upload(
            lake,
            &format!("{REPORTS}/part-{id}.parquet"),
            REPORTS,
            1,
            row_bytes,
        )
        .await?,
    );
    let mut state = BTreeMap::new();
    if let Trigger::Scheduled { slot_ms } = trigger {
        state.insert(SLOT_KEY.to_string(), serde_json::json!(slot_ms));
    }
    let entry = LogEntry {
        writer: writer.to_string(),
        add: add.clone(),
        state,
        ..Default::default()
    };
    let committed = lake
        .commit(entry, move |s| match trigger {
            Trigger::Manual => Ok(()),
            Trigger::Scheduled { slot_ms } => match last_slot(s) {
                Some(done) if done >= slot_ms => {
                    Err(format!("slot {} was reported already", stamp(slot_ms)))
                }
                _ => Ok(()),
            },
        })
        .await;
    match committed {
        Ok(version) => Ok(Some(StoredReport {
            report,
            json_path,
            html_path,
            version,
        })),
        Err(e) => {
            for f in &add {
                let _ = lake.store().delete(&lake.path(&f.path)).await;
            }
            match e {
                CommitError::Conflict(_) => Ok(None),
                CommitError::Lake(e) => Err(e.into()),
            }
        }
    }
}

/// The last scheduled slot reported, from the lake's state.
pub fn last_slot(snap: &opslake_lake::Snapshot) -> Option<i64> {
    snap.state.get(SLOT_KEY).and_then(serde_json::Value::as_i64)
}

/// A Kafka topic reports are produced to.
#[derive(Clone, Debug)]
pub struct KafkaTarget {
    /// Bootstrap brokers.
    pub brokers: String,
    /// Further librdkafka properties.
    pub extra: KafkaProperties,
    /// The topic reports go to.
    pub topic: String,
    /// Replication factor if the topic is created.
    pub replication_factor: i32,
}

/// Where reports go after they are stored.
#[derive(Clone, Default)]
pub struct Delivery {
    /// Where the report is POSTed (a secret).
    pub webhook_url: Option<Secret>,
    /// Where to produce: brokers, extra librdkafka properties, topic, and the replication
    /// factor of the topic when it has to be created.
    pub kafka: Option<KafkaTarget>,
    /// Attempts per target.
    pub attempts: u32,
    /// Wait before the second attempt; doubles after each.
    pub retry_delay: Duration,
}

impl Delivery {
    /// The delivery a configuration asks for.
    pub fn from_config(
        cfg: &ReportConfig,
        brokers: &str,
        kafka: &KafkaProperties,
        replication_factor: i32,
    ) -> Self {
        Self {
            webhook_url: cfg.webhook_url.clone(),
            kafka: cfg.topic.clone().map(|topic| KafkaTarget {
                brokers: brokers.to_string(),
                extra: kafka.clone(),
                topic,
                replication_factor,
            }),
            attempts: cfg.attempts.max(1),
            retry_delay: cfg.retry_delay,
        }
    }

    /// Sends the report to every target, each with retries; failures are logged and counted,
    /// never returned.
    pub async fn deliver(&self, report: &ForecastReport, shutdown: &CancellationToken) {
        let body = serde_json::to_vec(report).expect("reports serialize");
        if let Some(url) = &self.webhook_url {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build();
            let ok = retry("webhook", self.attempts, self.retry_delay, shutdown, || {
                let body = body.clone();
                let client = client
                    .as_ref()
                    .map_err(|e| DeliveryError::Client(e.to_string()));
                async move {
                    let r = client?
                        .post(url.expose())
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        // reqwest's error names the URL, a secret.
                        .map_err(|e| DeliveryError::Http(e.without_url()))?;
                    if r.status().is_success() {
                        Ok(())
                    } else {
                        Err(DeliveryError::Status(r.status()))
                    }
                }
            })
            .await;
            METRICS
                .report_deliveries
                .with_label_values(&["webhook", if ok { "ok" } else { "failed" }])
                .inc();
        }
        if let Some(target) = &self.kafka {
            let ok = retry("topic", self.attempts, self.retry_delay, shutdown, || {
                let body = body.clone();
                async move { produce(target, &report.report_id, body).await }
            })
            .await;
            METRICS
                .report_deliveries
                .with_label_values(&["topic", if ok { "ok" } else { "failed" }])
                .inc();
        }
    }
}

/// Why one attempt to deliver a report failed.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The request failed (the error carries no URL: a webhook URL is a secret).
    #[error("the webhook request failed: {0}")]
    Http(reqwest::Error),
    #[error("the webhook answered {0}")]
    Status(reqwest::StatusCode),
    #[error("cannot create the report topic: {0}")]
    Topic(#[from] opslake_kafka::KafkaSetupError),
    #[error("cannot produce the report: {0}")]
    Produce(#[from] rdkafka::error::KafkaError),
}

async fn produce(target: &KafkaTarget, key: &str, body: Vec<u8>) -> Result<(), DeliveryError> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let KafkaTarget {
        brokers,
        extra,
        topic,
        replication_factor,
    } = target;
    // Brokers that do not create topics on first use still take the report.
    opslake_kafka::create_topics(brokers, extra, &[topic], 1, *replication_factor).await?;
    let producer: FutureProducer = opslake_kafka::client_config(brokers, extra)
        .set("message.timeout.ms", "10000")
        .create()?;
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(&body),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
        .map_err(|(e, _)| e.into())
}

/// Runs `f` up to `attempts` times with doubling waits; true when it succeeded.
async fn retry<F, Fut>(
    what: &str,
    attempts: u32,
    delay: Duration,
    shutdown: &CancellationToken,
    mut f: F,
) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), DeliveryError>>,
{
    let mut wait = delay;
    for attempt in 1..=attempts {
        match f().await {
            Ok(()) => return true,
            Err(e) => {
                warn!(
                    target_kind = what,
                    attempt,
                    attempts,
                    error = %e,
                    "report delivery failed"
                );
                if attempt == attempts {
                    break;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return false,
                    () = tokio::time::sleep(wait) => {}
                }
                wait *= 2;
            }
        }
    }
    false
}

/// The scheduler: at each slot of the schedule, generates the forecast report (retrying a
/// failure with backoff), stores it once across all instances, and delivers it. When it starts
/// after a missed slot of a lake that has reports, it catches up that slot once.
pub async fn run_scheduler(
    lake: Arc<Lake>,
    cfg: ReportConfig,
    delivery: Delivery,
    writer: String,
    shutdown: CancellationToken,
) {
    let cron = match cfg.cron() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "report scheduler not started");
            return;
        }
    };
    let started = Utc::now();
    info!(schedule = cfg.schedule, "report scheduler started");
    let mut given_up: Option<i64> = None;
    loop {
        let now = Utc::now();
        let due = cron
            .find_previous_occurrence(&now, true)
            .ok()
            .map(|t| t.timestamp_millis());
        let recorded = match lake.snapshot().await {
            Ok(s) => last_slot(&s),
            Err(e) => {
                warn!(error = %e, "report scheduler cannot read the lake; retrying");
                None
            }
        };
        if let Some(slot) = due {
            let pending = match recorded {
                Some(done) => slot > done,
                None => slot >= started.timestamp_millis() - 1000,
            };
            if pending && given_up != Some(slot) {
                let mut wait = cfg.retry_delay;
                for attempt in 1..=cfg.attempts.max(1) {
                    match generate(&lake, &writer, Trigger::Scheduled { slot_ms: slot }).await {
                        Ok(Some(stored)) => {
                            METRICS.reports.with_label_values(&["schedule", "ok"]).inc();
                            info!(
                                report = stored.report.report_id,
                                summary = stored.report.summary,
                                "forecast report generated"
                            );
                            delivery.deliver(&stored.report, &shutdown).await;
                            break;
                        }
                        Ok(None) => break, // another instance reported this slot
                        Err(e) => {
                            METRICS
                                .reports
                                .with_label_values(&["schedule", "error"])
                                .inc();
                            warn!(attempt, error = %e, "forecast report failed");
                            if attempt == cfg.attempts.max(1) {
                                given_up = Some(slot);
                                break;
                            }
                            tokio::select! {
                                () = shutdown.cancelled() => return,
                                () = tokio::time::sleep(wait) => {}
                            }
                            wait *= 2;
                        }
                    }
                }
            }
        }
        let next = cron
            .find_next_occurrence(&Utc::now(), false)
            .map(|t| (t - Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(Duration::from_secs(60));
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(next.min(Duration::from_secs(60)) + Duration::from_millis(50)) => {}
        }
    }
    info!("report scheduler stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_with_and_without_seconds() {
        let mut c = ReportConfig::default();
        assert!(c.validate().is_ok());
        c.schedule = "*/5 * * * * *".into();
        assert!(c.validate().is_ok());
        c.schedule = "every day".into();
        assert!(
            matches!(c.validate().unwrap_err(), opslake_schemas::ConfigError::Key { key, .. } if key == "reports.schedule")
        );
        c = ReportConfig {
            webhook_url: Some(Secret::new("ftp://x")),
            ..Default::default()
        };
        assert!(
            matches!(c.validate().unwrap_err(), opslake_schemas::ConfigError::Key { key, .. } if key == "reports.webhook_url")
        );
    }
}
