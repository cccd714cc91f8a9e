//! `opslake process --once`: one processing cycle of every stream, then exit.

use anyhow::Context;
use opslake_lake::Lake;

use crate::config::Config;

pub(crate) async fn process_once(cfg: Config) -> anyhow::Result<()> {
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
