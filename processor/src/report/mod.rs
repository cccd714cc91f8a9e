//! The cost forecast report: spend to date, month-end and 30-day forecasts with intervals, the
//! biggest movers, cost spikes and savings opportunities, as JSON and as a self-contained HTML
//! page with SVG charts. Building the report is pure (tables in, report out); storing,
//! scheduling and delivering it is in [`schedule`].

pub mod html;
pub mod schedule;

use std::collections::BTreeMap;

use chrono::Datelike;
use serde::{Deserialize, Serialize};

use crate::cost::daily::{date_string, Daily};
use crate::cost::{last_complete_day, AccuracyRow, ForecastRow, Opportunity};

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

/// Days of actuals in the main chart.
const CHART_HISTORY_DAYS: i32 = 60;

fn sum_estimates<'a>(points: impl Iterator<Item = &'a ForecastRow>) -> Option<Estimate> {
    let mut e = Estimate {
        forecast: 0.0,
        lower_80: 0.0,
        upper_80: 0.0,
        lower_95: 0.0,
        upper_95: 0.0,
    };
    let mut any = false;
    for r in points {
        any = true;
        e.forecast += r.point.forecast;
        e.lower_80 += r.point.lower_80;
        e.upper_80 += r.point.upper_80;
        e.lower_95 += r.point.lower_95;
        e.upper_95 += r.point.upper_95;
    }
    any.then_some(e)
}

fn pct_change(now: f64, before: f64) -> Option<f64> {
    (before.abs() > 1e-9).then(|| 100.0 * (now - before) / before.abs())
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Daily cost by scope and key (total, provider, service, resource).
type ScopeDays = BTreeMap<(String, String), BTreeMap<i32, f64>>;

fn scope_days(daily: &Daily) -> ScopeDays {
    let mut out: ScopeDays = BTreeMap::new();
    for (k, a) in daily {
        let mut keys = vec![
            ("total".to_string(), "total".to_string()),
            ("provider".to_string(), k.provider.clone()),
            (
                "service".to_string(),
                k.service.clone().unwrap_or_else(|| "(none)".into()),
            ),
        ];
        if let Some(r) = &k.resource_id {
            keys.push(("resource".to_string(), r.clone()));
        }
        for key in keys {
            *out.entry(key).or_default().entry(k.day).or_default() += a.cost;
        }
    }
    out
}

fn window_sum(days: &BTreeMap<i32, f64>, from: i32, to: i32) -> f64 {
    if from > to {
        return 0.0;
    }
    days.range(from..=to).map(|(_, v)| v).sum()
}

/// Month bounds (first day, first day of the next month) of a day number.
fn month_of(day: i32) -> (i32, i32) {
    let date = chrono::DateTime::from_timestamp(i64::from(day) * 86_400, 0)
        .map(|t| t.date_naive())
        .unwrap_or_default();
    let first = date.with_day(1).unwrap_or(date);
    let next = if first.month() == 12 {
        chrono::NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .unwrap_or(first);
    let n = |d: chrono::NaiveDate| (d - chrono::NaiveDate::default()).num_days() as i32;
    (n(first), n(next))
}

fn money(v: f64, currency: &str) -> String {
    if currency == "USD" {
        format!("${v:.2}")
    } else {
        format!("{v:.2} {currency}")
    }
}

/// Builds the report from the lake's cost tables.
pub fn build(
    report_id: &str,
    trigger: &str,
    generated_at_ms: i64,
    inputs: &ReportInputs,
) -> ForecastReport {
    let currency = crate::cost::currency(&inputs.daily);
    let generated_at = chrono::DateTime::from_timestamp_millis(generated_at_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let last = last_complete_day(&inputs.daily);
    let today = last.map_or_else(
        || (generated_at_ms.div_euclid(86_400_000)) as i32,
        |l| l + 1,
    );
    let (month_start, month_next) = month_of(today);
    let by_scope = scope_days(&inputs.daily);
    let empty = BTreeMap::new();
    let total = by_scope
        .get(&("total".to_string(), "total".to_string()))
        .unwrap_or(&empty);
    let last_day = last.unwrap_or(today - 1);
    let newest_day = total.keys().next_back().copied().unwrap_or(last_day);
    let spend = Spend {
        month_to_date: window_sum(total, month_start, newest_day),
        month_days_complete: i64::from((last_day - month_start + 1).max(0)),
        last_7_days: window_sum(total, last_day - 6, last_day),
        previous_7_days: window_sum(total, last_day - 13, last_day - 7),
        change_7_days_pct: pct_change(
            window_sum(total, last_day - 6, last_day),
            window_sum(total, last_day - 13, last_day - 7),
        ),
    };

    let forecasts_of = |scope: &str, key: &str| -> Vec<&ForecastRow> {
        inputs
            .forecasts
            .iter()
            .filter(|r| r.scope == scope && r.key == key)
            .collect()
    };
    let total_fc = forecasts_of("total", "total");
    let complete_in_month = window_sum(total, month_start, last_day);
    let month_end = sum_estimates(
        total_fc
            .iter()
            .copied()
            .filter(|r| r.day >= month_start && r.day < month_next),
    )
    .map(|e| Estimate {
        forecast: e.forecast + complete_in_month,
        lower_80: e.lower_80 + complete_in_month,
        upper_80: e.upper_80 + complete_in_month,
        lower_95: e.lower_95 + complete_in_month,
        upper_95: e.upper_95 + complete_in_month,
    });
    let next_30_days = sum_estimates(total_fc.iter().copied().take(30));

    let chosen_total: Vec<&AccuracyRow> = inputs
        .accuracy
        .iter()
        .filter(|a| a.scope == "total")
        .collect();
    let quality = chosen_total
        .iter()
        .find(|a| a.chosen && a.method != "none")
        .map(|c| ForecastQuality {
            method: c.method.clone(),
            mase: c.mase,
            smape: c.smape,
            coverage_80: c.coverage_80,
            coverage_95: c.coverage_95,
            origins: c.origins,
            methods: chosen_total
                .iter()
                .map(|a| (a.method.clone(), a.mase))
                .collect(),
        });

    // The main chart: 60 days of actuals, then the forecast with its bands.
    let mut daily = Vec::new();
    for d in (last_day - CHART_HISTORY_DAYS + 1)..=last_day {
        if d < total.keys().next().copied().unwrap_or(d) {
            continue;
        }
        daily.push(DayPoint {
            date: date_string(d),
            actual: Some(total.get(&d).copied().unwrap_or(0.0)),
            forecast: None,
            lower_80: None,
            upper_80: None,
            lower_95: None,
            upper_95: None,
        });
    }
    for r in &total_fc {
        daily.push(DayPoint {
            date: date_string(r.day),
            actual: None,
            forecast: Some(r.point.forecast),
            lower_80: Some(r.point.lower_80),
            upper_80: Some(r.point.upper_80),
            lower_95: Some(r.point.lower_95),
            upper_95: Some(r.point.upper_95),
        });
    }

    let line = |scope: &str| -> Vec<ScopeLine> {
        let mut lines: Vec<ScopeLine> = by_scope
            .iter()
            .filter(|((s, _), _)| s == scope)
            .map(|((s, k), days)| {
                let fc = forecasts_of(s, k);
                ScopeLine {
                    scope: s.clone(),
                    key: k.clone(),
                    last_30_days: window_sum(days, last_day - 29, last_day),
                    last_7_days: window_sum(days, last_day - 6, last_day),
                    previous_7_days: window_sum(days, last_day - 13, last_day - 7),
                    next_30_days: sum_estimates(fc.iter().copied().take(30)),
                    method: fc.first().map(|r| r.method.clone()),
                }
            })
            .collect();
        lines.sort_by(|a, b| {
            b.last_30_days
                .total_cmp(&a.last_30_days)
                .then_with(|| a.key.cmp(&b.key))
        });
        lines
    };
    let providers = line("provider");
    let services = line("service");

    let mut movers: Vec<Mover> = by_scope
        .iter()
        .filter(|((s, _), _)| s == "service" || s == "resource")
        .map(|((s, k), days)| {
            let now = window_sum(days, last_day - 6, last_day);
            let before = window_sum(days, last_day - 13, last_day - 7);
            Mover {
                scope: s.clone(),
                key: k.clone(),
                last_7_days: now,
                previous_7_days: before,
                change: now - before,
                change_pct: pct_change(now, before),
            }
        })
        .filter(|m| m.change.abs() > 0.005)
        .collect();
    movers.sort_by(|a, b| {
        b.change
            .abs()
            .total_cmp(&a.change.abs())
            .then_with(|| a.key.cmp(&b.key))
    });
    movers.truncate(8);

    let mut spikes = Vec::new();
    for ((s, k), days) in &by_scope {
        if s == "resource" {
            continue;
        }
        for d in (last_day - 13)..=last_day {
            let Some(&cost) = days.get(&d) else { continue };
            let mut base: Vec<f64> = (d - 28..d)
                .map(|x| days.get(&x).copied().unwrap_or(0.0))
                .collect();
            if days.range(d - 28..d).count() < 14 {
                continue;
            }
            let typical = median(&mut base);
            let mut dev: Vec<f64> = base.iter().map(|v| (v - typical).abs()).collect();
            let mad = 1.4826 * median(&mut dev);
            if cost > 1.5 * typical && cost - typical > (5.0 * mad).max(0.01) {
                spikes.push(Spike {
                    date: date_string(d),
                    scope: s.clone(),
                    key: k.clone(),
                    cost,
                    typical,
                });
            }
        }
    }
    spikes.sort_by(|a, b| {
        (b.cost - b.typical)
            .total_cmp(&(a.cost - a.typical))
            .then_with(|| a.date.cmp(&b.date))
    });
    spikes.truncate(10);

    let mut best_per_resource: BTreeMap<&str, f64> = BTreeMap::new();
    for o in &inputs.opportunities {
        let e = best_per_resource.entry(o.resource_id.as_str()).or_default();
        *e = e.max(o.estimated_monthly_savings);
    }
    let potential_monthly_savings = best_per_resource.values().sum();
    let mut opportunities = inputs.opportunities.clone();
    opportunities.sort_by(|a, b| {
        b.estimated_monthly_savings
            .total_cmp(&a.estimated_monthly_savings)
    });
    opportunities.truncate(15);

    let not_forecast: Vec<NotForecast> = inputs
        .accuracy
        .iter()
        .filter(|a| a.method == "none")
        .map(|a| NotForecast {
            scope: a.scope.clone(),
            key: a.key.clone(),
            reason: a.note.clone().unwrap_or_default(),
        })
        .collect();

    let mut notes = Vec::new();
    if inputs.daily.is_empty() {
        notes.push("No billing data in the lake yet.".to_string());
    } else if total_fc.is_empty() {
        let reason = not_forecast
            .iter()
            .find(|n| n.scope == "total")
            .map_or("no forecast has been computed yet", |n| n.reason.as_str());
        notes.push(format!("The total is not forecast: {reason}."));
    }
    notes.push(
        "Interval bounds of sums (month end, 30 days) add the daily bounds, as if daily errors moved together: a conservative range."
            .to_string(),
    );

    let summary = match (&month_end, &next_30_days) {
        (Some(me), Some(n30)) => format!(
            "Spend this month so far {}; month-end forecast {} (80%: {} to {}); next 30 days {}; potential savings {}/month.",
            money(spend.month_to_date, &currency),
            money(me.forecast, &currency),
            money(me.lower_80, &currency),
            money(me.upper_80, &currency),
            money(n30.forecast, &currency),
            money(potential_monthly_savings, &currency)
        ),
        _ => format!(
            "Spend this month so far {}; no forecast yet ({}); potential savings {}/month.",
            money(spend.month_to_date, &currency),
            notes[0].trim_end_matches('.'),
            money(potential_monthly_savings, &currency)
        ),
    };

    ForecastReport {
        report_id: report_id.to_string(),
        kind: "forecast".into(),
        trigger: trigger.into(),
        generated_at,
        currency,
        as_of: last.map(date_string),
        period_start: date_string(month_start),
        period_end: date_string(month_next),
        summary,
        spend,
        month_end,
        next_30_days,
        quality,
        daily,
        providers,
        services,
        movers,
        spikes,
        opportunities,
        potential_monthly_savings,
        not_forecast,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_bounds() {
        let d = crate::cost::daily::parse_date("2026-11-24").unwrap();
        let (a, b) = month_of(d);
        assert_eq!(date_string(a), "2026-11-01");
        assert_eq!(date_string(b), "2026-12-01");
        let d = crate::cost::daily::parse_date("2026-12-31").unwrap();
        assert_eq!(date_string(month_of(d).1), "2027-01-01");
    }
}
