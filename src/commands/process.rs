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
    let counts: Vec<String> = report
        .counts
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    println!(
        "processed in {:.2?}: {}{}",
        started.elapsed(),
        if counts.is_empty() {
            "nothing new".to_string()
        } else {
            counts.join(", ")
        },
        if report.lost_race {
            " (another processor committed first; nothing recorded)"
        } else {
            ""
        }
    );
    Ok(())
}
