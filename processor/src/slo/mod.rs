//! Service level objectives: each SLO's SLI, error budget left and burn rates, computed from
//! the rollups every alert evaluation and written to `slo_status`; the burn rates drive the
//! built-in `OpslakeSLOBurnRate` alert.

pub mod config;
pub mod math;
pub mod measure;
pub mod status;

pub use config::{SloConfig, SloKind};
pub use measure::{measure, SloStatus};
