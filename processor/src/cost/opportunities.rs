//! Savings opportunities from a fleet's last days of billing and utilization: idle,
//! underutilized and oversized resources, and resource types that cost clearly more per unit on
//! one provider than on the others. Pure: billing days and gauge summaries in, rows out.
//!
//! Utilization comes from billing's `utilization` (0..1, average use of the charge period) or,
//! where a resource reports a utilization gauge (`cpu.utilization` with a `resource_id` label,
//! in 0..1 or in percent), from its hourly metric rollups, which are finer and win.

use std::collections::{BTreeMap, HashMap};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::TimestampMillisecondType;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

use super::daily::{Daily, DAY_MS};
use crate::columns::{column, map_entries, strings, timestamps};
use crate::rollup::sketch_from;
use opslake_sketch::DDSketch;

/// Thresholds of the opportunity rules.
#[derive(Debug, Clone, PartialEq)]
pub struct OpportunityConfig {
    /// Days of billing and utilization looked at.
    pub lookback_days: i64,
    /// Mean utilization under this is `underutilized`.
    pub underutilized_below: f64,
    /// Peak utilization under this (with a higher mean) is `oversized`.
    pub oversized_peak_below: f64,
    /// No use (utilization under 2%) for longer than this, while costing, is `idle`.
    pub idle_hours: f64,
    /// A provider charging this many times the others' median unit price is a disparity.
    pub disparity_ratio: f64,
    /// Opportunities on resources costing less than this a month are left out.
    pub min_monthly_cost: f64,
}

impl Default for OpportunityConfig {
    fn default() -> Self {
        Self {
            lookback_days: 7,
            underutilized_below: 0.30,
            oversized_peak_below: 0.50,
            idle_hours: 24.0,
            disparity_ratio: 1.3,
            min_monthly_cost: 1.0,
        }
    }
}

/// Average days in a month, for monthly figures.
pub const MONTH_DAYS: f64 = 30.4375;

/// Utilization of one resource over the lookback.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// 0..1.
    pub mean: f64,
    /// 0..1: the highest hourly average (billing) or the 99th percentile of samples (gauges).
    pub peak: f64,
    /// Hours of the lookback with a utilization reading.
    pub hours: f64,
    /// End of the latest hour with use of at least 2%.
    pub last_used_at: Option<i64>,
    /// `billing` or `metrics`.
    pub source: &'static str,
}

/// Accumulates a utilization gauge's hourly rollups into a [`Usage`].
#[derive(Debug, Default, Clone)]
pub struct GaugeUsage {
    all: DDSketch,
    hours: u64,
    /// (hour end, hourly max) of every hour seen.
    hourly_max: Vec<(i64, f64)>,
}

impl GaugeUsage {
    /// Adds one hour's sketch of the gauge.
    pub fn add_hour(&mut self, hour_end_ms: i64, sketch: &DDSketch) {
        self.all.merge(sketch);
        self.hours += 1;
        if let Some(m) = sketch.max() {
            self.hourly_max.push((hour_end_ms, m));
        }
    }

    /// The resource's usage; percent gauges (any value above 1.5) are scaled to 0..1.
    pub fn usage(&self) -> Option<Usage> {
        let max = self.all.max()?;
        let scale = if max > 1.5 { 0.01 } else { 1.0 };
        let used = opslake_schemas::tables::USED_UTILIZATION;
        Some(Usage {
            mean: self.all.mean()? * scale,
            peak: self.all.quantile(0.99)? * scale,
            hours: self.hours as f64,
            last_used_at: self
                .hourly_max
                .iter()
                .filter(|(_, m)| m * scale >= used)
                .map(|(t, _)| *t)
                .max(),
            source: "metrics",
        })
    }
}

/// A savings opportunity.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Opportunity {
    /// Cloud provider.
    pub provider: String,
    /// Resource id, as billed.
    pub resource_id: String,
    /// `idle`, `underutilized`, `oversized` or `provider_disparity`.
    pub kind: String,
    /// Cost over the last 30 days of the lookback, as a month.
    pub monthly_cost: f64,
    /// What acting on it would save a month.
    pub estimated_monthly_savings: f64,
    /// What to do, in words.
    pub recommendation: String,
    /// Service, as billed.
    pub service: Option<String>,
    /// Resource type, as billed.
    pub resource_type: Option<String>,
    /// Region, as billed.
    pub region: Option<String>,
    /// Mean utilization over the lookback.
    pub utilization_mean: Option<f64>,
    /// Peak utilization over the lookback.
    pub utilization_peak: Option<f64>,
    /// Where the utilization came from: `billing` or `metrics`.
    pub evidence: String,
    /// Currency of the costs (ISO 4217 as billed).
    pub currency: String,
}

/// One resource over the lookback.
#[derive(Debug, Default)]
struct Resource {
    provider: String,
    service: Option<String>,
    resource_type: Option<String>,
    region: Option<String>,
    currency: String,
    usage_unit: Option<String>,
    cost: f64,
    /// Cost of the last day before the end of the data.
    recent_cost: f64,
    usage: f64,
    first_ms: i64,
    last_end_ms: i64,
    util_weighted: f64,
    util_hours: f64,
    util_peak: Option<f64>,
    last_used_at: Option<i64>,
}

impl Resource {
    fn monthly_cost(&self) -> f64 {
        let days = ((self.last_end_ms - self.first_ms) as f64 / DAY_MS as f64).max(1.0);
        self.cost / days * MONTH_DAYS
    }

    fn billing_usage(&self) -> Option<Usage> {
        (self.util_hours > 0.0).then(|| Usage {
            mean: self.util_weighted / self.util_hours,
            peak: self.util_peak.unwrap_or(0.0),
            hours: self.util_hours,
            last_used_at: self.last_used_at,
            source: "billing",
        })
    }
}

fn money(v: f64, currency: &str) -> String {
    if currency == "USD" {
        format!("${v:.2}")
    } else {
        format!("{v:.2} {currency}")
    }
}

fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

fn duration(hours: f64) -> String {
    if hours >= 48.0 {
        format!("{:.1} days", hours / 24.0)
    } else {
        format!("{hours:.0} hours")
    }
}

/// The smallest of 1/2, 1/4, 1/8 of the current size that keeps mean use under 60% and peak
/// use under 90%; `None` when even half would run too hot.
fn smaller_size(u: &Usage) -> Option<f64> {
    let mut best = None;
    for f in [0.5, 0.25, 0.125] {
        if u.mean / f <= 0.6 && u.peak / f <= 0.9 {
            best = Some(f);
        }
    }
    best
}

fn size_words(f: f64) -> &'static str {
    if f >= 0.5 {
        "half its size (one size down)"
    } else if f >= 0.25 {
        "a quarter of its size (two sizes down)"
    } else {
        "an eighth of its size (three sizes down)"
    }
}

/// Finds the opportunities in the last `cfg.lookback_days` of `daily` (ending at the newest
/// charge period's end), with gauge usage by resource id where resources report one.
pub fn find_opportunities(
    daily: &Daily,
    gauges: &HashMap<String, Usage>,
    cfg: &OpportunityConfig,
) -> Vec<Opportunity> {
    let Some(end) = daily.values().map(|a| a.last_period_end).max() else {
        return Vec::new();
    };
    let from_ms = end - cfg.lookback_days * DAY_MS;
    let recent_ms = end - DAY_MS;
    let mut resources: BTreeMap<String, Resource> = BTreeMap::new();
    for (k, a) in daily {
        let day_start = i64::from(k.day) * DAY_MS;
        if day_start + DAY_MS <= from_ms {
            continue;
        }
        let Some(id) = &k.resource_id else { continue };
        let r = resources.entry(id.clone()).or_insert_with(|| Resource {
            provider: k.provider.clone(),
            service: k.service.clone(),
            resource_type: k.resource_type.clone(),
            region: k.region.clone(),
            currency: k.currency.clone(),
            first_ms: i64::MAX,
            ..Default::default()
        });
        r.cost += a.cost;
        if day_start + DAY_MS > recent_ms {
            r.recent_cost += a.cost;
        }
        r.usage += a.usage_quantity.unwrap_or(0.0);
        if r.usage_unit.is_none() {
            r.usage_unit.clone_from(&a.usage_unit);
        }
        r.first_ms = r.first_ms.min(day_start.max(from_ms));
        r.last_end_ms = r.last_end_ms.max(a.last_period_end);
        if let Some(m) = a.utilization_mean() {
            r.util_weighted += m * a.utilization_hours;
            r.util_hours += a.utilization_hours;
        }
        r.util_peak = match (r.util_peak, a.utilization_max) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        r.last_used_at = r.last_used_at.max(a.last_used_at);
    }

    let mut out = Vec::new();
    for (id, r) in &resources {
        let monthly = r.monthly_cost();
        if monthly < cfg.min_monthly_cost || r.cost <= 0.0 {
            continue;
        }
        let usage = gauges
            .get(id)
            .filter(|u| u.hours >= cfg.idle_hours)
            .cloned()
            .or_else(|| r.billing_usage());
        let Some(u) = usage.filter(|u| u.hours >= cfg.idle_hours) else {
            continue;
        };
        let base = |kind: &'static str, savings: f64, recommendation: String| Opportunity {
            provider: r.provider.clone(),
            resource_id: id.clone(),
            kind: kind.to_string(),
            monthly_cost: monthly,
            estimated_monthly_savings: savings,
            recommendation,
            service: r.service.clone(),
            resource_type: r.resource_type.clone(),
            region: r.region.clone(),
            utilization_mean: Some(u.mean),
            utilization_peak: Some(u.peak),
            evidence: u.source.to_string(),
            currency: r.currency.clone(),
        };
        let what = format!(
            "{} ({}, {}{})",
            id,
            r.resource_type.as_deref().unwrap_or("resource"),
            r.provider,
            r.region
                .as_deref()
                .map(|g| format!(" {g}"))
                .unwrap_or_default()
        );
        let idle_for_h = match u.last_used_at {
            Some(t) => (r.last_end_ms - t) as f64 / 3_600_000.0,
            None => u.hours,
        };
        if idle_for_h > cfg.idle_hours && r.recent_cost > 0.0 {
            let since = if u.last_used_at.is_some() {
                duration(idle_for_h)
            } else {
                format!("at least {}", duration(idle_for_h))
            };
            out.push(base(
                "idle",
                monthly,
                format!(
                    "Stop or delete {what}: no use for {since} (utilization under 2%), yet it still costs {} a day. Snapshot what must be kept first.",
                    money(r.recent_cost, &r.currency)
                ),
            ));
        } else if u.mean < cfg.underutilized_below {
            let (fraction, words) = match smaller_size(&u) {
                Some(f) => (f, size_words(f).to_string()),
                None => (
                    0.5,
                    "a burstable or autoscaled size (its peaks need the headroom only briefly)"
                        .to_string(),
                ),
            };
            let savings = monthly * (1.0 - fraction);
            out.push(base(
                "underutilized",
                savings,
                format!(
                    "Downsize {what} to {words}: it averaged {} use over {} days (peak {}); saves about {}/month.",
                    pct(u.mean),
                    cfg.lookback_days,
                    pct(u.peak),
                    money(savings, &r.currency)
                ),
            ));
        } else if u.peak < cfg.oversized_peak_below {
            let savings = monthly * 0.5;
            out.push(base(
                "oversized",
                savings,
                format!(
                    "Halve the size of {what}: its peak use over {} days was {} (average {}), so half the capacity still covers the peak at {}; saves about {}/month.",
                    cfg.lookback_days,
                    pct(u.peak),
                    pct(u.mean),
                    pct((u.peak * 2.0).min(1.0)),
                    money(savings, &r.currency)
                ),
            ));
        }
    }
    out.extend(provider_disparities(&resources, cfg));
    out.sort_by(|a, b| {
        b.estimated_monthly_savings
            .total_cmp(&a.estimated_monthly_savings)
            .then_with(|| a.resource_id.cmp(&b.resource_id))
    });
    out
}

/// Resource types (with the same usage unit) whose unit price on one provider is at least
/// `disparity_ratio` times the median of the other providers'.
fn provider_disparities(
    resources: &BTreeMap<String, Resource>,
    cfg: &OpportunityConfig,
) -> Vec<Opportunity> {
    // (type, unit) -> provider -> (cost, usage)
    let mut prices: BTreeMap<(String, String), BTreeMap<String, (f64, f64)>> = BTreeMap::new();
    for r in resources.values() {
        let (Some(t), Some(unit)) = (&r.resource_type, &r.usage_unit) else {
            continue;
        };
        if r.usage <= 0.0 || r.cost <= 0.0 {
            continue;
        }
        let p = prices
            .entry((t.clone(), unit.clone()))
            .or_default()
            .entry(r.provider.clone())
            .or_default();
        p.0 += r.cost;
        p.1 += r.usage;
    }
    let mut out = Vec::new();
    for ((rtype, unit), by_provider) in &prices {
        if by_provider.len() < 2 {
            continue;
        }
        let unit_price: BTreeMap<&str, f64> = by_provider
            .iter()
            .map(|(p, (c, u))| (p.as_str(), c / u))
            .collect();
        for (provider, price) in &unit_price {
            let mut others: Vec<(&str, f64)> = unit_price
                .iter()
                .filter(|(p, _)| *p != provider)
                .map(|(p, v)| (*p, *v))
                .collect();
            others.sort_by(|a, b| a.1.total_cmp(&b.1));
            let median = if others.len() % 2 == 1 {
                others[others.len() / 2].1
            } else {
                0.5 * (others[others.len() / 2 - 1].1 + others[others.len() / 2].1)
            };
            if *price < cfg.disparity_ratio * median {
                continue;
            }
            let (cheapest, cheapest_price) = others[0];
            for (id, r) in resources {
                if r.provider != *provider
                    || r.resource_type.as_deref() != Some(rtype)
                    || r.usage_unit.as_deref() != Some(unit)
                    || r.usage <= 0.0
                {
                    continue;
                }
                let monthly = r.monthly_cost();
                let own_price = r.cost / r.usage;
                let savings = monthly * (1.0 - cheapest_price / own_price).max(0.0);
                if monthly < cfg.min_monthly_cost || savings <= 0.0 {
                    continue;
                }
                out.push(Opportunity {
                    provider: r.provider.clone(),
                    resource_id: id.clone(),
                    kind: "provider_disparity".into(),
                    monthly_cost: monthly,
                    estimated_monthly_savings: savings,
                    recommendation: format!(
                        "Consider {cheapest} for {id}: {provider} charges {} per {unit} of {rtype}, {} times the other providers' median; {cheapest} charges {}. Moving it would save about {}/month.",
                        money(own_price, &r.currency),
                        format_args!("{:.1}", price / median),
                        money(cheapest_price, &r.currency),
                        money(savings, &r.currency)
                    ),
                    service: r.service.clone(),
                    resource_type: r.resource_type.clone(),
                    region: r.region.clone(),
                    utilization_mean: r.billing_usage().map(|u| u.mean),
                    utilization_peak: r.billing_usage().map(|u| u.peak),
                    evidence: "billing".into(),
                    currency: r.currency.clone(),
                });
            }
        }
    }
    out
}

/// Folds hourly rollups of a utilization gauge (rows named `metric` with a `resource_id` label)
/// into per-resource usage.
///
/// # Errors
/// When the batch is not a metric rollup.
pub fn fold_gauges(
    batch: &RecordBatch,
    metric: &str,
    from_ms: i64,
    into: &mut HashMap<String, GaugeUsage>,
) -> Result<(), ArrowError> {
    let name = strings(batch, "name")?;
    let name = name.as_string::<i32>();
    let end = timestamps(batch, "window_end")?;
    let end = end.as_primitive::<TimestampMillisecondType>();
    let labels = column(batch, "labels")?;
    let labels = labels.as_map();
    let sketch = column(batch, "sketch")?;
    let mut pairs = Vec::new();
    for row in 0..batch.num_rows() {
        if name.is_null(row) || name.value(row) != metric || end.value(row) <= from_ms {
            continue;
        }
        map_entries(labels, row, &mut pairs);
        let Some((_, id)) = pairs.iter().find(|(k, _)| *k == "resource_id") else {
            continue;
        };
        if let Some(s) = sketch_from(&sketch, row)? {
            into.entry((*id).to_string())
                .or_default()
                .add_hour(end.value(row), &s);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::daily::{DailyAgg, DailyKey};

    const END_DAY: i32 = 20_000;

    /// Ten days of a resource billed daily: cost per day, utilization mean and max per day.
    fn resource(
        daily: &mut Daily,
        id: &str,
        provider: &str,
        rtype: &str,
        cost: f64,
        util: impl Fn(i32) -> (f64, f64),
    ) {
        for day in END_DAY - 9..=END_DAY {
            let (mean, max) = util(day);
            let end = i64::from(day + 1) * DAY_MS;
            daily.insert(
                DailyKey {
                    day,
                    provider: provider.into(),
                    service: Some("svc".into()),
                    resource_id: Some(id.into()),
                    resource_type: Some(rtype.into()),
                    region: Some("r1".into()),
                    currency: "USD".into(),
                },
                DailyAgg {
                    cost,
                    effective_cost: cost,
                    usage_quantity: Some(24.0),
                    usage_unit: Some("Hours".into()),
                    rows: 24,
                    billed_hours: 24.0,
                    utilization_weighted: mean * 24.0,
                    utilization_hours: 24.0,
                    utilization_max: Some(max),
                    last_used_at: (max >= 0.02).then_some(end),
                    last_period_end: end,
                },
            );
        }
    }

    fn fleet() -> Daily {
        let mut d = Daily::new();
        resource(&mut d, "healthy-1", "gcp", "compute", 10.0, |_| (0.55, 0.8));
        resource(&mut d, "healthy-2", "azure", "compute", 10.5, |_| {
            (0.6, 0.9)
        });
        resource(&mut d, "healthy-3", "aws", "compute", 11.0, |_| (0.5, 0.85));
        // Used until three days ago, then nothing.
        resource(&mut d, "idle-1", "gcp", "database", 20.0, |day| {
            if day <= END_DAY - 3 {
                (0.4, 0.7)
            } else {
                (0.005, 0.01)
            }
        });
        resource(&mut d, "under-1", "azure", "database", 20.0, |_| {
            (0.12, 0.2)
        });
        resource(&mut d, "over-1", "aws", "database", 20.0, |_| (0.36, 0.44));
        resource(&mut d, "pricey-1", "onprem", "compute", 20.0, |_| {
            (0.6, 0.9)
        });
        d
    }

    #[test]
    fn each_kind_is_found_and_healthy_resources_are_left_alone() {
        let found = find_opportunities(&fleet(), &HashMap::new(), &OpportunityConfig::default());
        let kinds: BTreeMap<&str, &str> = found
            .iter()
            .map(|o| (o.resource_id.as_str(), o.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            BTreeMap::from([
                ("idle-1", "idle"),
                ("under-1", "underutilized"),
                ("over-1", "oversized"),
                ("pricey-1", "provider_disparity"),
            ]),
            "{found:#?}"
        );
        let idle = found.iter().find(|o| o.kind == "idle").unwrap();
        assert!((idle.monthly_cost - 20.0 * MONTH_DAYS).abs() < 1e-6);
        assert_eq!(idle.estimated_monthly_savings, idle.monthly_cost);
        assert!(
            idle.recommendation.contains("no use for 3.0 days"),
            "{}",
            idle.recommendation
        );
        let under = found.iter().find(|o| o.kind == "underutilized").unwrap();
        // 12% mean, 20% peak: a quarter of the size keeps it under 60% mean and 90% peak.
        assert!((under.estimated_monthly_savings - 0.75 * under.monthly_cost).abs() < 1e-6);
        let pricey = found
            .iter()
            .find(|o| o.kind == "provider_disparity")
            .unwrap();
        // 20/24 per hour against the cheapest other (gcp, 10/24): half of it.
        assert!((pricey.estimated_monthly_savings - 0.5 * pricey.monthly_cost).abs() < 1e-6);
        assert!(pricey.recommendation.starts_with("Consider gcp"));
    }

    #[test]
    fn a_gauge_overrides_billing_utilization() {
        let mut gauges = HashMap::new();
        let mut g = GaugeUsage::default();
        for h in 0..72 {
            let mut s = DDSketch::default();
            for v in [55.0, 60.0, 70.0] {
                s.add(v);
            }
            g.add_hour(i64::from(END_DAY + 1) * DAY_MS - h * 3_600_000, &s);
        }
        gauges.insert("under-1".to_string(), g.usage().unwrap());
        let found = find_opportunities(&fleet(), &gauges, &OpportunityConfig::default());
        assert!(
            !found.iter().any(|o| o.resource_id == "under-1"),
            "{found:#?}"
        );
    }
}
