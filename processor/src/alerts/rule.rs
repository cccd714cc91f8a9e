//! A rule's answer as alert instances: the string columns of each row become labels, a numeric
//! `value` column the value, a timestamp `at` column the time of the data; annotations are
//! filled from the row (`{{ column }}`), and the labels' fingerprint names the alert.

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::config::{RuleConfig, Severity};
use crate::sql::QueryFailed;

/// Where a rule's rows come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A query over the lake.
    Sql(String),
    /// Instances the processor computed itself (SLO burn rates, processor lag).
    Computed(Vec<Instance>),
}

/// A rule ready to evaluate: a configured one or a built-in.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// What the alert book knows the rule by: its name, or for a built-in of several queries
    /// `name/part`.
    pub id: String,
    /// The `alertname` label.
    pub name: String,
    /// Its rows.
    pub source: Source,
    /// Pending this long before firing.
    pub for_: Duration,
    /// The `severity` label, unless a row has a `severity` column.
    pub severity: Severity,
    /// Labels of every instance.
    pub labels: BTreeMap<String, String>,
    /// Annotation templates.
    pub annotations: BTreeMap<String, String>,
    /// The string columns that are labels; `None`: all of them (a configured rule). The
    /// built-ins name theirs, so that text meant for annotations stays out of the identity.
    pub label_columns: Option<&'static [&'static str]>,
}

impl Rule {
    /// A configured rule.
    pub fn from_config(c: &RuleConfig) -> Self {
        Self {
            id: c.name.clone(),
            name: c.name.clone(),
            source: Source::Sql(c.sql.clone()),
            for_: c.for_,
            severity: c.severity,
            labels: c.labels.clone(),
            annotations: c.annotations.clone(),
            label_columns: None,
        }
    }

    /// The instances of `rows`: each row's columns by name, as text (`value` parsed as a
    /// number, `at` as epoch ms).
    pub fn instances(&self, rows: Vec<Row>) -> Vec<Instance> {
        let mut out: Vec<Instance> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for row in rows {
            let mut labels = self.labels.clone();
            labels.extend(
                row.labels
                    .into_iter()
                    .filter(|(k, _)| self.label_columns.is_none_or(|c| c.contains(&k.as_str()))),
            );
            labels.insert("alertname".into(), self.name.clone());
            labels
                .entry("severity".into())
                .or_insert_with(|| self.severity.as_str().into());
            let annotations = self
                .annotations
                .iter()
                .map(|(k, t)| (k.clone(), fill(t, &row.text)))
                .collect();
            let fingerprint = fingerprint(&labels);
            // Two rows of one alert: the first counts.
            if !seen.insert(fingerprint.clone()) {
                continue;
            }
            out.push(Instance {
                fingerprint,
                labels,
                annotations,
                value: row.value,
                at_ms: row.at_ms,
            });
        }
        out
    }
}

/// One row of a rule's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    /// Its non-null string columns.
    pub labels: BTreeMap<String, String>,
    /// Every column as text, for the templates.
    pub text: BTreeMap<String, String>,
    /// The `value` column.
    pub value: Option<f64>,
    /// The `at` column (epoch ms).
    pub at_ms: Option<i64>,
}

/// One alert instance of a rule's evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Hash of the labels: the alert's identity.
    pub fingerprint: String,
    /// Labels, `alertname` and `severity` among them.
    pub labels: BTreeMap<String, String>,
    /// Annotations, filled.
    pub annotations: BTreeMap<String, String>,
    /// The value.
    pub value: Option<f64>,
    /// When the data behind it happened (epoch ms), when the rule says.
    pub at_ms: Option<i64>,
}

fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

/// A number as people read it: whole numbers whole, others to 4 significant digits.
pub fn format_number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 10) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The rows of a rule's answer.
///
/// # Errors
/// When `value` is not a number or `at` not a timestamp.
pub fn rows_of(batches: &[RecordBatch]) -> Result<Vec<Row>, QueryFailed> {
    let mut out = Vec::new();
    let opts = FormatOptions::default().with_null("");
    for b in batches {
        let schema = b.schema();
        let mut strings: Vec<(String, ArrayRef)> = Vec::new();
        let mut value: Option<ArrayRef> = None;
        let mut at: Option<ArrayRef> = None;
        for (f, c) in schema.fields().iter().zip(b.columns()) {
            let name = f.name().as_str();
            if name == "value" {
                if !f.data_type().is_numeric() {
                    return Err(QueryFailed(format!(
                        "the value column must be a number, found {}",
                        f.data_type()
                    )));
                }
                value = Some(cast(c, &DataType::Float64).map_err(|e| QueryFailed(e.to_string()))?);
            } else if name == "at" {
                if !matches!(f.data_type(), DataType::Timestamp(..)) {
                    return Err(QueryFailed(format!(
                        "the at column must be a timestamp, found {}",
                        f.data_type()
                    )));
                }
                let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
                at = Some(cast(c, &ms).map_err(|e| QueryFailed(e.to_string()))?);
            } else if is_string(f.data_type()) {
                strings.push((
                    name.to_string(),
                    cast(c, &DataType::Utf8).map_err(|e| QueryFailed(e.to_string()))?,
                ));
            }
        }
        let formatters: Vec<(String, ArrayFormatter<'_>)> = schema
            .fields()
            .iter()
            .zip(b.columns())
            .filter(|(f, _)| f.name() != "value")
            .filter_map(|(f, c)| Some((f.name().clone(), ArrayFormatter::try_new(c, &opts).ok()?)))
            .collect();
        for row in 0..b.num_rows() {
            let mut r = Row::default();
            for (name, c) in &strings {
                let c = c.as_string::<i32>();
                if !c.is_null(row) {
                    r.labels.insert(name.clone(), c.value(row).to_string());
                }
            }
            for (name, f) in &formatters {
                r.text.insert(name.clone(), f.value(row).to_string());
            }
            if let Some(v) = &value {
                let v = v.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
                if !v.is_null(row) {
                    r.value = Some(v.value(row));
                    r.text.insert("value".into(), format_number(v.value(row)));
                }
            }
            if let Some(a) = &at {
                let a = a.as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>();
                if !a.is_null(row) {
                    r.at_ms = Some(a.value(row));
                }
            }
            // Other numbers read better rounded, too.
            for (f, c) in schema.fields().iter().zip(b.columns()) {
                if f.name() != "value"
                    && matches!(f.data_type(), DataType::Float64 | DataType::Float32)
                {
                    let c = cast(c, &DataType::Float64).map_err(|e| QueryFailed(e.to_string()))?;
                    let c = c.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
                    if !c.is_null(row) {
                        r.text.insert(f.name().clone(), format_number(c.value(row)));
                    }
                }
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// `template` with every `{{ name }}` replaced by the row's `name`; an unknown name stays as it
/// is written, so that the mistake shows.
pub fn fill(template: &str, text: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                let name = after[..close].trim();
                match text.get(name) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[open..open + 2 + close + 2]),
                }
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A stable hash of `labels` (FNV-1a, 64 bits, hex): the alert's identity across evaluations,
/// restarts and instances.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xfe]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn rows_become_labelled_instances_with_filled_annotations() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("service", DataType::Utf8, true),
                Field::new("value", DataType::Float64, true),
                Field::new("n", DataType::Int64, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("checkout"),
                    Some("search"),
                    None,
                ])),
                Arc::new(Float64Array::from(vec![612.345678, 501.0, 1.0])),
                Arc::new(Int64Array::from(vec![10, 20, 30])),
            ],
        )
        .unwrap();
        let rule = Rule {
            id: "P99High".into(),
            name: "P99High".into(),
            source: Source::Sql(String::new()),
            for_: Duration::ZERO,
            severity: Severity::Critical,
            labels: BTreeMap::from([("team".into(), "payments".into())]),
            annotations: BTreeMap::from([(
                "summary".into(),
                "p99 of {{ service }} is {{value}} ms over {{ n }} ({{ nope }})".into(),
            )]),
            label_columns: None,
        };
        let got = rule.instances(rows_of(&[batch]).unwrap());
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].labels["service"], "checkout");
        assert_eq!(got[0].labels["alertname"], "P99High");
        assert_eq!(got[0].labels["severity"], "critical");
        assert_eq!(got[0].labels["team"], "payments");
        assert_eq!(
            got[0].annotations["summary"],
            "p99 of checkout is 612.3 ms over 10 ({{ nope }})"
        );
        assert_eq!(got[0].value, Some(612.345678));
        assert!(!got[2].labels.contains_key("service"));
        assert_ne!(got[0].fingerprint, got[1].fingerprint);
        assert_eq!(got[0].fingerprint, fingerprint(&got[0].labels));
    }

    #[test]
    fn a_value_that_is_not_a_number_is_refused() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("value", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["x"]))],
        )
        .unwrap();
        assert!(rows_of(&[batch])
            .unwrap_err()
            .0
            .contains("must be a number"));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(format_number(1500.0), "1500");
        assert_eq!(format_number(612.345678), "612.3");
        assert_eq!(format_number(0.0123456), "0.01235");
        assert_eq!(format_number(14.4), "14.4");
    }
}
