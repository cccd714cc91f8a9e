//! SQL functions over stored sketches, registered in every opslake SQL session:
//! - `quantile_merge(sketch, q)`: the `q` quantile of the union of the sketches it aggregates,
//!   within 1% of the exact value of the raw events, e.g.
//!   `SELECT service, quantile_merge(sketch, 0.99) FROM metric_rollups_1m GROUP BY service`;
//! - `quantile_rank(sketch, value)`: the fraction (0 to 1) of the values of the sketches it
//!   aggregates that are at or under `value` (exact but for values within 0.9% of it), e.g. the
//!   share of requests answered within 300 ms:
//!   `SELECT service, quantile_rank(sketch, 300) FROM metric_rollups_1m GROUP BY service`;
//! - `sketch_merge(sketch)`: the merged sketch itself, for storing or merging further.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::DDSketch;
use groups::SketchGroups;

mod groups;

/// Registers the sketch functions in `ctx`.
pub fn register(ctx: &SessionContext) {
    for kind in [Kind::QuantileMerge, Kind::QuantileRank, Kind::SketchMerge] {
        ctx.register_udaf(AggregateUDF::from(SketchAggregate::new(kind)));
    }
}

/// The constant second argument of `fname`, as a float.
fn constant_arg(args: &AccumulatorArgs, fname: &str, what: &str) -> Result<f64> {
    let value = args.exprs.get(1).and_then(|e| {
        e.downcast_ref::<datafusion::physical_expr::expressions::Literal>()
            .map(|l| l.value().clone())
    });
    match value {
        Some(v) => match v.cast_to(&DataType::Float64)? {
            ScalarValue::Float64(Some(x)) => Ok(x),
            other => plan_err!("{fname}: {what} must be a number, found {other}"),
        },
        None => plan_err!("{fname}: {what} must be a constant"),
    }
}

/// The `q` of `quantile_merge(sketch, q)`: a constant from 0 to 1.
fn quantile_arg(args: &AccumulatorArgs) -> Result<f64> {
    let q = constant_arg(args, "quantile_merge", "q")?;
    if !(0.0..=1.0).contains(&q) {
        return plan_err!("quantile_merge: q must be between 0 and 1, found {q}");
    }
    Ok(q)
}

/// The return type of `fname(sketch, <number>)`, or a planning error naming the argument.
fn sketch_and_number(args: &[DataType], fname: &str, what: &str) -> Result<DataType> {
    if !is_binary(&args[0]) {
        return plan_err!(
            "{fname}(sketch, {what}): the first argument must be a sketch column (binary), found {}",
            args[0]
        );
    }
    if !args[1].is_numeric() {
        return plan_err!(
            "{fname}(sketch, {what}): {what} must be a number, found {}",
            args[1]
        );
    }
    Ok(DataType::Float64)
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null
    )
}

/// Calls `f` with the row number and bytes of every non-null sketch of a binary array.
fn for_each_sketch(
    array: &ArrayRef,
    fname: &str,
    mut f: impl FnMut(usize, &[u8]) -> Result<()>,
) -> Result<()> {
    fn each<'a>(
        values: impl Iterator<Item = Option<&'a [u8]>>,
        f: &mut impl FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<()> {
        values
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i, v)))
            .try_for_each(|(i, v)| f(i, v))
    }
    match array.data_type() {
        DataType::Binary => each(array.as_binary::<i32>().iter(), &mut f),
        DataType::LargeBinary => each(array.as_binary::<i64>().iter(), &mut f),
        DataType::BinaryView => each(array.as_binary_view().iter(), &mut f),
        DataType::Null => Ok(()),
        other => exec_err!("{fname}: expected a sketch column (binary), found {other}"),
    }
}

/// Merges the sketch `bytes` into `into`, or an error naming `fname`.
fn merge_into(into: &mut DDSketch, bytes: &[u8], fname: &str) -> Result<()> {
    into.merge_bytes(bytes)
        .or_else(|e| exec_err!("{fname}: {e}"))
}

/// Merges every non-null sketch of a binary array into `into`.
fn merge_array(into: &mut DDSketch, array: &ArrayRef, fname: &str) -> Result<()> {
    for_each_sketch(array, fname, |_, b| merge_into(into, b, fname))
}

/// The three sketch aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    QuantileMerge,
    QuantileRank,
    SketchMerge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::QuantileMerge => "quantile_merge",
            Self::QuantileRank => "quantile_rank",
            Self::SketchMerge => "sketch_merge",
        }
    }

    /// What the aggregate answers, from its constant arguments.
    fn finish(self, args: &AccumulatorArgs) -> Result<Finish> {
        Ok(match self {
            Self::QuantileMerge => Finish::Quantile(quantile_arg(args)?),
            Self::QuantileRank => Finish::Rank(constant_arg(args, "quantile_rank", "value")?),
            Self::SketchMerge => Finish::Sketch,
        })
    }
}

/// One sketch aggregate as DataFusion sees it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SketchAggregate {
    kind: Kind,
    signature: Signature,
}

impl SketchAggregate {
    fn new(kind: Kind) -> Self {
        let arity = if kind == Kind::SketchMerge { 1 } else { 2 };
        Self {
            kind,
            signature: Signature::any(arity, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for SketchAggregate {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match self.kind {
            Kind::QuantileMerge => sketch_and_number(args, "quantile_merge", "q"),
            Kind::QuantileRank => sketch_and_number(args, "quantile_rank", "value"),
            Kind::SketchMerge if !is_binary(&args[0]) => plan_err!(
                "sketch_merge(sketch): expected a sketch column (binary), found {}",
                args[0]
            ),
            Kind::SketchMerge => Ok(DataType::Binary),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let finish = self.kind.finish(&args)?;
        Ok(SketchAcc::boxed(self.kind.name(), finish))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let finish = self.kind.finish(&args)?;
        Ok(SketchGroups::boxed(self.kind.name(), finish))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(sketch_state(&args))
    }
}

/// What an aggregate over sketches answers from the merged sketch.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Finish {
    /// `quantile_merge`: the quantile.
    Quantile(f64),
    /// `quantile_rank`: the fraction at or under the value.
    Rank(f64),
    /// `sketch_merge`: the sketch itself.
    Sketch,
}

/// The accumulator of every sketch aggregate: merges sketches, then finishes.
#[derive(Debug)]
struct SketchAcc {
    sketch: DDSketch,
    fname: &'static str,
    finish: Finish,
}

impl SketchAcc {
    fn boxed(fname: &'static str, finish: Finish) -> Box<dyn Accumulator> {
        Box::new(Self {
            sketch: DDSketch::default(),
            fname,
            finish,
        })
    }
}

impl Accumulator for SketchAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        merge_array(&mut self.sketch, &values[0], self.fname)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(match self.finish {
            Finish::Quantile(q) => ScalarValue::Float64(self.sketch.quantile(q)),
            Finish::Rank(v) => ScalarValue::Float64(self.sketch.rank_fraction(v)),
            Finish::Sketch => ScalarValue::Binary(Some(self.sketch.to_bytes())),
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sketch.count().min(4096) as usize
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.sketch.to_bytes()))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        merge_array(&mut self.sketch, &states[0], self.fname)
    }
}

/// The partial state of every sketch aggregate: the merged sketch so far.
fn sketch_state(args: &StateFieldsArgs) -> Vec<FieldRef> {
    vec![Arc::new(Field::new(
        format!("{}[sketch]", args.name),
        DataType::Binary,
        true,
    ))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BinaryArray, Float64Array, StringArray};
    use datafusion::arrow::datatypes::Schema;
    use datafusion::arrow::record_batch::RecordBatch;

    /// The grouped accumulator (GROUP BY) answers as the row-wise one (no GROUP BY) does, with
    /// FILTER clauses, nulls and sketches spread over several batches.
    #[tokio::test]
    async fn grouped_and_row_wise_aggregates_agree() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, false),
            Field::new("k", DataType::Float64, false),
            Field::new("sketch", DataType::Binary, true),
        ]));
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_batch_size(7),
        );
        register(&ctx);
        let mut batches = vec![];
        for b in 0..5u32 {
            let mut g = vec![];
            let mut k = vec![];
            let mut sketches: Vec<Option<Vec<u8>>> = vec![];
            for i in 0..40u32 {
                let mut s = DDSketch::default();
                for v in 0..(i % 7 + 1) {
                    s.add(f64::from(b * 1000 + i * 10 + v) / 3.0);
                }
                g.push(["a", "b", "c"][(i % 3) as usize]);
                k.push(f64::from(i % 5));
                sketches.push((i % 11 != 0).then(|| s.to_bytes()));
            }
            batches.push(
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(StringArray::from(g)),
                        Arc::new(Float64Array::from(k)),
                        Arc::new(BinaryArray::from_iter(sketches)),
                    ],
                )
                .unwrap(),
            );
        }
        let table = datafusion::datasource::MemTable::try_new(schema, vec![batches]).unwrap();
        ctx.register_table("r", Arc::new(table)).unwrap();
        let aggs = "quantile_merge(sketch, 0.9), quantile_rank(sketch, 300), \
                    quantile_merge(sketch, 0.5) FILTER (WHERE k > 1), sketch_merge(sketch)";
        let rows = |sql: String| {
            let ctx = ctx.clone();
            async move {
                let out = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
                let text = datafusion::arrow::util::pretty::pretty_format_batches(&out)
                    .unwrap()
                    .to_string();
                // The data rows' cells, trimmed.
                text.lines()
                    .skip(3)
                    .filter(|l| l.starts_with('|'))
                    .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
                    .collect::<Vec<Vec<String>>>()
            }
        };
        let grouped = rows(format!("SELECT g, {aggs} FROM r GROUP BY g ORDER BY g")).await;
        assert_eq!(grouped.len(), 3);
        for (g, row) in ["a", "b", "c"].into_iter().zip(&grouped) {
            let alone = rows(format!("SELECT '{g}' AS g, {aggs} FROM r WHERE g = '{g}'")).await;
            assert_eq!(&alone[0], row, "group {g}");
        }
    }

    #[tokio::test]
    async fn quantile_merge_equals_the_sketch_of_all_values() {
        let groups = [("a", 1..=100), ("a", 101..=300), ("b", 1..=10)];
        let mut keys = vec![];
        let mut sketches = vec![];
        for (k, range) in groups.clone() {
            let mut s = DDSketch::default();
            for v in range {
                s.add(f64::from(v));
            }
            keys.push(k);
            sketches.push(s.to_bytes());
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("service", DataType::Utf8, false),
            Field::new("sketch", DataType::Binary, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(BinaryArray::from_iter_values(sketches.iter())),
            ],
        )
        .unwrap();
        let ctx = SessionContext::new();
        register(&ctx);
        ctx.register_batch("r", batch).unwrap();
        let out = ctx
            .sql("SELECT service, quantile_merge(sketch, 0.5) AS p50, quantile_merge(sketch, 1) AS mx FROM r GROUP BY service ORDER BY service")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let p50 = out[0]
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let mx = out[0]
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        // Exact median of 1..=300 is 150.5; of 1..=10 is 5.5.
        assert!((p50.value(0) - 150.5).abs() <= 1.505, "{}", p50.value(0));
        assert!((p50.value(1) - 5.5).abs() <= 0.055, "{}", p50.value(1));
        assert_eq!(mx.value(0), 300.0);

        let err = ctx
            .sql("SELECT quantile_merge(service, 0.5) FROM r")
            .await
            .expect_err("a text column is refused");
        assert!(err.to_string().contains("sketch column"), "{err}");
        let err = ctx.sql("SELECT quantile_merge(sketch, 2) FROM r").await;
        let err = match err {
            Err(e) => e.to_string(),
            Ok(df) => df.collect().await.unwrap_err().to_string(),
        };
        assert!(err.contains("between 0 and 1"), "{err}");

        // 1..=300 and 1..=10 in group a and b: ranks of 100 and 5.
        let out = ctx
            .sql("SELECT service, quantile_rank(sketch, 100) AS r, quantile_rank(sketch, 5) AS r5 FROM r GROUP BY service ORDER BY service")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let r = out[0]
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let r5 = out[0]
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert!(
            (r.value(0) - 100.0 / 300.0).abs() <= 1.0 / 300.0,
            "{}",
            r.value(0)
        );
        assert_eq!(r.value(1), 1.0);
        // 5 itself shares its bucket with values within 0.9% of it: counted or not.
        assert!([0.4, 0.5].contains(&r5.value(1)), "{}", r5.value(1));
        let err = ctx
            .sql("SELECT quantile_rank(sketch, service) FROM r")
            .await;
        let err = match err {
            Err(e) => e.to_string(),
            Ok(df) => df.collect().await.unwrap_err().to_string(),
        };
        assert!(err.contains("must be a number"), "{err}");
    }
}
