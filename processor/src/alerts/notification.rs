//! What is told: an alert that fired or resolved, or a firing alert re-sent to Alertmanager.

use super::book::{Alert, AlertState};

/// One thing to tell: an alert fired or resolved, or a firing alert re-sent to Alertmanager.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Notification {
    /// The alert.
    pub alert: Alert,
    /// Firing or resolved.
    pub status: AlertState,
    /// When it resolved (epoch ms), for a resolve.
    pub ends_at_ms: Option<i64>,
    /// A re-send of a firing alert (Alertmanager only).
    pub resend: bool,
}
