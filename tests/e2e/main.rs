//! End-to-end tests: a real Tansu broker process, the real `opslake` binary, a temporary lake
//! on disk, and SQL over the real HTTP API. One test binary, so the build stays small.

mod browser;
mod support;

mod alerts;
mod api;
mod capacity;
mod console;
mod costs;
mod dead_letters;
mod delta;
mod deploy;
mod detection;
mod exactly_once;
mod faults;
mod grafana;
mod hostile;
mod openapi;
mod otlp;
mod raw_tables;
mod receivers;
mod restarts;
mod rollups;
mod scale;
mod secrets;
mod sql_protocols;
mod stops;
