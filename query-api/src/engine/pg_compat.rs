//! What PostgreSQL clients find in every session of the engine (HTTP, PostgreSQL and Flight SQL
//! alike): `pg_catalog` and its functions from datafusion-pg-catalog, and the settings clients
//! read: `current_setting(name)` and a `version()` that names PostgreSQL's protocol version.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;

/// The PostgreSQL version opslake's wire protocol answers as (what `server_version` says).
pub const SERVER_VERSION: &str = "16.6";

/// The value of a setting clients ask `current_setting` for.
fn setting(name: &str) -> Option<String> {
    Some(match name.to_ascii_lowercase().as_str() {
        "server_version" => SERVER_VERSION.to_string(),
        "server_version_num" => "160006".to_string(),
        "search_path" => "public".to_string(),
        "server_encoding" | "client_encoding" => "UTF8".to_string(),
        "timezone" => "UTC".to_string(),
        "datestyle" => "ISO, MDY".to_string(),
        "default_transaction_read_only" | "transaction_read_only" => "on".to_string(),
        "standard_conforming_strings" => "on".to_string(),
        "max_identifier_length" => "63".to_string(),
        _ => return None,
    })
}

fn current_setting(args: &[ColumnarValue]) -> Result<ColumnarValue, DataFusionError> {
    let lookup = |name: &str| {
        setting(name).ok_or_else(|| {
            DataFusionError::Execution(format!("unrecognized configuration parameter \"{name}\""))
        })
    };
    match args {
        [ColumnarValue::Scalar(s)] => match s.try_as_str() {
            Some(Some(name)) => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(lookup(
                name,
            )?)))),
            _ => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None))),
        },
        [ColumnarValue::Array(a)] => {
            let names = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
            let names = names
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("cast to Utf8");
            let values = names
                .iter()
                .map(|n| n.map(lookup).transpose())
                .collect::<Result<StringArray, _>>()?;
            Ok(ColumnarValue::Array(Arc::new(values) as ArrayRef))
        }
        _ => exec_err!("current_setting takes one argument"),
    }
}

/// Installs `pg_catalog`, its functions, `current_setting` and `version` in `ctx`.
///
/// # Errors
/// When the catalog cannot be registered.
pub fn install(ctx: &SessionContext) -> Result<(), DataFusionError> {
    setup_pg_catalog(ctx, "datafusion", EmptyContextProvider).map_err(|e| *e)?;
    ctx.register_udf(create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(current_setting),
    ));
    let version = format!(
        "PostgreSQL {SERVER_VERSION} (opslake {}, Apache DataFusion {})",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    );
    ctx.register_udf(create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                version.clone(),
            ))))
        }),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::engine::{QueryEngine, QueryLimits};

    #[tokio::test(flavor = "multi_thread")]
    async fn clients_read_settings_the_version_and_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let lake = opslake_lake::Lake::open(dir.path().to_str().unwrap()).unwrap();
        let engine = QueryEngine::new(lake, QueryLimits::default()).unwrap();
        let first = |sql: &str| {
            let e = &engine;
            let sql = sql.to_string();
            async move {
                let r = e.query(&sql).await.unwrap();
                crate::engine::encode::rows(&r.schema, &r.batches).unwrap()[0][0].clone()
            }
        };
        // Grafana's version check.
        let v = first("SELECT current_setting('server_version_num')::int / 100 AS version").await;
        assert_eq!(v, 1600);
        assert_eq!(
            first("SELECT current_setting('search_path')").await,
            "public"
        );
        let version = first("SELECT version()").await;
        assert!(version
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL 16.6 (opslake"));
        let e = engine
            .query("SELECT current_setting('no_such_setting')")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no_such_setting"), "{e}");
        // The catalog lists the lake's tables.
        let n =
            first("SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'metric_rollups_1m'")
                .await;
        assert_eq!(n, 1);
    }
}
