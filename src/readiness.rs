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
        // `/readyz` takes no token: it says what is not ready, never the client's error text
        // (logged instead).
        let unreachable = |e: &dyn std::fmt::Display| {
            tracing::debug!(error = %e, "readiness: the broker probe failed");
            NotReady("no broker answered within 2 s".to_string())
        };
        tokio::task::spawn_blocking(move || {
            opslake_kafka::probe_broker(&brokers, Duration::from_secs(2))
        })
        .await
        .map_err(|e| unreachable(&e))?
        .map(|_| ())
        .map_err(|e| unreachable(&e))
    }

    fn partitions(&self) -> Result<(), NotReady> {
        self.health.check().map_err(NotReady)
    }
}
