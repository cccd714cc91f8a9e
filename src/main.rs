//! The `opslake` binary: parses the command line, loads the configuration and wires the roles
//! together. Each role lives in its own library crate.

mod config;
mod readiness;
mod supervisor;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use opslake_ingest::produce::{produce_blocking, Pace, Source, SyntheticOptions};
use opslake_lake::Lake;
use opslake_processor::report::schedule::{generate, Delivery, Trigger};
use opslake_query_api::{QueryEngine, QueryLimits};
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::config::{Config, FlagOverrides};
use crate::supervisor::{run_roles, spawn_signal_handler, Roles};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "opslake",
    version,
    about = "Event-streaming analytics for latency, logs and cloud cost: Kafka to a Parquet lake, SQL over HTTP"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "OPSLAKE_CONFIG")]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers [default: 127.0.0.1:9092].
    #[arg(long, global = true)]
    brokers: Option<String>,
    /// The lake: a directory or file:// URL [default: ./lake].
    #[arg(long, global = true)]
    lake: Option<String>,
    /// Address of the HTTP API [default: 127.0.0.1:8080].
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Log format: text or json.
    #[arg(long, global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process: ingest, processor, query API and report scheduler.
    Run,
    /// Only ingest: Kafka to the lake (scale out by running several in one consumer group).
    Ingest,
    /// Only the processor: rollups, detections, cost tables and the report scheduler.
    Process {
        /// Run one cycle (fold everything committed so far), print what it did, and exit.
        #[arg(long)]
        once: bool,
    },
    /// Only the query API.
    Serve,
    /// Send events to Kafka: synthetic load, or an NDJSON or FOCUS CSV file.
    Produce(ProduceArgs),
    /// Generate a report now.
    Report {
        #[command(subcommand)]
        kind: ReportKind,
    },
    /// Print the effective configuration (defaults, file, environment and flags merged; secrets
    /// redacted) as TOML; exits 2 naming the key when a setting is wrong.
    Config,
    /// Remove the days before a cut-off from chosen tables, in one lake commit, then delete
    /// their files (run it daily from a timer to keep the lake bounded).
    Retention {
        /// Remove days older than this (e.g. 30d): every day before today (UTC) minus it.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Duration,
        /// Tables to trim, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "metrics,logs,dead_letters"
        )]
        tables: Vec<String>,
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Wait this long after the commit before deleting the files, so queries that started
        /// before it can finish reading them.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        grace: Duration,
    },
    /// Run a query against the lake and print the result as a table.
    Sql {
        /// The query.
        query: String,
        /// Output format: table, csv or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
}

#[derive(Subcommand)]
enum ReportKind {
    /// The cost forecast report: spend to date, month-end and 30-day forecasts with intervals,
    /// movers, spikes and savings opportunities. Stored in the lake (JSON and HTML), listed in
    /// `reports`, and delivered to the configured webhook and topic.
    Forecast {
        /// Use the cost tables as they are, without first folding billing not yet processed.
        #[arg(long)]
        no_refresh: bool,
        /// Also write the report's HTML to this file.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Also write the report's JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct ProduceArgs {
    /// Messages per second [default: as fast as possible].
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this long (e.g. 30s, 5m).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Seed of the synthetic generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Replay a file instead of generating: NDJSON (one message per line) or FOCUS CSV (.csv).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Topic for --file: metrics, logs, billing or a topic name [default: billing for .csv].
    #[arg(long)]
    topic: Option<String>,
    /// Event time of the first synthetic event (RFC 3339), for backfills; default: now, live.
    #[arg(long)]
    start: Option<String>,
    /// Simulated time between synthetic events when --start is given (e.g. 100ms).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "100ms")]
    step: Duration,
    /// Events per message (more than 1 sends JSON arrays).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Only synthetic events of one kind: metrics, logs or billing (e.g. to backfill weeks of
    /// billing with --start and --step 1h).
    #[arg(long, value_parser = ["metrics", "logs", "billing"])]
    only: Option<String>,
    /// With --start: stop when simulated time reaches this (RFC 3339, or `now`).
    #[arg(long)]
    end: Option<String>,
    /// Do not show the progress bar.
    #[arg(long)]
    no_progress: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let flags = FlagOverrides {
        brokers: cli.brokers.clone(),
        lake: cli.lake.clone(),
        listen: cli.listen.clone(),
        log_format: cli.log_format.clone(),
    };
    let cfg = match config::load(cli.config.as_deref(), &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("opslake: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&cfg.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("opslake: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli.command, cfg));
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = format!("{e:#}"), "opslake failed");
            eprintln!("opslake: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,rdkafka=warn,datafusion=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn dispatch(command: Command, cfg: Config) -> anyhow::Result<()> {
    match command {
        Command::Run => {
            run_roles(
                cfg,
                Roles {
                    ingest: true,
                    process: true,
                    serve: true,
                },
            )
            .await
        }
        Command::Ingest => {
            run_roles(
                cfg,
                Roles {
                    ingest: true,
                    process: false,
                    serve: false,
                },
            )
            .await
        }
        Command::Process { once: true } => process_once(cfg).await,
        Command::Process { once: false } => {
            run_roles(
                cfg,
                Roles {
                    ingest: false,
                    process: true,
                    serve: false,
                },
            )
            .await
        }
        Command::Serve => {
            run_roles(
                cfg,
                Roles {
                    ingest: false,
                    process: false,
                    serve: true,
                },
            )
            .await
        }
        Command::Produce(args) => produce(cfg, args).await,
        Command::Retention {
            older_than,
            tables,
            dry_run,
            grace,
        } => retention(&cfg, older_than, tables, dry_run, grace).await,
        Command::Config => {
            // Secrets serialize as `<redacted>`.
            print!(
                "{}",
                toml::to_string(&cfg).context("cannot print the configuration")?
            );
            Ok(())
        }
        Command::Report {
            kind:
                ReportKind::Forecast {
                    no_refresh,
                    html,
                    json,
                },
        } => report_forecast(cfg, no_refresh, html, json).await,
        Command::Sql { query, format } => sql(cfg, &query, &format).await,
    }
}

async fn process_once(cfg: Config) -> anyhow::Result<()> {
    let lake =
        Lake::open(&cfg.lake).with_context(|| format!("failed to open lake {}", cfg.lake))?;
    let started = std::time::Instant::now();
    let report = opslake_processor::Processor::new(lake, cfg.processor.clone())
        .cycle()
        .await
        .context("processing cycle failed")?;
    println!(
        "processed {} raw files into {} hours: {} rollup rows, {} anomalies, {} regressions in {:.2?}{}",
        report.files_read,
        report.hours,
        report.rows_written,
        report.anomalies,
        report.regressions,
        started.elapsed(),
        if report.lost_race {
            " (another processor committed first; nothing recorded)"
        } else {
            ""
        }
    );
    Ok(())
}

/// A writer name for lake commits: the role and a short random id.
fn writer_name(role: &str) -> String {
    format!("{role}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

async fn report_forecast(
    cfg: Config,
    no_refresh: bool,
    html: Option<PathBuf>,
    json: Option<PathBuf>,
) -> anyhow::Result<()> {
    let lake =
        Lake::open(&cfg.lake).with_context(|| format!("failed to open lake {}", cfg.lake))?;
    if !no_refresh {
        opslake_processor::Processor::new(Arc::clone(&lake), cfg.processor.clone())
            .cycle()
            .await
            .context("failed to fold new billing into the cost tables")?;
    }
    let stored = generate(&lake, &writer_name("report"), Trigger::Manual)
        .await
        .context("failed to generate the forecast report")?
        .context("the report was not stored")?;
    let r = &stored.report;
    println!("report {}", r.report_id);
    println!("  {}", r.summary);
    println!(
        "  stored in the lake: {} and {}",
        stored.json_path, stored.html_path
    );
    println!(
        "  served at GET /api/v1/reports/{} (JSON; HTML with Accept: text/html)",
        r.report_id
    );
    if let Some(p) = html {
        let page = opslake_processor::report::html::render(r);
        std::fs::write(&p, page).with_context(|| format!("failed to write {}", p.display()))?;
        println!("  HTML written to {}", p.display());
    }
    if let Some(p) = json {
        std::fs::write(&p, serde_json::to_vec_pretty(r)?)
            .with_context(|| format!("failed to write {}", p.display()))?;
        println!("  JSON written to {}", p.display());
    }
    let shutdown = CancellationToken::new();
    Delivery::from_config(
        &cfg.reports,
        &cfg.brokers,
        &cfg.ingest.kafka,
        cfg.ingest.replication_factor,
    )
    .deliver(r, &shutdown)
    .await;
    Ok(())
}

fn resolve_topic(cfg: &Config, name: &str) -> String {
    match name {
        "metrics" => cfg.ingest.topics.metrics.clone(),
        "logs" => cfg.ingest.topics.logs.clone(),
        "billing" => cfg.ingest.topics.billing.clone(),
        other => other.to_string(),
    }
}

async fn produce(cfg: Config, args: ProduceArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    opslake_ingest::kafka::ensure_topics(&cfg.brokers, &cfg.ingest)
        .await
        .context("failed to reach the broker to create topics")?;
    let source = match &args.file {
        Some(path) => {
            let is_csv = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            if is_csv {
                let topic = resolve_topic(&cfg, args.topic.as_deref().unwrap_or("billing"));
                Source::FocusCsv {
                    path: path.clone(),
                    topic,
                }
            } else {
                let Some(t) = args.topic.as_deref() else {
                    bail!("--topic is required for an NDJSON file (metrics, logs, billing or a topic name)");
                };
                Source::Ndjson {
                    path: path.clone(),
                    topic: resolve_topic(&cfg, t),
                }
            }
        }
        None => {
            let start_ms = match &args.start {
                Some(s) => Some(
                    chrono::DateTime::parse_from_rfc3339(s)
                        .with_context(|| format!("--start {s:?} is not an RFC 3339 timestamp"))?
                        .timestamp_millis(),
                ),
                None => None,
            };
            let end_ms = match args.end.as_deref() {
                None => None,
                Some("now") => Some(chrono::Utc::now().timestamp_millis()),
                Some(s) => Some(
                    chrono::DateTime::parse_from_rfc3339(s)
                        .with_context(|| format!("--end {s:?} is not an RFC 3339 timestamp"))?
                        .timestamp_millis(),
                ),
            };
            if end_ms.is_some() && start_ms.is_none() {
                bail!("--end needs --start (it bounds a backfill's simulated time)");
            }
            Source::Synthetic(SyntheticOptions {
                seed: args.seed,
                start_ms,
                step_ms: args.step.as_secs_f64() * 1000.0,
                per_message: args.batch,
                only: args.only.clone(),
                end_ms,
            })
        }
    };
    let pace = Pace {
        rate: args.rate,
        count: args.count,
        duration: args.duration,
        progress: !args.no_progress,
    };
    let brokers = cfg.brokers.clone();
    let kafka = cfg.ingest.kafka.clone();
    let topics = cfg.ingest.topics.clone();
    let report = tokio::task::spawn_blocking(move || {
        produce_blocking(&brokers, &kafka, &topics, source, &pace, &shutdown)
    })
    .await
    .context("producer thread panicked")??;
    println!(
        "produced {} messages ({} bytes)",
        report.messages, report.bytes
    );
    for (topic, n) in &report.by_topic {
        println!("  {topic}: {n}");
    }
    Ok(())
}

async fn sql(cfg: Config, query: &str, format: &str) -> anyhow::Result<()> {
    let lake =
        Lake::open(&cfg.lake).with_context(|| format!("failed to open lake {}", cfg.lake))?;
    let engine = QueryEngine::new(
        lake,
        QueryLimits {
            max_rows: usize::MAX,
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
            let buf = opslake_query_api::encode::to_csv(&result)?;
            print!("{}", String::from_utf8_lossy(&buf));
        }
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&opslake_query_api::encode::to_json(&result)?)?
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

/// `opslake retention`: trims old days of the chosen tables.
async fn retention(
    cfg: &Config,
    older_than: Duration,
    tables: Vec<String>,
    dry_run: bool,
    grace: Duration,
) -> anyhow::Result<()> {
    use opslake_lake::retention;
    let known: Vec<&str> = opslake_schemas::tables::raw_tables()
        .iter()
        .map(|(n, _)| *n)
        .chain(
            opslake_schemas::tables::derived_tables()
                .iter()
                .map(|(n, _, _)| *n),
        )
        .collect();
    if let Some(t) = tables.iter().find(|t| !known.contains(&t.as_str())) {
        anyhow::bail!("--tables: no table `{t}`; tables: {}", known.join(", "));
    }
    let days = i64::try_from(older_than.as_secs() / 86_400).unwrap_or(i64::MAX);
    if days < 1 {
        anyhow::bail!("--older-than: at least one day (e.g. 30d)");
    }
    let cutoff = chrono::Utc::now().date_naive() - chrono::Duration::days(days);
    let lake =
        Lake::open(&cfg.lake).with_context(|| format!("failed to open lake {}", cfg.lake))?;
    let snap = lake.snapshot().await?;
    let planned = retention::plan(&snap, &tables, cutoff);
    let show = |files: &[&opslake_lake::AddFile]| {
        for (table, (n, rows, bytes)) in retention::summary(files) {
            println!(
                "  {table}: {n} files, {rows} rows, {:.1} MB",
                bytes as f64 / 1e6
            );
        }
    };
    if planned.is_empty() {
        println!("nothing before {cutoff} in {}", tables.join(", "));
        return Ok(());
    }
    if dry_run {
        println!("would remove the days before {cutoff}:");
        show(&planned);
        return Ok(());
    }
    let Some((removed, version)) =
        retention::remove(&lake, &tables, cutoff, &writer_name("retention")).await?
    else {
        println!("nothing before {cutoff} in {}", tables.join(", "));
        return Ok(());
    };
    println!("removed the days before {cutoff} in lake version {version}:");
    show(&removed.iter().collect::<Vec<_>>());
    if !grace.is_zero() {
        println!(
            "deleting the files in {} (queries started before may still read them)",
            humantime::format_duration(grace)
        );
        tokio::time::sleep(grace).await;
    }
    let failed = retention::delete(&lake, &removed).await;
    if failed > 0 {
        println!("{failed} files could not be deleted; they are no longer part of the lake");
    } else {
        println!("deleted {} files", removed.len());
    }
    Ok(())
}
