//! Summaries of recent lake log entries (time, and rows each ingest commit added per table),
//! kept in memory: entries never change once written, so each is read once.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::{stream, StreamExt, TryStreamExt};
use opslake_lake::{Lake, LakeError, LogEntry};

/// Log entries read at once.
const READ_AHEAD: usize = 16;
/// Versions looked at per step of the walk back.
const BATCH: u64 = 64;

/// What the pipeline page needs of one log entry.
#[derive(Debug, Clone)]
pub struct EntrySummary {
    /// When the entry was committed (epoch ms).
    pub timestamp_ms: i64,
    /// Rows added per table, when the entry is an ingest commit (it records offsets).
    pub ingested: Vec<(String, u64)>,
}

impl From<&LogEntry> for EntrySummary {
    fn from(e: &LogEntry) -> Self {
        let mut ingested: BTreeMap<String, u64> = BTreeMap::new();
        if !e.offsets.is_empty() {
            for f in &e.add {
                *ingested.entry(f.table.clone()).or_default() += f.rows;
            }
        }
        Self {
            timestamp_ms: e.timestamp_ms,
            ingested: ingested.into_iter().collect(),
        }
    }
}

/// Summaries of recent log entries by version.
#[derive(Debug, Default)]
pub struct LogSummaries(Mutex<BTreeMap<u64, EntrySummary>>);

impl LogSummaries {
    /// The summaries of the entries up to `upto` whose time is at or after `since_ms`, read
    /// newest first until one is older, reading only those not yet known; summaries older than
    /// `since_ms - keep_ms` are forgotten.
    ///
    /// # Errors
    /// When an entry cannot be read.
    pub async fn recent(
        &self,
        lake: &Lake,
        upto: u64,
        since_ms: i64,
        keep_ms: i64,
    ) -> Result<BTreeMap<u64, EntrySummary>, LakeError> {
        let mut top = upto;
        'walk: while top > 0 {
            let batch: Vec<u64> = (top.saturating_sub(BATCH - 1).max(1)..=top).rev().collect();
            let unknown: Vec<u64> = {
                let known = self.0.lock().expect("summaries lock");
                batch
                    .iter()
                    .copied()
                    .filter(|v| !known.contains_key(v))
                    .collect()
            };
            let read: Vec<(u64, Option<EntrySummary>)> = stream::iter(unknown)
                .map(|v| async move {
                    match lake.entries(v - 1, v).await {
                        Ok(e) => Ok((v, e.first().map(EntrySummary::from))),
                        Err(LakeError::EntryGone { .. }) => Ok((v, None)),
                        Err(e) => Err(e),
                    }
                })
                .buffered(READ_AHEAD)
                .try_collect()
                .await?;
            let mut known = self.0.lock().expect("summaries lock");
            for (v, s) in read {
                if let Some(s) = s {
                    known.insert(v, s);
                }
            }
            for v in &batch {
                match known.get(v) {
                    Some(s) if s.timestamp_ms >= since_ms => {}
                    // Older than the window, or trimmed (then nothing older can be read).
                    _ => break 'walk,
                }
            }
            top = batch.last().map_or(0, |v| v - 1);
        }
        let mut known = self.0.lock().expect("summaries lock");
        // Forget what no later window asks for.
        known.retain(|_, s| s.timestamp_ms >= since_ms - keep_ms);
        Ok(known
            .range(..=upto)
            .filter(|(_, s)| s.timestamp_ms >= since_ms)
            .map(|(v, s)| (*v, s.clone()))
            .collect())
    }
}
