//! What the processor needs of the brokers, over Kafka: the partitions' watermarks (the
//! consumer backlog of `OpslakePipeline`) and a topic reports are produced to. The processor
//! defines the traits and links no Kafka client; the binary joins the two.

use futures::future::BoxFuture;
use opslake_processor::alerts::backlog::{Brokers, PartitionEnds};
use opslake_processor::report::deliver::ReportTopic;
use opslake_schemas::KafkaProperties;

/// The brokers ingest reads.
pub(crate) struct KafkaBrokers {
    pub(crate) servers: String,
    pub(crate) properties: KafkaProperties,
}

impl Brokers for KafkaBrokers {
    fn ends<'a>(
        &'a self,
        topics: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<PartitionEnds>, String>> {
        Box::pin(async move {
            let (servers, properties, topics) = (
                self.servers.clone(),
                self.properties.clone(),
                topics.to_vec(),
            );
            tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                opslake_kafka::partition_watermarks(&servers, &properties, &topics, |w| {
                    out.push(PartitionEnds {
                        topic: w.topic.to_string(),
                        partition: w.partition,
                        low: w.low,
                        high: w.high,
                    });
                })
                .map(|()| out)
                .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }
}

/// The Kafka topic reports are produced to (`reports.topic`).
pub(crate) struct KafkaReportTopic {
    pub(crate) servers: String,
    pub(crate) properties: KafkaProperties,
    pub(crate) topic: String,
    pub(crate) replication_factor: i32,
}

impl ReportTopic for KafkaReportTopic {
    fn produce<'a>(&'a self, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            opslake_kafka::produce_one(
                &self.servers,
                &self.properties,
                &self.topic,
                self.replication_factor,
                key,
                &body,
            )
            .await
            .map_err(|e| e.to_string())
        })
    }
}

/// The report topic of a configuration, when it names one.
pub(crate) fn report_topic(cfg: &crate::config::Config) -> Option<std::sync::Arc<dyn ReportTopic>> {
    let topic = cfg.reports.topic.clone()?;
    Some(std::sync::Arc::new(KafkaReportTopic {
        servers: cfg.brokers.clone(),
        properties: cfg.ingest.kafka.clone(),
        topic,
        replication_factor: cfg.ingest.replication_factor,
    }))
}
