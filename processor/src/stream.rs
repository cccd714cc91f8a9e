//! The processor's streams of work, the progress each records in the lake, and what a cycle
//! over them did.

use opslake_lake::Snapshot;
use serde::{Deserialize, Serialize};

/// State key of the processor's progress in the lake.
pub const PROGRESS_KEY: &str = "processor.rollups";

pub const METRIC_ROLLUPS_1M: &str = "metric_rollups_1m";
pub const METRIC_ROLLUPS_1H: &str = "metric_rollups_1h";
pub const LOG_ROLLUPS_1M: &str = "log_rollups_1m";
/// The processor's record in the lake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// Every ingest commit up to this lake version is folded into the rollups.
    pub(crate) version: u64,
    /// Window the rollups were built with; a change rebuilds them.
    pub(crate) window_ms: i64,
}

pub(crate) fn progress(snap: &Snapshot, stream: Stream) -> Progress {
    snap.state
        .get(stream.progress_key())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// The processor's independent work: each stream has its own progress in the lake and its own
/// commits, so instances can split the streams between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Metric rollups (1m, 1h), and anomalies and regressions of metric series.
    Metrics,
    /// Log rollups, and error-rate anomalies.
    Logs,
    /// Daily costs, forecasts and savings opportunities.
    Costs,
}

impl Stream {
    pub const ALL: [Stream; 3] = [Stream::Metrics, Stream::Logs, Stream::Costs];

    pub fn name(self) -> &'static str {
        match self {
            Stream::Metrics => "metrics",
            Stream::Logs => "logs",
            Stream::Costs => "costs",
        }
    }

    /// State key of the stream's progress.
    pub fn progress_key(self) -> &'static str {
        match self {
            Stream::Metrics => PROGRESS_KEY,
            Stream::Logs => "processor.logs",
            Stream::Costs => "processor.costs.progress",
        }
    }

    /// The raw table the stream folds.
    pub fn raw_table(self) -> &'static str {
        match self {
            Stream::Metrics => "metrics",
            Stream::Logs => "logs",
            Stream::Costs => "billing",
        }
    }

    /// Tables rebuilt when the rollup window changes.
    pub(crate) fn rollup_tables(self) -> &'static [&'static str] {
        match self {
            Stream::Metrics => &[METRIC_ROLLUPS_1M, METRIC_ROLLUPS_1H],
            Stream::Logs => &[LOG_ROLLUPS_1M],
            Stream::Costs => &[],
        }
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Lake version the cycle committed, if it committed.
    pub committed: Option<u64>,
    /// Hours whose rollups were rewritten.
    pub hours: usize,
    /// Raw files read.
    pub files_read: usize,
    /// Rollup rows written (all tables).
    pub rows_written: u64,
    /// Another processor committed first; this cycle's work was dropped.
    pub lost_race: bool,
    /// Anomalies and change points recorded.
    pub anomalies: u64,
    pub regressions: u64,
    /// Days of `cost_daily` rewritten, and savings opportunities found.
    pub cost_days: usize,
    pub opportunities: u64,
}

impl CycleReport {
    /// Adds another stream's cycle to this one.
    pub fn absorb(&mut self, o: CycleReport) {
        self.committed = self.committed.max(o.committed);
        self.hours += o.hours;
        self.files_read += o.files_read;
        self.rows_written += o.rows_written;
        self.lost_race |= o.lost_race;
        self.anomalies += o.anomalies;
        self.regressions += o.regressions;
        self.cost_days += o.cost_days;
        self.opportunities += o.opportunities;
    }
}
