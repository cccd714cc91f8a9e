//! A bounded in-memory cache of query results, so that dashboards refreshing the same panels
//! over data that has not changed do not scan the lake again.
//!
//! The key of a query is its physical plan as displayed (which holds every constant, including
//! `now()` as folded at planning) and the exact list of files the plan reads (path, size and
//! modification time). New files that land in a query's range change its file list, so the
//! next run misses and reads them; files landing elsewhere leave the key, and the hit, alone.
//! Plans whose answer can change without a new file (random(), uuid()) are not cached.

use std::sync::{LazyLock, Mutex};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{displayable, ExecutionPlan};
use lru::LruCache;
use prometheus::{register_int_counter_vec, register_int_gauge, IntCounterVec, IntGauge};

use crate::engine::result::QueryResult;

struct CacheMetrics {
    requests: IntCounterVec,
    bytes: IntGauge,
    entries: IntGauge,
    hit_ratio_permille: IntGauge,
}

static METRICS: LazyLock<CacheMetrics> = LazyLock::new(|| CacheMetrics {
    requests: register_int_counter_vec!(
        "opslake_api_cache_requests_total",
        "query result cache lookups by outcome (hit, miss)",
        &["outcome"]
    )
    .expect("metric registers"),
    bytes: register_int_gauge!("opslake_api_cache_bytes", "bytes of cached query results")
        .expect("metric registers"),
    entries: register_int_gauge!("opslake_api_cache_entries", "cached query results")
        .expect("metric registers"),
    hit_ratio_permille: register_int_gauge!(
        "opslake_api_cache_hit_ratio_permille",
        "hits per thousand lookups since start"
    )
    .expect("metric registers"),
});

/// The cache; `capacity` bytes of results at most (least recently used go first).
pub struct ResultCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    map: LruCache<String, (QueryResult, usize)>,
    bytes: usize,
    hits: u64,
    lookups: u64,
}

/// Whether a query's answer depends only on its plan and files: not when any expression of the
/// plan or its subqueries is volatile (`random()`, `uuid()`, a volatile UDF, however it is
/// spelled or aliased), nor for `EXPLAIN`, whose answer describes the run itself.
pub fn cacheable(plan: &LogicalPlan) -> bool {
    let mut volatile = false;
    plan.apply_with_subqueries(|node| {
        if matches!(node, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)) {
            volatile = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(|e| {
            volatile |= e.is_volatile();
            Ok(if volatile {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })
    })
    .expect("the visits cannot fail");
    !volatile
}

fn collect_files(plan: &dyn ExecutionPlan, out: &mut Vec<String>) {
    if let Some(exec) = plan.downcast_ref::<DataSourceExec>() {
        if let Some(scan) = exec.data_source().downcast_ref::<FileScanConfig>() {
            for group in &scan.file_groups {
                for f in group.files() {
                    let m = &f.object_meta;
                    out.push(format!(
                        "{}|{}|{}",
                        m.location,
                        m.size,
                        m.last_modified.timestamp_millis()
                    ));
                }
            }
        }
    }
    for child in plan.children() {
        collect_files(child.as_ref(), out);
    }
}

/// The key of a physical plan: its display and every file it reads.
pub fn key(plan: &dyn ExecutionPlan) -> String {
    let mut files = Vec::new();
    collect_files(plan, &mut files);
    files.sort();
    let mut k = displayable(plan).indent(true).to_string();
    k.push('\n');
    k.push_str(&files.join("\n"));
    k
}

fn size(r: &QueryResult) -> usize {
    r.batches
        .iter()
        .map(datafusion::arrow::record_batch::RecordBatch::get_array_memory_size)
        .sum()
}

impl ResultCache {
    /// A cache of at most `capacity` results (0 turns it off).
    pub fn new(capacity: usize) -> Self {
        LazyLock::force(&METRICS);
        Self {
            capacity,
            inner: Mutex::new(Inner {
                map: LruCache::unbounded(),
                bytes: 0,
                hits: 0,
                lookups: 0,
            }),
        }
    }

    /// Whether the cache keeps results.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The cached result of `key`, if any.
    pub fn get(&self, key: &str) -> Option<QueryResult> {
        let mut g = self.inner.lock().expect("not poisoned");
        g.lookups += 1;
        let hit = g.map.get(key).map(|(r, _)| r.clone());
        if hit.is_some() {
            g.hits += 1;
        }
        METRICS
            .requests
            .with_label_values(&[if hit.is_some() { "hit" } else { "miss" }])
            .inc();
        METRICS
            .hit_ratio_permille
            .set((g.hits * 1000 / g.lookups.max(1)) as i64);
        hit
    }

    /// Keeps `result` under `key`, evicting the least recently used beyond the capacity.
    pub fn put(&self, key: String, result: &QueryResult) {
        let bytes = size(result) + key.len();
        if bytes > self.capacity / 4 {
            return; // one result may not take over the cache
        }
        let mut g = self.inner.lock().expect("not poisoned");
        if let Some((_, old)) = g.map.put(key, (result.clone(), bytes)) {
            g.bytes -= old;
        }
        g.bytes += bytes;
        while g.bytes > self.capacity {
            match g.map.pop_lru() {
                Some((_, (_, b))) => g.bytes -= b,
                None => break,
            }
        }
        METRICS.bytes.set(g.bytes as i64);
        METRICS.entries.set(g.map.len() as i64);
    }

    /// Lookups and hits so far.
    pub fn stats(&self) -> (u64, u64) {
        let g = self.inner.lock().expect("not poisoned");
        (g.lookups, g.hits)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::cacheable;

    async fn plan_is_cacheable(sql: &str) -> bool {
        let ctx = SessionContext::new();
        let df = ctx.sql(sql).await.unwrap();
        cacheable(df.logical_plan())
    }

    #[tokio::test]
    async fn volatile_plans_are_never_cached_however_they_are_spelled() {
        for sql in [
            "SELECT random()",
            "SELECT RANDOM ( ) AS r",
            "select \"random\"()",
            "SELECT * FROM (SELECT uuid() AS u) t",
            "SELECT x FROM (VALUES (1)) v(x) WHERE x IN (SELECT CAST(random() * 2 AS BIGINT))",
            "EXPLAIN SELECT 1",
            "EXPLAIN ANALYZE SELECT 1",
        ] {
            assert!(!plan_is_cacheable(sql).await, "{sql}");
        }
    }

    #[tokio::test]
    async fn stable_plans_are_cached_even_when_their_text_mentions_random() {
        for sql in [
            "SELECT 1",
            "SELECT 'random(' AS s",
            "SELECT now() AS t",
            "SELECT x + 1 AS y FROM (VALUES (1), (2)) v(x)",
        ] {
            assert!(plan_is_cacheable(sql).await, "{sql}");
        }
    }
}
