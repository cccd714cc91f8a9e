//! What each command of `opslake` does: the roles run under the supervisor, the rest here.

mod process;
mod produce;
mod report;
mod retention;
mod sql;

use anyhow::Context;

use crate::cli::{Command, ReportKind};
use crate::config::Config;
use crate::supervisor::{run_roles, Roles};

pub(crate) async fn dispatch(command: Command, cfg: Config) -> anyhow::Result<()> {
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
        Command::Process { once: true } => process::process_once(cfg).await,
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
        Command::Produce(args) => produce::produce(cfg, args).await,
        Command::Retention {
            older_than,
            tables,
            dry_run,
            grace,
        } => retention::retention(&cfg, older_than, tables, dry_run, grace).await,
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
        } => report::report_forecast(cfg, no_refresh, html, json).await,
        Command::Sql { query, format } => sql::sql(cfg, &query, &format).await,
    }
}
