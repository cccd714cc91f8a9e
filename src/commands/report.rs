//! `opslake report forecast`: the cost forecast report, stored, written and delivered.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use opslake_lake::Lake;
use opslake_processor::report::deliver::Delivery;
use opslake_processor::report::generate::{generate, Trigger};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::supervisor::writer_name;

pub(crate) async fn report_forecast(
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
    Delivery::from_config(&cfg.reports, crate::brokers::report_topic(&cfg))
        .deliver(r, &shutdown)
        .await;
    Ok(())
}
