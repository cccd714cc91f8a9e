//! Cost analytics over the billing table: `cost_daily`, 30-day forecasts with intervals and the
//! backtests behind them (`cost_forecasts`, `forecast_accuracy`), and savings opportunities
//! (`cost_opportunities`). Pure functions here; the costs job ([`crate::jobs::costs`]) reads and
//! writes the lake.

pub mod daily;
pub mod opportunities;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_schemas::tables;
use serde::{Deserialize, Serialize};

use crate::forecast::{forecast_series, ForecastConfig, Point, SeriesForecast, TooShort};
use crate::rollup::ts_builder;
use daily::{day_of, Daily};
pub use opportunities::{
    find_opportunities, fold_gauges, GaugeUsage, Opportunity, OpportunityConfig, Usage,
};

/// Daily cost by provider, service and resource.
pub const COST_DAILY: &str = "cost_daily";
/// 30-day forecasts with 80% and 95% intervals.
pub const COST_FORECASTS: &str = "cost_forecasts";
/// The backtests behind the forecasts.
pub const FORECAST_ACCURACY: &str = "forecast_accuracy";
/// Savings opportunities.
pub const COST_OPPORTUNITIES: &str = "cost_opportunities";

/// Settings of cost analytics (`[processor.costs]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostConfig {
    /// Days forecast ahead.
    pub forecast_days: usize,
    /// Fewest days of history a series needs to be forecast (fewer: it says so instead).
    pub min_history_days: usize,
    /// Forecast every resource with cost in the last 7 days (the total, providers and services
    /// are always forecast).
    pub forecast_resources: bool,
    /// Metric name of per-resource utilization gauges (label `resource_id`).
    pub utilization_metric: String,
    /// Days of billing and utilization the opportunity rules look at.
    pub lookback_days: i64,
    /// Mean utilization under this is `underutilized`.
    pub underutilized_below: f64,
    /// Peak utilization under this is `oversized`.
    pub oversized_peak_below: f64,
    /// No use for longer than this, while costing, is `idle`.
    #[serde(with = "humantime_serde")]
    pub idle_after: std::time::Duration,
    /// Unit price ratio against the other providers' median that is a `provider_disparity`.
    pub disparity_ratio: f64,
    /// Resources costing less than this a month get no opportunity.
    pub min_monthly_cost: f64,
}

impl Default for CostConfig {
    fn default() -> Self {
        let o = OpportunityConfig::default();
        Self {
            forecast_days: 30,
            min_history_days: ForecastConfig::default().min_history,
            forecast_resources: true,
            utilization_metric: "cpu.utilization".into(),
            lookback_days: o.lookback_days,
            underutilized_below: o.underutilized_below,
            oversized_peak_below: o.oversized_peak_below,
            idle_after: std::time::Duration::from_secs((o.idle_hours * 3600.0) as u64),
            disparity_ratio: o.disparity_ratio,
            min_monthly_cost: o.min_monthly_cost,
        }
    }
}

impl CostConfig {
    /// Checks the settings; the error names the key.
    ///
    /// # Errors
    /// When a value is out of range.
    pub fn validate(&self) -> Result<(), opslake_schemas::ConfigError> {
        use opslake_schemas::ConfigError;
        if !(1..=366).contains(&self.forecast_days) {
            return Err(ConfigError::key(
                "processor.costs.forecast_days",
                "must be 1 to 366",
            ));
        }
        if self.min_history_days < 21 {
            return Err(ConfigError::key(
                "processor.costs.min_history_days",
                "at least 21 (three weeks: two to fit a weekly cycle, one to backtest)",
            ));
        }
        for (k, v) in [
            ("underutilized_below", self.underutilized_below),
            ("oversized_peak_below", self.oversized_peak_below),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ConfigError::key(
                    format!("processor.costs.{k}"),
                    format!("a utilization between 0 and 1, found {v}"),
                ));
            }
        }
        if self.lookback_days < 1 {
            return Err(ConfigError::key(
                "processor.costs.lookback_days",
                "at least 1",
            ));
        }
        if self.disparity_ratio <= 1.0 {
            return Err(ConfigError::key(
                "processor.costs.disparity_ratio",
                "must be more than 1",
            ));
        }
        Ok(())
    }

    /// The forecasting settings.
    pub fn forecast(&self) -> ForecastConfig {
        ForecastConfig {
            horizon: self.forecast_days,
            min_history: self.min_history_days,
            ..ForecastConfig::default()
        }
    }

    /// The opportunity rules' settings.
    pub fn opportunities(&self) -> OpportunityConfig {
        OpportunityConfig {
            lookback_days: self.lookback_days,
            underutilized_below: self.underutilized_below,
            oversized_peak_below: self.oversized_peak_below,
            idle_hours: self.idle_after.as_secs_f64() / 3600.0,
            disparity_ratio: self.disparity_ratio,
            min_monthly_cost: self.min_monthly_cost,
        }
    }
}

/// A daily cost series of one scope and key, from its first day to the last complete day.
#[derive(Debug, Clone, PartialEq)]
pub struct CostSeries {
    /// `total`, `provider`, `service` or `resource`.
    pub scope: &'static str,
    /// The provider, service or resource id (`total` for the total).
    pub key: String,
    /// Its first day (days since 1970-01-01).
    pub first_day: i32,
    /// Cost per day from the first day.
    pub values: Vec<f64>,
}

/// The last day whose billing is complete: the day before the one holding the newest charge
/// period's end (a bill that ends at midnight is complete up to the day before it).
pub fn last_complete_day(daily: &Daily) -> Option<i32> {
    daily
        .values()
        .map(|a| a.last_period_end)
        .max()
        .map(|end| day_of(end) - 1)
}

/// The dominant currency of the bill (forecasts are in one currency).
pub fn currency(daily: &Daily) -> String {
    let mut by: HashMap<&str, f64> = HashMap::new();
    for (k, a) in daily {
        *by.entry(k.currency.as_str()).or_default() += a.cost.abs();
    }
    by.into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map_or_else(|| "USD".to_string(), |(c, _)| c.to_string())
}

/// The series to forecast: the total, each provider and service, and (when `resources`) each
/// resource with cost in the last 7 complete days. Days without rows count as 0.
pub fn cost_series(daily: &Daily, last_day: i32, resources: bool) -> Vec<CostSeries> {
    let mut sums: BTreeMap<(&'static str, String), BTreeMap<i32, f64>> = BTreeMap::new();
    for (k, a) in daily {
        if k.day > last_day {
            continue;
        }
        let mut keys = vec![
            ("total", "total".to_string()),
            ("provider", k.provider.clone()),
            (
                "service",
                k.service.clone().unwrap_or_else(|| "(none)".into()),
            ),
        ];
        if resources {
            if let Some(r) = &k.resource_id {
                keys.push(("resource", r.clone()));
            }
        }
        for key in keys {
            *sums.entry(key).or_default().entry(k.day).or_default() += a.cost;
        }
    }
    sums.into_iter()
        .filter_map(|((scope, key), days)| {
            let first = *days.keys().next()?;
            if scope == "resource" {
                let recent: f64 = days.range(last_day - 6..=last_day).map(|(_, v)| v).sum();
                if recent == 0.0 {
                    return None;
                }
            }
            let mut values: Vec<f64> = (first..=last_day)
                .map(|d| days.get(&d).copied().unwrap_or(0.0))
                .collect();
            let mut first_day = first;
            // A first day billed for part of the day only (a resource started at 15:00, a
            // backfill's first hour) is not a typical day: leave it out.
            if values.len() > 8 {
                let mut next: Vec<f64> = values[1..8].to_vec();
                next.sort_by(f64::total_cmp);
                if values[0] >= 0.0 && values[0] < 0.5 * next[3] {
                    values.remove(0);
                    first_day += 1;
                }
            }
            Some(CostSeries {
                scope,
                key,
                first_day,
                values,
            })
        })
        .collect()
}

/// A series' forecast, or why it has none.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesOutcome {
    /// The series.
    pub series: CostSeries,
    /// Its forecast, or why it has none.
    pub result: Result<SeriesForecast, TooShort>,
}

/// Forecasts every series (on the calling thread; the runner puts it on a blocking one).
pub fn forecast_all(series: Vec<CostSeries>, cfg: &ForecastConfig) -> Vec<SeriesOutcome> {
    series
        .into_iter()
        .map(|s| {
            let result = forecast_series(&s.values, cfg);
            SeriesOutcome { series: s, result }
        })
        .collect()
}

/// The rows of `cost_forecasts`.
///
/// # Errors
/// When Arrow refuses the arrays (a bug).
pub fn forecast_batch(
    outcomes: &[SeriesOutcome],
    as_of: i32,
    currency: &str,
    generated_at: i64,
) -> Result<RecordBatch, ArrowError> {
    let mut gen = ts_builder(0);
    let mut scope = StringBuilder::new();
    let mut key = StringBuilder::new();
    let mut date = Date32Builder::new();
    let mut vals: Vec<Float64Builder> = (0..5).map(|_| Float64Builder::new()).collect();
    let mut method = StringBuilder::new();
    let mut asof = Date32Builder::new();
    let mut cur = StringBuilder::new();
    for o in outcomes {
        let Ok(f) = &o.result else { continue };
        for (h, p) in f.points.iter().enumerate() {
            gen.append_value(generated_at);
            scope.append_value(o.series.scope);
            key.append_value(&o.series.key);
            date.append_value(as_of + 1 + h as i32);
            let Point {
                forecast,
                lower_80,
                upper_80,
                lower_95,
                upper_95,
            } = *p;
            for (b, v) in vals
                .iter_mut()
                .zip([forecast, lower_80, upper_80, lower_95, upper_95])
            {
                b.append_value(v);
            }
            method.append_value(f.method.name());
            asof.append_value(as_of);
            cur.append_value(currency);
        }
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(gen.finish()),
        Arc::new(scope.finish()),
        Arc::new(key.finish()),
        Arc::new(date.finish()),
    ];
    for mut b in vals {
        cols.push(Arc::new(b.finish()));
    }
    cols.push(Arc::new(method.finish()));
    cols.push(Arc::new(asof.finish()));
    cols.push(Arc::new(cur.finish()));
    RecordBatch::try_new(tables::cost_forecasts(), cols)
}

/// The rows of `forecast_accuracy`: every method's backtest per series, and one `none` row per
/// series too short to forecast.
///
/// # Errors
/// When Arrow refuses the arrays (a bug).
pub fn accuracy_batch(
    outcomes: &[SeriesOutcome],
    generated_at: i64,
) -> Result<RecordBatch, ArrowError> {
    let mut gen = ts_builder(0);
    let mut scope = StringBuilder::new();
    let mut key = StringBuilder::new();
    let mut method = StringBuilder::new();
    let mut chosen = BooleanBuilder::new();
    let mut ints: Vec<Int64Builder> = (0..3).map(|_| Int64Builder::new()).collect();
    let mut floats: Vec<Float64Builder> = (0..4).map(|_| Float64Builder::new()).collect();
    let mut note = StringBuilder::new();
    for o in outcomes {
        let history = o.series.values.len() as i64;
        match &o.result {
            Ok(f) => {
                for a in &f.accuracy {
                    gen.append_value(generated_at);
                    scope.append_value(o.series.scope);
                    key.append_value(&o.series.key);
                    method.append_value(a.method.name());
                    chosen.append_value(a.method == f.method);
                    for (b, v) in ints
                        .iter_mut()
                        .zip([history, a.origins as i64, a.horizon as i64])
                    {
                        b.append_value(v);
                    }
                    for (b, v) in floats.iter_mut().zip([
                        Some(a.smape),
                        a.mase,
                        Some(a.coverage_80),
                        Some(a.coverage_95),
                    ]) {
                        b.append_option(v);
                    }
                    note.append_null();
                }
            }
            Err(short) => {
                gen.append_value(generated_at);
                scope.append_value(o.series.scope);
                key.append_value(&o.series.key);
                method.append_value("none");
                chosen.append_value(true);
                for (b, v) in ints.iter_mut().zip([history, 0, 0]) {
                    b.append_value(v);
                }
                for b in &mut floats {
                    b.append_null();
                }
                note.append_value(short.to_string());
            }
        }
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(gen.finish()),
        Arc::new(scope.finish()),
        Arc::new(key.finish()),
        Arc::new(method.finish()),
        Arc::new(chosen.finish()),
    ];
    for mut b in ints {
        cols.push(Arc::new(b.finish()));
    }
    for mut b in floats {
        cols.push(Arc::new(b.finish()));
    }
    cols.push(Arc::new(note.finish()));
    RecordBatch::try_new(tables::forecast_accuracy(), cols)
}

/// The rows of `cost_opportunities`.
///
/// # Errors
/// When Arrow refuses the arrays (a bug).
pub fn opportunity_batch(
    found: &[Opportunity],
    detected_at: i64,
) -> Result<RecordBatch, ArrowError> {
    let mut at = ts_builder(found.len());
    let mut s: Vec<StringBuilder> = (0..3).map(|_| StringBuilder::new()).collect();
    let mut monthly = Float64Builder::new();
    let mut savings = Float64Builder::new();
    let mut rec = StringBuilder::new();
    let mut opt: Vec<StringBuilder> = (0..3).map(|_| StringBuilder::new()).collect();
    let mut umean = Float64Builder::new();
    let mut upeak = Float64Builder::new();
    let mut evidence = StringBuilder::new();
    let mut cur = StringBuilder::new();
    for o in found {
        at.append_value(detected_at);
        s[0].append_value(&o.provider);
        s[1].append_value(&o.resource_id);
        s[2].append_value(&o.kind);
        monthly.append_value(o.monthly_cost);
        savings.append_value(o.estimated_monthly_savings);
        rec.append_value(&o.recommendation);
        opt[0].append_option(o.service.as_deref());
        opt[1].append_option(o.resource_type.as_deref());
        opt[2].append_option(o.region.as_deref());
        umean.append_option(o.utilization_mean);
        upeak.append_option(o.utilization_peak);
        evidence.append_value(&o.evidence);
        cur.append_value(&o.currency);
    }
    let mut cols: Vec<ArrayRef> = vec![Arc::new(at.finish())];
    for mut b in s {
        cols.push(Arc::new(b.finish()));
    }
    cols.push(Arc::new(monthly.finish()));
    cols.push(Arc::new(savings.finish()));
    cols.push(Arc::new(rec.finish()));
    for mut b in opt {
        cols.push(Arc::new(b.finish()));
    }
    cols.push(Arc::new(umean.finish()));
    cols.push(Arc::new(upeak.finish()));
    cols.push(Arc::new(evidence.finish()));
    cols.push(Arc::new(cur.finish()));
    RecordBatch::try_new(tables::cost_opportunities(), cols)
}

/// A stored `cost_forecasts` row.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastRow {
    /// `total`, `provider`, `service` or `resource`.
    pub scope: String,
    /// The provider, service or resource id (`total` for the total).
    pub key: String,
    /// The day forecast (days since 1970-01-01).
    pub day: i32,
    /// The forecast and its intervals.
    pub point: Point,
    /// The forecasting method.
    pub method: String,
    /// Last complete day of actuals the forecast starts after.
    pub as_of: i32,
    /// Currency of the costs (ISO 4217 as billed).
    pub currency: String,
}

/// Reads stored `cost_forecasts` rows.
///
/// # Errors
/// When the batch is not a `cost_forecasts` batch.
pub fn load_forecasts(batch: &RecordBatch, into: &mut Vec<ForecastRow>) -> Result<(), ArrowError> {
    use crate::columns::{column, strings};
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Date32Type, Float64Type};
    let s: Vec<ArrayRef> = ["scope", "key", "method", "currency"]
        .iter()
        .map(|c| strings(batch, c))
        .collect::<Result<_, _>>()?;
    let [scope, key, method, cur] = std::array::from_fn(|i| s[i].as_string::<i32>());
    let date = column(batch, "date")?;
    let date = date.as_primitive::<Date32Type>();
    let as_of = column(batch, "as_of")?;
    let as_of = as_of.as_primitive::<Date32Type>();
    let f: Vec<ArrayRef> = ["forecast", "lower_80", "upper_80", "lower_95", "upper_95"]
        .iter()
        .map(|c| column(batch, c))
        .collect::<Result<_, _>>()?;
    let [fc, l80, u80, l95, u95] = std::array::from_fn(|i| f[i].as_primitive::<Float64Type>());
    for r in 0..batch.num_rows() {
        into.push(ForecastRow {
            scope: scope.value(r).to_string(),
            key: key.value(r).to_string(),
            day: date.value(r),
            point: Point {
                forecast: fc.value(r),
                lower_80: l80.value(r),
                upper_80: u80.value(r),
                lower_95: l95.value(r),
                upper_95: u95.value(r),
            },
            method: method.value(r).to_string(),
            as_of: as_of.value(r),
            currency: cur.value(r).to_string(),
        });
    }
    Ok(())
}

/// A stored `forecast_accuracy` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyRow {
    /// `total`, `provider`, `service` or `resource`.
    pub scope: String,
    /// The provider, service or resource id (`total` for the total).
    pub key: String,
    /// The method backtested.
    pub method: String,
    /// Whether this method is the one forecast with.
    pub chosen: bool,
    /// Days of history the series had.
    pub history_days: i64,
    /// Backtest origins.
    pub origins: i64,
    /// Symmetric MAPE of the backtest, percent.
    pub smape: Option<f64>,
    /// Mean absolute scaled error of the backtest.
    pub mase: Option<f64>,
    /// Share of actual values inside the 80% intervals in the backtest.
    pub coverage_80: Option<f64>,
    /// Share of actual values inside the 95% intervals in the backtest.
    pub coverage_95: Option<f64>,
    /// Why the series has no forecast, when it has none.
    pub note: Option<String>,
}

/// Reads stored `forecast_accuracy` rows.
///
/// # Errors
/// When the batch is not a `forecast_accuracy` batch.
pub fn load_accuracy(batch: &RecordBatch, into: &mut Vec<AccuracyRow>) -> Result<(), ArrowError> {
    use crate::columns::{column, strings};
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Float64Type, Int64Type};
    let s: Vec<ArrayRef> = ["scope", "key", "method", "note"]
        .iter()
        .map(|c| strings(batch, c))
        .collect::<Result<_, _>>()?;
    let [scope, key, method, note] = std::array::from_fn(|i| s[i].as_string::<i32>());
    let chosen = column(batch, "chosen")?;
    let chosen = chosen.as_boolean();
    let i: Vec<ArrayRef> = ["history_days", "origins"]
        .iter()
        .map(|c| column(batch, c))
        .collect::<Result<_, _>>()?;
    let [history, origins] = std::array::from_fn(|k| i[k].as_primitive::<Int64Type>());
    let f: Vec<ArrayRef> = ["smape", "mase", "coverage_80", "coverage_95"]
        .iter()
        .map(|c| column(batch, c))
        .collect::<Result<_, _>>()?;
    let [smape, mase, c80, c95] = std::array::from_fn(|k| f[k].as_primitive::<Float64Type>());
    let opt =
        |a: &datafusion::arrow::array::Float64Array, r: usize| (!a.is_null(r)).then(|| a.value(r));
    for r in 0..batch.num_rows() {
        into.push(AccuracyRow {
            scope: scope.value(r).to_string(),
            key: key.value(r).to_string(),
            method: method.value(r).to_string(),
            chosen: chosen.value(r),
            history_days: history.value(r),
            origins: origins.value(r),
            smape: opt(smape, r),
            mase: opt(mase, r),
            coverage_80: opt(c80, r),
            coverage_95: opt(c95, r),
            note: (!note.is_null(r)).then(|| note.value(r).to_string()),
        });
    }
    Ok(())
}

/// Reads stored `cost_opportunities` rows.
///
/// # Errors
/// When the batch is not a `cost_opportunities` batch.
pub fn load_opportunities(
    batch: &RecordBatch,
    into: &mut Vec<Opportunity>,
) -> Result<(), ArrowError> {
    use crate::columns::{column, strings};
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Float64Type;
    let s: Vec<ArrayRef> = [
        "provider",
        "resource_id",
        "kind",
        "recommendation",
        "service",
        "resource_type",
        "region",
        "evidence",
        "currency",
    ]
    .iter()
    .map(|c| strings(batch, c))
    .collect::<Result<_, _>>()?;
    let [provider, id, kind, rec, service, rtype, region, evidence, cur] =
        std::array::from_fn(|i| s[i].as_string::<i32>());
    let f: Vec<ArrayRef> = [
        "monthly_cost",
        "estimated_monthly_savings",
        "utilization_mean",
        "utilization_peak",
    ]
    .iter()
    .map(|c| column(batch, c))
    .collect::<Result<_, _>>()?;
    let [monthly, savings, umean, upeak] =
        std::array::from_fn(|k| f[k].as_primitive::<Float64Type>());
    let opt_s = |a: &datafusion::arrow::array::StringArray, r: usize| {
        (!a.is_null(r)).then(|| a.value(r).to_string())
    };
    let opt_f =
        |a: &datafusion::arrow::array::Float64Array, r: usize| (!a.is_null(r)).then(|| a.value(r));
    for r in 0..batch.num_rows() {
        into.push(Opportunity {
            provider: provider.value(r).to_string(),
            resource_id: id.value(r).to_string(),
            kind: kind.value(r).to_string(),
            monthly_cost: monthly.value(r),
            estimated_monthly_savings: savings.value(r),
            recommendation: rec.value(r).to_string(),
            service: opt_s(service, r),
            resource_type: opt_s(rtype, r),
            region: opt_s(region, r),
            utilization_mean: opt_f(umean, r),
            utilization_peak: opt_f(upeak, r),
            evidence: evidence.value(r).to_string(),
            currency: cur.value(r).to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::daily::{DailyAgg, DailyKey};
    use super::*;

    fn row(d: &mut Daily, day: i32, resource: &str, cost: f64) {
        d.insert(
            DailyKey {
                day,
                provider: "aws".into(),
                service: None,
                resource_id: Some(resource.into()),
                resource_type: None,
                region: None,
                currency: "USD".into(),
            },
            DailyAgg {
                cost,
                last_period_end: i64::from(day + 1) * daily::DAY_MS,
                ..Default::default()
            },
        );
    }

    #[test]
    fn series_fill_gaps_drop_a_partial_first_day_and_skip_stopped_resources() {
        let mut d = Daily::new();
        row(&mut d, 100, "a", 1.0); // one hour of a 24-per-day resource
        for day in 101..=130 {
            if day != 110 {
                row(&mut d, day, "a", 24.0);
            }
        }
        row(&mut d, 105, "gone", 5.0);
        assert_eq!(last_complete_day(&d), Some(130));
        let s = cost_series(&d, 130, true);
        let a = s.iter().find(|s| s.key == "a").unwrap();
        assert_eq!(a.first_day, 101);
        assert_eq!(a.values.len(), 30);
        assert_eq!(a.values[9], 0.0, "a day without rows costs 0");
        assert!(
            !s.iter().any(|s| s.key == "gone"),
            "no cost in the last 7 days"
        );
        let total = s.iter().find(|s| s.scope == "total").unwrap();
        assert_eq!(total.values[4], 29.0);
    }
}
