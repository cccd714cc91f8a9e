//! The command line: the roles and commands of `opslake`, and the flags every one takes.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "opslake",
    version,
    about = "Event-streaming analytics for latency, logs and cloud cost: Kafka to a Parquet lake, SQL over HTTP"
)]
pub(crate) struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "OPSLAKE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Kafka bootstrap servers [default: 127.0.0.1:9092].
    #[arg(long, global = true)]
    pub(crate) brokers: Option<String>,
    /// The lake: a directory or file:// URL [default: ./lake].
    #[arg(long, global = true)]
    pub(crate) lake: Option<String>,
    /// Address of the HTTP API [default: 127.0.0.1:8080].
    #[arg(long, global = true)]
    pub(crate) listen: Option<String>,
    /// Address of the PostgreSQL wire protocol [default: off].
    #[arg(long, global = true)]
    pub(crate) pg_listen: Option<String>,
    /// Address of Arrow Flight SQL [default: off].
    #[arg(long, global = true)]
    pub(crate) flight_listen: Option<String>,
    /// Log format: text or json.
    #[arg(long, global = true)]
    pub(crate) log_format: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) enum ReportKind {
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

/// The encoding of `opslake produce --otlp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OtlpFormat {
    /// Protobuf (the exporter's `otlp_proto`).
    Proto,
    /// OTLP/JSON (the exporter's `otlp_json`).
    Json,
}

#[derive(clap::Args)]
pub(crate) struct ProduceArgs {
    /// Messages per second [default: as fast as possible].
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Stop after this many messages.
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Stop after this long (e.g. 30s, 5m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Seed of the synthetic generator.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Replay a file instead of generating: NDJSON (one message per line) or FOCUS CSV (.csv).
    #[arg(long)]
    pub(crate) file: Option<PathBuf>,
    /// Topic for --file: metrics, logs, billing or a topic name [default: billing for .csv].
    #[arg(long)]
    pub(crate) topic: Option<String>,
    /// Event time of the first synthetic event (RFC 3339), for backfills; default: now, live.
    #[arg(long)]
    pub(crate) start: Option<String>,
    /// Simulated time between synthetic events when --start is given (e.g. 100ms).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "100ms")]
    pub(crate) step: Duration,
    /// Events per message (more than 1 sends JSON arrays).
    #[arg(long, default_value_t = 1)]
    pub(crate) batch: usize,
    /// Only synthetic events of one kind: metrics, logs or billing (e.g. to backfill weeks of
    /// billing with --start and --step 1h).
    #[arg(long, value_parser = ["metrics", "logs", "billing"])]
    pub(crate) only: Option<String>,
    /// With --start: stop when simulated time reaches this (RFC 3339, or `now`).
    #[arg(long)]
    pub(crate) end: Option<String>,
    /// Do not show the progress bar.
    #[arg(long)]
    pub(crate) no_progress: bool,
    /// Send synthetic metrics and logs as OpenTelemetry requests, as the Collector's Kafka
    /// exporter writes them (`proto`: otlp_proto, `json`: otlp_json), to the OTLP topics.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "proto")]
    pub(crate) otlp: Option<OtlpFormat>,
    /// Synthetic load without incidents: no error bursts, and deploys that leave latency as
    /// it was (what detection must stay quiet on; see bench/detect.py).
    #[arg(long)]
    pub(crate) no_incidents: bool,
}
