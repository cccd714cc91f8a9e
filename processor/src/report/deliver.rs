//! Delivering a stored report: POSTed to a webhook and handed to a topic, each with its own
//! retries; failures are logged and counted, never returned. The topic is reached through
//! [`ReportTopic`], which the binary implements over Kafka: the processor speaks no Kafka.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use opslake_schemas::Secret;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::config::ReportConfig;
use super::ForecastReport;
use crate::metrics::METRICS;

/// Where reports are produced besides the webhook (a Kafka topic, in the binary).
pub trait ReportTopic: Send + Sync {
    /// Produces one report's JSON under `key` (the report id).
    ///
    /// # Errors
    /// Why it could not be produced (retried by the caller).
    fn produce<'a>(&'a self, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), String>>;
}

/// Where reports go after they are stored.
#[derive(Clone, Default)]
pub struct Delivery {
    /// Where the report is POSTed (a secret).
    pub webhook_url: Option<Secret>,
    /// Where the report is produced (a topic), when one is configured.
    pub topic: Option<Arc<dyn ReportTopic>>,
    /// Attempts per target.
    pub attempts: u32,
    /// Wait before the second attempt; doubles after each.
    pub retry_delay: Duration,
}

impl Delivery {
    /// The delivery a configuration asks for, producing to `topic` (made by the caller from
    /// `reports.topic`) when given.
    pub fn from_config(cfg: &ReportConfig, topic: Option<Arc<dyn ReportTopic>>) -> Self {
        Self {
            webhook_url: cfg.webhook_url.clone(),
            topic,
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
        if let Some(topic) = &self.topic {
            let ok = retry("topic", self.attempts, self.retry_delay, shutdown, || {
                let body = body.clone();
                async move {
                    topic
                        .produce(&report.report_id, body)
                        .await
                        .map_err(DeliveryError::Produce)
                }
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
    #[error("cannot produce the report: {0}")]
    Produce(String),
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
