//! The alerts job: every `alerts.interval`, measure the SLOs, evaluate the built-in and
//! configured rules, and record in one lake commit the alerts' new states (the book), a row
//! per state change (`alerts`) and the SLOs' figures (`slo_status`). The commit is conditioned
//! on the book not having moved, so when two processors evaluate at once exactly one records;
//! only that one notifies, after its commit, so nobody is told twice and nothing is told that
//! the lake does not hold.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use opslake_lake::state_keys::{OTLP_SPLIT_PREFIX, QUARANTINE_PREFIX};
use opslake_lake::LakeError;
use tracing::warn;

use crate::alerts::backlog::{backlog, Brokers};
use crate::alerts::book::{AlertState, Book, BOOK_KEY};
use crate::alerts::builtin::{builtin_rules, PipelineFacts};
use crate::alerts::config::AlertsConfig;
use crate::alerts::notify::{Dispatcher, Notification};
use crate::alerts::outbox::{self, Owed};
use crate::alerts::record::alert_batch;
use crate::alerts::rule::{rows_of, Rule, Source};
use crate::error::ProcessError;
use crate::job::{state, AfterCommit, Cycle, Job, Progress, Work};
use crate::metrics::ALERT_METRICS;
use crate::slo::status::slo_status_batch;
use crate::slo::{measure, SloConfig, SloStatus};
use crate::sql::SqlEngine;

/// Everything alert evaluation needs from outside the processor.
#[derive(Clone)]
pub struct Alerting {
    /// Rules, receivers, budgets.
    pub config: AlertsConfig,
    /// The SLOs.
    pub slos: Vec<SloConfig>,
    /// The engine rules run on.
    pub engine: Arc<dyn SqlEngine>,
    /// The receivers' queues.
    pub dispatcher: Dispatcher,
    /// Where people reach opslake, for the links alerts carry.
    pub external_url: String,
    /// The brokers ingest reads, for the consumer backlog; `None` leaves it unwatched.
    pub brokers: Option<Arc<dyn Brokers>>,
}

/// The alerts job.
pub struct Alerts(pub Alerting);

/// One evaluation.
#[derive(Debug)]
pub struct Evaluation {
    now_ms: i64,
}

impl Alerts {
    fn link(&self, rule: &Rule) -> Option<String> {
        let Source::Sql(sql) = &rule.source else {
            return Some(format!("{}/alerts", self.0.external_url));
        };
        let mut url = reqwest::Url::parse(&self.0.external_url)
            .ok()?
            .join("sql")
            .ok()?;
        url.query_pairs_mut().append_pair("q", sql);
        Some(url.to_string())
    }

    /// Topics with events waiting on the brokers whose offsets in the lake have not moved for
    /// `alerts.stuck_after`, and rollup jobs whose progress has not moved for as long while an
    /// ingest commit they have not folded is that old.
    async fn pipeline_facts(
        &self,
        cx: &Cycle<'_>,
        book: &mut Book,
        now_ms: i64,
    ) -> Result<PipelineFacts, ProcessError> {
        let mut facts = PipelineFacts::default();
        let stuck_after = self.0.config.stuck_after.as_millis() as i64;
        if let Some(brokers) = &self.0.brokers {
            match backlog(brokers.as_ref(), &cx.snap.offsets).await {
                Ok(parts) => {
                    book.backlog.clone_from(&parts);
                    book.backlog_at_ms = now_ms;
                    let mut stuck: std::collections::BTreeMap<String, (i64, f64)> =
                        std::collections::BTreeMap::new();
                    for p in parts {
                        let key = format!("{}/{}", p.topic, p.partition);
                        let seen = book
                            .offsets_seen
                            .entry(key)
                            .or_insert((p.lake_next, now_ms));
                        if seen.0 != p.lake_next || p.messages == 0 {
                            *seen = (p.lake_next, now_ms);
                        } else if now_ms - seen.1 >= stuck_after {
                            let s = stuck.entry(p.topic).or_default();
                            s.0 += p.messages;
                            s.1 = s.1.max((now_ms - seen.1) as f64 / 1000.0);
                        }
                    }
                    facts.stuck = stuck.into_iter().map(|(t, (n, s))| (t, n, s)).collect();
                }
                Err(e) => {
                    warn!(error = %e, "cannot read the brokers' watermarks for the consumer backlog")
                }
            }
        }
        facts.quarantined = recorded(cx.snap, QUARANTINE_PREFIX, now_ms, DAY_MS, 20)
            .map(|(file, v)| {
                let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
                (text("job"), file.to_string(), text("reason"))
            })
            .collect();
        facts.split_series = recorded(cx.snap, OTLP_SPLIT_PREFIX, now_ms, HOUR_MS, 20)
            .map(|(topic, v)| {
                let series = v.get("series").and_then(|x| x.as_str()).unwrap_or("");
                (topic.to_string(), series.chars().take(200).collect())
            })
            .collect();
        for (job, key, table) in [
            (
                "metric_rollups",
                super::metric_rollups::PROGRESS_KEY,
                "metrics",
            ),
            ("log_rollups", super::log_rollups::PROGRESS_KEY, "logs"),
        ] {
            let p: Progress = state(cx.snap, key);
            let seen = book
                .progress_seen
                .entry(job.to_string())
                .or_insert((p.version, now_ms));
            if seen.0 != p.version {
                *seen = (p.version, now_ms);
                continue;
            }
            if now_ms - seen.1 < stuck_after || p.version >= cx.snap.version {
                continue;
            }
            let entries = match cx.lake.entries(p.version, cx.snap.version).await {
                Ok(e) => e,
                Err(LakeError::EntryGone { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let oldest = entries
                .iter()
                .filter(|e| !e.offsets.is_empty() && e.add.iter().any(|f| f.table == table))
                .map(|e| e.timestamp_ms)
                .min();
            if let Some(t) = oldest.filter(|t| now_ms - t >= stuck_after) {
                facts
                    .behind
                    .push((job.to_string(), (now_ms - t) as f64 / 1000.0));
            }
        }
        Ok(facts)
    }
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The lake state records under `prefix` made within `within_ms` of `now_ms` (their `at_ms`),
/// at most `most`: (the key after the prefix, the record).
fn recorded<'a>(
    snap: &'a opslake_lake::Snapshot,
    prefix: &'static str,
    now_ms: i64,
    within_ms: i64,
    most: usize,
) -> impl Iterator<Item = (&'a str, &'a serde_json::Value)> + 'a {
    snap.state
        .range(prefix.to_string()..)
        .take_while(move |(k, _)| k.starts_with(prefix))
        .filter(move |(_, v)| {
            v.get("at_ms")
                .and_then(serde_json::Value::as_i64)
                .is_some_and(|at| now_ms - at < within_ms)
        })
        .filter_map(move |(k, v)| Some((k.strip_prefix(prefix)?, v)))
        .take(most)
}

impl Job for Alerts {
    type Plan = Evaluation;

    fn name(&self) -> &'static str {
        "alerts"
    }

    fn progress_key(&self) -> &'static str {
        BOOK_KEY
    }

    fn interval(&self, _processor: Duration) -> Duration {
        self.0.config.interval
    }

    async fn plan(&self, cx: &Cycle<'_>) -> Result<Option<Evaluation>, ProcessError> {
        let book: Book = cx.state(BOOK_KEY);
        let now_ms = chrono::Utc::now().timestamp_millis();
        // A little early is on time: cycles are not exactly an interval apart.
        let due = book.evaluated_at_ms + self.0.config.interval.as_millis() as i64 * 9 / 10;
        Ok((now_ms >= due).then_some(Evaluation { now_ms }))
    }

    async fn run(&self, cx: &Cycle<'_>, plan: &Evaluation) -> Result<Work, ProcessError> {
        let cfg = &self.0.config;
        let now = plan.now_ms;
        let mut book: Book = cx.state(BOOK_KEY);
        let mut statuses: Vec<SloStatus> = Vec::new();
        for slo in &self.0.slos {
            match measure(self.0.engine.as_ref(), slo, now).await {
                Ok(s) => {
                    book.rule_errors.remove(&format!("slo:{}", slo.name));
                    statuses.push(s);
                }
                Err(e) => {
                    warn!(slo = slo.name, error = %e, "cannot measure the SLO");
                    book.failed(&format!("slo:{}", slo.name), e.0, now);
                }
            }
        }
        cx.stopping()?;
        let facts = self.pipeline_facts(cx, &mut book, now).await?;
        let mut rules = builtin_rules(cfg, &statuses, &facts);
        rules.extend(cfg.rules.iter().map(Rule::from_config));
        let stale_before = now - cfg.max_age.as_millis() as i64;
        let mut changes = Vec::new();
        for rule in &rules {
            let instances = match &rule.source {
                Source::Computed(i) => Ok(i.clone()),
                Source::Sql(sql) => self
                    .0
                    .engine
                    .query(sql)
                    .await
                    .and_then(|b| rows_of(&b))
                    .map(|rows| rule.instances(rows)),
            };
            match instances {
                Ok(i) => {
                    let for_ms = rule.for_.as_millis() as i64;
                    let link = self.link(rule);
                    changes.extend(book.apply(
                        &rule.id,
                        for_ms,
                        link.as_deref(),
                        i,
                        now,
                        stale_before,
                    ));
                }
                Err(e) => {
                    if book
                        .rule_errors
                        .get(&rule.id)
                        .is_none_or(|r| r.error != e.0)
                    {
                        warn!(rule = rule.id, error = %e, "alert rule failed; its alerts keep their state");
                    }
                    ALERT_METRICS
                        .rule_errors
                        .with_label_values(&[&rule.id])
                        .inc();
                    book.failed(&rule.id, e.0, now);
                }
            }
            cx.stopping()?;
        }
        let mut ids: BTreeSet<String> = rules.iter().map(|r| r.id.clone()).collect();
        ids.extend(self.0.slos.iter().map(|s| format!("slo:{}", s.name)));
        changes.extend(book.retire(&ids, now));
        // What is told now is not re-sent at once.
        for c in changes
            .iter()
            .filter(|c| c.notify && c.state == AlertState::Firing)
        {
            if let Some(a) = book.active.get_mut(&c.alert.fingerprint) {
                a.last_sent_ms = now;
            }
        }
        let resends = if self.0.dispatcher.wants_resends() {
            book.due_for_resend(now, cfg.resend_interval.as_millis() as i64)
        } else {
            Vec::new()
        };
        book.evaluated_at_ms = now;

        let mut work = Work::default();
        if !changes.is_empty() {
            work.add
                .push(cx.write_flat("alerts", alert_batch(&changes)?).await?);
        }
        if !statuses.is_empty() {
            work.add.push(
                cx.write_flat("slo_status", slo_status_batch(&statuses)?)
                    .await?,
            );
        }
        // Changes are owed to their receivers, recorded in this commit (the outbox); the
        // notifications still owed from before are handed over again with them.
        let dispatcher = &self.0.dispatcher;
        let mut new_owed = Vec::new();
        for c in changes.iter().filter(|c| c.notify) {
            let note = Notification {
                alert: c.alert.clone(),
                status: c.state,
                ends_at_ms: (c.state == AlertState::Resolved).then_some(c.at_ms),
                resend: false,
            };
            for receiver in dispatcher.routes_of(&note) {
                book.outbox_seq += 1;
                new_owed.push(Owed {
                    receiver: receiver.to_string(),
                    seq: book.outbox_seq,
                    note: note.clone(),
                });
            }
        }
        let before = outbox::owed(cx.snap);
        let (settled, dropped) = outbox::settle(&before, &new_owed, &dispatcher.receivers());
        if dropped > 0 {
            warn!(
                dropped,
                "receivers owed more than {} notifications: the oldest were dropped",
                outbox::MAX_OWED
            );
            ALERT_METRICS
                .notifications
                .with_label_values(&["outbox", "dropped"])
                .inc_by(dropped as u64);
        }
        let owed: Vec<Owed> = before
            .into_values()
            .flatten()
            .chain(new_owed)
            .filter(|o| settled.get(&o.key()).is_none_or(|v| !v.is_null()))
            .collect();
        let resends: Vec<Notification> = resends
            .into_iter()
            .map(|alert| Notification {
                alert,
                status: AlertState::Firing,
                ends_at_ms: None,
                resend: true,
            })
            .collect();
        let failing = book.rule_errors.len() as i64;
        let active: Vec<(AlertState, String)> = book
            .active
            .values()
            .map(|a| (a.state, a.severity().to_string()))
            .collect();
        work.set_state(BOOK_KEY, &book);
        work.state.extend(settled);
        let dispatcher = self.0.dispatcher.clone();
        work.after_commit = Some(AfterCommit::new(move || {
            dispatcher.send(&owed, &resends);
            ALERT_METRICS.evaluations.with_label_values(&["ok"]).inc();
            ALERT_METRICS.rules_failing.set(failing);
            ALERT_METRICS.active.reset();
            for (state, severity) in active {
                ALERT_METRICS
                    .active
                    .with_label_values(&[state.as_str(), &severity])
                    .inc();
            }
        }));
        Ok(work)
    }
}
