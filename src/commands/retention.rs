//! `opslake retention`: removes the days of raw tables older than a cutoff.

use std::time::Duration;

use anyhow::Context;
use opslake_lake::Lake;

use crate::config::Config;
use crate::supervisor::writer_name;

/// `opslake retention`: trims old days of the chosen tables.
pub(crate) async fn retention(
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
    if cfg.lake_delta {
        // The removal reaches the Delta logs before its files are deleted.
        match opslake_lake::delta::catch_up(&lake, grace).await {
            Ok(r) => println!("delta logs caught up through lake version {}", r.version),
            Err(e) => {
                println!("the delta logs could not be caught up yet ({e}); the next start does it")
            }
        }
    }
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
