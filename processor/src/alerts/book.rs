//! The alert book: every active alert's state, kept in the lake's state so that a restart (or
//! another instance taking the job over) neither fires an alert twice nor forgets one that is
//! firing. Each evaluation of a rule moves its alerts along pending -> firing (after `for`) ->
//! resolved (when its row is gone) and returns the changes, which become `alerts` rows and,
//! for fresh data, notifications.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::rule::Instance;

/// State key of the book in the lake.
pub const BOOK_KEY: &str = "alerts.book";

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Its condition holds, for less than the rule's `for`.
    Pending,
    /// Its condition has held for `for`: people are told.
    Firing,
    /// Its condition no longer holds.
    Resolved,
}

impl AlertState {
    /// The `state` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// An active (pending or firing) alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule that made it.
    pub rule: String,
    /// Hash of its labels.
    pub fingerprint: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations, as last evaluated.
    pub annotations: BTreeMap<String, String>,
    /// Its value, as last evaluated.
    pub value: Option<f64>,
    /// Pending or firing.
    pub state: AlertState,
    /// When its condition began to hold (epoch ms).
    pub active_since_ms: i64,
    /// When it fired (epoch ms).
    pub fired_at_ms: Option<i64>,
    /// Its data is older than `max_age` (a backfill, a replay): recorded, never notified.
    pub stale: bool,
    /// When it was last sent to Alertmanager receivers (epoch ms).
    #[serde(default)]
    pub last_sent_ms: i64,
    /// A link to the query behind it.
    #[serde(default)]
    pub generator_url: Option<String>,
}

impl Alert {
    /// The `alertname` label.
    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    /// The `severity` label.
    pub fn severity(&self) -> &str {
        self.labels.get("severity").map_or("", String::as_str)
    }

    /// When it began, as told: when it fired, or when it became pending.
    pub fn starts_at_ms(&self) -> i64 {
        self.fired_at_ms.unwrap_or(self.active_since_ms)
    }
}

/// A rule whose query fails, and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleError {
    /// The engine's message.
    pub error: String,
    /// First failure of this run of failures (epoch ms).
    pub since_ms: i64,
    /// Latest failure (epoch ms).
    pub last_ms: i64,
}

/// One state change of an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The alert as it is after the change (its last state, for a resolve).
    pub alert: Alert,
    /// The new state.
    pub state: AlertState,
    /// When (epoch ms).
    pub at_ms: i64,
    /// Whether people are told: firing and resolved of fresh data.
    pub notify: bool,
}

/// Every active alert and failing rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Book {
    /// Active alerts by fingerprint.
    pub active: BTreeMap<String, Alert>,
    /// Failing rules by name.
    pub rule_errors: BTreeMap<String, RuleError>,
    /// When the rules were last evaluated (epoch ms).
    pub evaluated_at_ms: i64,
    /// Each rollup job's progress as last seen: (lake version, since when, epoch ms).
    #[serde(default)]
    pub progress_seen: BTreeMap<String, (u64, i64)>,
    /// The `seq` of the last notification recorded in the outbox.
    #[serde(default)]
    pub outbox_seq: u64,
    /// Each partition's next offset in the lake as last seen (`topic/partition`): (offset,
    /// since when, epoch ms).
    #[serde(default)]
    pub offsets_seen: BTreeMap<String, (i64, i64)>,
    /// Each partition's backlog when last measured (the console's pipeline page shows it).
    #[serde(default)]
    pub backlog: Vec<super::backlog::Backlog>,
    /// When the backlog was last measured (epoch ms; 0: never).
    #[serde(default)]
    pub backlog_at_ms: i64,
}

impl Book {
    /// Applies one evaluation of rule `rule` (pending `for_ms` before firing, its alerts
    /// linking to `link`) that found `instances` at `now_ms`; instances whose data is older
    /// than `stale_before_ms` are recorded, never notified.
    pub fn apply(
        &mut self,
        rule: &str,
        for_ms: i64,
        link: Option<&str>,
        instances: Vec<Instance>,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Vec<Change> {
        self.rule_errors.remove(rule);
        let mut changes = Vec::new();
        let mut seen = BTreeSet::new();
        for i in instances {
            seen.insert(i.fingerprint.clone());
            let stale = i.at_ms.is_some_and(|at| at < stale_before_ms);
            let alert = self.active.entry(i.fingerprint.clone()).or_insert_with(|| {
                let a = Alert {
                    rule: rule.to_string(),
                    fingerprint: i.fingerprint.clone(),
                    labels: i.labels.clone(),
                    annotations: i.annotations.clone(),
                    value: i.value,
                    state: AlertState::Pending,
                    active_since_ms: now_ms,
                    fired_at_ms: None,
                    stale,
                    last_sent_ms: 0,
                    generator_url: link.map(str::to_string),
                };
                if for_ms > 0 {
                    changes.push(Change {
                        alert: a.clone(),
                        state: AlertState::Pending,
                        at_ms: now_ms,
                        notify: false,
                    });
                }
                a
            });
            alert.annotations = i.annotations;
            alert.value = i.value;
            if alert.state == AlertState::Pending && now_ms - alert.active_since_ms >= for_ms {
                alert.state = AlertState::Firing;
                alert.fired_at_ms = Some(now_ms);
                // Fresh data now makes a pending alert of old data news.
                alert.stale &= stale;
                changes.push(Change {
                    alert: alert.clone(),
                    state: AlertState::Firing,
                    at_ms: now_ms,
                    notify: !alert.stale,
                });
            }
        }
        let gone: Vec<String> = self
            .active
            .iter()
            .filter(|(fp, a)| a.rule == rule && !seen.contains(*fp))
            .map(|(fp, _)| fp.clone())
            .collect();
        for fp in gone {
            changes.push(self.resolve(&fp, now_ms));
        }
        changes
    }

    /// Records that rule `rule` failed at `now_ms`: its alerts stay as they are.
    pub fn failed(&mut self, rule: &str, error: String, now_ms: i64) {
        let e = self
            .rule_errors
            .entry(rule.to_string())
            .or_insert(RuleError {
                error: String::new(),
                since_ms: now_ms,
                last_ms: now_ms,
            });
        e.error = error;
        e.last_ms = now_ms;
    }

    /// Resolves the alerts of rules no longer among `rules` (removed from the configuration).
    pub fn retire(&mut self, rules: &BTreeSet<String>, now_ms: i64) -> Vec<Change> {
        self.rule_errors.retain(|r, _| rules.contains(r));
        let gone: Vec<String> = self
            .active
            .iter()
            .filter(|(_, a)| !rules.contains(&a.rule))
            .map(|(fp, _)| fp.clone())
            .collect();
        gone.iter().map(|fp| self.resolve(fp, now_ms)).collect()
    }

    fn resolve(&mut self, fp: &str, now_ms: i64) -> Change {
        let alert = self.active.remove(fp).expect("resolving an active alert");
        // A pending alert was never told: its end is not news either.
        let notify = alert.state == AlertState::Firing && !alert.stale;
        Change {
            alert,
            state: AlertState::Resolved,
            at_ms: now_ms,
            notify,
        }
    }

    /// Firing, fresh alerts due to be re-sent at `now_ms` (last sent `resend_ms` ago or more);
    /// marks them sent.
    pub fn due_for_resend(&mut self, now_ms: i64, resend_ms: i64) -> Vec<Alert> {
        self.active
            .values_mut()
            .filter(|a| a.state == AlertState::Firing && !a.stale)
            .filter(|a| now_ms - a.last_sent_ms >= resend_ms)
            .map(|a| {
                a.last_sent_ms = now_ms;
                a.clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::rule::fingerprint;

    fn inst(service: &str, at_ms: Option<i64>) -> Instance {
        let labels = BTreeMap::from([
            ("alertname".to_string(), "P99High".to_string()),
            ("service".to_string(), service.to_string()),
        ]);
        Instance {
            fingerprint: fingerprint(&labels),
            labels,
            annotations: BTreeMap::new(),
            value: Some(1.0),
            at_ms,
        }
    }

    fn states(c: &[Change]) -> Vec<(&str, AlertState, bool)> {
        c.iter()
            .map(|c| (c.alert.labels["service"].as_str(), c.state, c.notify))
            .collect()
    }

    #[test]
    fn pending_then_firing_once_then_resolved_once() {
        let mut b = Book::default();
        let c = b.apply("P99High", 60_000, None, vec![inst("a", None)], 0, -1);
        assert_eq!(states(&c), [("a", AlertState::Pending, false)]);
        assert!(b
            .apply("P99High", 60_000, None, vec![inst("a", None)], 30_000, -1)
            .is_empty());
        let c = b.apply("P99High", 60_000, None, vec![inst("a", None)], 60_000, -1);
        assert_eq!(states(&c), [("a", AlertState::Firing, true)]);
        assert!(b
            .apply("P99High", 60_000, None, vec![inst("a", None)], 90_000, -1)
            .is_empty());
        // Survives a restart: the book is what the lake holds.
        let mut b: Book = serde_json::from_value(serde_json::to_value(&b).unwrap()).unwrap();
        let c = b.apply("P99High", 60_000, None, vec![], 120_000, -1);
        assert_eq!(states(&c), [("a", AlertState::Resolved, true)]);
        assert!(b.active.is_empty());
        assert!(b
            .apply("P99High", 60_000, None, vec![], 150_000, -1)
            .is_empty());
    }

    #[test]
    fn a_pending_alert_that_clears_is_never_told() {
        let mut b = Book::default();
        b.apply("P99High", 60_000, None, vec![inst("a", None)], 0, -1);
        let c = b.apply("P99High", 60_000, None, vec![], 10_000, -1);
        assert_eq!(states(&c), [("a", AlertState::Resolved, false)]);
    }

    #[test]
    fn old_data_is_recorded_and_never_notified() {
        let mut b = Book::default();
        let c = b.apply(
            "P99High",
            0,
            None,
            vec![inst("a", Some(1_000))],
            10_000_000,
            5_000_000,
        );
        assert_eq!(states(&c), [("a", AlertState::Firing, false)]);
        let c = b.apply("P99High", 0, None, vec![], 10_060_000, 5_060_000);
        assert_eq!(states(&c), [("a", AlertState::Resolved, false)]);
        assert!(b.due_for_resend(20_000_000, 60_000).is_empty());
    }

    #[test]
    fn a_failing_rule_keeps_its_alerts_and_is_reported() {
        let mut b = Book::default();
        b.apply("P99High", 0, None, vec![inst("a", None)], 0, -1);
        b.failed("P99High", "table x not found".into(), 15_000);
        assert_eq!(b.active.len(), 1);
        assert_eq!(b.rule_errors["P99High"].since_ms, 15_000);
        b.apply("P99High", 0, None, vec![inst("a", None)], 30_000, -1);
        assert!(b.rule_errors.is_empty());
        let c = b.retire(&BTreeSet::new(), 45_000);
        assert_eq!(states(&c), [("a", AlertState::Resolved, true)]);
    }

    #[test]
    fn firing_alerts_are_resent_every_interval() {
        let mut b = Book::default();
        b.apply(
            "P99High",
            0,
            None,
            vec![inst("a", None), inst("b", None)],
            0,
            -1,
        );
        assert_eq!(b.due_for_resend(60_000, 60_000).len(), 2);
        assert!(b.due_for_resend(90_000, 60_000).is_empty());
        assert_eq!(b.due_for_resend(120_000, 60_000).len(), 2);
    }
}
