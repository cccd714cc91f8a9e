//! Runs the roles of one process (ingest, processor, reports, API or health endpoints) until
//! Ctrl-C or SIGTERM, then stops them within the shutdown timeout.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use opslake_ingest::Ingest;
use opslake_lake::Lake;

use crate::readiness::IngestChecks;
use opslake_processor::report::deliver::Delivery;
use opslake_processor::report::schedule::run_scheduler;
use opslake_query_api::{router, ApiConfig, AppState, Budget, QueryEngine, QueryLimits};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Config;

/// Cancels `token` on Ctrl-C or SIGTERM.
pub(crate) fn spawn_signal_handler(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => info!("interrupted; shutting down"),
            () = term => info!("terminated; shutting down"),
        }
        token.cancel();
    });
}

/// Which roles a process runs.
#[derive(Clone, Copy)]
pub(crate) struct Roles {
    pub(crate) ingest: bool,
    pub(crate) process: bool,
    pub(crate) serve: bool,
}

pub(crate) async fn run_roles(cfg: Config, roles: Roles) -> anyhow::Result<()> {
    let Roles {
        ingest,
        process,
        serve,
    } = roles;
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let lake =
        Lake::open(&cfg.lake).with_context(|| format!("failed to open lake {}", cfg.lake))?;
    info!(lake = %lake.url(), brokers = cfg.brokers, "opslake starting");
    if cfg.allow_unauthenticated && cfg.api_token.is_none() {
        warn!(
            listen = cfg.listen,
            "serving without a token (allow_unauthenticated = true): anyone who reaches these \
             addresses can query the lake"
        );
    }
    let mut tasks: Vec<(&'static str, tokio::task::JoinHandle<anyhow::Result<()>>)> = Vec::new();
    // Register each role's metrics up front, so the first scrape already lists them.
    if ingest {
        std::sync::LazyLock::force(&opslake_ingest::metrics::METRICS);
    }
    if process {
        std::sync::LazyLock::force(&opslake_processor::metrics::METRICS);
        std::sync::LazyLock::force(&opslake_processor::metrics::ALERT_METRICS);
    }

    // The all-in-one process reads every partition directly (`ingest.assignment = "auto"`):
    // it needs no group, so a restart can never find its partitions held by a dead member.
    let mut icfg = cfg.ingest.clone();
    icfg.assignment = icfg.assignment.resolve(ingest && process && serve);
    let worker = ingest.then(|| Ingest::new(&cfg.brokers, icfg.clone(), Arc::clone(&lake)));
    let ingest_checks = worker.as_ref().map(|w| {
        Arc::new(IngestChecks {
            brokers: cfg.brokers.clone(),
            health: w.health(),
        }) as Arc<dyn opslake_query_api::IngestReadiness>
    });
    if let Some(worker) = worker {
        let token = shutdown.child_token();
        let brokers = cfg.brokers.clone();
        let stop_all = shutdown.clone();
        tasks.push((
            "ingest",
            tokio::spawn(async move {
                // Topics are created when missing; a broker that is not up yet is retried.
                let mut backoff = Duration::from_millis(500);
                loop {
                    match opslake_ingest::kafka::ensure_topics(&brokers, &icfg).await {
                        Ok(()) => break,
                        Err(e) => {
                            warn!(
                                error = format!("{e:#}"),
                                "cannot create topics yet; retrying"
                            );
                            tokio::select! {
                                () = token.cancelled() => return Ok(()),
                                () = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(10));
                        }
                    }
                }
                let handle = tokio::runtime::Handle::current();
                let t = token.clone();
                let r = tokio::task::spawn_blocking(move || worker.run_blocking(&handle, &t)).await;
                let r = match r {
                    Ok(r) => r.map_err(anyhow::Error::from),
                    Err(e) => Err(anyhow::anyhow!("ingest thread panicked: {e}")),
                };
                if r.is_err() {
                    stop_all.cancel();
                }
                r
            }),
        ));
    }

    if ingest {
        // Merges the small files of quiet hours; any number of instances may run it, the lake's
        // commit decides which merge wins.
        let token = shutdown.child_token();
        let lake = Arc::clone(&lake);
        let quiet = cfg.ingest.compact_quiet;
        tasks.push((
            "compact",
            tokio::spawn(async move {
                let policy = opslake_lake::compact::CompactionPolicy {
                    quiet_for: quiet,
                    ..Default::default()
                };
                let every = quiet.clamp(Duration::from_secs(1), Duration::from_secs(30));
                opslake_lake::compact::run(lake, policy, every, token).await;
                Ok(())
            }),
        ));
    }

    if (ingest || process) && cfg.lake_delta {
        let (lake, token) = (Arc::clone(&lake), shutdown.child_token());
        let interval = cfg.ingest.flush_interval;
        tasks.push((
            "delta",
            tokio::spawn(async move {
                crate::delta::mirror(lake, interval, token).await;
                Ok(())
            }),
        ));
    }

    // One engine for the API and the alert rules, with the same limits.
    let engine = if process || serve {
        Some(Arc::new(
            QueryEngine::new(
                Arc::clone(&lake),
                QueryLimits {
                    max_rows: cfg.query.max_rows,
                    max_result_bytes: cfg.query.max_result_bytes,
                    timeout: cfg.query.timeout,
                    memory_limit: cfg.query.memory_limit,
                    cache_bytes: cfg.query.cache_bytes,
                },
            )
            .map_err(|e| anyhow::anyhow!("failed to start the query engine: {e}"))?,
        ))
    } else {
        None
    };

    if let (true, Some(engine)) = (process, &engine) {
        let token = shutdown.child_token();
        let alerting = crate::alerting::alerting(
            &cfg,
            Arc::clone(engine),
            Arc::clone(&lake),
            writer_name("notify"),
            &token,
        );
        let processor = opslake_processor::Processor::new(Arc::clone(&lake), cfg.processor.clone())
            .with_alerting(alerting);
        tasks.push((
            "process",
            tokio::spawn(async move {
                processor.run(token).await;
                Ok(())
            }),
        ));
    }

    if process && cfg.reports.enabled {
        let token = shutdown.child_token();
        let lake = Arc::clone(&lake);
        let delivery = Delivery::from_config(&cfg.reports, crate::brokers::report_topic(&cfg));
        let rcfg = cfg.reports.clone();
        tasks.push((
            "reports",
            tokio::spawn(async move {
                run_scheduler(lake, rcfg, delivery, writer_name("scheduler"), token).await;
                Ok(())
            }),
        ));
    }

    if !serve {
        // Roles that answer no queries still answer probes and scrapes.
        let app = opslake_query_api::ops_router(
            Arc::clone(&lake),
            ingest_checks.clone(),
            cfg.api_token.clone().filter(|t| !t.is_empty()),
        );
        let (listener, addr) = bind(&cfg.listen).await?;
        info!(%addr, "health and metrics listening");
        println!("opslake health and metrics listening on http://{addr}");
        let token = shutdown.child_token();
        tasks.push((
            "health",
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { token.cancelled().await })
                    .await
                    .context("http server failed")
            }),
        ));
    }

    if let (true, Some(engine)) = (serve, engine) {
        let api = ApiConfig {
            api_token: cfg.api_token.clone().filter(|t| !t.is_empty()),
            max_body_bytes: cfg.query.max_body_bytes,
            max_concurrent_queries: cfg.query.max_concurrent,
            ingest: ingest_checks.clone(),
            cors_origins: cfg.query.cors_origins.clone(),
            queue_timeout: cfg.query.queue_timeout,
            max_connections: cfg.query.max_connections,
            budgets: cfg
                .alerts
                .budgets
                .iter()
                .map(|b| Budget {
                    scope: b.scope.clone(),
                    key: b.key.clone(),
                    monthly: b.monthly,
                })
                .collect(),
        };
        let state = AppState::new(engine, api);
        spawn_sql_protocols(&cfg, &state, &shutdown, &mut tasks).await?;
        let app = router(state);
        let (listener, addr) = bind(&cfg.listen).await?;
        info!(%addr, "query API listening");
        println!("opslake API listening on http://{addr}");
        let token = shutdown.child_token();
        let stop_all = shutdown.clone();
        tasks.push((
            "serve",
            tokio::spawn(async move {
                let r = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { token.cancelled().await })
                    .await
                    .context("http server failed");
                if r.is_err() {
                    stop_all.cancel();
                }
                r
            }),
        ));
    }

    shutdown.cancelled().await;
    let deadline = tokio::time::Instant::now() + cfg.shutdown_timeout;
    let mut failed = false;
    for (name, task) in tasks {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(()))) => info!(role = name, "stopped cleanly"),
            Ok(Ok(Err(e))) => {
                error!(role = name, error = format!("{e:#}"), "role failed");
                failed = true;
            }
            Ok(Err(e)) => {
                error!(role = name, error = %e, "role panicked");
                failed = true;
            }
            Err(_) => {
                error!(role = name, "role did not stop within the shutdown timeout");
                failed = true;
            }
        }
    }
    if failed {
        bail!("one or more roles did not end cleanly");
    }
    Ok(())
}

/// Starts the PostgreSQL and Flight SQL front ends that are configured, over the API's engine,
/// token and turns; each prints where it listens (before the API does).
async fn spawn_sql_protocols(
    cfg: &Config,
    state: &AppState,
    shutdown: &CancellationToken,
    tasks: &mut Vec<(&'static str, tokio::task::JoinHandle<anyhow::Result<()>>)>,
) -> anyhow::Result<()> {
    if let Some(listen) = &cfg.pg_listen {
        let tls = match (&cfg.pg_tls_cert, &cfg.pg_tls_key) {
            (Some(cert), Some(key)) => Some(
                opslake_query_api::pg::tls_acceptor(cert, key)
                    .context("pg_tls_cert, pg_tls_key")?,
            ),
            _ => None,
        };
        let (listener, addr) = bind(listen).await?;
        let tls_note = if tls.is_some() { " (TLS)" } else { "" };
        info!(%addr, tls = tls.is_some(), "PostgreSQL wire protocol listening");
        println!("opslake PostgreSQL listening on postgres://{addr}{tls_note}");
        let token = shutdown.child_token();
        let state = state.clone();
        let tls_required = cfg.pg_tls_required;
        tasks.push((
            "postgres",
            tokio::spawn(async move {
                let options = opslake_query_api::pg::PgOptions { tls, tls_required };
                opslake_query_api::pg::serve(state, listener, options, token.cancelled_owned())
                    .await;
                Ok(())
            }),
        ));
    }
    if let Some(listen) = &cfg.flight_listen {
        let tls = match (&cfg.flight_tls_cert, &cfg.flight_tls_key) {
            (Some(cert), Some(key)) => Some(
                opslake_query_api::flight::tls_config(cert, key)
                    .context("flight_tls_cert, flight_tls_key")?,
            ),
            _ => None,
        };
        let (listener, addr) = bind(listen).await?;
        let scheme = if tls.is_some() { "grpc+tls" } else { "grpc" };
        info!(%addr, tls = tls.is_some(), "Arrow Flight SQL listening");
        println!("opslake Flight SQL listening on {scheme}://{addr}");
        let token = shutdown.child_token();
        let stop_all = shutdown.clone();
        let state = state.clone();
        tasks.push((
            "flight_sql",
            tokio::spawn(async move {
                let r =
                    opslake_query_api::flight::serve(state, listener, tls, token.cancelled_owned())
                        .await
                        .context("flight sql server failed");
                if r.is_err() {
                    stop_all.cancel();
                }
                r
            }),
        ));
    }
    Ok(())
}

/// Binds the HTTP listener of a role; the address says where it really listens (port 0).
pub(crate) async fn bind(
    listen: &str,
) -> anyhow::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("failed to listen on {listen}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// A writer name for lake commits: the role and a short random id.
pub(crate) fn writer_name(role: &str) -> String {
    format!("{role}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}
