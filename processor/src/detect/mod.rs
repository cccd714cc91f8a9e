//! Detectors over per-window series: anomalies (robust seasonal baseline) and regressions
//! (change points).

pub mod anomaly;
pub mod changepoint;
pub mod nab;
pub mod run;
