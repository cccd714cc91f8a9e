//! Alerts: rules (configured SQL and the built-ins) evaluated on a fixed interval by the
//! alerts job ([`crate::jobs::alerts`]), their states kept in the lake ([`book`]), each state
//! change written to the `alerts` table and, for fresh data, sent to the receivers
//! ([`notify`]).

pub mod backlog;
pub mod book;
pub mod builtin;
pub mod config;
pub mod notification;
pub mod notify;
pub mod outbox;
pub mod record;
pub mod resources;
pub mod rule;

pub use config::AlertsConfig;
