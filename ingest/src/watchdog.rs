//! The stalled-partition watchdog.
//!
//! Whatever a broker does with the members of a consumer group, a partition that has events to
//! read while the lake's offset for it has not moved for longer than the session timeout is
//! read by nobody: its member died and the broker kept its partitions (Tansu 0.6 does, until
//! something else makes the group rebalance), or it stopped consuming without leaving. The
//! watchdog compares, every few seconds, each partition's high watermark with the lake's next
//! offset, and reports such partitions in [`IngestHealth`] (`/readyz`, the metric
//! `opslake_ingest_stalled_partitions`, a log line). The consume loop then rejoins the group as a
//! new member when a stalled partition is not its own, which makes every broker form the group
//! again without the silent members.

use std::collections::HashMap;

use opslake_lake::batch::TopicPartition;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::metrics::METRICS;
use opslake_kafka::client_config;
use opslake_lake::Lake;

/// A partition with events to read and no progress in the lake for longer than the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StalledPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Messages in Kafka beyond the lake's offset.
    pub lag: i64,
    /// How long the lake's offset has not moved, whole seconds.
    pub stalled_secs: u64,
}

impl std::fmt::Display for StalledPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} (lag {}, no progress for {} s)",
            self.topic, self.partition, self.lag, self.stalled_secs
        )
    }
}

/// What the watchdog knows, shared with the consume loop and the HTTP probes.
#[derive(Clone, Default)]
pub struct IngestHealth {
    inner: Arc<HealthInner>,
}

#[derive(Default)]
struct HealthInner {
    /// Set while any partition is stalled: the consume loop reads it per message.
    any_stalled: AtomicBool,
    stalled: Mutex<Vec<StalledPartition>>,
    /// When this process last rejoined its group; stalls are measured from then at the
    /// earliest, so a rejoin has a session timeout to take effect.
    rejoined_at: Mutex<Option<Instant>>,
    /// Set while the consume loop's commits fail: nothing can progress then, and readiness
    /// reports the lake, so no partition is called stalled.
    lake_unwritable: AtomicBool,
    /// When this process last moved each partition's lake offset.
    progressed_at: Mutex<HashMap<TopicPartition, Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl IngestHealth {
    /// The partitions stalled as of the watchdog's last look.
    #[must_use]
    pub fn stalled(&self) -> Vec<StalledPartition> {
        if !self.inner.any_stalled.load(Ordering::Relaxed) {
            return Vec::new();
        }
        lock(&self.inner.stalled).clone()
    }

    /// Whether any partition is stalled; cheap enough to ask per message.
    #[must_use]
    pub fn any_stalled(&self) -> bool {
        self.inner.any_stalled.load(Ordering::Relaxed)
    }

    /// Readiness: `Err` with the stalled partitions while there are any.
    ///
    /// # Errors
    /// A sentence naming each stalled partition.
    pub fn check(&self) -> Result<(), String> {
        let stalled = self.stalled();
        if stalled.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = stalled.iter().map(ToString::to_string).collect();
        Err(format!(
            "stalled partitions (events to read, nobody consuming): {}",
            list.join(", ")
        ))
    }

    /// Records whether the lake took the consume loop's last commit.
    pub(crate) fn set_lake_writable(&self, writable: bool) {
        METRICS.lake_writable.set(i64::from(writable));
        self.inner
            .lake_unwritable
            .store(!writable, Ordering::Relaxed);
    }

    fn lake_unwritable(&self) -> bool {
        self.inner.lake_unwritable.load(Ordering::Relaxed)
    }

    /// Records that the lake now holds more of `partitions`: none of them is stalled, whatever
    /// a look that began before this found.
    pub(crate) fn progressed(&self, partitions: impl IntoIterator<Item = TopicPartition>) {
        let now = Instant::now();
        let moved: Vec<TopicPartition> = {
            let mut at = lock(&self.inner.progressed_at);
            partitions
                .into_iter()
                .inspect(|k| {
                    at.insert(k.clone(), now);
                })
                .collect()
        };
        if self.any_stalled() {
            let still: Vec<StalledPartition> = self
                .stalled()
                .into_iter()
                .filter(|p| {
                    !moved
                        .iter()
                        .any(|m| m.topic == p.topic && m.partition == p.partition)
                })
                .collect();
            self.set_stalled(still);
        }
    }

    /// Publishes what a look that began at `looked_at` found, less the partitions that moved
    /// since it began.
    fn publish(&self, stalled: Vec<StalledPartition>, looked_at: Instant) {
        let stalled = {
            let at = lock(&self.inner.progressed_at);
            stalled
                .into_iter()
                .filter(|p| {
                    at.get(&TopicPartition::new(&p.topic, p.partition))
                        .is_none_or(|moved| *moved < looked_at)
                })
                .collect()
        };
        self.set_stalled(stalled);
    }

    fn set_stalled(&self, stalled: Vec<StalledPartition>) {
        METRICS
            .stalled_partitions
            .set(i64::try_from(stalled.len()).unwrap_or(i64::MAX));
        let mut current = lock(&self.inner.stalled);
        let keys = |v: &[StalledPartition]| -> Vec<TopicPartition> {
            v.iter()
                .map(|s| TopicPartition::new(&s.topic, s.partition))
                .collect()
        };
        if keys(&stalled) != keys(&current) {
            if stalled.is_empty() {
                info!("no partition is stalled any more");
            } else {
                let list: Vec<String> = stalled.iter().map(ToString::to_string).collect();
                warn!(
                    partitions = list.join(", "),
                    "partitions stalled: events to read and no progress in the lake for longer \
                     than the session timeout"
                );
            }
        }
        self.inner
            .any_stalled
            .store(!stalled.is_empty(), Ordering::Relaxed);
        *current = stalled;
    }

    /// Records that this process rejoined its group now.
    pub(crate) fn note_rejoin(&self) {
        METRICS.group_rejoins.inc();
        *lock(&self.inner.rejoined_at) = Some(Instant::now());
    }

    fn rejoined_at(&self) -> Option<Instant> {
        *lock(&self.inner.rejoined_at)
    }
}

/// One look at every partition, each keyed by (topic, partition).
pub(crate) type Looks = Vec<(TopicPartition, Observation)>;

/// One look at a partition: the lake's next offset and Kafka's watermarks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observation {
    /// The lake's next offset; `None` when the lake holds none of the partition.
    pub(crate) lake_next: Option<i64>,
    /// Kafka's low watermark (first offset still in the log).
    pub(crate) low: i64,
    /// Kafka's high watermark (the offset the next message will get).
    pub(crate) high: i64,
}

/// Tracks when each partition's lake offset last moved; pure, so it is tested without Kafka.
#[derive(Debug, Default)]
pub(crate) struct StallTracker {
    /// (topic, partition) -> (lake offset last seen, when it was first seen at that value).
    seen: HashMap<TopicPartition, (Option<i64>, Instant)>,
}

impl StallTracker {
    /// Records one look at every partition and returns those stalled for longer than
    /// `threshold`: with events beyond the lake's offset at every look since before
    /// `now - threshold` (and since `not_before`, the last rejoin), and that offset unchanged.
    pub(crate) fn observe(
        &mut self,
        now: Instant,
        threshold: Duration,
        not_before: Option<Instant>,
        looks: &Looks,
    ) -> Vec<StalledPartition> {
        let mut stalled = Vec::new();
        for (key, o) in looks {
            let lag = o.high - o.lake_next.unwrap_or(o.low).max(o.low);
            let entry = self.seen.entry(key.clone()).or_insert((o.lake_next, now));
            // The clock runs while there is something to read and the lake does not move.
            if entry.0 != o.lake_next || lag <= 0 {
                *entry = (o.lake_next, now);
            }
            let since = not_before.map_or(entry.1, |r| entry.1.max(r));
            let still = now.saturating_duration_since(since);
            if lag > 0 && still > threshold {
                stalled.push(StalledPartition {
                    topic: key.topic.clone(),
                    partition: key.partition,
                    lag,
                    stalled_secs: still.as_secs(),
                });
            }
        }
        stalled.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        stalled
    }
}

/// How often the watchdog looks, for a stall threshold of `threshold`.
pub(crate) fn period(threshold: Duration) -> Duration {
    (threshold / 3).clamp(Duration::from_secs(1), Duration::from_secs(5))
}

/// What the watchdog looks at.
pub(crate) struct Watchdog<'a> {
    pub(crate) brokers: &'a str,
    /// Extra librdkafka properties (security settings).
    pub(crate) kafka: &'a opslake_schemas::KafkaProperties,
    pub(crate) topics: &'a [String],
    pub(crate) lake: &'a Lake,
    /// How long a partition may have events to read and no progress in the lake.
    pub(crate) threshold: Duration,
    pub(crate) health: &'a IngestHealth,
}

impl Watchdog<'_> {
    /// Looks at every partition each [`period`] until `shutdown`, and publishes the stalled
    /// ones; blocking, run it on its own thread.
    pub(crate) fn run(&self, handle: &Handle, shutdown: &CancellationToken) {
        let client: BaseConsumer = match client_config(self.brokers, self.kafka).create() {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "the stalled-partition watchdog cannot create its kafka client");
                return;
            }
        };
        let probe = match Probe::new(self.brokers, self.kafka) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "the stalled-partition watchdog cannot create its kafka client");
                return;
            }
        };
        let mut tracker = StallTracker::default();
        let every = period(self.threshold);
        while !handle.block_on(async {
            tokio::select! {
                () = shutdown.cancelled() => true,
                () = tokio::time::sleep(every) => false,
            }
        }) {
            let looked_at = Instant::now();
            if self.health.lake_unwritable() {
                self.unseen(&mut tracker);
                continue;
            }
            let Ok(snapshot) = handle.block_on(self.lake.snapshot()) else {
                self.unseen(&mut tracker);
                continue;
            };
            match looks(&client, self.topics, shutdown, |t, p| {
                snapshot.next_offset(t, p)
            }) {
                Ok(looks) => {
                    let suspects = tracker.observe(
                        Instant::now(),
                        self.threshold,
                        self.health.rejoined_at(),
                        &looks,
                    );
                    let stalled = suspects
                        .into_iter()
                        .filter(|p| probe.has_message_at(p, &looks, shutdown))
                        .collect();
                    self.health.publish(stalled, looked_at);
                }
                Err(e) => {
                    debug!(error = %e, "watchdog: cannot read watermarks");
                    self.unseen(&mut tracker);
                }
            }
        }
        self.health.set_stalled(Vec::new());
    }

    /// A look that failed, or one while the lake refuses commits: the lake or the broker is
    /// unreachable, which readiness reports on its own. Nobody can make progress then, so the
    /// clocks start again at the next look that succeeds, and nothing is reported stalled
    /// meanwhile.
    fn unseen(&self, tracker: &mut StallTracker) {
        *tracker = StallTracker::default();
        self.health.set_stalled(Vec::new());
    }
}

/// Reads one message of a partition, to confirm that a partition whose watermarks say it has
/// events to read has them. The high watermark only hints at that: a transaction's commit
/// marker takes an offset no consumer is given, so a partition whose last record is one would
/// look stalled for ever (and Tansu 0.6 answers ListOffsets with one past the first offset of
/// the partition's newest record batch, not of its last record).
struct Probe {
    consumer: BaseConsumer,
}

impl Probe {
    fn new(
        brokers: &str,
        kafka: &opslake_schemas::KafkaProperties,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let consumer = client_config(brokers, kafka)
            // Assigned partitions only: this id joins no group and commits nothing.
            .set("group.id", "opslake-watchdog-probe")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()?;
        Ok(Self { consumer })
    }

    /// Whether `stalled` has a message at or after the lake's next offset: fetched within 3 s.
    /// A fetch that fails or times out confirms nothing.
    fn has_message_at(
        &self,
        stalled: &StalledPartition,
        looks: &Looks,
        shutdown: &CancellationToken,
    ) -> bool {
        let key = TopicPartition::new(&stalled.topic, stalled.partition);
        let Some((_, o)) = looks.iter().find(|(k, _)| *k == key) else {
            return false;
        };
        let from = o.lake_next.unwrap_or(o.low).max(o.low);
        let mut tpl = TopicPartitionList::new();
        if tpl
            .add_partition_offset(&key.topic, key.partition, Offset::Offset(from))
            .is_err()
            || self.consumer.assign(&tpl).is_err()
        {
            return false;
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        let found = loop {
            if shutdown.is_cancelled() || Instant::now() >= deadline {
                break false;
            }
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) if m.topic() == key.topic && m.partition() == key.partition => {
                    break m.offset() >= from;
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) if p == key.partition => {
                    break false
                }
                _ => {}
            }
        };
        let _ = self.consumer.unassign();
        if !found {
            debug!(
                partition = %stalled,
                "watchdog: the high watermark promised events the partition does not hold"
            );
        }
        found
    }
}

/// Kafka's watermarks and the lake's offset of every partition of `topics`. Each call waits
/// at most 2 s and none starts after `shutdown`, so a dead broker never holds up a stop.
fn looks(
    client: &BaseConsumer,
    topics: &[String],
    shutdown: &CancellationToken,
    lake_next: impl Fn(&str, i32) -> Option<i64>,
) -> Result<Looks, rdkafka::error::KafkaError> {
    let timeout = Duration::from_secs(2);
    let stopped = || rdkafka::error::KafkaError::Canceled;
    let mut out = Vec::new();
    for topic in topics {
        if shutdown.is_cancelled() {
            return Err(stopped());
        }
        let md = client.fetch_metadata(Some(topic), timeout)?;
        for t in md.topics() {
            for p in t.partitions() {
                if shutdown.is_cancelled() {
                    return Err(stopped());
                }
                let (low, high) = client.fetch_watermarks(t.name(), p.id(), timeout)?;
                out.push((
                    TopicPartition::new(t.name(), p.id()),
                    Observation {
                        lake_next: lake_next(t.name(), p.id()),
                        low,
                        high,
                    },
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(lake_next: Option<i64>, high: i64) -> Looks {
        vec![(
            TopicPartition::new("t", 0),
            Observation {
                lake_next,
                low: 0,
                high,
            },
        )]
    }

    const T: Duration = Duration::from_secs(6);

    #[test]
    fn a_partition_with_lag_and_no_progress_stalls_after_the_threshold() {
        let mut tr = StallTracker::default();
        let t0 = Instant::now();
        assert!(tr.observe(t0, T, None, &look(Some(10), 50)).is_empty());
        assert!(tr
            .observe(t0 + Duration::from_secs(5), T, None, &look(Some(10), 60))
            .is_empty());
        let s = tr.observe(t0 + Duration::from_secs(7), T, None, &look(Some(10), 60));
        assert_eq!(
            s,
            vec![StalledPartition {
                topic: "t".into(),
                partition: 0,
                lag: 50,
                stalled_secs: 7
            }]
        );
        // The lake moves: the clock starts again.
        assert!(tr
            .observe(t0 + Duration::from_secs(8), T, None, &look(Some(20), 60))
            .is_empty());
        assert!(tr
            .observe(t0 + Duration::from_secs(13), T, None, &look(Some(20), 60))
            .is_empty());
        assert_eq!(
            tr.observe(t0 + Duration::from_secs(15), T, None, &look(Some(20), 60))
                .len(),
            1
        );
    }

    #[test]
    fn a_partition_read_to_its_end_never_stalls() {
        let mut tr = StallTracker::default();
        let t0 = Instant::now();
        for s in 0..30 {
            let now = t0 + Duration::from_secs(s);
            assert!(tr.observe(now, T, None, &look(Some(60), 60)).is_empty());
            assert!(tr.observe(now, T, None, &look(None, 0)).is_empty());
        }
    }

    #[test]
    fn an_idle_partition_that_receives_events_has_a_threshold_to_read_them() {
        let mut tr = StallTracker::default();
        let t0 = Instant::now();
        tr.observe(t0, T, None, &look(Some(10), 10));
        assert!(tr
            .observe(t0 + Duration::from_secs(60), T, None, &look(Some(10), 10))
            .is_empty());
        assert!(tr
            .observe(t0 + Duration::from_secs(61), T, None, &look(Some(10), 12))
            .is_empty());
        assert_eq!(
            tr.observe(t0 + Duration::from_secs(68), T, None, &look(Some(10), 12))
                .len(),
            1
        );
    }

    #[test]
    fn a_partition_the_lake_never_held_counts_from_the_low_watermark() {
        let mut tr = StallTracker::default();
        let t0 = Instant::now();
        let fresh = |low, high| {
            vec![(
                TopicPartition::new("t", 1),
                Observation {
                    lake_next: None,
                    low,
                    high,
                },
            )]
        };
        tr.observe(t0, T, None, &fresh(5, 5));
        // Retention removed everything: nothing to read.
        assert!(tr
            .observe(t0 + Duration::from_secs(10), T, None, &fresh(5, 5))
            .is_empty());
        let s = tr.observe(t0 + Duration::from_secs(20), T, None, &fresh(5, 9));
        assert_eq!(s[0].lag, 4);
    }

    #[test]
    fn a_rejoin_gives_the_group_a_threshold_to_take_effect() {
        let mut tr = StallTracker::default();
        let t0 = Instant::now();
        tr.observe(t0, T, None, &look(Some(0), 9));
        let rejoin = t0 + Duration::from_secs(7);
        assert!(tr
            .observe(
                t0 + Duration::from_secs(8),
                T,
                Some(rejoin),
                &look(Some(0), 9)
            )
            .is_empty());
        assert_eq!(
            tr.observe(
                t0 + Duration::from_secs(14),
                T,
                Some(rejoin),
                &look(Some(0), 9)
            )
            .len(),
            1
        );
    }

    fn stalled(topic: &str, partition: i32) -> StalledPartition {
        StalledPartition {
            topic: topic.into(),
            partition,
            lag: 7,
            stalled_secs: 9,
        }
    }

    #[test]
    fn health_reports_what_was_published() {
        let h = IngestHealth::default();
        assert!(h.check().is_ok());
        h.publish(vec![stalled("m", 2)], Instant::now());
        assert!(h.any_stalled());
        let e = h.check().unwrap_err();
        assert!(e.contains("m/2 (lag 7, no progress for 9 s)"), "{e}");
        h.publish(Vec::new(), Instant::now());
        assert!(h.check().is_ok());
    }

    #[test]
    fn a_partition_that_progresses_is_no_longer_stalled_whatever_an_older_look_found() {
        let h = IngestHealth::default();
        let looked_at = Instant::now();
        h.publish(vec![stalled("m", 1), stalled("m", 2)], looked_at);
        // A commit moves m/2 while a look that began before it is under way.
        h.progressed([TopicPartition::new("m", 2)]);
        assert_eq!(h.stalled(), vec![stalled("m", 1)], "cleared at once");
        h.publish(vec![stalled("m", 1), stalled("m", 2)], looked_at);
        assert_eq!(
            h.stalled(),
            vec![stalled("m", 1)],
            "the older look is overruled"
        );
        // A look that began after the commit is believed.
        h.publish(vec![stalled("m", 2)], Instant::now());
        assert_eq!(h.stalled(), vec![stalled("m", 2)]);
    }

    #[test]
    fn the_period_is_a_third_of_the_threshold_within_bounds() {
        assert_eq!(period(Duration::from_secs(6)), Duration::from_secs(2));
        assert_eq!(period(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(period(Duration::from_secs(45)), Duration::from_secs(5));
    }
}
