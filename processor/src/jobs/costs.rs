//! The costs job. Days whose billing changed are recomputed from every live billing file of
//! the day (so `cost_daily` stays exact as late and revised rows arrive); forecasts are redone
//! when a complete day changed or a new day completed; opportunities are redone whenever
//! billing changed, and every few minutes while utilization gauges keep arriving. Everything
//! lands in the cycle's one commit.

use std::collections::{BTreeSet, HashMap};

use opslake_lake::{AddFile, Snapshot};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::cost::daily::{
    daily_batch, date_string, fold_billing, load_daily, parse_date, Daily, DAY_MS,
};
use crate::cost::{
    accuracy_batch, cost_series, currency, find_opportunities, fold_gauges, forecast_all,
    forecast_batch, last_complete_day, opportunity_batch, GaugeUsage, Usage,
};
use crate::cost::{COST_DAILY, COST_FORECASTS, COST_OPPORTUNITIES, FORECAST_ACCURACY};
use crate::error::ProcessError;
use crate::job::{state, Cycle, Job, RawChanges, Work};
use crate::read::load_file;
use crate::rollup::METRIC_ROLLUPS_1H;
use opslake_lake::layout::{day_prefix, hour_of, HOUR_MS};

/// State key of what the cost job computed last ([`CostState`]).
pub const COST_STATE_KEY: &str = "processor.costs";

/// State key of the costs job's progress through the billing table.
pub const PROGRESS_KEY: &str = "processor.costs.progress";

/// What the cost step recorded last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostState {
    /// Last complete day the stored forecasts start after.
    pub forecast_as_of: Option<i32>,
    /// When the opportunities were last computed (epoch ms, wall clock).
    #[serde(default)]
    pub opportunities_at: Option<i64>,
}

/// Opportunities are refreshed at least this often while utilization gauges keep changing,
/// even when billing does not.
pub const OPPORTUNITY_REFRESH_MS: i64 = 5 * 60_000;

impl CostState {
    /// The state recorded in `snap`.
    pub fn of(snap: &Snapshot) -> Self {
        state(snap, COST_STATE_KEY)
    }
}

/// The count of `cost_daily` days a cycle rewrote (see [`crate::job::CycleReport::count`]).
pub const COST_DAYS: &str = "cost_days";
/// The count of savings opportunities a cycle found.
pub const OPPORTUNITIES: &str = "opportunities";

/// Daily costs, forecasts and savings opportunities.
#[derive(Debug, Clone, Copy, Default)]
pub struct Costs;

/// What a cycle of [`Costs`] does.
#[derive(Debug)]
pub struct CostPlan {
    changes: RawChanges,
    /// Billing dates (`YYYY-MM-DD`) whose rows changed.
    dirty: BTreeSet<String>,
    /// Whether the cost tables are recomputed: billing changed, or the opportunities are due.
    recompute: bool,
}

impl Job for Costs {
    type Plan = CostPlan;

    fn name(&self) -> &'static str {
        "costs"
    }

    fn progress_key(&self) -> &'static str {
        PROGRESS_KEY
    }

    async fn plan(&self, cx: &Cycle<'_>) -> Result<Option<CostPlan>, ProcessError> {
        let Some(changes) = RawChanges::since(cx, &["billing"], PROGRESS_KEY, 0).await? else {
            return Ok(None);
        };
        let dirty: BTreeSet<String> = changes
            .files
            .iter()
            .filter_map(|f| hour_of(&f.path).map(|(date, _)| date))
            .collect();
        let refresh_opportunities = cx.snap.table_files(METRIC_ROLLUPS_1H).next().is_some()
            && CostState::of(cx.snap).opportunities_at.is_some_and(|t| {
                chrono::Utc::now().timestamp_millis() - t >= OPPORTUNITY_REFRESH_MS
            });
        let recompute = !dirty.is_empty() || refresh_opportunities;
        Ok(changes
            .worth_a_commit(cx.snap, recompute)
            .then_some(CostPlan {
                changes,
                dirty,
                recompute,
            }))
    }

    async fn run(&self, cx: &Cycle<'_>, plan: &CostPlan) -> Result<Work, ProcessError> {
        let mut work = Work::default();
        cx.stopping()?;
        // Without it the cycle only records its progress, to skip a long unread tail of the
        // log next time.
        if plan.recompute {
            let costs = recompute(cx, &plan.dirty).await?;
            work.report.add(COST_DAYS, costs.days as u64);
            work.report.add(OPPORTUNITIES, costs.opportunities as u64);
            work.add = costs.add;
            work.remove = costs.remove;
            if let Some(cs) = costs.state {
                work.set_state(COST_STATE_KEY, &cs);
            }
        }
        work.set_state(PROGRESS_KEY, &plan.changes.next(cx.snap, 0));
        Ok(work)
    }
}

/// Files and state of the cost tables, for the cycle's work.
#[derive(Debug, Default)]
struct CostWork {
    add: Vec<AddFile>,
    remove: Vec<String>,
    state: Option<CostState>,
    days: usize,
    forecast_series: usize,
    opportunities: usize,
}

fn daily_prefix(date: &str) -> String {
    format!("{COST_DAILY}/part-{date}-")
}

/// The date of a `cost_daily` file (`cost_daily/part-YYYY-MM-DD-...`).
fn daily_file_date(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(COST_DAILY)?.strip_prefix("/part-")?;
    rest.get(..10)
}

/// Recomputes the cost tables for the billing dates in `dirty` (`YYYY-MM-DD`); with no dirty
/// date, only the opportunities (for new utilization data).
async fn recompute(cx: &Cycle<'_>, dirty: &BTreeSet<String>) -> Result<CostWork, ProcessError> {
    let snap = cx.snap;
    {
        let mut work = CostWork::default();
        let cfg = &cx.config.costs;
        let mut full = Daily::new();
        let mut dirty_days = Vec::new();
        for date in dirty {
            let prefix = day_prefix("billing", date);
            let mut day = Daily::new();
            for f in snap
                .table_files("billing")
                .filter(|f| f.path.starts_with(&prefix))
            {
                load_file(cx.lake, &f.path, |b| fold_billing(b, &mut day)).await?;
            }
            work.remove.extend(
                snap.table_files(COST_DAILY)
                    .filter(|f| f.path.starts_with(&daily_prefix(date)))
                    .map(|f| f.path.clone()),
            );
            if !day.is_empty() {
                let rel = format!("{}{}.parquet", daily_prefix(date), cx.file_id());
                let batch = daily_batch(&day)?;
                work.add.push(cx.write_at(COST_DAILY, rel, batch).await?);
                work.days += 1;
            }
            dirty_days.extend(parse_date(date));
            full.extend(day);
        }
        for f in snap.table_files(COST_DAILY) {
            if daily_file_date(&f.path).is_some_and(|d| dirty.contains(d)) {
                continue;
            }
            load_file(cx.lake, &f.path, |b| load_daily(b, &mut full)).await?;
        }
        let now = chrono::Utc::now().timestamp_millis();
        let prev = CostState::of(snap);
        let mut next = prev;
        let table_files =
            |t: &str| -> Vec<String> { snap.table_files(t).map(|f| f.path.clone()).collect() };

        // Forecasts: when a complete day changed, or a new day completed.
        if let Some(last) = last_complete_day(&full) {
            let stale = dirty_days.iter().any(|d| *d <= last)
                || prev.forecast_as_of != Some(last)
                || snap.table_files(COST_FORECASTS).next().is_none();
            if stale {
                let series = cost_series(&full, last, cfg.forecast_resources);
                let fcfg = cfg.forecast();
                let outcomes =
                    tokio::task::spawn_blocking(move || forecast_all(series, &fcfg)).await?;
                work.forecast_series = outcomes.len();
                let cur = currency(&full);
                work.remove.extend(table_files(COST_FORECASTS));
                work.remove.extend(table_files(FORECAST_ACCURACY));
                let fb = forecast_batch(&outcomes, last, &cur, now)?;
                if fb.num_rows() > 0 {
                    work.add.push(cx.write_flat(COST_FORECASTS, fb).await?);
                }
                let ab = accuracy_batch(&outcomes, now)?;
                if ab.num_rows() > 0 {
                    work.add.push(cx.write_flat(FORECAST_ACCURACY, ab).await?);
                }
                next.forecast_as_of = Some(last);
                info!(
                    as_of = date_string(last),
                    series = work.forecast_series,
                    "cost forecasts updated"
                );
            }
        }

        // Opportunities, with utilization gauges from the hourly rollups of the lookback.
        if let Some(end) = full.values().map(|a| a.last_period_end).max() {
            let from = end - cfg.lookback_days * DAY_MS;
            let mut gauges: HashMap<String, GaugeUsage> = HashMap::new();
            for f in snap.table_files(METRIC_ROLLUPS_1H) {
                let Some((date, hour)) = hour_of(&f.path) else {
                    continue;
                };
                let Some(day) = parse_date(&date) else {
                    continue;
                };
                let hour_end = i64::from(day) * DAY_MS + i64::from(hour + 1) * HOUR_MS;
                if hour_end <= from || hour_end > end + HOUR_MS {
                    continue;
                }
                load_file(cx.lake, &f.path, |b| {
                    fold_gauges(b, &cfg.utilization_metric, from, &mut gauges)
                })
                .await?;
            }
            let usage: HashMap<String, Usage> = gauges
                .into_iter()
                .filter_map(|(k, g)| g.usage().map(|u| (k, u)))
                .collect();
            let found = find_opportunities(&full, &usage, &cfg.opportunities());
            work.opportunities = found.len();
            next.opportunities_at = Some(now);
            work.remove.extend(table_files(COST_OPPORTUNITIES));
            if !found.is_empty() {
                let batch = opportunity_batch(&found, now)?;
                work.add
                    .push(cx.write_flat(COST_OPPORTUNITIES, batch).await?);
            }
        }
        if next != prev {
            work.state = Some(next);
        }
        Ok(work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::config::ProcessorConfig;
    use crate::cost::{
        load_accuracy, load_forecasts, load_opportunities, AccuracyRow, ForecastRow,
    };
    use crate::read::read_batches;
    use crate::runner::tests::ingest_commit;
    use crate::Processor;
    use datafusion::arrow::error::ArrowError;
    use datafusion::arrow::record_batch::RecordBatch;
    use opslake_lake::Lake;
    use opslake_schemas::EventKind;

    /// 2025-10-01.
    const FIRST_DAY: i32 = 20_362;
    const DAYS: i32 = 42;

    fn day_rfc(day: i32) -> String {
        format!("{}T00:00:00Z", date_string(day))
    }

    /// Daily billing rows of a fleet built to hold each opportunity kind and healthy resources.
    fn fleet() -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let res = [
            ("web-1", "gcp", "compute", 10.0),
            ("web-2", "azure", "compute", 10.5),
            ("web-3", "aws", "compute", 11.0),
            ("db-idle", "gcp", "database", 20.0),
            ("db-under", "azure", "database", 20.0),
            ("db-over", "aws", "database", 20.0),
            ("dc-1", "onprem", "compute", 20.0),
        ];
        for d in 0..DAYS {
            let day = FIRST_DAY + d;
            // Day 0 was a Thursday: 0 is Sunday, 6 Saturday.
            let weekend = if matches!((day + 4).rem_euclid(7), 0 | 6) {
                0.8
            } else {
                1.0
            };
            for (i, (id, provider, rtype, cost)) in res.iter().enumerate() {
                let util = match *id {
                    "db-idle" if d >= DAYS - 4 => 0.004,
                    "db-under" => 0.10 + 0.02 * f64::from(d % 3),
                    "db-over" => 0.36 + 0.02 * f64::from(d % 4),
                    _ => 0.55 + 0.1 * f64::from((d + i as i32) % 4),
                };
                out.push(serde_json::json!({
                    "ChargePeriodStart": day_rfc(day),
                    "ChargePeriodEnd": day_rfc(day + 1),
                    "ProviderName": provider,
                    "ServiceName": format!("{rtype}-svc"),
                    "ResourceId": id,
                    "ResourceType": rtype,
                    "RegionId": "r1",
                    "ConsumedQuantity": 24,
                    "ConsumedUnit": "Hours",
                    "BilledCost": cost * weekend * (1.0 + 0.004 * f64::from(d)),
                    "x_Utilization": util,
                }));
            }
        }
        // A resource that appeared four days ago: too short to forecast.
        for d in DAYS - 4..DAYS {
            out.push(serde_json::json!({
                "charge_period_start": day_rfc(FIRST_DAY + d),
                "charge_period_end": day_rfc(FIRST_DAY + d + 1),
                "provider": "aws", "resource_id": "new-1", "resource_type": "storage",
                "service": "storage-svc", "cost": 2.0, "utilization": 0.7
            }));
        }
        out
    }

    async fn table<T>(
        lake: &Lake,
        table: &str,
        load: fn(&RecordBatch, &mut Vec<T>) -> Result<(), ArrowError>,
    ) -> Vec<T> {
        let snap = lake.snapshot().await.unwrap();
        let mut out = Vec::new();
        for f in snap.table_files(table) {
            for b in read_batches(lake, &f.path).await.unwrap() {
                load(&b, &mut out).unwrap();
            }
        }
        out
    }

    async fn daily(lake: &Lake) -> Daily {
        let snap = lake.snapshot().await.unwrap();
        let mut out = Daily::new();
        for f in snap.table_files(COST_DAILY) {
            for b in read_batches(lake, &f.path).await.unwrap() {
                load_daily(&b, &mut out).unwrap();
            }
        }
        out
    }

    fn cost_of(events: &[serde_json::Value], day: i32) -> f64 {
        events
            .iter()
            .filter(|e| {
                e.get("ChargePeriodStart")
                    .or_else(|| e.get("charge_period_start"))
                    .and_then(|v| v.as_str())
                    == Some(day_rfc(day).as_str())
            })
            .map(|e| {
                let v = e.get("BilledCost").or_else(|| e.get("cost")).unwrap();
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .unwrap()
            })
            .sum()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn billing_becomes_daily_costs_forecasts_opportunities_and_a_report() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let mut events = fleet();
        ingest_commit(&lake, EventKind::Billing, &events, 0).await;
        let p = Processor::new(Arc::clone(&lake), ProcessorConfig::default());
        let r = p.cycle().await.unwrap();
        assert_eq!(r.count(COST_DAYS), DAYS as u64);

        // cost_daily equals what the raw rows imply, day by day.
        let d = daily(&lake).await;
        for day in FIRST_DAY..FIRST_DAY + DAYS {
            let got: f64 = d
                .iter()
                .filter(|(k, _)| k.day == day)
                .map(|(_, a)| a.cost)
                .sum();
            assert!((got - cost_of(&events, day)).abs() < 1e-9, "day {day}");
        }

        // Forecasts: 30 days for the total, each provider, service and resource, in order.
        let forecasts: Vec<ForecastRow> = table(&lake, COST_FORECASTS, load_forecasts).await;
        let total: Vec<&ForecastRow> = forecasts.iter().filter(|f| f.scope == "total").collect();
        assert_eq!(total.len(), 30);
        assert_eq!(total[0].as_of, FIRST_DAY + DAYS - 1);
        assert_eq!(total[0].day, FIRST_DAY + DAYS);
        for f in &total {
            assert!(f.point.lower_95 <= f.point.lower_80 && f.point.upper_80 <= f.point.upper_95);
        }
        // The fleet grows 0.4% a day with a weekend dip: the next week's forecast is within 3%
        // of what the same rule gives for it (base costs 111.5/day, plus new-1's 2.0).
        let week: f64 = total.iter().take(7).map(|f| f.point.forecast).sum();
        let truth: f64 = (DAYS..DAYS + 7)
            .map(|d| {
                let day = FIRST_DAY + d;
                let weekend = if matches!((day + 4).rem_euclid(7), 0 | 6) {
                    0.8
                } else {
                    1.0
                };
                111.5 * weekend * (1.0 + 0.004 * f64::from(d)) + 2.0
            })
            .sum();
        assert!((week - truth).abs() / truth < 0.03, "{week} vs {truth}");
        for scope in ["provider", "service", "resource"] {
            assert!(forecasts.iter().any(|f| f.scope == scope), "{scope}");
        }
        let accuracy: Vec<AccuracyRow> = table(&lake, FORECAST_ACCURACY, load_accuracy).await;
        let chosen: Vec<&AccuracyRow> = accuracy.iter().filter(|a| a.chosen).collect();
        assert!(chosen
            .iter()
            .any(|a| a.scope == "total" && a.method != "none"));
        let short = accuracy
            .iter()
            .find(|a| a.key == "new-1")
            .expect("the short series is reported");
        assert_eq!(short.method, "none");
        assert!(
            short.note.as_deref().unwrap().contains("too short"),
            "{short:?}"
        );
        assert!(!forecasts.iter().any(|f| f.key == "new-1"));

        // Opportunities: each kind once, healthy resources left alone.
        let found = table(&lake, COST_OPPORTUNITIES, load_opportunities).await;
        let mut kinds: Vec<(String, String)> = found
            .iter()
            .map(|o| (o.resource_id.clone(), o.kind.clone()))
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                ("db-idle", "idle"),
                ("db-over", "oversized"),
                ("db-under", "underutilized"),
                ("dc-1", "provider_disparity"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .to_vec()
        );

        // A late credit for day 10 changes day 10 and nothing else.
        let before = lake.snapshot().await.unwrap();
        let day10 = cost_of(&events, FIRST_DAY + 10);
        let late = serde_json::json!({"charge_period_start": day_rfc(FIRST_DAY + 10),
            "provider": "gcp", "resource_id": "web-1", "resource_type": "compute",
            "service": "compute-svc", "region": "r1", "cost": "-5.00",
            "charge_category": "Credit"});
        ingest_commit(
            &lake,
            EventKind::Billing,
            std::slice::from_ref(&late),
            10_000,
        )
        .await;
        let r = p.cycle().await.unwrap();
        assert_eq!(r.count(COST_DAYS), 1);
        let after = lake.snapshot().await.unwrap();
        let changed: Vec<&String> = after
            .table_files(COST_DAILY)
            .filter(|f| !before.files.contains_key(&f.path))
            .map(|f| &f.path)
            .collect();
        assert_eq!(changed.len(), 1);
        assert!(changed[0].contains(&date_string(FIRST_DAY + 10)));
        events.push(late);
        let d = daily(&lake).await;
        let got: f64 = d
            .iter()
            .filter(|(k, _)| k.day == FIRST_DAY + 10)
            .map(|(_, a)| a.cost)
            .sum();
        assert!((got - cost_of(&events, FIRST_DAY + 10)).abs() < 1e-9);
        assert!((got - (day10 - 5.0)).abs() < 1e-9);

        // The report holds it all, and renders.
        let stored = crate::report::generate::generate(
            &lake,
            "test",
            crate::report::generate::Trigger::Manual,
        )
        .await
        .unwrap()
        .unwrap();
        let rep = &stored.report;
        assert!(rep.month_end.is_some() && rep.next_30_days.is_some());
        assert_eq!(rep.opportunities.len(), 4);
        assert_eq!(
            rep.as_of.as_deref(),
            Some(date_string(FIRST_DAY + DAYS - 1).as_str())
        );
        assert!(rep.not_forecast.iter().any(|n| n.key == "new-1"));
        let page = crate::report::html::render(rep);
        assert!(page.contains("<svg") && page.contains("db-idle"));
        let snap = lake.snapshot().await.unwrap();
        assert!(snap.files.contains_key(&stored.html_path));
        assert_eq!(
            snap.table_files(crate::report::generate::REPORTS).count(),
            1
        );
    }

    #[test]
    fn daily_files_name_their_date() {
        assert_eq!(
            daily_file_date("cost_daily/part-2024-09-18-processor-1-abc.parquet"),
            Some("2024-09-18")
        );
        assert_eq!(daily_file_date("cost_forecasts/part-x.parquet"), None);
    }
}
