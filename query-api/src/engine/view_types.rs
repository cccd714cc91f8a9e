//! Strings read as views, answered as strings.
//!
//! The Parquet reader decodes a string column into a `Utf8View` array without copying a
//! string (a short one, like a service or host name, lives in the view itself; a longer one
//! points into the page's dictionary), and DataFusion compares and groups views faster than
//! offset strings. So tables are registered with their top-level string columns as
//! `Utf8View` ([`read_as_views`]), and every answer and every listed schema is given back
//! with plain `Utf8` ([`plain_types`], [`plain_answer`]): what clients see does not change.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{cast, Expr, LogicalPlan, LogicalPlanBuilder};

/// `schema` with its top-level `Utf8` columns read as `Utf8View` (nested ones, such as a
/// map's keys and values, stay as they are).
pub fn read_as_views(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `t` with every view type, at any depth, as its plain type.
fn plain(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(plain_field(f)),
        DataType::LargeList(f) => DataType::LargeList(plain_field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(plain_field(f), *n),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(plain_field).collect()),
        DataType::Map(f, sorted) => DataType::Map(plain_field(f), *sorted),
        DataType::Dictionary(k, v) => DataType::Dictionary(k.clone(), Box::new(plain(v))),
        other => other.clone(),
    }
}

fn plain_field(f: &Arc<Field>) -> Arc<Field> {
    Arc::new(f.as_ref().clone().with_data_type(plain(f.data_type())))
}

/// `schema` as clients see it: view types as plain ones.
pub fn plain_types(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Arc<Field>> = schema.fields().iter().map(plain_field).collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `plan` answering plain types: a projection that casts every view-typed column to its plain
/// type, under the same (qualified) name, placed right under the plan's `ORDER BY` when it has
/// one (through the `LIMIT` and plain column projections above it), else on top; `plan`
/// itself when it outputs no view type.
///
/// The casts go under the sort because a cast is work that DataFusion spreads over every core
/// (round-robin): on top of the sort's single ordered stream, the answer's batches came back
/// in the order the cores finished them, now and then the second before the first (seen: an
/// `ORDER BY` answer that began with its second batch of 8,192 rows, under load).
///
/// # Errors
/// When DataFusion cannot build the projection.
pub fn plain_answer(plan: LogicalPlan) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Sort(sort) => {
            let input = Arc::new(plain_on_top(Arc::unwrap_or_clone(sort.input))?);
            Ok(LogicalPlan::Sort(datafusion::logical_expr::Sort {
                input,
                ..sort
            }))
        }
        LogicalPlan::Limit(limit) => {
            let input = Arc::new(plain_answer(Arc::unwrap_or_clone(limit.input))?);
            Ok(LogicalPlan::Limit(datafusion::logical_expr::Limit {
                input,
                ..limit
            }))
        }
        LogicalPlan::Projection(p)
            if p.expr.iter().all(|e| matches!(e, Expr::Column(_)))
                && matches!(
                    p.input.as_ref(),
                    LogicalPlan::Sort(_) | LogicalPlan::Limit(_)
                ) =>
        {
            let input = plain_answer(Arc::unwrap_or_clone(p.input))?;
            LogicalPlanBuilder::from(input).project(p.expr)?.build()
        }
        other => plain_on_top(other),
    }
}

/// `plan` with a last projection that casts every view-typed output column to its plain type.
fn plain_on_top(plan: LogicalPlan) -> Result<LogicalPlan> {
    let schema = Arc::clone(plan.schema());
    let targets: Vec<DataType> = schema
        .fields()
        .iter()
        .map(|f| plain(f.data_type()))
        .collect();
    if schema
        .fields()
        .iter()
        .zip(&targets)
        .all(|(f, t)| f.data_type() == t)
    {
        return Ok(plan);
    }
    let exprs: Vec<Expr> = schema
        .iter()
        .zip(targets)
        .map(|((qualifier, f), target)| {
            let column = Expr::Column(Column::new(qualifier.cloned(), f.name()));
            if target == *f.data_type() {
                column
            } else {
                cast(column, target).alias_qualified(qualifier.cloned(), f.name())
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, StringArray};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::prelude::{DataFrame, SessionContext};

    fn schema() -> SchemaRef {
        let entries = Field::new(
            "entries",
            DataType::Struct(
                vec![
                    Field::new("keys", DataType::Utf8, false),
                    Field::new("values", DataType::Utf8, true),
                ]
                .into(),
            ),
            false,
        );
        Arc::new(Schema::new(vec![
            Field::new("service", DataType::Utf8, false),
            Field::new("value", DataType::Float64, false),
            Field::new("labels", DataType::Map(Arc::new(entries), false), false),
        ]))
    }

    #[test]
    fn top_level_strings_are_read_as_views_and_listed_as_strings() {
        let views = read_as_views(&schema());
        assert_eq!(views.field(0).data_type(), &DataType::Utf8View);
        assert_eq!(views.field(1).data_type(), &DataType::Float64);
        assert_eq!(views.field(2).data_type(), schema().field(2).data_type());
        assert_eq!(plain_types(&views), schema());
    }

    #[tokio::test]
    async fn answers_come_back_as_strings_under_their_names() {
        let ctx = SessionContext::new();
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)])),
            vec![Arc::new(StringArray::from(vec!["a", "b", "a"]))],
        )
        .unwrap();
        ctx.register_batch("t", batch).unwrap();
        let df = ctx
            .sql(
                "SELECT x.s, y.s, array_agg(y.s) AS l \
                 FROM t x JOIN (SELECT arrow_cast(s, 'Utf8View') AS s FROM t) y ON x.s = y.s \
                 GROUP BY x.s, y.s ORDER BY x.s",
            )
            .await
            .unwrap();
        let (state, plan) = df.into_parts();
        assert!(plan
            .schema()
            .fields()
            .iter()
            .any(|f| f.data_type() == &DataType::Utf8View));
        let plain = plain_answer(plan).unwrap();
        let batches = DataFrame::new(state, plain).collect().await.unwrap();
        let out = batches[0].schema();
        let names: Vec<&str> = out.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["s", "s", "l"]);
        assert_eq!(out.field(1).data_type(), &DataType::Utf8);
        assert!(
            matches!(out.field(2).data_type(), DataType::List(f) if f.data_type() == &DataType::Utf8)
        );
        let col = batches[0]
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((col.len(), col.value(0), col.value(1)), (2, "a", "b"));
    }

    /// An ordered answer stays one ordered stream: the casts go under the sort, so DataFusion
    /// never spreads them over cores above it (the root is the sort's merge, one partition).
    #[tokio::test]
    async fn an_ordered_answer_casts_under_its_sort() {
        use datafusion::physical_plan::ExecutionPlanProperties;
        use datafusion::prelude::SessionConfig;
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(4));
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)])),
            vec![Arc::new(StringArray::from(
                (0..30_000)
                    .map(|i| format!("{:05}", (i * 7919) % 30_000))
                    .collect::<Vec<_>>(),
            ))],
        )
        .unwrap();
        ctx.register_batch("t", batch).unwrap();
        for sql in [
            "SELECT arrow_cast(s, 'Utf8View') AS v, count(*) AS n FROM t GROUP BY 1 ORDER BY 1",
            "SELECT arrow_cast(s, 'Utf8View') AS v FROM t ORDER BY 1 DESC LIMIT 20000",
            "SELECT arrow_cast(s, 'Utf8View') AS v FROM t ORDER BY length(s), s",
        ] {
            let (state, plan) = ctx.sql(sql).await.unwrap().into_parts();
            let plain = plain_answer(plan).unwrap();
            assert!(plain
                .schema()
                .fields()
                .iter()
                .all(|f| f.data_type() != &DataType::Utf8View));
            let df = DataFrame::new(state, plain);
            let physical = df.clone().create_physical_plan().await.unwrap();
            assert_eq!(
                physical.output_partitioning().partition_count(),
                1,
                "{sql}: {}",
                datafusion::physical_plan::displayable(physical.as_ref()).indent(true)
            );
            for _ in 0..5 {
                let batches = df.clone().collect().await.unwrap();
                let col: Vec<String> = batches
                    .iter()
                    .flat_map(|b| {
                        let a = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                        (0..a.len())
                            .map(|i| a.value(i).to_string())
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let mut sorted = col.clone();
                if sql.contains("DESC") {
                    sorted.sort_by(|a, b| b.cmp(a));
                } else {
                    sorted.sort();
                }
                assert_eq!(col, sorted, "{sql}");
            }
        }
    }
}
