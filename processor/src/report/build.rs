//! Building a report from the lake's cost tables: pure (tables in, report out).

use std::collections::BTreeMap;

use chrono::Datelike;

use super::model::{
    DayPoint, Estimate, ForecastQuality, ForecastReport, Mover, NotForecast, ReportInputs,
    ScopeLine, Spend, Spike,
};
use crate::cost::daily::date_string;
use crate::cost::{last_complete_day, AccuracyRow, ForecastRow, Opportunity};

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

fn scope_days(daily: &crate::cost::daily::Daily) -> ScopeDays {
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

/// The days a report is about: the last complete day, the month it falls in, and the newest
/// day with cost.
struct Days {
    last: Option<i32>,
    last_day: i32,
    month_start: i32,
    month_next: i32,
    newest_day: i32,
}

impl Days {
    fn of(total: &BTreeMap<i32, f64>, inputs: &ReportInputs, generated_at_ms: i64) -> Self {
        let last = last_complete_day(&inputs.daily);
        let today = last.map_or_else(
            || (generated_at_ms.div_euclid(86_400_000)) as i32,
            |l| l + 1,
        );
        let (month_start, month_next) = month_of(today);
        let last_day = last.unwrap_or(today - 1);
        let newest_day = total.keys().next_back().copied().unwrap_or(last_day);
        Self {
            last,
            last_day,
            month_start,
            month_next,
            newest_day,
        }
    }
}

/// Spend to date and over the last two weeks.
fn spend(total: &BTreeMap<i32, f64>, d: &Days) -> Spend {
    let last_7 = window_sum(total, d.last_day - 6, d.last_day);
    let previous_7 = window_sum(total, d.last_day - 13, d.last_day - 7);
    Spend {
        month_to_date: window_sum(total, d.month_start, d.newest_day),
        month_days_complete: i64::from((d.last_day - d.month_start + 1).max(0)),
        last_7_days: last_7,
        previous_7_days: previous_7,
        change_7_days_pct: pct_change(last_7, previous_7),
    }
}

/// The forecast rows of one scope and key.
fn forecasts_of<'a>(inputs: &'a ReportInputs, scope: &str, key: &str) -> Vec<&'a ForecastRow> {
    inputs
        .forecasts
        .iter()
        .filter(|r| r.scope == scope && r.key == key)
        .collect()
}

/// The month-end estimate: the complete days of the month plus the forecast of the rest.
fn month_end(total: &BTreeMap<i32, f64>, total_fc: &[&ForecastRow], d: &Days) -> Option<Estimate> {
    let complete_in_month = window_sum(total, d.month_start, d.last_day);
    sum_estimates(
        total_fc
            .iter()
            .copied()
            .filter(|r| r.day >= d.month_start && r.day < d.month_next),
    )
    .map(|e| Estimate {
        forecast: e.forecast + complete_in_month,
        lower_80: e.lower_80 + complete_in_month,
        upper_80: e.upper_80 + complete_in_month,
        lower_95: e.lower_95 + complete_in_month,
        upper_95: e.upper_95 + complete_in_month,
    })
}

/// How well the total's chosen method did in its backtest.
fn quality(accuracy: &[AccuracyRow]) -> Option<ForecastQuality> {
    let chosen_total: Vec<&AccuracyRow> = accuracy.iter().filter(|a| a.scope == "total").collect();
    chosen_total
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
        })
}

/// The main chart: 60 days of actuals, then the forecast with its bands.
fn chart(total: &BTreeMap<i32, f64>, total_fc: &[&ForecastRow], last_day: i32) -> Vec<DayPoint> {
    let mut daily = Vec::new();
    let first = total.keys().next().copied();
    for d in (last_day - CHART_HISTORY_DAYS + 1)..=last_day {
        if first.is_some_and(|f| d < f) {
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
    for r in total_fc {
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
    daily
}

/// One line per key of `scope`, the most costly first.
fn scope_lines(
    by_scope: &ScopeDays,
    inputs: &ReportInputs,
    scope: &str,
    last_day: i32,
) -> Vec<ScopeLine> {
    let mut lines: Vec<ScopeLine> = by_scope
        .iter()
        .filter(|((s, _), _)| s == scope)
        .map(|((s, k), days)| {
            let fc = forecasts_of(inputs, s, k);
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
}

/// The services and resources whose week moved most against the week before.
fn movers(by_scope: &ScopeDays, last_day: i32) -> Vec<Mover> {
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
    movers
}

/// Days of the last two weeks over 1.5 times and 5 MADs above the median of the 28 days
/// before them.
fn spikes(by_scope: &ScopeDays, last_day: i32) -> Vec<Spike> {
    let mut spikes = Vec::new();
    for ((s, k), days) in by_scope {
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
    spikes
}

/// The opportunities worth most, and their monthly savings (each resource counted once).
fn savings(opportunities: &[Opportunity]) -> (Vec<Opportunity>, f64) {
    let mut best_per_resource: BTreeMap<&str, f64> = BTreeMap::new();
    for o in opportunities {
        let e = best_per_resource.entry(o.resource_id.as_str()).or_default();
        *e = e.max(o.estimated_monthly_savings);
    }
    let potential_monthly_savings = best_per_resource.values().sum();
    let mut top = opportunities.to_vec();
    top.sort_by(|a, b| {
        b.estimated_monthly_savings
            .total_cmp(&a.estimated_monthly_savings)
    });
    top.truncate(15);
    (top, potential_monthly_savings)
}

/// The series too short to forecast, with why.
fn not_forecast(accuracy: &[AccuracyRow]) -> Vec<NotForecast> {
    accuracy
        .iter()
        .filter(|a| a.method == "none")
        .map(|a| NotForecast {
            scope: a.scope.clone(),
            key: a.key.clone(),
            reason: a.note.clone().unwrap_or_default(),
        })
        .collect()
}

/// What a reader should know about the figures.
fn notes(inputs: &ReportInputs, has_forecast: bool, not_forecast: &[NotForecast]) -> Vec<String> {
    let mut notes = Vec::new();
    if inputs.daily.is_empty() {
        notes.push("No billing data in the lake yet.".to_string());
    } else if !has_forecast {
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
    notes
}

/// The report's one-sentence summary.
fn summary(
    spend: &Spend,
    month_end: Option<&Estimate>,
    next_30_days: Option<&Estimate>,
    savings: f64,
    notes: &[String],
    currency: &str,
) -> String {
    match (month_end, next_30_days) {
        (Some(me), Some(n30)) => format!(
            "Spend this month so far {}; month-end forecast {} (80%: {} to {}); next 30 days {}; potential savings {}/month.",
            money(spend.month_to_date, currency),
            money(me.forecast, currency),
            money(me.lower_80, currency),
            money(me.upper_80, currency),
            money(n30.forecast, currency),
            money(savings, currency)
        ),
        _ => format!(
            "Spend this month so far {}; no forecast yet ({}); potential savings {}/month.",
            money(spend.month_to_date, currency),
            notes.first().map_or("", |n| n.trim_end_matches('.')),
            money(savings, currency)
        ),
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
    let by_scope = scope_days(&inputs.daily);
    let empty = BTreeMap::new();
    let total = by_scope
        .get(&("total".to_string(), "total".to_string()))
        .unwrap_or(&empty);
    let days = Days::of(total, inputs, generated_at_ms);
    let spend = spend(total, &days);
    let total_fc = forecasts_of(inputs, "total", "total");
    let month_end = month_end(total, &total_fc, &days);
    let next_30_days = sum_estimates(total_fc.iter().copied().take(30));
    let (opportunities, potential_monthly_savings) = savings(&inputs.opportunities);
    let not_forecast = not_forecast(&inputs.accuracy);
    let notes = notes(inputs, !total_fc.is_empty(), &not_forecast);
    let summary = summary(
        &spend,
        month_end.as_ref(),
        next_30_days.as_ref(),
        potential_monthly_savings,
        &notes,
        &currency,
    );
    ForecastReport {
        report_id: report_id.to_string(),
        kind: "forecast".into(),
        trigger: trigger.into(),
        generated_at,
        as_of: days.last.map(date_string),
        period_start: date_string(days.month_start),
        period_end: date_string(days.month_next),
        summary,
        spend,
        month_end,
        next_30_days,
        quality: quality(&inputs.accuracy),
        daily: chart(total, &total_fc, days.last_day),
        providers: scope_lines(&by_scope, inputs, "provider", days.last_day),
        services: scope_lines(&by_scope, inputs, "service", days.last_day),
        movers: movers(&by_scope, days.last_day),
        spikes: spikes(&by_scope, days.last_day),
        opportunities,
        potential_monthly_savings,
        not_forecast,
        notes,
        currency,
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
