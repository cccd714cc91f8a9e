//! Partitions taken away and given: applied by the consume loop in order, before the next
//! message. A batch holding revoked partitions is committed first, so that a reassignment of
//! the same partitions resumes after it instead of reading its messages twice; an assigned
//! partition resumes where the lake (or this process's own last commit) ends, with the
//! cumulative series as of that offset.

use super::session::Session;
use super::Ingest;
use crate::encode::Encoding;
use crate::error::IngestError;
use crate::membership::Change;
use crate::partition::PartitionState;
use opslake_lake::batch::Batch;

impl Ingest {
    /// Applies one change of the assignment.
    ///
    /// # Errors
    /// When the batches of revoked partitions cannot be committed.
    pub(super) fn apply(
        &self,
        change: Change,
        s: &mut Session<'_>,
        batch: &mut Batch,
        encoding: &mut Option<Encoding>,
    ) -> Result<(), IngestError> {
        match change {
            Change::Revoked(list) => {
                self.commit_encoding(encoding, s)?;
                if list.iter().any(|k| batch.offsets.contains_key(k)) {
                    let full = std::mem::take(batch);
                    self.flush(full, s)?;
                }
                for key in list {
                    s.parts.remove(&key);
                    let series = s.cumulative.remove(&key).unwrap_or_default();
                    if let Some(end) = s.committed_ends.get(&key) {
                        s.revoked_series.insert(key, (*end, series));
                    }
                }
            }
            Change::Assigned(list) => {
                for resume in list {
                    let key = resume.key;
                    let next = match (resume.next, s.committed_ends.get(&key)) {
                        (Some(n), Some(c)) => Some(n.max(*c)),
                        (n, c) => n.or(c.copied()),
                    };
                    // The series as of `next`: the lake's, unless this process committed past
                    // what the lake showed the assignment.
                    let series = match s.revoked_series.remove(&key) {
                        Some((end, series)) if Some(end) == next && resume.next != next => series,
                        _ => resume.series,
                    };
                    s.cumulative.insert(key.clone(), series);
                    // Read from before `next` only when that is where the lake's record put the
                    // consumer (this process's own commits resume at their end).
                    let start = resume.start.filter(|_| resume.next == next);
                    s.parts.insert(key, PartitionState::resuming(next, start));
                }
            }
        }
        Ok(())
    }
}
