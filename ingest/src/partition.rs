//! What the consume loop knows of one assigned partition, and the decision it takes for each
//! message: accept it, skip it (a redelivery), or read the partition again from before the
//! offset it expected (a jump past it). Pure, so it is tested without a broker.

/// What the loop knows of one assigned partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PartitionState {
    /// The lake's next offset as of the last commit or assignment; `None`: the lake holds none.
    pub(crate) lake_next: Option<i64>,
    /// Next offset expected from Kafka; anything below is a redelivery and is skipped.
    pub(crate) position: Option<i64>,
    /// Set while the partition is read again after a message arrived beyond `position`.
    reread: Option<Reread>,
}

/// A re-read of a partition from at or before its expected offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reread {
    /// How far before the expected offset it started.
    back: i64,
    /// Whether it delivered messages from before the expected offset: then the broker served
    /// the log from there, and a jump past the expected offset is a real gap in the log.
    saw_below: bool,
}

/// What to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Decode it into the batch: it is the next message of the partition (or the first after
    /// a real gap in the log).
    Accept,
    /// Drop it: the lake, or the batch being built, already holds it.
    Skip,
    /// Seek the partition to this offset and read again: the message came past the expected
    /// offset, and the ones between may only not have been delivered.
    ReadAgainFrom(i64),
}

impl PartitionState {
    /// A partition assigned at the lake's next offset `lake_next`.
    pub(crate) fn at(lake_next: Option<i64>) -> Self {
        Self {
            lake_next,
            position: lake_next,
            reread: None,
        }
    }

    /// A partition assigned at the lake's next offset `lake_next`, read from `start` (at or
    /// before it): until the broker delivers a message from before `lake_next`, a message past
    /// it is read again from further back, as after any jump.
    pub(crate) fn resuming(lake_next: Option<i64>, start: Option<i64>) -> Self {
        let mut s = Self::at(lake_next);
        if let (Some(next), Some(start)) = (lake_next, start) {
            if start < next {
                s.reread = Some(Reread {
                    back: next - start,
                    saw_below: false,
                });
            }
        }
        s
    }

    /// Decides what to do with the message at `offset`, and records it.
    ///
    /// A message past the next expected offset means either that the log has a gap there
    /// (compaction, transaction markers), or that the skipped messages were not delivered: a
    /// fetch from before a reassignment or a pause overtook them, or the broker answered a
    /// fetch that starts inside a record batch with the next batch (Tansu 0.6 does). Accepting
    /// it would record the skipped offsets as ingested. So the partition is read again from the
    /// expected offset, then from ever further before it (16, 128, 1024, ... back), until the
    /// broker delivers the log from before it: a fetch that starts at or before the batch
    /// holding the expected offset returns that batch, and the messages before the expected
    /// offset are skipped. Once the log from before it was delivered, a jump is a real gap.
    pub(crate) fn decide(&mut self, offset: i64) -> Decision {
        if let Some(expected) = self.position {
            if offset < expected {
                if let Some(r) = &mut self.reread {
                    r.saw_below = true;
                }
                return Decision::Skip;
            }
            let real_gap = self
                .reread
                .is_some_and(|r| r.saw_below || r.back >= expected);
            if offset > expected && !real_gap {
                let back = match self.reread {
                    None => 0,
                    Some(Reread { back: 0, .. }) => 16,
                    Some(Reread { back, .. }) => back.saturating_mul(8),
                };
                self.reread = Some(Reread {
                    back,
                    saw_below: false,
                });
                return Decision::ReadAgainFrom((expected - back).max(0));
            }
        }
        self.reread = None;
        self.position = Some(offset + 1);
        Decision::Accept
    }

    /// A message delivered while the loop does not take messages (the lake refuses commits):
    /// it is read again later, so the expected offset goes back to it.
    pub(crate) fn unread(&mut self, offset: i64) {
        self.position = self.position.map(|p| p.min(offset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_next_message_is_accepted_and_a_redelivery_skipped() {
        let mut s = PartitionState::at(Some(10));
        assert_eq!(s.decide(10), Decision::Accept);
        assert_eq!(s.decide(11), Decision::Accept);
        assert_eq!(s.decide(5), Decision::Skip);
        assert_eq!(s.position, Some(12));
    }

    #[test]
    fn a_jump_is_read_again_from_ever_further_back_until_the_log_before_it_comes() {
        let mut s = PartitionState::at(Some(100));
        assert_eq!(s.decide(105), Decision::ReadAgainFrom(100));
        assert_eq!(s.decide(105), Decision::ReadAgainFrom(84));
        assert_eq!(
            s.decide(105),
            Decision::ReadAgainFrom(0),
            "never before the log's start"
        );
        // The broker now serves the batch holding 100: the messages before it are skipped, 100
        // is accepted.
        let mut s = PartitionState::at(Some(100));
        assert_eq!(s.decide(105), Decision::ReadAgainFrom(100));
        assert_eq!(s.decide(98), Decision::Skip);
        assert_eq!(s.decide(100), Decision::Accept);
    }

    #[test]
    fn a_jump_after_the_log_before_it_was_delivered_is_a_real_gap() {
        let mut s = PartitionState::at(Some(100));
        assert_eq!(s.decide(103), Decision::ReadAgainFrom(100));
        assert_eq!(s.decide(99), Decision::Skip);
        assert_eq!(
            s.decide(103),
            Decision::Accept,
            "100..103 are not in the log"
        );
        assert_eq!(s.position, Some(104));
    }

    #[test]
    fn a_partition_the_lake_never_held_takes_its_first_message() {
        let mut s = PartitionState::at(None);
        assert_eq!(s.decide(42), Decision::Accept);
        assert_eq!(s.decide(44), Decision::ReadAgainFrom(43));
    }

    /// The messages a fetch from `from` delivers, as Tansu 0.6 answers it: every batch that
    /// starts at or after `from`, whole; a fetch that starts inside a batch gets the batches
    /// after it (a broker that serves that batch too is the easy case: the client drops the
    /// messages before `from`).
    fn deliver(log: &[(i64, i64)], from: i64) -> Vec<i64> {
        log.iter()
            .filter(|(base, _)| *base >= from)
            .flat_map(|(base, last)| *base..=*last)
            .collect()
    }

    proptest! {
        /// Whatever the batch layout, the offset the lake resumes at, and the broker's habit of
        /// skipping to the next batch, the messages accepted are exactly the log's from the
        /// resume offset on, once each, in order.
        #[test]
        fn every_message_from_the_resume_point_is_accepted_once_in_order(
            sizes in proptest::collection::vec(1i64..20, 1..30),
            gaps in proptest::collection::vec(0i64..3, 30),
            resume_at in 0usize..200,
            after in proptest::bool::ANY,
        ) {
            // Batches (first offset, last offset), with gaps between some (compaction).
            let mut log = Vec::new();
            let mut next = 0;
            for (size, gap) in sizes.iter().zip(&gaps) {
                next += gap;
                log.push((next, next + size - 1));
                next += size;
            }
            let offsets: Vec<i64> = log.iter().flat_map(|(b, l)| *b..=*l).collect();
            // The lake resumes at an offset of the log, or just after one (maybe in a gap).
            let resume = offsets[resume_at % offsets.len()] + i64::from(after);
            // A message produced later: on Tansu, a consumer that resumes inside the last batch
            // is answered with nothing until the partition has a next batch.
            log.push((next, next));
            let offsets: Vec<i64> = log.iter().flat_map(|(b, l)| *b..=*l).collect();
            let mut state = PartitionState::at(Some(resume));
            let mut accepted = Vec::new();
            let mut from = resume;
            let mut fetches = 0;
            'fetch: loop {
                fetches += 1;
                prop_assert!(fetches < 200, "the re-reads never end");
                for offset in deliver(&log, from) {
                    match state.decide(offset) {
                        Decision::Accept => accepted.push(offset),
                        Decision::Skip => {}
                        Decision::ReadAgainFrom(o) => {
                            from = o;
                            continue 'fetch;
                        }
                    }
                }
                break;
            }
            let want: Vec<i64> = offsets.into_iter().filter(|o| *o >= resume).collect();
            prop_assert_eq!(accepted, want);
        }
    }
}
