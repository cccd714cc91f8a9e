//! The cost forecast report: spend to date, month-end and 30-day forecasts with intervals, the
//! biggest movers, cost spikes and savings opportunities, as JSON and as a self-contained HTML
//! page with SVG charts. One file a step: the report as data ([`model`]), built from the cost
//! tables ([`build`], pure), drawn ([`html`]), generated and stored in the lake
//! ([`generate`]), delivered ([`deliver`]), on a schedule ([`schedule`]), with its settings
//! ([`config`]).

pub mod build;
pub mod config;
pub mod deliver;
pub mod generate;
pub mod html;
pub mod model;
pub mod schedule;

pub use build::build;
pub use model::*;
