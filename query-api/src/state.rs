//! What every front end (HTTP, PostgreSQL, Flight SQL) shares: the engine, the settings, the
//! token and the turns to run queries.

use std::sync::Arc;
use std::time::Duration;

use opslake_schemas::Secret;
use tokio::sync::Semaphore;

use crate::engine::error::QueryError;
use crate::engine::QueryEngine;
use crate::query_metrics::Protocol;

/// Settings of the HTTP layer.
#[derive(Clone)]
pub struct ApiConfig {
    /// When set, every endpoint but `/healthz` and `/readyz` needs `Authorization: Bearer <token>`.
    pub api_token: Option<Secret>,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// Queries running at once; more are answered 429.
    pub max_concurrent_queries: usize,
    /// What `/readyz` asks of ingest (a broker answers, no partition stalled); `None` when
    /// this process does not ingest.
    pub ingest: Option<Arc<dyn IngestReadiness>>,
    /// Origins allowed to call the API from a browser (CORS), e.g. Grafana's URL; `*` allows
    /// any. Empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// How long a query beyond `max_concurrent_queries` waits for a turn before it is answered
    /// 429 (a dashboard sends its panels at once).
    pub queue_timeout: Duration,
    /// The monthly cost budgets the console shows (`[[alerts.budgets]]`).
    pub budgets: Vec<Budget>,
    /// Open PostgreSQL connections at once; more are refused with an error.
    pub max_connections: usize,
}

/// A monthly cost budget, as the console shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Budget {
    /// `total`, `provider`, `service` or `resource`.
    pub scope: String,
    /// The provider, service or resource id (`total` for the total).
    pub key: String,
    /// The budget of a calendar month, in the bill's currency.
    pub monthly: f64,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("api_token", &self.api_token)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_concurrent_queries", &self.max_concurrent_queries)
            .field("ingest", &self.ingest.is_some())
            .field("cors_origins", &self.cors_origins)
            .field("queue_timeout", &self.queue_timeout)
            .field("budgets", &self.budgets)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            api_token: None,
            max_body_bytes: 1 << 20,
            max_concurrent_queries: 8,
            ingest: None,
            cors_origins: Vec::new(),
            queue_timeout: Duration::from_secs(5),
            budgets: Vec::new(),
            max_connections: 100,
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The query engine.
    pub engine: Arc<QueryEngine>,
    /// Settings of the HTTP layer.
    pub config: Arc<ApiConfig>,
    /// Turns to run a query.
    pub queries: Arc<Semaphore>,
    /// Summaries of recent lake log entries (`/api/v1/pipeline`).
    pub log_summaries: Arc<crate::engine::log_summaries::LogSummaries>,
}

impl AppState {
    /// A turn to run a query: at once when fewer than `max_concurrent_queries` run, else after
    /// waiting up to `queue_timeout` in line.
    ///
    /// # Errors
    /// [`QueryError::Busy`] when no turn came in time.
    pub async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, QueryError> {
        if let Ok(p) = self.queries.clone().try_acquire_owned() {
            return Ok(p);
        }
        match tokio::time::timeout(
            self.config.queue_timeout,
            self.queries.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => Ok(p),
            _ => Err(QueryError::Busy),
        }
    }

    /// Runs `query` in a turn (see [`Self::permit`]), counted and timed under `protocol`.
    ///
    /// # Errors
    /// The query's error, or [`QueryError::Busy`] when no turn came in time.
    pub async fn answer<T>(
        &self,
        protocol: Protocol,
        query: impl std::future::Future<Output = Result<T, QueryError>>,
    ) -> Result<T, QueryError> {
        let started = std::time::Instant::now();
        let result = match self.permit().await {
            Ok(_permit) => query.await,
            Err(e) => Err(e),
        };
        crate::query_metrics::observe(protocol, result.is_ok(), started.elapsed());
        result
    }

    /// Whether `given` is the token (constant time); true when no token is set.
    pub fn token_matches(&self, given: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.config
            .api_token
            .as_ref()
            .is_none_or(|t| given.as_bytes().ct_eq(t.expose().as_bytes()).into())
    }

    /// State over `engine` with `config`.
    pub fn new(engine: Arc<QueryEngine>, config: ApiConfig) -> Self {
        let queries = Arc::new(Semaphore::new(config.max_concurrent_queries.max(1)));
        Self {
            engine,
            config: Arc::new(config),
            queries,
            log_summaries: Arc::default(),
        }
    }
}

/// Why a part of the process is not ready, as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady(pub String);

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What `/readyz` asks of a process that ingests. The binary passes ingest's own checks in, so
/// the query side links no Kafka client.
#[async_trait::async_trait]
pub trait IngestReadiness: Send + Sync {
    /// `Ok` when a broker answers (within a few seconds).
    async fn broker(&self) -> Result<(), NotReady>;
    /// `Ok` unless partitions have events to read and nobody consumes them.
    fn partitions(&self) -> Result<(), NotReady>;
}
