//! Generating and storing a forecast report: three lake files committed together (its JSON
//! and HTML documents under `_reports/` and its row of the `reports` table). A scheduled
//! report's commit records its slot and is refused when another instance recorded it first.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{ArrayRef, Float64Builder, StringBuilder};
use datafusion::arrow::record_batch::RecordBatch;
use object_store::ObjectStoreExt;
use opslake_lake::write::{encode_parquet, upload};
use opslake_lake::Lake;
use opslake_lake::{CommitError, LogEntry};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::{build, html, ForecastReport, ReportInputs};
use crate::cost::daily::load_daily;
use crate::cost::{load_accuracy, load_forecasts, load_opportunities};
use crate::cost::{COST_DAILY, COST_FORECASTS, COST_OPPORTUNITIES, FORECAST_ACCURACY};
use crate::error::ProcessError;
use crate::read::read_batches;
use crate::rollup::ts_builder;

/// The `reports` table.
pub const REPORTS: &str = "reports";
/// Where report documents live (not a table).
pub const REPORT_FILES: &str = "_reports";
/// State key of the last scheduled slot reported.
pub const SLOT_KEY: &str = "reports.forecast.last_slot";

/// Why a report was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `opslake report forecast` or the API.
    Manual,
    /// A slot of the schedule (epoch ms).
    Scheduled {
        /// The slot (epoch ms).
        slot_ms: i64,
    },
}

/// Errors of generating a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The cost tables could not be read.
    #[error("failed to read the cost tables: {0}")]
    Read(#[from] ProcessError),
    /// The report could not be stored in the lake.
    #[error("failed to store the report: {0}")]
    Store(#[from] opslake_lake::LakeError),
    /// The report row could not be encoded.
    #[error("failed to encode the report row: {0}")]
    Encode(#[from] datafusion::parquet::errors::ParquetError),
    /// The report row could not be built.
    #[error("failed to build the report row: {0}")]
    Row(#[from] datafusion::arrow::error::ArrowError),
}

fn stamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// Reads the cost tables of the lake's current snapshot.
///
/// # Errors
/// When a file cannot be read.
pub async fn load_inputs(lake: &Lake) -> Result<ReportInputs, ReportError> {
    let snap = lake.snapshot().await?;
    let mut inputs = ReportInputs::default();
    for (table, kind) in [
        (COST_DAILY, 0),
        (COST_FORECASTS, 1),
        (FORECAST_ACCURACY, 2),
        (COST_OPPORTUNITIES, 3),
    ] {
        for f in snap.table_files(table) {
            for b in read_batches(lake, &f.path).await? {
                let r = match kind {
                    0 => load_daily(&b, &mut inputs.daily),
                    1 => load_forecasts(&b, &mut inputs.forecasts),
                    2 => load_accuracy(&b, &mut inputs.accuracy),
                    _ => load_opportunities(&b, &mut inputs.opportunities),
                };
                r.map_err(|source| ProcessError::Rows {
                    path: f.path.clone(),
                    source,
                })?;
            }
        }
    }
    Ok(inputs)
}

fn report_row(
    r: &ForecastReport,
    generated_ms: i64,
    json: &str,
    html: &str,
) -> Result<RecordBatch, ReportError> {
    let date_ms = |d: &str| {
        chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(generated_ms, |t| t.and_utc().timestamp_millis())
    };
    let s = |v: &str| {
        let mut b = StringBuilder::new();
        b.append_value(v);
        Arc::new(b.finish()) as ArrayRef
    };
    let t = |v: i64| {
        let mut b = ts_builder(1);
        b.append_value(v);
        Arc::new(b.finish()) as ArrayRef
    };
    let f = |v: Option<f64>| {
        let mut b = Float64Builder::new();
        b.append_option(v);
        Arc::new(b.finish()) as ArrayRef
    };
    Ok(RecordBatch::try_new(
        opslake_schemas::tables::reports(),
        vec![
            s(&r.report_id),
            s(&r.kind),
            t(generated_ms),
            t(date_ms(&r.period_start)),
            t(date_ms(&r.period_end)),
            s(&r.summary),
            s(&r.trigger),
            f(Some(r.spend.month_to_date)),
            f(r.month_end.map(|e| e.forecast)),
            f(r.next_30_days.map(|e| e.forecast)),
            s(&r.currency),
            s(json),
            s(html),
        ],
    )?)
}

/// A stored report.
#[derive(Debug, Clone)]
pub struct StoredReport {
    /// The report.
    pub report: ForecastReport,
    /// Lake path of its JSON.
    pub json_path: String,
    /// Lake path of its HTML page.
    pub html_path: String,
    /// Lake version that recorded it.
    pub version: u64,
}

/// Builds a report from the lake's cost tables and commits it. For a scheduled trigger the
/// commit is refused when the slot was reported already (by this or another instance):
/// `Ok(None)` then.
///
/// # Errors
/// When the tables cannot be read or the report cannot be stored.
pub async fn generate(
    lake: &Lake,
    writer: &str,
    trigger: Trigger,
) -> Result<Option<StoredReport>, ReportError> {
    let inputs = load_inputs(lake).await?;
    let now = Utc::now().timestamp_millis();
    let (id, trigger_name) = match trigger {
        Trigger::Scheduled { slot_ms } => (format!("forecast-{}", stamp(slot_ms)), "schedule"),
        Trigger::Manual => (
            format!(
                "forecast-{}-manual-{}",
                stamp(now),
                &uuid::Uuid::new_v4().simple().to_string()[..6]
            ),
            "manual",
        ),
    };
    let report = build(&id, trigger_name, now, &inputs);
    let page = html::render(&report);
    let json = serde_json::to_vec_pretty(&report).expect("reports serialize");
    let json_path = format!("{REPORT_FILES}/{id}.json");
    let html_path = format!("{REPORT_FILES}/{id}.html");
    let row = report_row(&report, now, &json_path, &html_path)?;
    let row_bytes = tokio::task::spawn_blocking(move || encode_parquet(&[row]))
        .await
        .map_err(ProcessError::Join)??;
    let mut add = Vec::new();
    add.push(upload(lake, &json_path, REPORT_FILES, 0, Bytes::from(json)).await?);
    add.push(
        upload(
            lake,
            &html_path,
            REPORT_FILES,
            0,
            Bytes::from(page.into_bytes()),
        )
        .await?,
    );
    add.push(
        upload(
            lake,
            &format!("{REPORTS}/part-{id}.parquet"),
            REPORTS,
            1,
            row_bytes,
        )
        .await?,
    );
    let mut state = BTreeMap::new();
    if let Trigger::Scheduled { slot_ms } = trigger {
        state.insert(SLOT_KEY.to_string(), serde_json::json!(slot_ms));
    }
    let entry = LogEntry {
        writer: writer.to_string(),
        add: add.clone(),
        state,
        ..Default::default()
    };
    let committed = lake
        .commit(entry, move |s| match trigger {
            Trigger::Manual => Ok(()),
            Trigger::Scheduled { slot_ms } => match last_slot(s) {
                Some(done) if done >= slot_ms => {
                    Err(format!("slot {} was reported already", stamp(slot_ms)))
                }
                _ => Ok(()),
            },
        })
        .await;
    match committed {
        Ok(version) => Ok(Some(StoredReport {
            report,
            json_path,
            html_path,
            version,
        })),
        Err(e) => {
            for f in &add {
                let _ = lake.store().delete(&lake.path(&f.path)).await;
            }
            match e {
                CommitError::Conflict(_) => Ok(None),
                CommitError::Lake(e) => Err(e.into()),
            }
        }
    }
}

/// The last scheduled slot reported, from the lake's state.
pub fn last_slot(snap: &opslake_lake::Snapshot) -> Option<i64> {
    snap.state.get(SLOT_KEY).and_then(serde_json::Value::as_i64)
}
