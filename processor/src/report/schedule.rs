//! The report scheduler: at each slot of the cron schedule, generates the forecast report,
//! stores it once across all instances, and delivers it. A failed report is retried with
//! backoff and logged; it never stops the pipeline.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use opslake_lake::Lake;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::config::ReportConfig;
use super::deliver::Delivery;
use super::generate::{generate, last_slot, Trigger};
use crate::metrics::METRICS;

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
