//! `cost_daily`: billing rows summed per day and provider, service, resource, resource type,
//! region and currency. A day is always recomputed from every live billing file of that day, so
//! it stays exact as late and revised billing rows arrive, and after compaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
};
use datafusion::arrow::datatypes::{Date32Type, Float64Type, Int64Type, TimestampMillisecondType};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_schemas::tables::{self, USED_UTILIZATION};

use crate::columns::{column, strings, timestamps};
use crate::rollup::ts_builder;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of an epoch-millisecond time (UTC).
pub fn day_of(ms: i64) -> i32 {
    ms.div_euclid(DAY_MS) as i32
}

/// `YYYY-MM-DD` of a day number.
pub fn date_string(day: i32) -> String {
    chrono::DateTime::from_timestamp_millis(i64::from(day) * DAY_MS)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// The day number of `YYYY-MM-DD`.
pub fn parse_date(date: &str) -> Option<i32> {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(day_of(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis()))
}

/// The grouping of `cost_daily`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DailyKey {
    /// The day of `charge_period_start` (days since 1970-01-01, UTC).
    pub day: i32,
    /// Cloud provider.
    pub provider: String,
    /// Service, as billed.
    pub service: Option<String>,
    /// Resource id, as billed.
    pub resource_id: Option<String>,
    /// Resource type, as billed.
    pub resource_type: Option<String>,
    /// Region, as billed.
    pub region: Option<String>,
    /// Currency of the costs (ISO 4217 as billed).
    pub currency: String,
}

/// The sums of one `cost_daily` row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DailyAgg {
    /// Billed cost.
    pub cost: f64,
    /// Effective cost (after discounts and credits).
    pub effective_cost: f64,
    /// Consumed quantity, when billed.
    pub usage_quantity: Option<f64>,
    /// Unit of the consumed quantity.
    pub usage_unit: Option<String>,
    /// Billing rows summed.
    pub rows: i64,
    /// Hours of charge periods summed.
    pub billed_hours: f64,
    /// Sum of utilization × hours, and the hours with a utilization, for the weighted mean.
    pub utilization_weighted: f64,
    /// Hours with a utilization value.
    pub utilization_hours: f64,
    /// Highest utilization.
    pub utilization_max: Option<f64>,
    /// End of the last charge period with utilization of at least 2% (epoch ms).
    pub last_used_at: Option<i64>,
    /// End of the last charge period (epoch ms).
    pub last_period_end: i64,
}

impl DailyAgg {
    /// Hour-weighted mean utilization, when any hour had one.
    pub fn utilization_mean(&self) -> Option<f64> {
        (self.utilization_hours > 0.0).then(|| self.utilization_weighted / self.utilization_hours)
    }

    fn merge(&mut self, o: &DailyAgg) {
        self.cost += o.cost;
        self.effective_cost += o.effective_cost;
        self.usage_quantity = match (self.usage_quantity, o.usage_quantity) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        if self.usage_unit.is_none() {
            self.usage_unit.clone_from(&o.usage_unit);
        }
        self.rows += o.rows;
        self.billed_hours += o.billed_hours;
        self.utilization_weighted += o.utilization_weighted;
        self.utilization_hours += o.utilization_hours;
        self.utilization_max = max_opt(self.utilization_max, o.utilization_max);
        self.last_used_at = self.last_used_at.max(o.last_used_at);
        self.last_period_end = self.last_period_end.max(o.last_period_end);
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

/// `cost_daily` rows by key.
pub type Daily = BTreeMap<DailyKey, DailyAgg>;

fn opt_str(a: &datafusion::arrow::array::StringArray, row: usize) -> Option<String> {
    (!a.is_null(row)).then(|| a.value(row).to_string())
}

fn f64s(batch: &RecordBatch, name: &str) -> Result<ArrayRef, ArrowError> {
    let c = column(batch, name)?;
    if c.data_type() == &datafusion::arrow::datatypes::DataType::Float64 {
        Ok(c)
    } else {
        datafusion::arrow::compute::cast(&c, &datafusion::arrow::datatypes::DataType::Float64)
    }
}

/// Folds rows of the `billing` table into `into`, by the day of `charge_period_start`.
///
/// # Errors
/// When the batch lacks a column of the `billing` table.
pub fn fold_billing(batch: &RecordBatch, into: &mut Daily) -> Result<(), ArrowError> {
    let start = timestamps(batch, "charge_period_start")?;
    let start = start.as_primitive::<TimestampMillisecondType>();
    let end = timestamps(batch, "charge_period_end")?;
    let end = end.as_primitive::<TimestampMillisecondType>();
    let cols: Vec<ArrayRef> = opslake_schemas::tables::BILLING_DIMENSIONS
        .iter()
        .map(|c| strings(batch, c))
        .collect::<Result<_, _>>()?;
    let [provider, service, resource, rtype, region, currency, unit] =
        std::array::from_fn(|i| cols[i].as_string::<i32>());
    let cost = f64s(batch, "cost")?;
    let cost = cost.as_primitive::<Float64Type>();
    let effective = f64s(batch, "effective_cost")?;
    let effective = effective.as_primitive::<Float64Type>();
    let usage = f64s(batch, "usage_quantity")?;
    let usage = usage.as_primitive::<Float64Type>();
    let util = f64s(batch, "utilization")?;
    let util = util.as_primitive::<Float64Type>();
    for row in 0..batch.num_rows() {
        let (s, e) = (start.value(row), end.value(row));
        let key = DailyKey {
            day: day_of(s),
            provider: provider.value(row).to_string(),
            service: opt_str(service, row),
            resource_id: opt_str(resource, row),
            resource_type: opt_str(rtype, row),
            region: opt_str(region, row),
            currency: currency.value(row).to_string(),
        };
        let hours = ((e - s).max(0) as f64) / 3_600_000.0;
        let u = (!util.is_null(row)).then(|| util.value(row));
        let one = DailyAgg {
            cost: cost.value(row),
            effective_cost: effective.value(row),
            usage_quantity: (!usage.is_null(row)).then(|| usage.value(row)),
            usage_unit: opt_str(unit, row),
            rows: 1,
            billed_hours: hours,
            utilization_weighted: u.map_or(0.0, |u| u * hours.max(1e-9)),
            utilization_hours: if u.is_some() { hours.max(1e-9) } else { 0.0 },
            utilization_max: u,
            last_used_at: u.filter(|u| *u >= USED_UTILIZATION).map(|_| e),
            last_period_end: e,
        };
        match into.get_mut(&key) {
            Some(agg) => agg.merge(&one),
            None => {
                into.insert(key, one);
            }
        }
    }
    Ok(())
}

/// The rows of `cost_daily` for `daily`, in key order.
///
/// # Errors
/// When Arrow refuses the arrays (a bug).
pub fn daily_batch<'a>(
    rows: impl IntoIterator<Item = (&'a DailyKey, &'a DailyAgg)>,
) -> Result<RecordBatch, ArrowError> {
    let mut date = Date32Builder::new();
    let mut strs: Vec<StringBuilder> = (0..5).map(|_| StringBuilder::new()).collect();
    let mut cost = Float64Builder::new();
    let mut effective = Float64Builder::new();
    let mut usage = Float64Builder::new();
    let mut unit = StringBuilder::new();
    let mut currency = StringBuilder::new();
    let mut count = Int64Builder::new();
    let mut hours = Float64Builder::new();
    let mut umean = Float64Builder::new();
    let mut umax = Float64Builder::new();
    let mut used = ts_builder(0);
    let mut last = ts_builder(0);
    for (k, a) in rows {
        date.append_value(k.day);
        strs[0].append_value(&k.provider);
        strs[1].append_option(k.service.as_deref());
        strs[2].append_option(k.resource_id.as_deref());
        strs[3].append_option(k.resource_type.as_deref());
        strs[4].append_option(k.region.as_deref());
        cost.append_value(a.cost);
        effective.append_value(a.effective_cost);
        usage.append_option(a.usage_quantity);
        unit.append_option(a.usage_unit.as_deref());
        currency.append_value(&k.currency);
        count.append_value(a.rows);
        hours.append_value(a.billed_hours);
        umean.append_option(a.utilization_mean());
        umax.append_option(a.utilization_max);
        used.append_option(a.last_used_at);
        last.append_value(a.last_period_end);
    }
    let mut cols: Vec<ArrayRef> = vec![Arc::new(date.finish())];
    for mut b in strs {
        cols.push(Arc::new(b.finish()));
    }
    cols.extend([
        Arc::new(cost.finish()) as ArrayRef,
        Arc::new(effective.finish()),
        Arc::new(usage.finish()),
        Arc::new(unit.finish()),
        Arc::new(currency.finish()),
        Arc::new(count.finish()),
        Arc::new(hours.finish()),
        Arc::new(umean.finish()),
        Arc::new(umax.finish()),
        Arc::new(used.finish()),
        Arc::new(last.finish()),
    ]);
    RecordBatch::try_new(tables::cost_daily(), cols)
}

/// Reads stored `cost_daily` rows back.
///
/// # Errors
/// When the batch is not a `cost_daily` batch.
pub fn load_daily(batch: &RecordBatch, into: &mut Daily) -> Result<(), ArrowError> {
    let date = column(batch, "date")?;
    let date = date.as_primitive::<Date32Type>();
    let cols: Vec<ArrayRef> = opslake_schemas::tables::BILLING_DIMENSIONS
        .iter()
        .map(|c| strings(batch, c))
        .collect::<Result<_, _>>()?;
    let [provider, service, resource, rtype, region, currency, unit] =
        std::array::from_fn(|i| cols[i].as_string::<i32>());
    let num = |n: &str| f64s(batch, n);
    let (cost, effective, usage, hours, umean, umax) = (
        num("cost")?,
        num("effective_cost")?,
        num("usage_quantity")?,
        num("billed_hours")?,
        num("utilization_mean")?,
        num("utilization_max")?,
    );
    let [cost, effective, usage, hours, umean, umax] =
        [&cost, &effective, &usage, &hours, &umean, &umax].map(|a| a.as_primitive::<Float64Type>());
    let rows = column(batch, "rows")?;
    let rows = rows.as_primitive::<Int64Type>();
    let used = timestamps(batch, "last_used_at")?;
    let used = used.as_primitive::<TimestampMillisecondType>();
    let last = timestamps(batch, "last_period_end")?;
    let last = last.as_primitive::<TimestampMillisecondType>();
    let opt =
        |a: &datafusion::arrow::array::Float64Array, r: usize| (!a.is_null(r)).then(|| a.value(r));
    for r in 0..batch.num_rows() {
        let key = DailyKey {
            day: date.value(r),
            provider: provider.value(r).to_string(),
            service: opt_str(service, r),
            resource_id: opt_str(resource, r),
            resource_type: opt_str(rtype, r),
            region: opt_str(region, r),
            currency: currency.value(r).to_string(),
        };
        let mean = opt(umean, r);
        let h = hours.value(r);
        let agg = DailyAgg {
            cost: cost.value(r),
            effective_cost: effective.value(r),
            usage_quantity: opt(usage, r),
            usage_unit: opt_str(unit, r),
            rows: rows.value(r),
            billed_hours: h,
            utilization_weighted: mean.map_or(0.0, |m| m * h.max(1e-9)),
            utilization_hours: if mean.is_some() { h.max(1e-9) } else { 0.0 },
            utilization_max: opt(umax, r),
            last_used_at: (!used.is_null(r)).then(|| used.value(r)),
            last_period_end: last.value(r),
        };
        into.insert(key, agg);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let d = parse_date("2024-09-18").unwrap();
        assert_eq!(date_string(d), "2024-09-18");
        assert_eq!(day_of(1_726_617_600_000 + 3_600_000), d);
    }
}
