//! The HTTP front end: the API of CONTRACT section 5 (SQL, tables, alerts, SLOs, reports, the
//! pipeline), the web console, health, readiness and metrics.

pub mod alerts;
pub mod console;
pub mod pipeline;
pub mod reports;
pub mod routes;
