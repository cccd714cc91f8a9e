//! `opslake sql`: one query over the lake, printed as a table, CSV or JSON.

use std::sync::Arc;

use anyhow::{bail, Context};
use opslake_lake::Lake;
use opslake_query_api::{QueryEngine, QueryLimits};

use crate::config::Config;

pub(crate) async fn sql(cfg: Config, query: &str, format: &str) -> anyhow::Result<()> {
    let lake =
        Lake::open(&cfg.lake).with_context(|| format!("failed to open lake {}", cfg.lake))?;
    let engine = QueryEngine::new(
        lake,
        QueryLimits {
            max_rows: usize::MAX,
            max_result_bytes: usize::MAX,
            timeout: cfg.query.timeout,
            memory_limit: cfg.query.memory_limit,
            cache_bytes: 0,
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let result = engine
        .query(query)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match format {
        "csv" => {
            let buf = opslake_query_api::engine::encode::to_csv(&result)?;
            print!("{}", String::from_utf8_lossy(&buf));
        }
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&opslake_query_api::engine::encode::to_json(&result)?)?
        ),
        "table" => {
            let rows: usize = result.batches.iter().map(|b| b.num_rows()).sum();
            if result.batches.is_empty() {
                let empty = datafusion::arrow::record_batch::RecordBatch::new_empty(Arc::clone(
                    &result.schema,
                ));
                println!(
                    "{}",
                    datafusion::arrow::util::pretty::pretty_format_batches(&[empty])?
                );
            } else {
                println!(
                    "{}",
                    datafusion::arrow::util::pretty::pretty_format_batches(&result.batches)?
                );
            }
            println!("{rows} row{}", if rows == 1 { "" } else { "s" });
        }
        other => bail!("unknown --format {other:?}: expected table, csv or json"),
    }
    Ok(())
}
