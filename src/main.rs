//! The `opslake` binary: parses the command line, loads the configuration and wires the roles
//! together. Each role lives in its own library crate.

mod alerting;
mod brokers;
mod cli;
mod commands;
mod config;
mod delta;
mod produce;
mod readiness;
mod supervisor;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tracing::error;

use crate::cli::Cli;
use crate::config::FlagOverrides;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let flags = FlagOverrides {
        brokers: cli.brokers.clone(),
        lake: cli.lake.clone(),
        listen: cli.listen.clone(),
        pg_listen: cli.pg_listen.clone(),
        flight_listen: cli.flight_listen.clone(),
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
    let result = runtime.block_on(commands::dispatch(cli.command, cfg));
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
