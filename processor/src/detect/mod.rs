//! Detectors over per-window series: anomalies (runs of robust evidence against the series' own
//! record; error rates by their counts) and regressions (change points), with the direction that
//! is bad for each metric. `nab` (the NAB scorer) is an evaluation harness: tests and the `nab`
//! feature only.

pub mod anomaly;
pub mod changepoint;
pub mod config;
pub mod direction;
pub mod error_rate;
pub mod found;
#[cfg(any(test, feature = "nab"))]
pub mod nab;
pub(crate) mod regressions;
pub mod run;
pub(crate) mod seasonal;
