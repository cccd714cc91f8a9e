//! Rows of `slo_status`.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_schemas::tables;

use super::math::rate;
use super::measure::SloStatus;

/// The `slo_status` rows of `statuses`.
///
/// # Errors
/// When Arrow refuses the arrays (a bug).
pub fn slo_status_batch(statuses: &[SloStatus]) -> Result<RecordBatch, ArrowError> {
    let ts = || TimestampMillisecondBuilder::new().with_timezone(tables::TZ);
    let (mut at, mut start, mut end) = (ts(), ts(), ts());
    let mut slo = StringBuilder::new();
    let (mut good, mut total) = (Int64Builder::new(), Int64Builder::new());
    let (mut sli, mut objective, mut budget) = (
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
    );
    // The contract's windows first, then the ones the multi-window alerts pair with them.
    const WINDOWS: [i64; 7] = [5, 60, 360, 1440, 30, 120, 4320];
    let mut burns: Vec<Float64Builder> = WINDOWS.iter().map(|_| Float64Builder::new()).collect();
    for s in statuses {
        at.append_value(s.computed_at_ms);
        slo.append_value(&s.slo);
        start.append_value(s.period_start_ms);
        end.append_value(s.period_end_ms);
        good.append_value(s.period.good as i64);
        total.append_value(s.period.total as i64);
        sli.append_option(s.period.sli());
        objective.append_value(s.objective);
        budget.append_value(s.period.budget_remaining(s.objective));
        for (b, m) in burns.iter_mut().zip(WINDOWS) {
            b.append_option(rate(&s.burn, m));
        }
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(at.finish()),
        Arc::new(slo.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(good.finish()),
        Arc::new(total.finish()),
        Arc::new(sli.finish()),
        Arc::new(objective.finish()),
        Arc::new(budget.finish()),
    ];
    cols.extend(
        burns
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef),
    );
    RecordBatch::try_new(tables::slo_status(), cols)
}
