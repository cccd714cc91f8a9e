//! Detectors over per-window series: anomalies (robust seasonal baseline; error rates by their
//! counts) and regressions (change points), with the direction that is bad for each metric.

pub mod anomaly;
pub mod changepoint;
pub mod config;
pub mod direction;
pub mod error_rate;
pub mod found;
pub mod nab;
pub(crate) mod regressions;
pub mod run;
pub(crate) mod seasonal;
