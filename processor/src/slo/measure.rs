//! Counting an SLO's good and total events from the rollups, through the SQL engine: latency
//! SLOs from the stored sketches (a window's good samples are its merged sketch's rank of the
//! threshold), errors SLOs from `log_rollups_1m.bad_count`. The period is read from the hourly
//! rollups, the last three days (every burn-rate window) from the minute rollups.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimestampMillisecondType};
use datafusion::arrow::record_batch::RecordBatch;
use opslake_sketch::DDSketch;

use super::config::{SloConfig, SloKind};
use super::math::{BurnRates, Counts, BURN_WINDOWS_MIN};
use crate::sql::{quote, timestamp_literal, QueryFailed, SqlEngine};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// An SLO's figures at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct SloStatus {
    /// The SLO's name.
    pub slo: String,
    /// When it was computed (epoch ms).
    pub computed_at_ms: i64,
    /// Start of the period counted (epoch ms, whole hours).
    pub period_start_ms: i64,
    /// End of the period counted (epoch ms).
    pub period_end_ms: i64,
    /// Good and total events over the period.
    pub period: Counts,
    /// The objective.
    pub objective: f64,
    /// Burn rates over [`BURN_WINDOWS_MIN`].
    pub burn: BurnRates,
}

/// Per-window counts, by window start (epoch ms).
type Windows = BTreeMap<i64, Counts>;

/// The SQL of an SLO's per-window counts in `table` from `from_ms` (inclusive) to `to_ms`.
fn counts_sql(slo: &SloConfig, table: &str, from_ms: i64, to_ms: i64) -> String {
    let range = format!(
        "window_start >= {} AND window_start < {}",
        timestamp_literal(from_ms),
        timestamp_literal(to_ms)
    );
    match slo.kind {
        SloKind::Latency => {
            let mut filter = format!(
                "service = {} AND name = {}",
                quote(&slo.service),
                quote(slo.metric.as_deref().unwrap_or_default())
            );
            for (k, v) in &slo.filter {
                filter.push_str(&format!(" AND labels[{}] = {}", quote(k), quote(v)));
            }
            format!(
                "SELECT window_start, sketch_merge(sketch) AS sketch FROM {table} \
                 WHERE {filter} AND {range} GROUP BY window_start"
            )
        }
        SloKind::Errors => format!(
            "SELECT window_start, sum(count) AS total, \
             sum(coalesce(bad_count, error_count + fatal_count)) AS bad FROM {table} \
             WHERE service = {} AND {range} GROUP BY window_start",
            quote(&slo.service)
        ),
    }
}

/// Reads the per-window counts of an answer of [`counts_sql`].
fn windows_of(slo: &SloConfig, batches: &[RecordBatch]) -> Result<Windows, QueryFailed> {
    let bad = |e: &dyn std::fmt::Display| QueryFailed(format!("unexpected answer: {e}"));
    let mut out = Windows::new();
    for b in batches {
        let ws = cast(b.column(0), &opslake_schemas::tables::ts()).map_err(|e| bad(&e))?;
        let ws = ws.as_primitive::<TimestampMillisecondType>();
        match slo.kind {
            SloKind::Latency => {
                let threshold = slo.threshold.unwrap_or(f64::INFINITY);
                let sketches = b.column(1).as_binary::<i32>();
                for row in 0..b.num_rows() {
                    if sketches.is_null(row) {
                        continue;
                    }
                    let s = DDSketch::from_bytes(sketches.value(row)).map_err(|e| bad(&e))?;
                    let c = out.entry(ws.value(row)).or_default();
                    c.add(Counts {
                        good: s.rank(threshold),
                        total: s.count(),
                    });
                }
            }
            SloKind::Errors => {
                let total = cast(b.column(1), &DataType::Int64).map_err(|e| bad(&e))?;
                let total = total.as_primitive::<Int64Type>();
                let badc = cast(b.column(2), &DataType::Int64).map_err(|e| bad(&e))?;
                let badc = badc.as_primitive::<Int64Type>();
                for row in 0..b.num_rows() {
                    let t = total.value(row).max(0) as u64;
                    let n = badc.value(row).clamp(0, t as i64) as u64;
                    out.entry(ws.value(row)).or_default().add(Counts {
                        good: t - n,
                        total: t,
                    });
                }
            }
        }
    }
    Ok(out)
}

fn sum_from(windows: &Windows, from_ms: i64) -> Counts {
    let mut c = Counts::default();
    for (_, w) in windows.range(from_ms..) {
        c.add(*w);
    }
    c
}

/// Measures `slo` at `now_ms`.
///
/// # Errors
/// When a query fails or answers something unexpected.
pub async fn measure(
    engine: &dyn SqlEngine,
    slo: &SloConfig,
    now_ms: i64,
) -> Result<SloStatus, QueryFailed> {
    let longest = BURN_WINDOWS_MIN[BURN_WINDOWS_MIN.len() - 1] * MINUTE_MS;
    let period_ms = slo.period.as_millis() as i64;
    // Minutes cover the burn windows, from a whole hour on; hours cover the rest of the period.
    let cut = (now_ms - longest.min(period_ms)).div_euclid(HOUR_MS) * HOUR_MS;
    let period_start = (now_ms - period_ms).div_euclid(HOUR_MS) * HOUR_MS;
    let (table_1m, table_1h) = match slo.kind {
        SloKind::Latency => ("metric_rollups_1m", Some("metric_rollups_1h")),
        SloKind::Errors => ("log_rollups_1m", None),
    };
    let minutes = windows_of(
        slo,
        &engine
            .query(&counts_sql(slo, table_1m, cut, now_ms + MINUTE_MS))
            .await?,
    )?;
    // Logs have no hourly rollups: their minutes cover the whole period.
    let earlier = match table_1h {
        Some(t) if period_start < cut => windows_of(
            slo,
            &engine.query(&counts_sql(slo, t, period_start, cut)).await?,
        )?,
        None if period_start < cut => windows_of(
            slo,
            &engine
                .query(&counts_sql(slo, table_1m, period_start, cut))
                .await?,
        )?,
        _ => Windows::new(),
    };
    let mut period = sum_from(&earlier, period_start);
    period.add(sum_from(&minutes, period_start.max(cut)));
    let burn: BurnRates = std::array::from_fn(|i| {
        // A window's span counts the minutes whose start lies inside it.
        let from = now_ms - BURN_WINDOWS_MIN[i] * MINUTE_MS;
        sum_from(&minutes, from.div_euclid(MINUTE_MS) * MINUTE_MS).burn_rate(slo.objective)
    });
    Ok(SloStatus {
        slo: slo.name.clone(),
        computed_at_ms: now_ms,
        period_start_ms: period_start,
        period_end_ms: now_ms,
        period,
        objective: slo.objective,
        burn,
    })
}
