//! The HTTP API of CONTRACT section 5.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use opslake_schemas::Secret;
use prometheus::{
    register_histogram_vec, register_int_counter_vec, Encoder, HistogramVec, IntCounterVec,
    TextEncoder,
};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::engine::encode;
use crate::engine::result::TRUNCATED_HEADER;
use crate::http::error::ApiError;
use crate::query_metrics::Protocol;
use crate::state::{AppState, IngestReadiness, NotReady};

struct ApiMetrics {
    requests: IntCounterVec,
    query_seconds: HistogramVec,
}

static METRICS: LazyLock<ApiMetrics> = LazyLock::new(|| ApiMetrics {
    requests: register_int_counter_vec!(
        "opslake_api_requests_total",
        "API requests",
        &["endpoint", "status"]
    )
    .expect("metric registers"),
    query_seconds: register_histogram_vec!(
        "opslake_api_query_duration_seconds",
        "SQL query time",
        &["outcome"],
        vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
    )
    .expect("metric registers"),
});

/// The API's router; testable without a socket (`tower::ServiceExt::oneshot`).
pub fn router(state: AppState) -> Router {
    // Registered up front, so the first scrape already lists the API's metrics.
    LazyLock::force(&METRICS);
    crate::query_metrics::register();
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/sql", post(sql))
        .route("/api/v1/tables", get(tables))
        .route("/api/v1/reports", get(crate::http::reports::list))
        .route("/api/v1/alerts", get(crate::http::alerts::active))
        .route("/api/v1/slos", get(crate::http::alerts::slos))
        .route("/api/v1/capacity", get(crate::http::capacity::capacity))
        .route("/api/v1/pipeline", get(crate::http::pipeline::pipeline))
        .route("/api/v1/budgets", get(budgets))
        .route(
            "/api/v1/reports/{report_id}",
            get(crate::http::reports::one),
        )
        .route("/grafana/", get(crate::grafana::health))
        .nest("/grafana", crate::grafana::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    let cors = cors_layer(&state.config.cors_origins);
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/openapi.json", get(openapi))
        .merge(crate::http::console::router())
        .merge(protected)
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(middleware::map_response(protect_html))
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(state);
    match cors {
        Some(c) => app.layer(c),
        None => app,
    }
}

/// The Content-Security-Policy of every HTML answer: nothing loads or runs but the page's own
/// inline styles and `data:` images; no script at all, so a value that slipped into a page
/// unescaped still could not run.
pub const HTML_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Adds [`HTML_CSP`] to HTML answers, and `nosniff` to every answer (a browser must not read a
/// JSON or CSV body as HTML).
async fn protect_html(mut res: Response) -> Response {
    let h = res.headers_mut();
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if html && !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(HTML_CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// CORS for browsers (Grafana's "Browser" access): the configured origins, any method, the
/// headers Grafana sends.
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods(Any)
            .allow_headers(Any)
            .max_age(Duration::from_secs(3600)),
    )
}

async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !token_ok(state.config.api_token.as_ref(), &req) {
        // The route's template, never the client's path: a label takes no client text, so
        // requests to made-up paths cannot grow the number of series.
        let endpoint = req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or("unmatched", axum::extract::MatchedPath::as_str)
            .to_string();
        METRICS
            .requests
            .with_label_values(&[endpoint.as_str(), "401"])
            .inc();
        return ApiError::Unauthorized.into_response();
    }
    next.run(req).await
}

/// This API's OpenAPI 3.0 document (`query-api/openapi.json`, checked against the real
/// responses by the end-to-end tests).
pub const OPENAPI: &str = include_str!("../../openapi.json");

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

/// The configured monthly cost budgets (`[[alerts.budgets]]`).
async fn budgets(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "budgets": state.config.budgets }))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the lake's log is readable and, for a server that ingests, a broker answers.
async fn readyz(State(state): State<AppState>) -> Response {
    let lake = state.engine.refresh().await.map_err(lake_not_ready);
    readiness(lake, state.config.ingest.as_deref()).await
}

/// `/readyz`: 200 when the lake is readable and, for roles that ingest, a broker answers and
/// no partition is stalled (events to read, nobody consuming them).
async fn readiness(lake: Result<(), NotReady>, ingest: Option<&dyn IngestReadiness>) -> Response {
    let (broker, partitions) = match ingest {
        None => (None, None),
        Some(i) => (Some(i.broker().await), Some(i.partitions())),
    };
    let ready = lake.is_ok()
        && broker.as_ref().is_none_or(Result::is_ok)
        && partitions.as_ref().is_none_or(Result::is_ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let ok_or = |r: Result<(), NotReady>| r.map_or_else(|e| e.0, |()| "ok".to_string());
    let body = json!({
        "ready": ready,
        "lake": ok_or(lake),
        "broker": broker.map(ok_or),
        "partitions": partitions.map(ok_or),
    });
    (status, Json(body)).into_response()
}

/// The HTTP surface of roles that do not answer queries (`opslake ingest`, `opslake process`):
/// `/healthz`, `/readyz` (the lake's log is readable; for ingest, a broker answers and no
/// partition is stalled) and `/metrics`, so every instance can be probed and scraped.
/// `/metrics` asks for the token when one is set.
pub fn ops_router(
    lake: Arc<opslake_lake::Lake>,
    ingest: Option<Arc<dyn IngestReadiness>>,
    api_token: Option<Secret>,
) -> Router {
    let state = OpsState {
        lake,
        ingest,
        api_token,
    };
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), ops_auth));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(ops_readyz))
        .merge(protected)
        .fallback(|| async {
            ApiError::NotFound("this role answers /healthz, /readyz and /metrics only".into())
        })
        .with_state(state)
}

#[derive(Clone)]
struct OpsState {
    lake: Arc<opslake_lake::Lake>,
    /// What readiness asks of a process that ingests.
    ingest: Option<Arc<dyn IngestReadiness>>,
    api_token: Option<Secret>,
}

async fn ops_readyz(State(s): State<OpsState>) -> Response {
    let lake = s.lake.snapshot().await.map(|_| ()).map_err(lake_not_ready);
    readiness(lake, s.ingest.as_deref()).await
}

/// `/readyz` takes no token: it says that the lake is not readable, and logs why (a path or a
/// store's error text is not for anyone who can reach the port).
fn lake_not_ready(e: impl std::fmt::Debug) -> NotReady {
    tracing::warn!(error = ?e, "readiness: the lake's log cannot be read");
    NotReady("the lake's log cannot be read (see the server's log)".to_string())
}

async fn ops_auth(State(s): State<OpsState>, req: Request, next: Next) -> Response {
    if !token_ok(s.api_token.as_ref(), &req) {
        return ApiError::Unauthorized.into_response();
    }
    next.run(req).await
}

/// Whether the request carries the token (constant-time); true when no token is set.
fn token_ok(token: Option<&Secret>, req: &Request) -> bool {
    let Some(token) = token.map(Secret::expose) else {
        return true;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::http::bearer_token)
        .unwrap_or("");
    given.as_bytes().ct_eq(token.as_bytes()).into()
}

async fn metrics() -> Response {
    let mut buf = Vec::new();
    let families = prometheus::gather();
    if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
        return ApiError::Internal(e.into()).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        buf,
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
}

async fn read_body(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| ApiError::TooLarge(state.config.max_body_bytes))
}

/// Queries taking at least this long are logged at `info` (all of them at `debug`).
const SLOW_QUERY_MS: u128 = 1000;

async fn sql(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let result = run_sql(&state, &headers, body).await;
    let (outcome, status) = match &result {
        Ok(_) => ("ok", "200".to_string()),
        Err(e) => ("error", e.status().as_u16().to_string()),
    };
    METRICS
        .query_seconds
        .with_label_values(&[outcome])
        .observe(started.elapsed().as_secs_f64());
    METRICS
        .requests
        .with_label_values(&["/api/v1/sql", &status])
        .inc();
    result.into_response()
}

async fn run_sql(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let body = read_body(state, body).await?;
    let req: SqlRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!("body must be JSON {{\"sql\": \"...\"}}: {e}"))
    })?;
    let started = Instant::now();
    let result = state
        .answer(Protocol::Http, state.engine.query(&req.sql))
        .await;
    let elapsed_ms = started.elapsed().as_millis();
    let sql: String = req.sql.chars().take(2000).collect();
    match &result {
        Err(e) if elapsed_ms >= SLOW_QUERY_MS => {
            tracing::info!(elapsed_ms, error = %e, sql, "slow query failed");
        }
        Err(e) => tracing::debug!(elapsed_ms, error = %e, sql, "query failed"),
        Ok(_) if elapsed_ms >= SLOW_QUERY_MS => tracing::info!(elapsed_ms, sql, "slow query"),
        Ok(_) => tracing::debug!(elapsed_ms, sql, "query"),
    }
    let result = result?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (content_type, body) = if accept.contains("application/vnd.apache.arrow.stream") {
        let buf = encode::to_arrow_ipc(&result).map_err(|e| ApiError::Internal(e.into()))?;
        ("application/vnd.apache.arrow.stream", buf)
    } else if accept.contains("text/csv") {
        let buf = encode::to_csv(&result).map_err(|e| ApiError::Internal(e.into()))?;
        ("text/csv; charset=utf-8", buf)
    } else {
        let buf = encode::to_json_bytes(&result).map_err(|e| ApiError::Internal(e.into()))?;
        ("application/json", buf)
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    // Every format says when the answer was cut short (JSON in its body too).
    if let Some(t) = result.truncation {
        if let Ok(v) = HeaderValue::from_str(&t.label()) {
            response.headers_mut().insert(TRUNCATED_HEADER, v);
        }
    }
    Ok(response)
}

async fn tables(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let tables = state.engine.tables().await?;
    let list: Vec<serde_json::Value> = tables
        .iter()
        .map(|(name, schema)| json!({"name": name, "columns": encode::columns(schema)}))
        .collect();
    Ok(Json(json!({ "tables": list })))
}

#[cfg(test)]
mod tests {
    use crate::engine::QueryEngine;
    use crate::state::ApiConfig;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::engine::QueryLimits;

    fn app(dir: &std::path::Path, token: Option<&str>) -> Router {
        let lake = opslake_lake::Lake::open(dir.to_str().unwrap()).unwrap();
        let engine = Arc::new(QueryEngine::new(lake, QueryLimits::default()).unwrap());
        let config = ApiConfig {
            api_token: token.map(Secret::new),
            max_body_bytes: 1024,
            ..Default::default()
        };
        router(AppState::new(engine, config))
    }

    fn sql_request(sql: &str, token: Option<&str>) -> Request<Body> {
        let mut r = Request::post("/api/v1/sql").header("content-type", "application/json");
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.body(Body::from(
            serde_json::to_vec(&json!({ "sql": sql })).unwrap(),
        ))
        .unwrap()
    }

    async fn body_json(resp: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sql_answers_json_and_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), None);
        let resp = app
            .clone()
            .oneshot(sql_request("SELECT 1 AS one, 'a' AS s", None))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = body_json(resp).await;
        assert_eq!(
            body["columns"],
            json!([{"name": "one", "type": "Int64"}, {"name": "s", "type": "Utf8"}])
        );
        assert_eq!(body["rows"], json!([[1, "a"]]));

        let resp = app
            .clone()
            .oneshot(sql_request("SELECT count(*) FROM metrics", None))
            .await
            .unwrap();
        assert_eq!(body_json(resp).await["rows"], json!([[0]]));

        let resp = app
            .clone()
            .oneshot(sql_request("DROP TABLE metrics", None))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(body_json(resp).await["error"]
            .as_str()
            .unwrap()
            .contains("refused: DROP TABLE"));

        let big = "x".repeat(4096);
        let resp = app.clone().oneshot(sql_request(&big, None)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

        let resp = app
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    fn limited(dir: &std::path::Path, limits: QueryLimits, max_concurrent: usize) -> Router {
        router(limited_state(dir, limits, max_concurrent))
    }

    fn limited_state(
        dir: &std::path::Path,
        limits: QueryLimits,
        max_concurrent: usize,
    ) -> AppState {
        let lake = opslake_lake::Lake::open(dir.to_str().unwrap()).unwrap();
        let engine = Arc::new(QueryEngine::new(lake, limits).unwrap());
        AppState::new(
            engine,
            ApiConfig {
                max_concurrent_queries: max_concurrent,
                queue_timeout: Duration::from_millis(100),
                ..Default::default()
            },
        )
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn limits_answer_408_400_truncated_and_429() {
        let dir = tempfile::tempdir().unwrap();
        let app = limited(
            dir.path(),
            QueryLimits {
                max_rows: 5,
                timeout: Duration::from_millis(300),
                memory_limit: 4 << 20,
                cache_bytes: 0,
                ..QueryLimits::default()
            },
            1,
        );
        // A query that runs too long is stopped and answered 408.
        let started = Instant::now();
        let resp = app
            .clone()
            .oneshot(sql_request(
                "SELECT count(*) FROM generate_series(1, 20000000000)",
                None,
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(body_json(resp).await["error"]
            .as_str()
            .unwrap()
            .contains("did not finish"));
        // A query that needs more memory than the pool gets a clear 400; the server lives on.
        // (With a timeout of its own: the 300 ms above could end it first on a loaded machine.)
        let roomy = limited(
            dir.path(),
            QueryLimits {
                max_rows: 5,
                timeout: Duration::from_secs(60),
                memory_limit: 4 << 20,
                cache_bytes: 0,
                ..QueryLimits::default()
            },
            1,
        );
        let resp = roomy
            .oneshot(sql_request(
                "SELECT x, count(*) FROM generate_series(1, 3000000) AS t(x) GROUP BY x ORDER BY 2 DESC LIMIT 1",
                None,
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let e = body_json(resp).await["error"].as_str().unwrap().to_string();
        assert!(e.contains("memory"), "{e}");
        // More rows than max_rows: the first ones and `truncated`.
        let resp = app
            .clone()
            .oneshot(sql_request("SELECT * FROM generate_series(1, 100)", None))
            .await
            .unwrap();
        let body = body_json(resp).await;
        assert_eq!(body["rows"].as_array().unwrap().len(), 5);
        assert_eq!(body["truncated"], json!(true));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_query_beyond_the_limit_waits_its_turn_then_gets_429() {
        let dir = tempfile::tempdir().unwrap();
        let state = limited_state(
            dir.path(),
            QueryLimits {
                max_rows: 5,
                timeout: Duration::from_secs(3),
                memory_limit: 4 << 20,
                cache_bytes: 0,
                ..QueryLimits::default()
            },
            1,
        );
        let app = router(state.clone());
        // One query at a time: a second one waits its turn, and gets 429 and Retry-After when
        // the first still runs at the end of the queue timeout (100 ms, against the first
        // one's 3 s).
        let slow = tokio::spawn(app.clone().oneshot(sql_request(
            "SELECT count(*) FROM generate_series(1, 20000000000)",
            None,
        )));
        let deadline = Instant::now() + Duration::from_secs(10);
        while state.queries.available_permits() > 0 {
            assert!(Instant::now() < deadline, "the slow query never started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let resp = app.oneshot(sql_request("SELECT 1", None)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            slow.await.unwrap().unwrap().status(),
            StatusCode::REQUEST_TIMEOUT
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn token_guards_everything_but_health() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), Some("t0ken"));
        let resp = app
            .clone()
            .oneshot(sql_request("SELECT 1", None))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let resp = app
            .clone()
            .oneshot(sql_request("SELECT 1", Some("t0ken")))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = app
            .clone()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let resp = app
            .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn requests_to_made_up_paths_add_no_metric_series() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), Some("t0ken"));
        let scrape = |app: Router| async move {
            let r = app
                .oneshot(
                    Request::get("/metrics")
                        .header("authorization", "Bearer t0ken")
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let body = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            String::from_utf8(body.to_vec()).unwrap()
        };
        let get = |app: Router, path: String| async move {
            let r = app
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert!(r.status().is_client_error());
        };
        for i in 0..300 {
            get(app.clone(), format!("/api/v1/reports/r{i}")).await;
            get(app.clone(), format!("/grafana/x{i}")).await;
            get(app.clone(), format!("/made/up/{i}")).await;
        }
        // The registry is the process's, shared with tests running beside this one, so the
        // check is on the labels: only route templates, never a client's text.
        let text = scrape(app.clone()).await;
        let endpoints: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("opslake_api_requests_total{"))
            .filter_map(|l| l.split("endpoint=\"").nth(1)?.split('"').next())
            .collect();
        assert!(
            endpoints.contains("/api/v1/reports/{report_id}"),
            "{endpoints:?}"
        );
        for e in &endpoints {
            assert!(
                !e.contains("/r1") && !e.contains("/x") && !e.contains("made"),
                "a client's path became a label: {e}"
            );
        }
    }
}
