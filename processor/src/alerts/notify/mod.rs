//! Telling people: each receiver has a worker that takes the notifications routed to it (by its
//! label matchers), groups those that arrive within its `group_wait`, renders them in the
//! receiver's format and posts them. Evaluation only hands them over: a receiver that is down
//! or slow never holds up ingest or processing.
//!
//! Notifications of changes are owed (see [`super::outbox`]): recorded in the lake before they
//! are handed over, retried until the receiver takes them (or refuses them for good: a 4xx
//! other than 408 and 429), then removed from the lake. A receiver that was down gets what it
//! missed when it is back, in order, a group per alert name rather than a storm of requests.
//! Re-sends of firing alerts to Alertmanager are not owed: a few attempts, then the next
//! re-send. URLs and keys are secrets: errors are logged without them.

mod alertmanager;
mod pagerduty;
mod slack;
mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::SecondsFormat;
use opslake_lake::{CommitError, Lake, LogEntry, Snapshot};
use opslake_schemas::Secret;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

pub use super::notification::Notification;
use super::outbox::Owed;

use super::book::Alert;
use super::config::{ReceiverConfig, ReceiverKind};
use crate::metrics::ALERT_METRICS;

/// Notifications a receiver's queue holds; beyond, owed ones wait in the outbox for the next
/// evaluation and re-sends are dropped.
const QUEUE: usize = 10_000;
/// Attempts of one re-send.
const ATTEMPTS: u32 = 6;
/// First wait after a failed attempt; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

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

/// What a receiver's worker is handed.
#[derive(Debug, Clone)]
enum Outgoing {
    /// A notification owed (recorded in the outbox).
    Owed(Owed),
    /// A re-send of a firing alert (Alertmanager only).
    Resend(Notification),
}

impl Outgoing {
    fn note(&self) -> &Notification {
        match self {
            Self::Owed(o) => &o.note,
            Self::Resend(n) => n,
        }
    }
}

/// The queues of the receivers, fed by the alert evaluation.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    routes: Vec<(ReceiverConfig, mpsc::Sender<Outgoing>)>,
}

/// Where a worker records deliveries: the lake, and its name in the lake's log.
#[derive(Clone)]
pub struct Ledger {
    /// The lake whose outbox the workers settle.
    pub lake: Arc<Lake>,
    /// The writer name of the workers' commits.
    pub writer: String,
}

impl Dispatcher {
    /// Starts a worker per receiver; they stop with `stop`. Delivered notifications are removed
    /// from the outbox of `ledger`'s lake.
    pub fn start(
        receivers: &[ReceiverConfig],
        external_url: String,
        firing_for: Duration,
        ledger: Ledger,
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
                let worker = Worker {
                    receiver: r.clone(),
                    origin: origin.clone(),
                    ledger: ledger.clone(),
                    stop: stop.clone(),
                    delivered_through: 0,
                };
                tokio::spawn(worker.run(rx));
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

    /// The receivers' names.
    pub fn receivers(&self) -> Vec<&str> {
        self.routes.iter().map(|(r, _)| r.name.as_str()).collect()
    }

    /// The receivers that take `note`: those whose matchers its labels meet (and, for a
    /// re-send, the Alertmanagers).
    pub fn routes_of(&self, note: &Notification) -> Vec<&str> {
        self.routes
            .iter()
            .filter(|(r, _)| !note.resend || r.kind == ReceiverKind::Alertmanager)
            .filter(|(r, _)| r.matches(&note.alert.labels))
            .map(|(r, _)| r.name.as_str())
            .collect()
    }

    /// Hands the owed notifications (the outbox's, in order) and the re-sends to the
    /// receivers' workers; never waits. A worker takes each owed notification once, however
    /// often it is handed over until its delivery is recorded.
    pub fn send(&self, owed: &[Owed], resends: &[Notification]) {
        for (r, tx) in &self.routes {
            let mine = owed
                .iter()
                .filter(|o| o.receiver == r.name)
                .cloned()
                .map(Outgoing::Owed);
            let resent = resends
                .iter()
                .filter(|n| r.kind == ReceiverKind::Alertmanager && r.matches(&n.alert.labels))
                .cloned()
                .map(Outgoing::Resend);
            for out in mine.chain(resent) {
                if tx.try_send(out).is_err() {
                    // Owed ones stay in the outbox and come again with the next evaluation.
                    ALERT_METRICS
                        .notifications
                        .with_label_values(&[&r.name, "queue_full"])
                        .inc();
                }
            }
        }
    }
}

/// Most notifications a worker takes into one round of delivery (grouped by alert name).
const ROUND: usize = 1_000;

/// One receiver's deliveries.
struct Worker {
    receiver: ReceiverConfig,
    origin: Origin,
    ledger: Ledger,
    stop: CancellationToken,
    /// The highest `seq` delivered (or refused for good) by this worker: owed notifications
    /// are handed over in order, so anything at or below it was taken care of.
    delivered_through: u64,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<Outgoing>) {
        let client = match reqwest::Client::builder()
            .timeout(self.receiver.timeout)
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                warn!(receiver = self.receiver.name, error = %e.without_url(), "cannot build an HTTP client; this receiver gets nothing");
                return;
            }
        };
        // Owed notifications taken but not delivered yet, by seq (the evaluation hands each
        // over again every cycle until its delivery is recorded).
        let mut taken: std::collections::BTreeSet<u64> = std::collections::BTreeSet::new();
        loop {
            let first = tokio::select! {
                () = self.stop.cancelled() => return,
                n = rx.recv() => match n { Some(n) => n, None => return },
            };
            let mut round = Vec::new();
            self.take(first, &mut taken, &mut round);
            let deadline = tokio::time::Instant::now() + self.receiver.group_wait;
            while round.len() < ROUND {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(n)) => self.take(n, &mut taken, &mut round),
                    _ => break,
                }
            }
            // A receiver back after a while: what queued up meanwhile goes in this round too.
            while round.len() < ROUND {
                match rx.try_recv() {
                    Ok(n) => self.take(n, &mut taken, &mut round),
                    Err(_) => break,
                }
            }
            if round.is_empty() {
                continue;
            }
            let Some(settled) = self.deliver_round(&client, &round).await else {
                return; // stopping: the owed ones stay in the outbox
            };
            if !settled.is_empty() {
                self.record_delivered(&settled).await;
                self.delivered_through = self
                    .delivered_through
                    .max(*settled.iter().max().unwrap_or(&0));
            }
            taken.retain(|s| *s > self.delivered_through);
        }
    }

    /// Takes `out` into the round unless it was taken or delivered already.
    fn take(
        &self,
        out: Outgoing,
        taken: &mut std::collections::BTreeSet<u64>,
        round: &mut Vec<Outgoing>,
    ) {
        if let Outgoing::Owed(o) = &out {
            if o.seq <= self.delivered_through || !taken.insert(o.seq) {
                return;
            }
        }
        round.push(out);
    }

    /// Delivers a round, one message per alert name, in order; the seqs of the owed
    /// notifications settled (delivered, or refused for good). `None` when stopping.
    async fn deliver_round(
        &self,
        client: &reqwest::Client,
        round: &[Outgoing],
    ) -> Option<Vec<u64>> {
        let mut groups: BTreeMap<String, Vec<&Outgoing>> = BTreeMap::new();
        for out in round {
            groups
                .entry(out.note().alert.alertname().to_string())
                .or_default()
                .push(out);
        }
        let mut settled = Vec::new();
        for group in groups.values() {
            let notes: Vec<Notification> = group.iter().map(|o| o.note().clone()).collect();
            let owed: Vec<u64> = group
                .iter()
                .filter_map(|o| match o {
                    Outgoing::Owed(o) => Some(o.seq),
                    Outgoing::Resend(_) => None,
                })
                .collect();
            for req in render(&self.receiver, &self.origin, &notes) {
                let persist = !owed.is_empty();
                if !deliver(
                    client,
                    &self.receiver,
                    &req,
                    notes.len() as u64,
                    persist,
                    &self.stop,
                )
                .await
                {
                    return None;
                }
            }
            settled.extend(owed);
        }
        Some(settled)
    }

    /// Removes the settled notifications from the outbox (retried a few times; if it never
    /// lands they are delivered again after a restart, which receivers deduplicate).
    async fn record_delivered(&self, seqs: &[u64]) {
        let state = seqs
            .iter()
            .map(|s| {
                (
                    super::outbox::key(&self.receiver.name, *s),
                    serde_json::Value::Null,
                )
            })
            .collect();
        let entry = LogEntry {
            writer: self.ledger.writer.clone(),
            state,
            ..Default::default()
        };
        let mut wait = FIRST_BACKOFF;
        for _ in 0..5 {
            match self
                .ledger
                .lake
                .commit(entry.clone(), |_: &Snapshot| Ok(()))
                .await
            {
                Ok(_) | Err(CommitError::Conflict(_)) => return,
                Err(CommitError::Lake(e)) => {
                    warn!(receiver = self.receiver.name, error = %e, "cannot record delivered notifications; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Posts `req`: a re-send gets [`ATTEMPTS`] tries, an owed notification is retried (backoff
/// up to [`MAX_BACKOFF`]) until the receiver takes it or refuses it for good (a 4xx other than
/// 408 or 429); counts the outcome per notification. False when stopping first.
async fn deliver(
    client: &reqwest::Client,
    receiver: &ReceiverConfig,
    req: &Request,
    notes: u64,
    owed: bool,
    stop: &CancellationToken,
) -> bool {
    let count = |outcome: &str, n: u64| {
        ALERT_METRICS
            .notifications
            .with_label_values(&[&receiver.name, outcome])
            .inc_by(n);
    };
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let sent = client
            .post(req.url.expose())
            .json(&req.body)
            .send()
            .await
            .map_err(|e| (e.without_url().to_string(), false))
            .and_then(|r| {
                let s = r.status();
                if s.is_success() {
                    Ok(())
                } else {
                    let permanent = s.is_client_error()
                        && s != reqwest::StatusCode::REQUEST_TIMEOUT
                        && s != reqwest::StatusCode::TOO_MANY_REQUESTS;
                    Err((format!("answered {s}"), permanent))
                }
            });
        match sent {
            Ok(()) => {
                debug!(
                    receiver = receiver.name,
                    notes, "alert notification delivered"
                );
                count("sent", notes);
                return true;
            }
            Err((error, true)) => {
                count("refused", notes);
                warn!(
                    receiver = receiver.name,
                    error, "the receiver refused the notification; not retried"
                );
                return true;
            }
            Err((error, false)) if owed || attempt < ATTEMPTS => {
                count("retried", notes);
                debug!(
                    receiver = receiver.name,
                    attempt, error, "alert delivery failed; retrying"
                );
                if attempt == ATTEMPTS {
                    warn!(
                        receiver = receiver.name,
                        error, "alert delivery keeps failing; retrying until the receiver takes it"
                    );
                }
                tokio::select! {
                    () = stop.cancelled() => return false,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err((error, false)) => {
                count("failed", notes);
                warn!(
                    receiver = receiver.name,
                    attempts = ATTEMPTS,
                    error,
                    "alert re-send failed; giving up"
                );
                return true;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::alerts::book::AlertState;

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
