//! `date_trunc` to the hour or day of UTC timestamps by arithmetic.
//!
//! The lake's times are `Timestamp(ms, "UTC")`. DataFusion's `date_trunc` truncates to an hour
//! or a day with integer arithmetic only for timestamps without a time zone; with one, even
//! UTC, it converts every value through the zone's calendar (about 300 ns a row: 166 of the
//! 181 ms of grouping 558,000 rollup rows by hour). In UTC an hour and a day have one length,
//! so this wrapper hands such arrays to the built-in function without their zone, which takes
//! its arithmetic path, and puts the zone back. Every other case goes to the built-in as is:
//! the answers are the built-in's.

use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions::datetime::date_trunc::DateTruncFunc;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};

/// The built-in `date_trunc`, with UTC arrays truncated to hours and days by arithmetic.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UtcDateTrunc {
    builtin: DateTruncFunc,
}

/// The function, to register over the built-in one (same name, aliases and signature).
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(UtcDateTrunc {
        builtin: DateTruncFunc::new(),
    })
}

/// Whether time zone `tz` is UTC itself.
fn is_utc(tz: &str) -> bool {
    matches!(
        tz,
        "UTC" | "utc" | "Z" | "+00:00" | "+0000" | "+00" | "Etc/UTC" | "GMT"
    )
}

/// The granularity argument, lower-cased, when it is a literal string.
fn granularity(arg: &ColumnarValue) -> Option<String> {
    match arg {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(v))
            | ScalarValue::Utf8View(Some(v))
            | ScalarValue::LargeUtf8(Some(v)),
        ) => Some(v.to_lowercase()),
        _ => None,
    }
}

impl ScalarUDFImpl for UtcDateTrunc {
    fn name(&self) -> &str {
        self.builtin.name()
    }

    fn aliases(&self) -> &[String] {
        self.builtin.aliases()
    }

    fn signature(&self) -> &Signature {
        self.builtin.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.builtin.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.builtin.return_field_from_args(args)
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let by_arithmetic = matches!(granularity(&args.args[0]).as_deref(), Some("hour" | "day"));
        let zone = match &args.args[1] {
            ColumnarValue::Array(a) => match a.data_type() {
                DataType::Timestamp(unit, Some(tz)) if by_arithmetic && is_utc(tz) => {
                    Some((*unit, Arc::clone(tz)))
                }
                _ => None,
            },
            ColumnarValue::Scalar(_) => None,
        };
        let Some((unit, tz)) = zone else {
            return self.builtin.invoke_with_args(args);
        };
        // Only the type changes: the values are the same instants.
        let strip = |a: &dyn Array, tz: Option<Arc<str>>| {
            datafusion::arrow::compute::cast(a, &DataType::Timestamp(unit, tz))
        };
        if let ColumnarValue::Array(a) = &args.args[1] {
            args.args[1] = ColumnarValue::Array(strip(a.as_ref(), None)?);
        }
        match self.builtin.invoke_with_args(args)? {
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(strip(a.as_ref(), Some(tz))?)),
            scalar @ ColumnarValue::Scalar(_) => Ok(scalar),
        }
    }

    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        self.builtin.output_ordering(input)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.builtin.documentation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::prelude::SessionContext;

    /// Times in ms around the epoch, a leap day, and far ahead, some of them null.
    fn times(tz: &str) -> ArrayRef {
        let mut v: Vec<Option<i64>> = (0..2_000)
            .map(|i| Some(-86_400_000 * 400 + i * 1_234_567_891))
            .collect();
        v.extend([None, Some(1_709_164_800_123), Some(0), Some(-1), None]);
        Arc::new(TimestampMillisecondArray::from(v).with_timezone(tz))
    }

    /// Every granularity of both functions over `ts`, as text.
    async fn answers(ts: ArrayRef, ours: bool) -> Vec<String> {
        let ctx = SessionContext::new();
        if ours {
            ctx.register_udf(udf());
        }
        let schema = Schema::new(vec![Field::new("t", ts.data_type().clone(), true)]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![ts]).unwrap();
        ctx.register_batch("b", batch).unwrap();
        let mut out = Vec::new();
        for g in [
            "second", "minute", "hour", "HOUR", "day", "week", "month", "quarter", "year",
        ] {
            let sql = format!(
                "SELECT date_trunc('{g}', t) AS a, datetrunc('{g}', t) AS b, \
                 date_trunc('{g}', TIMESTAMP '2024-02-29T13:45:00Z') AS c FROM b"
            );
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            out.push(format!("{:?}", batches[0].schema()));
            out.push(
                datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                    .unwrap()
                    .to_string(),
            );
        }
        out
    }

    #[tokio::test]
    async fn answers_are_the_builtins_in_utc_and_other_zones() {
        for tz in ["UTC", "+00:00", "Europe/Paris", "+05:45"] {
            assert_eq!(
                answers(times(tz), true).await,
                answers(times(tz), false).await,
                "{tz}"
            );
        }
    }
}
