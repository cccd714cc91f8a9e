//! The query engine: a DataFusion session over the lake's current snapshot, shared by every
//! front end (HTTP, PostgreSQL, Flight SQL): its read-only guard, result cache, snapshot store
//! and partition pruning.

pub mod cache;
pub mod encode;
pub mod error;
pub mod guard;
pub mod local_reads;
pub mod log_summaries;
pub mod pg_compat;
pub mod prune;
pub mod result;
pub mod store;
pub mod utc_date_trunc;
pub mod view_types;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use futures::StreamExt;
use object_store::ObjectMeta;
use opslake_lake::Lake;

use cache::ResultCache;
use error::{from_datafusion, QueryError};

use prune::TimePartitioned;
pub use result::{QueryResult, Truncation};
use store::{LiveFiles, SnapshotStore};

/// Limits of one query.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Most rows returned; more set `truncated`.
    pub max_rows: usize,
    /// Most bytes of rows (as Arrow arrays) one answer holds; rows beyond are left out and
    /// `truncated` set, on every protocol.
    pub max_result_bytes: usize,
    /// Longest a query may run.
    pub timeout: Duration,
    /// Memory pool of all running queries, bytes.
    pub memory_limit: usize,
    /// Memory for cached results, bytes; 0 turns the cache off.
    pub cache_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_rows: 100_000,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            timeout: Duration::from_secs(30),
            memory_limit: 2 << 30,
            cache_bytes: 256 << 20,
        }
    }
}

/// The default of [`QueryLimits::max_result_bytes`]: 64 MiB of Arrow arrays.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 64 << 20;

/// DataFusion over the lake; cheap to share.
pub struct QueryEngine {
    lake: Arc<Lake>,
    ctx: SessionContext,
    live: LiveFiles,
    version: Mutex<u64>,
    registered: Mutex<HashSet<String>>,
    limits: QueryLimits,
    cache: ResultCache,
}

/// The column whose hour names the `date=/hour=` directory of a partitioned table's rows.
fn time_column(table: &str) -> Option<&'static str> {
    match table {
        "metrics" | "metric_histograms" | "logs" => Some("timestamp"),
        "billing" => Some("charge_period_start"),
        "dead_letters" => Some("received_at"),
        "metric_rollups_1m" | "metric_rollups_1h" | "log_rollups_1m" => Some("window_start"),
        _ => None,
    }
}

/// The raw tables' partition columns, from the `date=/hour=` directories.
fn partition_cols() -> Vec<(String, DataType)> {
    vec![
        ("date".to_string(), DataType::Utf8),
        ("hour".to_string(), DataType::Utf8),
    ]
}

/// DataFusion settings from the environment over opslake's own: `datafusion.execution.batch_size`
/// from `DATAFUSION_EXECUTION_BATCH_SIZE`, and so on for every DataFusion setting.
///
/// # Errors
/// A value DataFusion refuses, naming its variable.
fn datafusion_settings_from_env(config: &mut SessionConfig) -> Result<(), QueryError> {
    let keys: Vec<String> = config
        .options()
        .entries()
        .into_iter()
        .map(|e| e.key)
        .collect();
    for key in keys {
        let var = key.to_uppercase().replace('.', "_");
        if let Ok(value) = std::env::var(&var) {
            config
                .options_mut()
                .set(&key, &value)
                .map_err(|e| QueryError::Internal(anyhow::anyhow!("{var}={value}: {e}")))?;
        }
    }
    Ok(())
}

impl QueryEngine {
    /// A session over `lake` with every raw table registered.
    ///
    /// # Errors
    /// When DataFusion refuses the configuration.
    pub fn new(lake: Arc<Lake>, limits: QueryLimits) -> Result<Self, QueryError> {
        let live: LiveFiles = Arc::new(RwLock::new(Arc::new(BTreeMap::new())));
        // The lake's log decides which files exist; a cached listing would hide new files.
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
            .with_memory_limit(limits.memory_limit, 1.0)
            .build_arc()
            .map_err(from_datafusion)?;
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(std::thread::available_parallelism().map_or(2, usize::from))
            .set_bool("datafusion.execution.parquet.pushdown_filters", true)
            .set_bool("datafusion.execution.parquet.reorder_filters", true)
            // The lake's files carry no bloom filters: looking for them costs every query.
            .set_bool("datafusion.execution.parquet.bloom_filter_on_read", false);
        datafusion_settings_from_env(&mut config)?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let store = SnapshotStore::new(
            Arc::clone(lake.store()),
            lake.local_files().cloned(),
            Arc::clone(&live),
        );
        let mut root = lake.url().clone();
        root.set_path("/");
        ctx.register_object_store(&root, Arc::new(store));
        let engine = Self {
            lake,
            ctx,
            live,
            version: Mutex::new(u64::MAX),
            registered: Mutex::new(HashSet::new()),
            cache: ResultCache::new(limits.cache_bytes),
            limits,
        };
        for (name, schema) in opslake_schemas::tables::raw_tables() {
            engine.register(name, schema, true)?;
        }
        // The processor's tables exist (empty) before their first rows land.
        for (name, schema, partitioned) in opslake_schemas::tables::derived_tables() {
            engine.register(name, schema, partitioned)?;
        }
        opslake_sketch::udf::register(&engine.ctx);
        engine.ctx.register_udf(utc_date_trunc::udf());
        // PostgreSQL's catalog and functions, so PostgreSQL clients can list tables and
        // columns; every front end sees the same.
        crate::engine::pg_compat::install(&engine.ctx).map_err(from_datafusion)?;
        Ok(engine)
    }

    /// The DataFusion session (for registering functions).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The lake.
    pub fn lake(&self) -> &Arc<Lake> {
        &self.lake
    }

    /// Result cache lookups and hits so far.
    pub fn cache_stats(&self) -> (u64, u64) {
        self.cache.stats()
    }

    /// Registers a table of the lake; `partitioned` tables have `date=/hour=` directories.
    fn register(&self, name: &str, schema: SchemaRef, partitioned: bool) -> Result<(), QueryError> {
        let url = ListingTableUrl::parse(format!("{}{name}/", self.lake.url()))
            .map_err(from_datafusion)?;
        let mut options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        if partitioned {
            options = options.with_table_partition_cols(partition_cols());
        }
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(view_types::read_as_views(&schema));
        // Each file's statistics, derived once from its footer and kept while its path, size
        // and time stay the same (a compacted or replaced file has a new path).
        let statistics = self
            .ctx
            .runtime_env()
            .cache_manager
            .get_file_statistic_cache();
        let table = Arc::new(
            ListingTable::try_new(config)
                .map_err(from_datafusion)?
                .with_cache(statistics),
        );
        let provider: Arc<dyn datafusion::datasource::TableProvider> =
            match (partitioned, time_column(name)) {
                (true, Some(c)) => Arc::new(TimePartitioned::new(table, c)),
                _ => table,
            };
        self.ctx
            .register_table(name, provider)
            .map_err(from_datafusion)?;
        self.registered
            .lock()
            .expect("not poisoned")
            .insert(name.to_string());
        Ok(())
    }

    /// Reads new lake log entries: new files become visible, replaced ones disappear, and
    /// tables that appeared are registered.
    ///
    /// # Errors
    /// When the lake's log cannot be read.
    pub async fn refresh(&self) -> Result<(), QueryError> {
        let snap = self
            .lake
            .snapshot()
            .await
            .map_err(|e| QueryError::Internal(e.into()))?;
        {
            let mut v = self.version.lock().expect("not poisoned");
            if *v == snap.version {
                return Ok(());
            }
            *v = snap.version;
        }
        // Data files only: documents (`_reports/`) are read by path, not listed.
        let live: BTreeMap<String, ObjectMeta> = snap
            .files
            .values()
            .filter(|f| f.path.ends_with(".parquet"))
            .map(|f| {
                let location = self.lake.path(&f.path);
                let meta = ObjectMeta {
                    location: location.clone(),
                    last_modified: chrono::DateTime::from_timestamp_millis(f.created_ms)
                        .unwrap_or_default(),
                    size: f.bytes,
                    e_tag: None,
                    version: None,
                };
                (location.to_string(), meta)
            })
            .collect();
        *self.live.write().expect("not poisoned") = Arc::new(live);
        let tables: HashSet<&str> = snap.files.values().map(|f| f.table.as_str()).collect();
        // Tables named `_...` hold documents, not Parquet (e.g. `_reports`).
        for t in tables.into_iter().filter(|t| !t.starts_with('_')) {
            let known = self.registered.lock().expect("not poisoned").contains(t);
            if !known {
                // Derived tables hold their schema in their files.
                let url = ListingTableUrl::parse(format!("{}{t}/", self.lake.url()))
                    .map_err(from_datafusion)?;
                let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                    .with_file_extension(".parquet");
                let schema = options
                    .infer_schema(&self.ctx.state(), &url)
                    .await
                    .map_err(from_datafusion)?;
                let partitioned = snap.table_files(t).any(|f| f.path.contains("/date="));
                self.register(t, schema, partitioned)?;
            }
        }
        Ok(())
    }

    /// Runs a read-only query under the limits.
    ///
    /// # Errors
    /// [`QueryError::Refused`] or [`QueryError::Invalid`] for a refused or wrong query, [`QueryError::Timeout`].
    pub async fn query(&self, sql: &str) -> Result<QueryResult, QueryError> {
        guard::check(sql)?;
        self.refresh().await?;
        self.within_timeout(async {
            let (state, plan) = self
                .ctx
                .sql_with_options(sql, guard::sql_options())
                .await
                .map_err(from_datafusion)?
                .into_parts();
            let plan = view_types::plain_answer(plan).map_err(from_datafusion)?;
            self.collect(DataFrame::new(state, plan)).await
        })
        .await
    }

    /// Plans one parsed statement, which may hold placeholders (`$1`): a PostgreSQL client's
    /// prepared statement, or a Flight SQL client's. [`Self::run`] runs the plan.
    ///
    /// # Errors
    /// [`QueryError::Refused`] or [`QueryError::Invalid`] for a refused or wrong statement.
    pub async fn plan(&self, statement: &Statement) -> Result<LogicalPlan, QueryError> {
        guard::check_statement(statement)?;
        self.refresh().await?;
        // Planning runs under the query's timeout and panic boundary too (a PostgreSQL Parse or
        // a Flight SQL GetFlightInfo plans without running).
        self.within_timeout(async {
            let plan = self
                .ctx
                .state()
                .statement_to_plan(DfStatement::Statement(Box::new(statement.clone())))
                .await
                .map_err(from_datafusion)?;
            guard::sql_options()
                .verify_plan(&plan)
                .map_err(from_datafusion)?;
            view_types::plain_answer(plan).map_err(from_datafusion)
        })
        .await
    }

    /// Plans SQL text of one statement, which may hold placeholders (`$1`).
    ///
    /// # Errors
    /// [`QueryError::Refused`] or [`QueryError::Invalid`] for a refused or wrong statement.
    pub async fn plan_sql(&self, sql: &str) -> Result<LogicalPlan, QueryError> {
        let statement = guard::parse_one(sql)?;
        self.plan(&statement).await
    }

    /// Runs a plan of [`Self::plan`] (its placeholders filled) under the limits, with the result
    /// cache, exactly as [`Self::query`] runs SQL text.
    ///
    /// # Errors
    /// [`QueryError::Refused`] or [`QueryError::Invalid`] for a refused or wrong plan, [`QueryError::Timeout`].
    pub async fn run(&self, plan: LogicalPlan) -> Result<QueryResult, QueryError> {
        guard::sql_options()
            .verify_plan(&plan)
            .map_err(from_datafusion)?;
        self.refresh().await?;
        self.within_timeout(async {
            let df = self
                .ctx
                .execute_logical_plan(plan)
                .await
                .map_err(from_datafusion)?;
            self.collect(df).await
        })
        .await
    }

    /// Runs `work` under the query timeout, behind the query side's panic boundary: a panic
    /// while planning or running one query answers that query with an internal error
    /// (logged), and every other client goes on.
    async fn within_timeout<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, QueryError>>,
    ) -> Result<T, QueryError> {
        use futures::FutureExt;
        let timeout = self.limits.timeout;
        match tokio::time::timeout(timeout, std::panic::AssertUnwindSafe(work).catch_unwind()).await
        {
            Ok(Ok(r)) => r,
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown".to_string());
                Err(QueryError::Internal(anyhow::anyhow!(
                    "a query panicked (a defect of opslake): {what}"
                )))
            }
            Err(_) => Err(QueryError::Timeout(timeout)),
        }
    }

    /// Runs a planned query: from the result cache when it holds the answer, else up to
    /// `max_rows` rows.
    async fn collect(&self, df: DataFrame) -> Result<QueryResult, QueryError> {
        let max_rows = self.limits.max_rows;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let task = Arc::new(df.task_ctx());
        let cacheable = self.cache.enabled() && cache::cacheable(df.logical_plan());
        let plan = df.create_physical_plan().await.map_err(from_datafusion)?;
        let key = cacheable.then(|| cache::key(plan.as_ref()));
        if let Some(hit) = key.as_deref().and_then(|k| self.cache.get(k)) {
            return Ok(hit);
        }
        let mut stream =
            datafusion::physical_plan::execute_stream(plan, task).map_err(from_datafusion)?;
        let max_bytes = self.limits.max_result_bytes;
        let mut batches = Vec::new();
        let mut rows = 0usize;
        let mut bytes = 0usize;
        let mut truncation = None;
        while let Some(b) = stream.next().await {
            let b = b.map_err(from_datafusion)?;
            let size = b.get_array_memory_size();
            if bytes + size > max_bytes {
                // The rows that fit, at this batch's mean row size.
                let per_row = size / b.num_rows().max(1) + 1;
                let keep = ((max_bytes - bytes) / per_row).min(b.num_rows());
                if keep > 0 {
                    // Copied out, so that the rest of the batch's buffers are freed now.
                    let indices = datafusion::arrow::array::UInt32Array::from_iter_values(
                        0..u32::try_from(keep).unwrap_or(u32::MAX),
                    );
                    let kept = datafusion::arrow::compute::take_record_batch(&b, &indices)
                        .map_err(|e| from_datafusion(e.into()))?;
                    batches.push(kept);
                }
                truncation = Some(Truncation::Bytes(max_bytes));
                break;
            }
            if rows + b.num_rows() > max_rows {
                let keep = max_rows - rows;
                if keep > 0 {
                    batches.push(b.slice(0, keep));
                }
                truncation = Some(Truncation::Rows(max_rows));
                break;
            }
            rows += b.num_rows();
            bytes += size;
            batches.push(b);
        }
        let result = QueryResult {
            schema,
            batches,
            truncated: truncation.is_some(),
            truncation,
        };
        if let Some(k) = key {
            self.cache.put(k, &result);
        }
        Ok(result)
    }

    /// Every registered table with its columns and types.
    ///
    /// # Errors
    /// When the lake's log cannot be read.
    pub async fn tables(&self) -> Result<Vec<(String, SchemaRef)>, QueryError> {
        self.refresh().await?;
        let mut names: Vec<String> = self
            .registered
            .lock()
            .expect("not poisoned")
            .iter()
            .cloned()
            .collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if let Ok(p) = self.ctx.table_provider(n.as_str()).await {
                out.push((n, view_types::plain_types(&p.schema())));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opslake_lake::test_util::{commit_events, metric};
    use opslake_schemas::Event;

    const HOUR: i64 = 3_600_000;
    const T0: i64 = 1_795_341_600_000; // 2026-11-22T10:00:00Z

    /// Commits `n` metric events per hour for `hours` hours, one file per hour.
    async fn lake_with_hours(dir: &std::path::Path, hours: i64, n: i64) -> Arc<Lake> {
        let lake = Lake::open(dir.to_str().unwrap()).unwrap();
        let events: Vec<Event> = (0..hours)
            .flat_map(|h| (0..n).map(move |i| (h, i)))
            .map(|(h, i)| metric(T0 + h * HOUR + i * 1000, "s", "m", 1.0))
            .collect();
        commit_events(&lake, "t", 0, &events).await.unwrap();
        lake
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn time_predicates_prune_hours_and_answers_do_not_change() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake_with_hours(dir.path(), 5, 100).await;
        let engine = QueryEngine::new(lake, QueryLimits::default()).unwrap();
        let count = |sql: String| {
            let e = &engine;
            async move {
                let r = e.query(&sql).await.unwrap();
                let rows = crate::engine::encode::rows(&r.schema, &r.batches).unwrap();
                rows[0][0].as_i64().unwrap()
            }
        };
        let files = |sql: String| {
            let e = &engine;
            async move {
                let r = e.query(&format!("EXPLAIN {sql}")).await.unwrap();
                let text = crate::engine::encode::to_csv(&r).unwrap();
                String::from_utf8(text).unwrap().matches(".parquet").count()
            }
        };
        let from = |h: i64| {
            chrono::DateTime::from_timestamp_millis(T0 + h * HOUR)
                .unwrap()
                .to_rfc3339()
        };
        let q = format!(
            "SELECT count(*) FROM metrics WHERE timestamp >= TIMESTAMP '{}' AND timestamp < TIMESTAMP '{}'",
            from(2),
            from(3)
        );
        assert_eq!(count(q.clone()).await, 100);
        assert_eq!(files(q).await, 1, "only the hour of the range is opened");
        let all = "SELECT count(*) FROM metrics WHERE value > 0".to_string();
        assert_eq!(count(all.clone()).await, 500);
        assert_eq!(files(all).await, 5);
        // A bound from a cast, the other way round, and BETWEEN.
        let q = format!(
            "SELECT count(*) FROM metrics WHERE TIMESTAMP '{}' <= CAST(timestamp AS TIMESTAMP) AND timestamp BETWEEN TIMESTAMP '{}' AND TIMESTAMP '{}'",
            from(1),
            from(0),
            from(2)
        );
        assert_eq!(count(q.clone()).await, 101);
        assert_eq!(files(q).await, 2);
    }
}
