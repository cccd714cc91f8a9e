//! opslake processor: windowed percentiles with mergeable sketches, log rollups, anomalies,
//! regressions, daily costs and forecasts, written as derived tables of the lake.
//!
//! Not built yet (issue 3 and issue 4): `opslake run` runs ingest and the query API only, and
//! `opslake process` does not exist until this crate has its runner.
