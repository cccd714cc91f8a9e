//! Telling people: each receiver has a worker that takes the notifications routed to it (by its
//! label matchers), groups those that arrive within its `group_wait`, renders them in the
//! receiver's format and posts them, retrying with backoff. Evaluation only queues: a receiver
//! that is down or slow never holds up ingest or processing, and a full queue drops (and
//! counts) rather than grow without bound. URLs and keys are secrets: errors are logged without
//! them.

mod alertmanager;
mod pagerduty;
mod slack;
mod webhook;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::SecondsFormat;
use opslake_schemas::Secret;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::book::{Alert, AlertState};
use super::config::{ReceiverConfig, ReceiverKind};
use crate::metrics::ALERT_METRICS;

/// Notifications a receiver's queue holds before it drops new ones.
const QUEUE: usize = 10_000;
/// Attempts of one delivery.
const ATTEMPTS: u32 = 6;
/// First wait after a failed attempt; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One thing to tell: an alert fired or resolved, or a firing alert re-sent to Alertmanager.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The alert.
    pub alert: Alert,
    /// Firing or resolved.
    pub status: AlertState,
    /// When it resolved (epoch ms), for a resolve.
    pub ends_at_ms: Option<i64>,
    /// A re-send of a firing alert (Alertmanager only).
    pub resend: bool,
}

/// What every message says about where it comes from.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// Where people reach opslake.
    pub(crate) external_url: String,
    /// How long Alertmanager keeps a firing alert without a re-send.
    pub(crate) firing_for: Duration,
}

impl Origin {
    /// Where a notification about `alert` links to: the query behind it, or opslake.
    pub(crate) fn link(&self, alert: &Alert) -> String {
        alert
            .generator_url
            .clone()
            .unwrap_or_else(|| self.external_url.clone())
    }
}

/// One HTTP request of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub(crate) url: Secret,
    pub(crate) body: Value,
}

pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Labels every alert of `group` has with the same value.
pub(crate) fn common<'a>(
    group: &'a [Notification],
    of: impl Fn(&'a Notification) -> &'a BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = group.first().map(&of).cloned().unwrap_or_default();
    for n in group.iter().skip(1) {
        let m = of(n);
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

/// The requests that deliver `group` to `receiver`.
fn render(receiver: &ReceiverConfig, origin: &Origin, group: &[Notification]) -> Vec<Request> {
    match receiver.kind {
        ReceiverKind::Alertmanager => alertmanager::render(receiver, origin, group),
        ReceiverKind::Webhook => webhook::render(receiver, origin, group),
        ReceiverKind::Slack => slack::render(receiver, origin, group),
        ReceiverKind::Pagerduty => pagerduty::render(receiver, origin, group),
    }
}

/// The queues of the receivers, fed by the alert evaluation.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    routes: Vec<(ReceiverConfig, mpsc::Sender<Notification>)>,
}

impl Dispatcher {
    /// Starts a worker per receiver; they stop with `stop`.
    pub fn start(
        receivers: &[ReceiverConfig],
        external_url: String,
        firing_for: Duration,
        stop: &CancellationToken,
    ) -> Self {
        let origin = Origin {
            external_url,
            firing_for,
        };
        let routes = receivers
            .iter()
            .map(|r| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(worker(r.clone(), origin.clone(), rx, stop.clone()));
                (r.clone(), tx)
            })
            .collect();
        Self { routes }
    }

    /// Whether any receiver takes re-sends (an Alertmanager).
    pub fn wants_resends(&self) -> bool {
        self.routes
            .iter()
            .any(|(r, _)| r.kind == ReceiverKind::Alertmanager)
    }

    /// Queues each notification for the receivers whose matchers its labels meet; never waits.
    pub fn send(&self, notes: &[Notification]) {
        for (r, tx) in &self.routes {
            for n in notes {
                if n.resend && r.kind != ReceiverKind::Alertmanager {
                    continue;
                }
                if !r.matches(&n.alert.labels) {
                    continue;
                }
                if tx.try_send(n.clone()).is_err() {
                    ALERT_METRICS
                        .notifications
                        .with_label_values(&[&r.name, "dropped"])
                        .inc();
                }
            }
        }
    }
}

async fn worker(
    receiver: ReceiverConfig,
    origin: Origin,
    mut rx: mpsc::Receiver<Notification>,
    stop: CancellationToken,
) {
    let client = match reqwest::Client::builder().timeout(receiver.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            warn!(receiver = receiver.name, error = %e.without_url(), "cannot build an HTTP client; this receiver gets nothing");
            return;
        }
    };
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => return,
            n = rx.recv() => match n { Some(n) => n, None => return },
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + receiver.group_wait;
        while let Ok(Some(n)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            batch.push(n);
        }
        // One message per alert name: the receiver's notion of a group.
        let mut groups: BTreeMap<String, Vec<Notification>> = BTreeMap::new();
        for n in batch {
            groups
                .entry(n.alert.alertname().to_string())
                .or_default()
                .push(n);
        }
        for group in groups.values() {
            for req in render(&receiver, &origin, group) {
                deliver(&client, &receiver, &req, group.len() as u64, &stop).await;
            }
        }
    }
}

/// Posts `req`, retrying with backoff; counts the outcome per notification.
async fn deliver(
    client: &reqwest::Client,
    receiver: &ReceiverConfig,
    req: &Request,
    notes: u64,
    stop: &CancellationToken,
) {
    let count = |outcome: &str, n: u64| {
        ALERT_METRICS
            .notifications
            .with_label_values(&[&receiver.name, outcome])
            .inc_by(n);
    };
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(req.url.expose())
            .json(&req.body)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())
            .and_then(|r| {
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("answered {}", r.status()))
                }
            });
        match sent {
            Ok(()) => {
                debug!(
                    receiver = receiver.name,
                    notes, "alert notification delivered"
                );
                count("sent", notes);
                return;
            }
            Err(error) if attempt < ATTEMPTS => {
                count("retried", notes);
                debug!(
                    receiver = receiver.name,
                    attempt, error, "alert delivery failed; retrying"
                );
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(error) => {
                count("failed", notes);
                warn!(
                    receiver = receiver.name,
                    attempts = ATTEMPTS,
                    error,
                    "alert delivery failed; giving up"
                );
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn note(service: &str, status: AlertState, severity: &str) -> Notification {
        let labels = BTreeMap::from([
            ("alertname".to_string(), "P99High".to_string()),
            ("service".to_string(), service.to_string()),
            ("severity".to_string(), severity.to_string()),
        ]);
        Notification {
            alert: Alert {
                rule: "P99High".into(),
                fingerprint: crate::alerts::rule::fingerprint(&labels),
                labels,
                annotations: BTreeMap::from([(
                    "summary".to_string(),
                    format!("p99 of {service} is 612 ms"),
                )]),
                value: Some(612.0),
                state: AlertState::Firing,
                active_since_ms: 1_700_000_000_000,
                fired_at_ms: Some(1_700_000_060_000),
                stale: false,
                last_sent_ms: 0,
                generator_url: Some("http://opslake:8080/sql?q=SELECT+1".into()),
            },
            status,
            ends_at_ms: (status == AlertState::Resolved).then_some(1_700_000_600_000),
            resend: false,
        }
    }

    pub(crate) fn origin() -> Origin {
        Origin {
            external_url: "http://opslake:8080".into(),
            firing_for: Duration::from_secs(240),
        }
    }

    pub(crate) fn receiver(kind: &str) -> ReceiverConfig {
        let v: toml::Value = toml::from_str(&format!(
            "name = \"r\"\nkind = \"{kind}\"\nurl = \"http://hooks.example/T0KEN\"\nrouting_key = \"R0UT3\""
        ))
        .unwrap();
        v.try_into().unwrap()
    }

    #[test]
    fn common_labels_are_those_every_alert_shares() {
        let g = [
            note("a", AlertState::Firing, "critical"),
            note("b", AlertState::Firing, "critical"),
        ];
        let c = common(&g, |n| &n.alert.labels);
        assert_eq!(c.len(), 2);
        assert_eq!(c["severity"], "critical");
    }
}
