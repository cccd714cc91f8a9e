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
use rdkafka::producer::{BaseProducer, Producer};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

mod accept;
mod commit;
mod rebalance;
pub(crate) mod session;

use crate::config::{IngestConfig, TopicKind};
use crate::encode::{encode, Encoding};
use crate::error::IngestError;
use crate::membership::{close, follow_partitions, Assignment, Ctx};
use crate::metrics::METRICS;
use crate::partition::PartitionState;
use crate::watchdog::{IngestHealth, Watchdog};
use commit::Committer;
use opslake_kafka::client_config;
use opslake_lake::batch::{Batch, TopicPartition};
use opslake_lake::Lake;
use session::Session;

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
        let created = Instant::now();
        let (consumer, producer) = self.clients(handle, shutdown, static_member)?;
        let topics = self.topics();
        // Direct assignment: the partitions assigned so far, and when to look for new ones.
        let mut known = BTreeSet::new();
        let mut follow_at = Some(created).filter(|_| self.direct());

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
            // Rebalances happen inside poll; apply them in order before the message.
            let mut failed = None;
            for change in consumer.context().take_changes() {
                if let Err(e) = self.apply(change, &mut s, &mut batch, &mut encoding) {
                    failed = Some(e);
                    break;
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
                encoding = Some(self.hand_over(std::mem::take(&mut batch), &mut s));
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

    /// The consumer (subscribed in group mode) and the dead letters' producer.
    ///
    /// # Errors
    /// When a client cannot be made or the subscription is refused.
    fn clients(
        &self,
        handle: &Handle,
        shutdown: &CancellationToken,
        static_member: bool,
    ) -> Result<(BaseConsumer<Ctx>, BaseProducer), IngestError> {
        let ctx = Ctx {
            lake: Arc::clone(&self.lake),
            handle: handle.clone(),
            shutdown: shutdown.clone(),
            changes: Mutex::new(Vec::new()),
        };
        let consumer: BaseConsumer<Ctx> = self
            .consumer_config(static_member)
            .create_with_context(ctx)
            .map_err(|source| IngestError::CreateConsumer { source })?;
        let producer: BaseProducer = client_config(&self.brokers, &self.cfg.kafka)
            .set("linger.ms", "5")
            .create()
            .map_err(|source| IngestError::CreateConsumer { source })?;
        let topics = self.topics();
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
        Ok((consumer, producer))
    }

    /// Hands a full batch to a blocking thread to be encoded while the next one fills. The
    /// next batch of its partitions starts where this one ends: it either commits, or the loop
    /// stops and restarts from the lake's record.
    fn hand_over(&self, mut full: Batch, s: &mut Session<'_>) -> Encoding {
        self.expire_series(&mut full, s);
        for (key, range) in &full.offsets {
            if let Some(state) = s.parts.get_mut(key) {
                state.lake_next = Some(range.end);
            }
        }
        let writer = self.writer.clone();
        s.handle.spawn_blocking(move || encode(full, &writer))
    }

    /// In group mode, the stalled partitions that are not assigned here, as text; `None` when
    /// there are none (in direct mode every partition is assigned here).
    fn stalled_elsewhere(&self, parts: &HashMap<TopicPartition, PartitionState>) -> Option<String> {
        if self.direct() {
            return None;
        }
        let elsewhere: Vec<String> = self
            .health
            .stalled()
            .iter()
            .filter(|p| !parts.contains_key(&TopicPartition::new(&p.topic, p.partition)))
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
