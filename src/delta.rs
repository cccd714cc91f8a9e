//! The Delta mirror task (CONTRACT section 11): every role that writes to the lake keeps each
//! table's `_delta_log` caught up with opslake's own log, once on start, then every flush
//! interval, and once more when it stops. Several processes may run it: Delta versions are
//! created only if absent, in opslake's order.

use std::sync::Arc;
use std::time::Duration;

use opslake_lake::delta::DeltaMirror;
use opslake_lake::Lake;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Mirrors `lake` into its Delta logs every `interval` until `stop`, then once more.
pub(crate) async fn mirror(lake: Arc<Lake>, interval: Duration, stop: CancellationToken) {
    let grace = opslake_lake::compact::CompactionPolicy::default().delete_grace;
    let mirror = DeltaMirror::new(grace);
    let mut first = true;
    loop {
        match mirror.catch_up(&lake).await {
            Ok(report) => {
                if first || !report.reconciled.is_empty() {
                    info!(
                        version = report.version,
                        tables = report.written.len(),
                        reconciled = ?report.reconciled,
                        "delta logs caught up with the lake"
                    );
                }
                first = false;
            }
            Err(e) => warn!(error = %e, "cannot mirror the lake into its delta logs yet"),
        }
        if stop.is_cancelled() {
            return;
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(interval) => {}
        }
    }
}
