//! Partition pruning from time predicates. The lake's partitioned tables live in
//! `date=YYYY-MM-DD/hour=HH` directories by the hour of one time column (`timestamp` of raw
//! events, `window_start` of rollups, ...). `ListingTable` prunes directories only for
//! predicates on `date` and `hour` themselves; users write `timestamp >= now() - INTERVAL '6
//! hours'`. This wrapper reads the bounds such predicates put on the time column (after
//! DataFusion has folded constants like `now()`) and adds the `date`/`hour` predicates they
//! imply, so a query over six hours opens six hours of files, not the whole table. The added
//! predicates only prune whole directories and are implied by the user's, so answers do not
//! change.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{Result, ScalarValue, Statistics};
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, LogicalPlan, Operator, TableProviderFilterPushDown,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{col, lit};

/// A partitioned lake table whose directories follow the hour of `time_col`.
#[derive(Debug)]
pub struct TimePartitioned {
    inner: Arc<ListingTable>,
    time_col: &'static str,
}

impl TimePartitioned {
    /// `inner`, whose files are pruned by the hour of `time_col` in their paths.
    pub fn new(inner: Arc<ListingTable>, time_col: &'static str) -> Self {
        Self { inner, time_col }
    }
}

/// Epoch milliseconds of a time literal (rounded down), and whether it is a whole millisecond.
fn literal_ms(v: &ScalarValue) -> Option<(i64, bool)> {
    match v {
        ScalarValue::TimestampSecond(Some(x), _) => x.checked_mul(1000).map(|m| (m, true)),
        ScalarValue::TimestampMillisecond(Some(x), _) => Some((*x, true)),
        ScalarValue::TimestampMicrosecond(Some(x), _) => {
            Some((x.div_euclid(1000), x.rem_euclid(1000) == 0))
        }
        ScalarValue::TimestampNanosecond(Some(x), _) => {
            Some((x.div_euclid(1_000_000), x.rem_euclid(1_000_000) == 0))
        }
        ScalarValue::Date32(Some(d)) => Some((i64::from(*d) * 86_400_000, true)),
        ScalarValue::Date64(Some(d)) => Some((*d, true)),
        _ => None,
    }
}

/// Whether `e` is the time column, possibly cast to another time type (order-preserving).
fn is_time_col(e: &Expr, name: &str) -> bool {
    match e {
        Expr::Column(c) => c.name == name,
        Expr::Cast(c) => {
            matches!(
                c.field.data_type(),
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
            ) && is_time_col(&c.expr, name)
        }
        Expr::TryCast(c) => {
            matches!(
                c.field.data_type(),
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
            ) && is_time_col(&c.expr, name)
        }
        _ => false,
    }
}

fn literal(e: &Expr) -> Option<(i64, bool)> {
    match e {
        Expr::Literal(v, _) => literal_ms(v),
        Expr::Cast(c) => literal(&c.expr),
        _ => None,
    }
}

/// The bounds (lowest, highest) one conjunct puts on the time column, in epoch ms.
fn bounds(e: &Expr, name: &str) -> (Option<i64>, Option<i64>) {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, value) = if is_time_col(left, name) {
                (*op, literal(right))
            } else if is_time_col(right, name) {
                let flipped = match op {
                    Operator::Gt => Operator::Lt,
                    Operator::GtEq => Operator::LtEq,
                    Operator::Lt => Operator::Gt,
                    Operator::LtEq => Operator::GtEq,
                    other => *other,
                };
                (flipped, literal(left))
            } else {
                return (None, None);
            };
            match (op, value) {
                (Operator::Gt | Operator::GtEq, Some((v, _))) => (Some(v), None),
                // Below a whole millisecond: at most the millisecond before (times are ms).
                (Operator::Lt, Some((v, exact))) => (None, Some(if exact { v - 1 } else { v })),
                (Operator::LtEq, Some((v, _))) => (None, Some(v)),
                (Operator::Eq, Some((v, _))) => (Some(v), Some(v)),
                _ => (None, None),
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_time_col(expr, name) => (literal(low).map(|v| v.0), literal(high).map(|v| v.0)),
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) if is_time_col(expr, name) => {
            let v: Option<Vec<i64>> = list.iter().map(|e| literal(e).map(|v| v.0)).collect();
            match v {
                Some(v) if !v.is_empty() => (v.iter().min().copied(), v.iter().max().copied()),
                _ => (None, None),
            }
        }
        _ => (None, None),
    }
}

fn day_hour(ms: i64) -> (String, String) {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    (t.format("%Y-%m-%d").to_string(), t.format("%H").to_string())
}

/// The `date`/`hour` predicates implied by the bounds `filters` put on `time_col`.
pub fn partition_filters(time_col: &str, filters: &[Expr]) -> Vec<Expr> {
    let (mut lo, mut hi): (Option<i64>, Option<i64>) = (None, None);
    for f in filters {
        let (l, h) = bounds(f, time_col);
        lo = lo.max(l);
        hi = match (hi, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let mut out = Vec::new();
    if let Some(lo) = lo {
        let (d, h) = day_hour(lo);
        out.push(col("date").gt_eq(lit(d.clone())));
        out.push(col("date").gt(lit(d)).or(col("hour").gt_eq(lit(h))));
    }
    if let Some(hi) = hi {
        let (d, h) = day_hour(hi);
        out.push(col("date").lt_eq(lit(d.clone())));
        out.push(col("date").lt(lit(d)).or(col("hour").lt_eq(lit(h))));
    }
    out
}

#[async_trait]
impl TableProvider for TimePartitioned {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn get_logical_plan(&'_ self) -> Option<Cow<'_, LogicalPlan>> {
        self.inner.get_logical_plan()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut all = filters.to_vec();
        all.extend(partition_filters(self.time_col, filters));
        self.inner.scan(state, projection, &all, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(ms: i64) -> Expr {
        Expr::Literal(
            ScalarValue::TimestampNanosecond(Some(ms * 1_000_000), Some("UTC".into())),
            None,
        )
    }

    #[test]
    fn bounds_become_date_and_hour_predicates() {
        // 2026-11-23T04:30:00Z .. 2026-11-23T10:00:00Z
        let (a, b) = (1_795_408_200_000, 1_795_428_000_000);
        let f = vec![
            col("timestamp").gt_eq(ts(a)),
            ts(b).gt(col("timestamp")),
            col("service").eq(lit("x")),
        ];
        let p = partition_filters("timestamp", &f);
        let text: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "date >= Utf8(\"2026-11-23\")",
                "date > Utf8(\"2026-11-23\") OR hour >= Utf8(\"04\")",
                "date <= Utf8(\"2026-11-23\")",
                "date < Utf8(\"2026-11-23\") OR hour <= Utf8(\"09\")",
            ]
        );
        assert!(partition_filters("window_start", &f).is_empty());
        let between = Expr::Between(Between::new(
            Box::new(col("window_start")),
            false,
            Box::new(ts(a)),
            Box::new(ts(b)),
        ));
        assert_eq!(partition_filters("window_start", &[between]).len(), 4);
    }
}
