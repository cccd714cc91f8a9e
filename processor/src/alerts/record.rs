//! Rows of the `alerts` table: one per state change.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use opslake_schemas::tables;

use super::book::{AlertState, Change};
use crate::rollup::{append_labels, labels_builder};

/// The `alerts` rows of `changes`.
///
/// # Errors
/// When Arrow refuses the arrays (a bug).
pub fn alert_batch(changes: &[Change]) -> Result<RecordBatch, ArrowError> {
    let ts = || TimestampMillisecondBuilder::new().with_timezone(tables::TZ);
    let (mut at, mut starts, mut ends) = (ts(), ts(), ts());
    let (mut name, mut fp, mut state, mut severity, mut rule, mut url) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut labels, mut annotations) = (labels_builder(), labels_builder());
    let mut value = Float64Builder::new();
    let mut notified = BooleanBuilder::new();
    for c in changes {
        let a = &c.alert;
        at.append_value(c.at_ms);
        name.append_value(a.alertname());
        fp.append_value(&a.fingerprint);
        state.append_value(c.state.as_str());
        severity.append_value(a.severity());
        let pairs = |m: &std::collections::BTreeMap<String, String>| -> Vec<(String, String)> {
            m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        append_labels(&mut labels, &pairs(&a.labels))?;
        append_labels(&mut annotations, &pairs(&a.annotations))?;
        value.append_option(a.value);
        starts.append_value(a.starts_at_ms());
        ends.append_option((c.state == AlertState::Resolved).then_some(c.at_ms));
        rule.append_value(&a.rule);
        notified.append_value(c.notify);
        url.append_option(a.generator_url.as_deref());
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(at.finish()),
        Arc::new(name.finish()),
        Arc::new(fp.finish()),
        Arc::new(state.finish()),
        Arc::new(severity.finish()),
        Arc::new(labels.finish()),
        Arc::new(annotations.finish()),
        Arc::new(value.finish()),
        Arc::new(starts.finish()),
        Arc::new(ends.finish()),
        Arc::new(rule.finish()),
        Arc::new(notified.finish()),
        Arc::new(url.finish()),
    ];
    RecordBatch::try_new(tables::alerts(), cols)
}
