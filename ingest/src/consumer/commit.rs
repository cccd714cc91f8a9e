//! Committing a batch to the lake, exactly once: upload its files, then commit them with the
//! offsets they cover in one log entry, on the condition that the lake still ends where the
//! batch starts. While the lake fails the consumer's partitions are paused and the group is
//! still served; a conflict (another instance committed these offsets) restarts the consumer
//! from the lake's record. After the commit Kafka is told the offsets (for lag tools only) and
//! the batch's dead letters go to their topic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opslake_lake::batch::TopicPartition;
use opslake_lake::write::upload;
use opslake_lake::{CommitError, Lake, LakeError, LogEntry};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tracing::{debug, error};

use super::session::Session;
use crate::dead_letters;
use crate::encode::Encoded;
use crate::error::IngestError;
use crate::metrics::METRICS;
use crate::watchdog::IngestHealth;

/// What a commit needs of its ingest worker.
pub(crate) struct Committer<'a> {
    pub(crate) lake: &'a Arc<Lake>,
    /// The worker's name in the lake log.
    pub(crate) writer: &'a str,
    pub(crate) health: &'a IngestHealth,
    pub(crate) dead_letter_topic: &'a str,
}

impl Committer<'_> {
    /// Uploads and commits one encoded batch; retries while the lake fails, with partitions
    /// paused, until it succeeds or shutdown gives up.
    pub(crate) fn commit(&self, encoded: Encoded, s: &mut Session<'_>) -> Result<(), IngestError> {
        let Encoded {
            files,
            dead_letters,
            offsets,
            state,
            started,
        } = encoded;
        let entry_offsets = opslake_lake::batch::offsets_by_topic(&offsets);
        let entry_offsets_check = entry_offsets.clone();
        let check = move |snap: &opslake_lake::Snapshot| -> Result<(), String> {
            for (topic, ps) in &entry_offsets_check {
                for (p, o) in ps {
                    if let Some(next) = snap.next_offset(topic, *p) {
                        if next != o.start {
                            return Err(format!(
                                "{topic}/{p}: the lake is at offset {next}, this batch starts at {}",
                                o.start
                            ));
                        }
                    }
                }
            }
            Ok(())
        };

        let mut backoff = Duration::from_millis(200);
        let mut paused: Option<TopicPartitionList> = None;
        let mut failing_since: Option<Instant> = None;
        let outcome = loop {
            let attempt = s.handle.block_on(async {
                let mut adds = Vec::with_capacity(files.len());
                for f in &files {
                    adds.push(
                        upload(self.lake, &f.rel, f.table, f.rows, f.bytes.clone())
                            .await
                            .map_err(FlushFailure::Lake)?,
                    );
                }
                let entry = LogEntry {
                    writer: self.writer.to_string(),
                    add: adds,
                    offsets: entry_offsets.clone(),
                    state: state.clone(),
                    ..Default::default()
                };
                self.lake.commit(entry, &check).await.map_err(|e| match e {
                    CommitError::Lake(l) => FlushFailure::Lake(l),
                    CommitError::Conflict(c) => FlushFailure::Conflict(c),
                })
            });
            match attempt {
                Ok(version) => break Ok(version),
                Err(FlushFailure::Conflict(c)) => break Err(IngestError::Restart(c)),
                Err(FlushFailure::Lake(e)) => {
                    self.health.set_lake_writable(false);
                    METRICS.flush_failures.with_label_values(&["lake"]).inc();
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    error!(error = %e, cause = ?std::error::Error::source(&e), failing_for = ?since.elapsed(), "lake write failed; nothing committed, retrying");
                    if paused.is_none() {
                        if let Ok(a) = s.consumer.assignment() {
                            if s.consumer.pause(&a).is_ok() {
                                paused = Some(a);
                            }
                        }
                    }
                    if s.shutdown.is_cancelled() && since.elapsed() > Duration::from_secs(5) {
                        break Err(IngestError::FlushAbandoned { source: e });
                    }
                    let until = Instant::now() + backoff;
                    while Instant::now() < until {
                        // Keep serving the group (heartbeats, rebalances); paused partitions
                        // deliver nothing, and anything delivered anyway is re-read later.
                        if let Some(Ok(m)) = s.consumer.poll(Duration::from_millis(100)) {
                            let key = TopicPartition::new(m.topic(), m.partition());
                            if let Some(state) = s.parts.get_mut(&key) {
                                state.unread(m.offset());
                            }
                        }
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        };
        if let Some(a) = paused {
            let _ = s.consumer.resume(&a);
        }
        let version = match outcome {
            Ok(v) => v,
            Err(e) => {
                METRICS
                    .flush_seconds
                    .with_label_values(&["failed"])
                    .observe(started.elapsed().as_secs_f64());
                if matches!(e, IngestError::Restart(_)) {
                    METRICS
                        .flush_failures
                        .with_label_values(&["conflict"])
                        .inc();
                }
                return Err(e);
            }
        };
        self.health.set_lake_writable(true);
        self.health.progressed(offsets.keys().cloned());
        for f in &files {
            METRICS
                .rows_written
                .with_label_values(&[f.table])
                .inc_by(f.rows);
            METRICS.files_written.with_label_values(&[f.table]).inc();
            METRICS
                .bytes_written
                .with_label_values(&[f.table])
                .inc_by(f.bytes.len() as u64);
        }
        // The lake now holds these offsets; tell Kafka too, for lag monitoring only.
        let mut tpl = TopicPartitionList::new();
        for (tp, range) in &offsets {
            s.committed_ends.insert(tp.clone(), range.end);
            if let Some(state) = s.parts.get_mut(tp) {
                state.lake_next = Some(range.end);
                let _ =
                    tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(range.end));
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = s.consumer.commit(&tpl, CommitMode::Async) {
                debug!(error = %e, "kafka offset commit failed (the lake holds the offsets)");
            }
        }
        dead_letters::produce(s.producer, self.dead_letter_topic, &dead_letters);
        METRICS
            .flush_seconds
            .with_label_values(&["committed"])
            .observe(started.elapsed().as_secs_f64());
        debug!(version, files = files.len(), dead_letters = dead_letters.len(), elapsed = ?started.elapsed(), "flush committed");
        Ok(())
    }
}

enum FlushFailure {
    Lake(LakeError),
    Conflict(String),
}
