//! Consume -> decode -> batch -> write -> commit, exactly once.
//!
//! The lake, not Kafka, records which offsets are in it: each flush uploads its files and then
//! commits one lake log entry that adds them together with the offsets they cover, on the
//! condition that the lake still ends where the batch starts (see [`opslake_lake`]). On every
//! partition assignment the consumer starts from the lake's record, so a crash at any moment,
//! a rebalance or a zombie instance neither loses nor duplicates a row. Offsets are committed
//! to Kafka afterwards only so that lag tools see progress.
//!
//! The loop runs on its own OS thread with a `BaseConsumer`: the rebalance callback must read
//! the lake synchronously before partitions are assigned, and decoding and encoding are CPU
//! work that would otherwise stall the async runtime.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opslake_schemas::KafkaProperties;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::topic_partition_list::Offset;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::commit::{Committer, Session};
use crate::config::{IngestConfig, TopicKind};
use crate::cumulative::{partition_prefix, PartitionSeries};
use crate::encode::{encode, Encoding};
use crate::error::IngestError;
use crate::membership::{close, follow_partitions, Assignment, Change, Ctx};
use crate::message::{decode_guarded, SeriesLimit};
use crate::metrics::{reason_class, METRICS};
use crate::partition::{Decision, PartitionState};
use crate::watchdog::{IngestHealth, Watchdog};
use opslake_kafka::client_config;
use opslake_lake::batch::{Batch, DeadLetter, Provenance};
use opslake_lake::state_keys::OTLP_SPLIT_PREFIX;
use opslake_lake::Lake;

/// One ingest worker: a consumer of the topics, writing to one lake.
pub struct Ingest {
    brokers: String,
    cfg: IngestConfig,
    lake: Arc<Lake>,
    writer: String,
    kinds: HashMap<String, TopicKind>,
    health: IngestHealth,
}

impl Ingest {
    /// A worker consuming from `brokers` with `cfg`, writing to `lake`.
    pub fn new(brokers: &str, cfg: IngestConfig, lake: Arc<Lake>) -> Self {
        let kinds = cfg.topics.read().into_iter().collect();
        let writer = format!(
            "ingest-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        Self {
            brokers: brokers.to_string(),
            cfg,
            lake,
            writer,
            kinds,
            health: IngestHealth::default(),
        }
    }

    /// What the stalled-partition watchdog finds, for readiness probes.
    #[must_use]
    pub fn health(&self) -> IngestHealth {
        self.health.clone()
    }

    /// What commits this worker's batches.
    fn committer(&self) -> Committer<'_> {
        Committer {
            lake: &self.lake,
            writer: &self.writer,
            health: &self.health,
            dead_letter_topic: &self.cfg.topics.dead_letter,
        }
    }

    fn topics(&self) -> Vec<String> {
        self.cfg.topics.read().into_iter().map(|(t, _)| t).collect()
    }

    fn direct(&self) -> bool {
        self.cfg.assignment == Assignment::Direct
    }

    /// Runs until `shutdown`, restarting the consumer after a lake conflict or to rejoin its
    /// group; blocking. The stalled-partition watchdog runs beside it.
    ///
    /// # Errors
    /// When the consumer cannot be created or the last flush could not reach the lake.
    pub fn run_blocking(
        &self,
        handle: &Handle,
        shutdown: &CancellationToken,
    ) -> Result<(), IngestError> {
        let topics = self.topics();
        let watchdog = Watchdog {
            brokers: &self.brokers,
            kafka: &self.cfg.kafka,
            topics: &topics,
            lake: &self.lake,
            threshold: self.cfg.session_timeout,
            health: &self.health,
        };
        let stop_watchdog = shutdown.child_token();
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("ingest-watchdog".into())
                .spawn_scoped(scope, || watchdog.run(handle, &stop_watchdog))
                .map_err(|e| warn!(error = %e, "cannot start the stalled-partition watchdog"))
                .ok();
            let r = self.consume_until_shutdown(handle, shutdown);
            stop_watchdog.cancel();
            r
        })
    }

    fn consume_until_shutdown(
        &self,
        handle: &Handle,
        shutdown: &CancellationToken,
    ) -> Result<(), IngestError> {
        let mut static_member = self.cfg.instance_id.is_some();
        loop {
            match self.run_consumer(handle, shutdown, static_member) {
                Err(IngestError::Restart(reason)) if !shutdown.is_cancelled() => {
                    warn!(reason, "restarting the consumer");
                }
                Err(e @ IngestError::Rejoin { .. }) if !shutdown.is_cancelled() => {
                    warn!(reason = %e, "restarting the consumer as a new group member");
                    self.health.note_rejoin();
                    // A static member that joins again is given its old place and assignment;
                    // only a new member makes the group form again (Tansu 0.6 evicts expired
                    // members only then).
                    static_member = false;
                }
                // Stopping: a batch that lost its partitions to another instance (the lake's
                // check refused it) holds nothing the lake needs, since the other instance
                // committed those offsets and reads on from there; a rejoin is moot.
                Err(IngestError::Restart(reason)) => {
                    info!(
                        reason,
                        "stopping; the last batch was dropped: another instance owns its partitions"
                    );
                    return Ok(());
                }
                Err(IngestError::Rejoin { .. }) => return Ok(()),
                other => return other,
            }
        }
    }

    fn consumer_config(&self, static_member: bool) -> ClientConfig {
        let mut c = client_config(&self.brokers, &KafkaProperties::default());
        if let Some(id) = self.cfg.instance_id.as_ref().filter(|_| static_member) {
            c.set("group.instance.id", id);
        }
        // The group id is kept in direct mode too: offsets committed under it let lag tools
        // see progress.
        c.set("group.id", &self.cfg.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set(
                "session.timeout.ms",
                self.cfg.session_timeout.as_millis().to_string(),
            )
            .set(
                "max.poll.interval.ms",
                self.cfg.max_poll_interval.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (self.cfg.session_timeout.as_millis() / 4)
                    .max(100)
                    .to_string(),
            )
            // librdkafka's default prefetch caps a consumer far below what the broker can send.
            .set("queued.min.messages", "500000")
            .set("queued.max.messages.kbytes", "262144")
            .set("statistics.interval.ms", "5000");
        for (k, v) in self.cfg.kafka.iter() {
            c.set(k, v);
        }
        c
    }

    fn run_consumer(
        &self,
        handle: &Handle,
        shutdown: &CancellationToken,
        static_member: bool,
    ) -> Result<(), IngestError> {
        let ctx = Ctx {
            lake: Arc::clone(&self.lake),
            handle: handle.clone(),
            shutdown: shutdown.clone(),
            changes: Mutex::new(Vec::new()),
        };
        let created = Instant::now();
        let consumer: BaseConsumer<Ctx> = self
            .consumer_config(static_member)
            .create_with_context(ctx)
            .map_err(|source| IngestError::CreateConsumer { source })?;
        let producer: BaseProducer = client_config(&self.brokers, &self.cfg.kafka)
            .set("linger.ms", "5")
            .create()
            .map_err(|source| IngestError::CreateConsumer { source })?;
        let topics = self.topics();
        // Direct assignment: the partitions assigned so far, and when to look for new ones.
        let mut known = BTreeSet::new();
        let mut follow_at = Some(created).filter(|_| self.direct());
        if !self.direct() {
            let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            consumer
                .subscribe(&refs)
                .map_err(|source| IngestError::Subscribe {
                    topics: topics.clone(),
                    source,
                })?;
        }
        info!(
            writer = self.writer,
            group = self.cfg.group_id,
            assignment = if self.direct() { "direct" } else { "group" },
            instance_id = self.cfg.instance_id.as_deref().filter(|_| static_member),
            ?topics,
            "ingest consuming"
        );

        let mut s = Session {
            consumer: &consumer,
            producer: &producer,
            handle,
            shutdown,
            parts: HashMap::new(),
            committed_ends: HashMap::new(),
            cumulative: HashMap::new(),
            revoked_series: HashMap::new(),
        };
        let mut batch = Batch::new();
        // At most one full batch is encoded on a blocking thread while the next one fills;
        // batches are committed in the order they were filled.
        let mut encoding: Option<Encoding> = None;
        let mut rejoin = None;
        let result = loop {
            if s.shutdown.is_cancelled() {
                break Ok(());
            }
            if self.health.any_stalled() && created.elapsed() > self.cfg.session_timeout {
                rejoin = self.stalled_elsewhere(&s.parts);
                if rejoin.is_some() {
                    break Ok(());
                }
            }
            let msg = consumer.poll(Duration::from_millis(100));
            // Rebalances happen inside poll; apply them in order before the message. A batch
            // holding revoked partitions is committed first, so that a reassignment of the same
            // partitions resumes after it instead of reading its messages twice.
            let changes = consumer.context().take_changes();
            let mut failed = None;
            for change in changes {
                match change {
                    Change::Revoked(list) => {
                        if let Err(e) = self.commit_encoding(&mut encoding, &mut s) {
                            failed = Some(e);
                            break;
                        }
                        if list.iter().any(|k| batch.offsets.contains_key(k)) {
                            let full = std::mem::take(&mut batch);
                            if let Err(e) = self.flush(full, &mut s) {
                                failed = Some(e);
                                break;
                            }
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
                            // The series as of `next`: the lake's, unless this process
                            // committed past what the lake showed the assignment.
                            let series = match s.revoked_series.remove(&key) {
                                Some((end, series)) if Some(end) == next && resume.next != next => {
                                    series
                                }
                                _ => resume.series,
                            };
                            s.cumulative.insert(key.clone(), series);
                            // Read from before `next` only when that is where the lake's record
                            // put the consumer (this process's own commits resume at their end).
                            let start = resume.start.filter(|_| resume.next == next);
                            s.parts.insert(key, PartitionState::resuming(next, start));
                        }
                    }
                }
            }
            if let Some(e) = failed {
                break Err(e);
            }
            let idle = msg.is_none();
            match msg {
                None => {}
                Some(Err(e)) => {
                    debug!(error = %e, "consumer poll error");
                }
                Some(Ok(m)) => {
                    METRICS.broker_up.set(1);
                    if let Err(e) = self.accept(&m, &mut s, &mut batch) {
                        break Err(e);
                    }
                }
            }
            // One look at the clock per message: `due` reads it.
            let due = self.due(&batch);
            // Only when idle or flushing: no clock read per message for this.
            if let Some(at) = follow_at.filter(|at| (idle || due) && *at <= Instant::now()) {
                follow_at = Some(match follow_partitions(&consumer, &topics, &mut known) {
                    Ok(()) => at + FOLLOW_PARTITIONS_EVERY,
                    Err(e) => {
                        warn!(error = %e, "cannot list the topics' partitions; retrying");
                        Instant::now() + Duration::from_secs(1)
                    }
                });
            }
            let encoded = encoding.as_ref().is_some_and(Encoding::is_finished);
            if encoded || due {
                if let Err(e) = self.commit_encoding(&mut encoding, &mut s) {
                    break Err(e);
                }
            }
            if due {
                let mut full = std::mem::take(&mut batch);
                self.expire_series(&mut full, &mut s);
                // The next batch of these partitions starts where this one ends: it either
                // commits, or the loop stops and restarts from the lake's record.
                for (key, (_, end)) in &full.offsets {
                    if let Some(state) = s.parts.get_mut(key) {
                        state.lake_next = Some(*end);
                    }
                }
                let writer = self.writer.clone();
                encoding = Some(s.handle.spawn_blocking(move || encode(full, &writer)));
            }
        };
        let result = result.and_then(|()| {
            self.commit_encoding(&mut encoding, &mut s)?;
            if batch.is_empty() {
                Ok(())
            } else {
                let last = std::mem::take(&mut batch);
                self.flush(last, &mut s)
            }
        });
        consumer.unsubscribe();
        let _ = producer.flush(Duration::from_secs(5));
        close(consumer);
        match (result, rejoin) {
            (Ok(()), Some(stalled)) => Err(IngestError::Rejoin { stalled }),
            (r, _) => r,
        }
    }

    /// In group mode, the stalled partitions that are not assigned here, as text; `None` when
    /// there are none (in direct mode every partition is assigned here).
    fn stalled_elsewhere(&self, parts: &HashMap<(String, i32), PartitionState>) -> Option<String> {
        if self.direct() {
            return None;
        }
        let elsewhere: Vec<String> = self
            .health
            .stalled()
            .iter()
            .filter(|p| !parts.contains_key(&(p.topic.clone(), p.partition)))
            .map(ToString::to_string)
            .collect();
        (!elsewhere.is_empty()).then(|| elsewhere.join(", "))
    }

    fn due(&self, batch: &Batch) -> bool {
        !batch.is_empty()
            && (batch.rows() >= self.cfg.flush_rows
                || batch.bytes() >= self.cfg.flush_bytes
                || batch.opened_at().elapsed() >= self.cfg.flush_interval)
    }

    /// Decodes one message into the batch.
    ///
    /// # Errors
    /// [`IngestError::Restart`] when the partition cannot be read again from the expected
    /// offset after a message arrived beyond it.
    fn accept<M: Message>(
        &self,
        m: &M,
        s: &mut Session<'_>,
        batch: &mut Batch,
    ) -> Result<(), IngestError> {
        let consumer = s.consumer;
        let topic = m.topic();
        let partition = m.partition();
        let offset = m.offset();
        let key = (topic.to_string(), partition);
        let Some(state) = s.parts.get_mut(&key) else {
            debug!(
                topic,
                partition, offset, "message of a partition not assigned here; skipped"
            );
            return Ok(());
        };
        match state.decide(offset) {
            Decision::Accept => {}
            // Redelivered: the lake (or this batch) already holds it.
            Decision::Skip => return Ok(()),
            Decision::ReadAgainFrom(from) => {
                debug!(
                    topic,
                    partition, offset, from, "message beyond the expected offset; reading again"
                );
                METRICS.refetches.inc();
                return consumer
                    .seek(
                        topic,
                        partition,
                        Offset::Offset(from),
                        Duration::from_secs(10),
                    )
                    .map_err(|e| {
                        IngestError::Restart(format!(
                            "{topic}/{partition}: cannot read again from offset {from}: {e}"
                        ))
                    });
            }
        }
        METRICS.messages_consumed.with_label_values(&[topic]).inc();
        let Some(kind) = self.kinds.get(topic).copied() else {
            batch.cover(
                topic,
                partition,
                state.lake_next.unwrap_or(offset),
                offset,
                0,
            );
            return Ok(());
        };
        let start = state.lake_next.unwrap_or(offset);
        let series = s.cumulative.entry(key.clone()).or_default();
        let limit = SeriesLimit {
            max_series: self.cfg.otlp_max_series,
        };
        // The panic boundary: nothing of the message touches the batch before this returns.
        let outcome = decode_guarded(kind, m.payload(), series, limit);
        let payload = m.payload().unwrap_or_default();
        batch.cover(topic, partition, start, offset, outcome.bytes);
        let now = chrono::Utc::now().timestamp_millis();
        let prov = |index: u32| Provenance {
            topic,
            partition,
            offset,
            index: i32::try_from(index).unwrap_or(i32::MAX),
            ingested_at_ms: now,
        };
        for (index, event) in &outcome.events {
            batch.push_event(event, &prov(*index));
        }
        for (index, h, sketch) in &outcome.histograms {
            batch.push_histogram(h, sketch, &prov(*index));
        }
        let prefix = partition_prefix(topic, partition);
        for (series_key, last) in outcome.series {
            series.set(&prefix, series_key, last, &mut batch.state);
        }
        if !outcome.new_series.is_empty() {
            self.report_split_series(&key, &outcome.new_series, &s.cumulative, batch);
        }
        if outcome.accepted > 0 {
            METRICS
                .events_accepted
                .with_label_values(&[topic])
                .inc_by(outcome.accepted as u64);
        }
        // The message itself is the payload of the first refusal that has no text of its own;
        // later ones refer to it rather than copy it.
        let mut message_at: Option<i32> = None;
        for r in outcome.refused {
            METRICS
                .events_rejected
                .with_label_values(&[topic, &reason_class(&r.reason)])
                .inc();
            let index = r.index.map_or(0, |i| i32::try_from(i).unwrap_or(i32::MAX));
            let (payload, error) = match (r.element, message_at) {
                (Some(text), _) => (text.into_bytes(), r.reason),
                (None, None) => {
                    message_at = Some(index);
                    (payload.to_vec(), r.reason)
                }
                (None, Some(at)) => (
                    Vec::new(),
                    format!(
                        "{} (the message is the payload of the dead letter of _index {at})",
                        r.reason
                    ),
                ),
            };
            batch.push_dead_letter(DeadLetter {
                topic: topic.to_string(),
                partition,
                offset,
                index,
                key: m.key().map(<[u8]>::to_vec),
                payload,
                error,
                received_at_ms: now,
            });
        }
        Ok(())
    }

    /// Reports cumulative series of `key`'s partition that are new there but already kept by
    /// another partition of the topic: each partition counts its first point whole, so the
    /// series is over-counted until the exporter partitions by resource. Logged once per
    /// series, counted, and recorded in the lake (`ingest.otlp_split/<topic>`) for
    /// `/api/v1/pipeline` and the `OpslakePipeline` alert.
    fn report_split_series(
        &self,
        key: &(String, i32),
        new_series: &[String],
        all: &HashMap<(String, i32), PartitionSeries>,
        batch: &mut Batch,
    ) {
        for series in new_series {
            let Some(other) = all
                .iter()
                .find(|((t, p), ps)| *t == key.0 && *p != key.1 && ps.contains(series))
                .map(|((_, p), _)| *p)
            else {
                continue;
            };
            METRICS.otlp_split_series.inc();
            warn!(
                topic = key.0,
                partitions = ?[other, key.1],
                series = series.chars().take(200).collect::<String>(),
                "a cumulative histogram series arrives on two partitions: each counts its first \
                 point whole; set the Collector's Kafka exporter to partition_metrics_by_resource_attributes"
            );
            batch.state.insert(
                format!("{OTLP_SPLIT_PREFIX}{}", key.0),
                serde_json::json!({
                    "series": series.chars().take(1000).collect::<String>(),
                    "partitions": [other, key.1],
                    "at_ms": chrono::Utc::now().timestamp_millis(),
                }),
            );
        }
    }

    /// Forgets the cumulative series of the batch's partitions that had no point for
    /// `ingest.otlp_state_ttl`, in the batch's own commit.
    fn expire_series(&self, batch: &mut Batch, s: &mut Session<'_>) {
        for key in batch.offsets.keys() {
            if let Some(series) = s.cumulative.get_mut(key) {
                let prefix = partition_prefix(&key.0, key.1);
                let n = series.expire(&prefix, self.cfg.otlp_state_ttl, &mut batch.state);
                METRICS.otlp_series_expired.inc_by(n as u64);
            }
        }
    }

    /// Encodes, uploads and commits one batch; retries while the lake fails, with partitions
    /// paused, until it succeeds or shutdown gives up.
    fn flush(&self, mut batch: Batch, s: &mut Session<'_>) -> Result<(), IngestError> {
        self.expire_series(&mut batch, s);
        let encoded = encode(batch, &self.writer)?;
        self.committer().commit(encoded, s)
    }

    /// Waits for the batch being encoded, if any, and commits it.
    fn commit_encoding(
        &self,
        encoding: &mut Option<Encoding>,
        s: &mut Session<'_>,
    ) -> Result<(), IngestError> {
        let Some(task) = encoding.take() else {
            return Ok(());
        };
        let encoded = s
            .handle
            .block_on(task)
            .map_err(|e| IngestError::Restart(format!("the encoding task failed: {e}")))??;
        self.committer().commit(encoded, s)
    }
}

/// How often direct assignment looks for partitions added to the topics.
const FOLLOW_PARTITIONS_EVERY: Duration = Duration::from_secs(10);
