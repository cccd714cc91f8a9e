//! What `/readyz` asks of ingest, answered by ingest's own checks: the query side links no
//! Kafka client, the binary joins the two.

use std::time::Duration;

use opslake_ingest::IngestHealth;
use opslake_query_api::{IngestReadiness, NotReady};

/// A broker probe and the stalled-partition watchdog of the process's ingest.
pub(crate) struct IngestChecks {
    pub(crate) brokers: String,
    pub(crate) health: IngestHealth,
}

#[async_trait::async_trait]
impl IngestReadiness for IngestChecks {
    async fn broker(&self) -> Result<(), NotReady> {
        let brokers = self.brokers.clone();
        tokio::task::spawn_blocking(move || {
            opslake_kafka::probe_broker(&brokers, Duration::from_secs(2))
        })
        .await
        .map_err(|e| NotReady(e.to_string()))?
        .map(|_| ())
        .map_err(|e| NotReady(e.to_string()))
    }

    fn partitions(&self) -> Result<(), NotReady> {
        self.health.check().map_err(NotReady)
    }
}
