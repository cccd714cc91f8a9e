//! The processor's jobs (see [`crate::job`]), one file each, over the pure folds of
//! [`crate::rollup`], [`crate::detect`] and [`crate::cost`]:
//!
//! - [`metric_rollups`]: `metric_rollups_1m` and `_1h`, then anomalies and regressions of the
//!   series they changed;
//! - [`log_rollups`]: `log_rollups_1m`, then error-rate anomalies;
//! - [`costs`]: `cost_daily`, forecasts and savings opportunities;
//! - [`capacity`]: `leaks` and `capacity_forecasts` of the resource gauges;
//! - [`alerts`]: SLOs (`slo_status`) and alert rules (`alerts`, notifications).
//!
//! The rollup jobs share how a cycle's hours are planned ([`hours`]) and how detection runs
//! within a cycle ([`detections`]).

pub mod alerts;
pub mod capacity;
pub mod costs;
pub(crate) mod detections;
pub(crate) mod hours;
pub mod log_rollups;
pub mod metric_rollups;

pub use capacity::Capacity;
pub use costs::{Costs, COST_DAYS, OPPORTUNITIES};
pub use detections::{ANOMALIES, REGRESSIONS};
pub use hours::HourRollups;
pub use hours::{FILES_READ, HOURS};
pub use log_rollups::LogRollups;
pub use metric_rollups::MetricRollups;
