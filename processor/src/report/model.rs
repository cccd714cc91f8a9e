//! The report as data: what a forecast report holds, serialized as its JSON and drawn by
//! [`super::html`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cost::daily::Daily;
use crate::cost::{AccuracyRow, ForecastRow, Opportunity};

/// A range of a forecast sum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The forecast value.
    pub forecast: f64,
    /// Lower bound of the 80% interval.
    pub lower_80: f64,
    /// Upper bound of the 80% interval.
    pub upper_80: f64,
    /// Lower bound of the 95% interval.
    pub lower_95: f64,
    /// Upper bound of the 95% interval.
    pub upper_95: f64,
}

/// Spend so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    /// Cost of the report's month so far, the partial current day included.
    pub month_to_date: f64,
    /// Complete days of the month so far.
    pub month_days_complete: i64,
    /// Cost of the last 7 complete days.
    pub last_7_days: f64,
    /// Cost of the 7 days before those.
    pub previous_7_days: f64,
    /// Change of the last 7 days against the 7 before, percent (`None` from zero).
    pub change_7_days_pct: Option<f64>,
}

/// One day of the main chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayPoint {
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// Actual cost, for a complete day.
    pub actual: Option<f64>,
    /// The forecast value.
    pub forecast: Option<f64>,
    /// Lower bound of the 80% interval.
    pub lower_80: Option<f64>,
    /// Upper bound of the 80% interval.
    pub upper_80: Option<f64>,
    /// Lower bound of the 95% interval.
    pub lower_95: Option<f64>,
    /// Upper bound of the 95% interval.
    pub upper_95: Option<f64>,
}

/// A provider's or service's line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeLine {
    /// `total`, `provider`, `service` or `resource`.
    pub scope: String,
    /// The provider, service or resource id (`total` for the total).
    pub key: String,
    /// Cost of the last 30 complete days.
    pub last_30_days: f64,
    /// Cost of the last 7 complete days.
    pub last_7_days: f64,
    /// Cost of the 7 days before those.
    pub previous_7_days: f64,
    /// Forecast of the next 30 days.
    pub next_30_days: Option<Estimate>,
    /// The method of that forecast.
    pub method: Option<String>,
}

/// A series whose cost moved most, week on week.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mover {
    /// `total`, `provider`, `service` or `resource`.
    pub scope: String,
    /// The provider, service or resource id (`total` for the total).
    pub key: String,
    /// Cost of the last 7 complete days.
    pub last_7_days: f64,
    /// Cost of the 7 days before those.
    pub previous_7_days: f64,
    /// Change of the last 7 days against the 7 before.
    pub change: f64,
    /// Change, percent of the level before.
    pub change_pct: Option<f64>,
}

/// A day a series cost far more than usual.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spike {
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// `total`, `provider`, `service` or `resource`.
    pub scope: String,
    /// The provider, service or resource id (`total` for the total).
    pub key: String,
    /// Cost that day.
    pub cost: f64,
    /// Median of the 28 days before.
    pub typical: f64,
}

/// The backtest of the total's chosen method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastQuality {
    /// The total's chosen method.
    pub method: String,
    /// Mean absolute scaled error of the backtest.
    pub mase: Option<f64>,
    /// Symmetric MAPE of the backtest, percent.
    pub smape: Option<f64>,
    /// Share of actual values inside the 80% intervals in the backtest.
    pub coverage_80: Option<f64>,
    /// Share of actual values inside the 95% intervals in the backtest.
    pub coverage_95: Option<f64>,
    /// Backtest origins.
    pub origins: i64,
    /// Every method's MASE, for comparison.
    pub methods: BTreeMap<String, Option<f64>>,
}

/// A series with no forecast, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotForecast {
    /// `total`, `provider`, `service` or `resource`.
    pub scope: String,
    /// The provider, service or resource id (`total` for the total).
    pub key: String,
    /// Why it has no forecast.
    pub reason: String,
}

/// The cost forecast report (JSON form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastReport {
    /// The report's id.
    pub report_id: String,
    /// What the report is (`cost_forecast`).
    pub kind: String,
    /// `schedule` or `manual`.
    pub trigger: String,
    /// When it was generated (RFC 3339).
    pub generated_at: String,
    /// Currency of every amount.
    pub currency: String,
    /// Last complete day of actuals.
    pub as_of: Option<String>,
    /// The month the report is about (the month of the first forecast day).
    pub period_start: String,
    /// Last day of the month the report is about.
    pub period_end: String,
    /// The report in one sentence.
    pub summary: String,
    /// Spend so far.
    pub spend: Spend,
    /// Forecast of the month's total.
    pub month_end: Option<Estimate>,
    /// Forecast of the next 30 days.
    pub next_30_days: Option<Estimate>,
    /// The backtest of the total's forecast.
    pub quality: Option<ForecastQuality>,
    /// The days of the main chart.
    pub daily: Vec<DayPoint>,
    /// One line per provider.
    pub providers: Vec<ScopeLine>,
    /// One line per service.
    pub services: Vec<ScopeLine>,
    /// Series whose cost moved most, week on week.
    pub movers: Vec<Mover>,
    /// Days a series cost far more than usual.
    pub spikes: Vec<Spike>,
    /// Savings opportunities.
    pub opportunities: Vec<Opportunity>,
    /// Savings of all opportunities, counting each resource once (its largest).
    pub potential_monthly_savings: f64,
    /// Series with no forecast, and why.
    pub not_forecast: Vec<NotForecast>,
    /// Notes on the data.
    pub notes: Vec<String>,
}

/// What a report is built from: the lake's cost tables.
#[derive(Debug, Default)]
pub struct ReportInputs {
    /// `cost_daily` rows.
    pub daily: Daily,
    /// `cost_forecasts` rows.
    pub forecasts: Vec<ForecastRow>,
    /// `forecast_accuracy` rows.
    pub accuracy: Vec<AccuracyRow>,
    /// `cost_opportunities` rows.
    pub opportunities: Vec<Opportunity>,
}
