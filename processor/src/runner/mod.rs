//! The processor: runs its jobs (see [`crate::job`]) in cycles, and records each job's work in
//! one commit of the lake.
//!
//! **Exactly once.** A job's progress is the lake version up to which every ingest commit of
//! its raw table has been folded (under the job's state key). A cycle reads the ingest commits
//! after that version, folds their files into the stored tables they touch, and commits the
//! replaced files together with the new progress, on the condition that the progress is still
//! what the cycle started from. A crash before the commit leaves only unreferenced files; a
//! second processor that raced it loses the condition and drops its work. So a raw row is
//! counted exactly once, after restarts, replays and races.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use opslake_lake::{CommitError, Lake, LogEntry, Snapshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::ProcessorConfig;
use crate::detect::config::DetectConfig;
use crate::error::ProcessError;
use crate::job::{Cycle, CycleReport, Job};
use crate::jobs::alerts::{Alerting, Alerts};
use crate::jobs::{Capacity, Costs, LogRollups, MetricRollups};
use crate::membership::Membership;
use crate::metrics::METRICS;
use crate::rollup::{LOG_ROLLUPS_1M, METRIC_ROLLUPS_1H, METRIC_ROLLUPS_1M};

/// The processor's jobs, in the order instances split them, with their settings from
/// `config`. A new job is one folder under `jobs/` and one more line here.
fn jobs(config: &ProcessorConfig) -> Vec<Box<dyn AnyJob>> {
    let detect = DetectConfig {
        directions: config.detect.directions.clone(),
        ..DetectConfig::default()
    };
    vec![
        Box::new(MetricRollups {
            detect: detect.clone(),
        }),
        Box::new(LogRollups { detect }),
        Box::new(Costs),
        Box::new(Capacity::default()),
    ]
}

/// One processor instance.
pub struct Processor {
    lake: Arc<Lake>,
    config: ProcessorConfig,
    writer: String,
    jobs: Vec<Box<dyn AnyJob>>,
}

impl Processor {
    /// An instance over `lake`, with a writer name of its own.
    pub fn new(lake: Arc<Lake>, config: ProcessorConfig) -> Self {
        let writer = format!(
            "processor-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let jobs = jobs(&config);
        Self {
            lake,
            config,
            writer,
            jobs,
        }
    }

    /// Adds the alerts job: SLOs, built-in and configured rules, notifications.
    #[must_use]
    pub fn with_alerting(mut self, alerting: Alerting) -> Self {
        self.jobs.push(Box::new(Alerts(alerting)));
        self
    }

    /// The names of the jobs, in the order instances split them.
    pub fn job_names(&self) -> Vec<&'static str> {
        self.jobs.iter().map(|j| j.name()).collect()
    }

    /// Runs cycles of this instance's jobs every `interval` until `shutdown`; a failed cycle is
    /// logged and retried. Jobs are split with the other instances of the lake (see
    /// [`crate::membership`]).
    pub async fn run(&self, shutdown: CancellationToken) {
        info!(writer = self.writer, window = ?self.config.window, "processor started");
        let membership = Membership::new(
            Arc::clone(&self.lake),
            self.writer.clone(),
            self.config.interval,
        );
        let names = self.job_names();
        let mut assigned: Vec<&'static str> = Vec::new();
        // When each job is next due; a job's cycles are its own interval apart.
        let mut due: Vec<tokio::time::Instant> = vec![tokio::time::Instant::now(); self.jobs.len()];
        loop {
            match membership.my_jobs(&names).await {
                Ok(mine) => {
                    if mine != assigned {
                        info!(jobs = ?mine, "processor jobs assigned");
                        assigned = mine;
                    }
                }
                Err(e) => warn!(error = %e, "cannot renew the processor heartbeat; retrying"),
            }
            for (i, job) in self.jobs.iter().enumerate() {
                if !assigned.contains(&job.name()) || due[i] > tokio::time::Instant::now() {
                    continue;
                }
                due[i] = tokio::time::Instant::now() + job.interval(self.config.interval);
                // The job's panic boundary: a panic in one cycle of one job is counted and
                // logged, and every job goes on (the job's lag shows in `OpslakePipeline`).
                let cycle = std::panic::AssertUnwindSafe(job.cycle(self, &shutdown));
                let outcome = match futures::FutureExt::catch_unwind(cycle).await {
                    Ok(outcome) => outcome,
                    Err(panic) => {
                        METRICS.cycles.with_label_values(&["panic"]).inc();
                        error!(
                            job = job.name(),
                            panic = panic_text(panic.as_ref()),
                            "processing cycle panicked (a defect of opslake); retrying next interval"
                        );
                        continue;
                    }
                };
                match outcome {
                    Ok(r) if r.quarantined > 0 => {
                        // Go on at once without the file set aside.
                        due[i] = tokio::time::Instant::now();
                    }
                    Ok(r) if r.committed.is_some() => debug!(?r, "processing cycle committed"),
                    Ok(_) => {}
                    Err(ProcessError::Stopping) => {
                        info!(
                            job = job.name(),
                            "processing cycle abandoned at shutdown; the next start does it again"
                        );
                        break;
                    }
                    Err(e) => {
                        METRICS.cycles.with_label_values(&["error"]).inc();
                        warn!(job = job.name(), error = %e, "processing cycle failed; retrying next interval");
                    }
                }
            }
            // Wake for the next job due, and at least every interval for the heartbeat.
            let next = due
                .iter()
                .copied()
                .min()
                .unwrap_or_else(tokio::time::Instant::now)
                .min(tokio::time::Instant::now() + self.config.interval)
                .max(tokio::time::Instant::now() + std::time::Duration::from_millis(50));
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(next) => {}
            }
        }
        membership.leave().await;
        info!("processor stopped");
    }

    /// One cycle of every job: fold everything ingest committed since the last cycle.
    ///
    /// # Errors
    /// When the lake cannot be read or written; nothing is recorded then.
    pub async fn cycle(&self) -> Result<CycleReport, ProcessError> {
        let never = CancellationToken::new();
        let mut total = CycleReport::default();
        for job in &self.jobs {
            total.absorb(job.cycle(self, &never).await?);
        }
        Ok(total)
    }

    /// One cycle of `job`, abandoned between two of its units of work once `stop` is
    /// cancelled: the job plans from a snapshot and runs, and its work is committed on the
    /// condition that its progress has not moved meanwhile. When nothing is recorded (an error,
    /// a stop, another instance first) the files it wrote are removed.
    async fn cycle_job<J: Job>(
        &self,
        job: &J,
        stop: &CancellationToken,
    ) -> Result<CycleReport, ProcessError> {
        let started = Instant::now();
        let snap = self.lake.snapshot().await?;
        let cx = Cycle::new(&self.lake, &snap, &self.config, &self.writer, stop);
        let Some(plan) = job.plan(&cx).await? else {
            METRICS.cycles.with_label_values(&["idle"]).inc();
            return Ok(CycleReport::default());
        };
        let work = match job.run(&cx, &plan).await {
            Ok(work) => work,
            Err(ProcessError::Quarantine { path, reason }) => {
                cx.discard().await;
                return self.quarantine(job.name(), &path, &reason).await;
            }
            Err(e) => {
                cx.discard().await;
                return Err(e);
            }
        };
        let key = job.progress_key();
        let before = snap.state.get(key).cloned();
        let mut report = work.report;
        let after_commit = work.after_commit;
        let entry = LogEntry {
            writer: self.writer.clone(),
            add: work.add,
            remove: work.remove,
            state: work.state,
            ..Default::default()
        };
        let committed = self
            .lake
            .commit(entry, move |s: &Snapshot| {
                if s.state.get(key) == before.as_ref() {
                    Ok(())
                } else {
                    Err(format!(
                        "another processor recorded progress under {key} since this cycle \
                         began at version {}",
                        snap.version
                    ))
                }
            })
            .await;
        match committed {
            Ok(v) => {
                report.committed = Some(v);
                METRICS.cycles.with_label_values(&["ok"]).inc();
                METRICS
                    .cycle_seconds
                    .observe(started.elapsed().as_secs_f64());
                job.committed(&plan, &report);
                if let Some(f) = after_commit {
                    f.run();
                }
                // The job's own counts make its log line: what it did, in its words.
                if report.counts.values().any(|n| *n > 0) {
                    info!(
                        job = job.name(),
                        version = v,
                        counts = ?report.counts,
                        ms = started.elapsed().as_millis() as u64,
                        "processed"
                    );
                }
                Ok(report)
            }
            Err(CommitError::Conflict(reason)) => {
                debug!(
                    reason,
                    "another processor got there first; dropping this cycle"
                );
                cx.discard().await;
                METRICS.cycles.with_label_values(&["conflict"]).inc();
                Ok(CycleReport {
                    lost_race: true,
                    ..CycleReport::default()
                })
            }
            Err(CommitError::Lake(e)) => {
                cx.discard().await;
                Err(e.into())
            }
        }
    }
}

impl Processor {
    /// Records that `job` set the raw file `path` aside, so that its next cycle goes on
    /// without it (`/api/v1/pipeline` lists it; `OpslakePipeline` alerts on it).
    async fn quarantine(
        &self,
        job: &str,
        path: &str,
        reason: &str,
    ) -> Result<CycleReport, ProcessError> {
        error!(
            job,
            path, reason, "raw file quarantined: the job goes on without it"
        );
        METRICS.cycles.with_label_values(&["quarantine"]).inc();
        let mut state = std::collections::BTreeMap::new();
        state.insert(
            crate::jobs::hours::quarantine_key(path),
            serde_json::json!({
                "job": job,
                "reason": reason,
                "at_ms": chrono::Utc::now().timestamp_millis(),
            }),
        );
        let entry = LogEntry {
            writer: self.writer.clone(),
            state,
            ..Default::default()
        };
        let committed = match self.lake.commit(entry, |_: &Snapshot| Ok(())).await {
            Ok(v) => Some(v),
            // Nothing to check: not refused. Either way the next cycle reads the record.
            Err(CommitError::Conflict(_)) => None,
            Err(CommitError::Lake(e)) => return Err(e.into()),
        };
        Ok(CycleReport {
            committed,
            quarantined: 1,
            ..CycleReport::default()
        })
    }
}

/// What a panic said.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".to_string())
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A [`Job`] of any plan type, as the runner holds it.
trait AnyJob: Send + Sync {
    fn name(&self) -> &'static str;
    fn interval(&self, processor: std::time::Duration) -> std::time::Duration;
    fn cycle<'a>(
        &'a self,
        processor: &'a Processor,
        stop: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<CycleReport, ProcessError>>;
}

impl<J: Job> AnyJob for J {
    fn name(&self) -> &'static str {
        Job::name(self)
    }

    fn interval(&self, processor: std::time::Duration) -> std::time::Duration {
        Job::interval(self, processor)
    }

    fn cycle<'a>(
        &'a self,
        processor: &'a Processor,
        stop: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<CycleReport, ProcessError>> {
        Box::pin(processor.cycle_job(self, stop))
    }
}

/// Counts of stored rollup files by table, for tests and operators.
pub fn rollup_files(snap: &Snapshot) -> std::collections::HashMap<String, usize> {
    [METRIC_ROLLUPS_1M, METRIC_ROLLUPS_1H, LOG_ROLLUPS_1M]
        .into_iter()
        .map(|t| (t.to_string(), snap.table_files(t).count()))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
