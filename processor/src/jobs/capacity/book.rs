//! The job's state document: each resource series' bounded state, and the latest value of each
//! limit gauge.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray, MapArray};
use datafusion::arrow::datatypes::TimestampMillisecondType;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::rows::{ForecastRow, LeakRow, SeriesId};
use super::{HOUR_MS, MINUTE_MS};
use crate::capacity::{
    current_leak, forecast, update, CapacityConfig, LeakChange, Limit, ResourceKind, SeriesState,
};
use crate::columns::{column, map_entries, strings, timestamps};

/// Most series the job tracks; a new series beyond them is not tracked (counted in the log).
const MAX_SERIES: usize = 20_000;
/// A series not seen for this long is forgotten.
const FORGET_MS: i64 = 169 * HOUR_MS;
/// A row further than this ahead of the clock is ignored (one would push out the history).
const FUTURE_SLACK_MS: i64 = 5 * MINUTE_MS;

/// One series the job tracks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tracked {
    pub(crate) id: SeriesId,
    pub(crate) kind: ResourceKind,
    pub(crate) state: SeriesState,
    /// The newest closed hour a forecast was made at.
    #[serde(default)]
    pub(crate) forecast_hour: Option<i64>,
    /// Its unit is percent: a ratio's limit of 1.0 is 100.
    #[serde(default)]
    pub(crate) percent: bool,
}

/// Every tracked series by its `series` key, and the latest value of each limit gauge by its
/// series key.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Book {
    series: BTreeMap<String, Tracked>,
    limits: BTreeMap<String, f64>,
}

/// The rows of one series in one minute, folded.
#[derive(Debug, Clone, Default)]
pub(crate) struct MinuteAgg {
    id: Option<SeriesId>,
    kind: Option<ResourceKind>,
    percent: bool,
    min: f64,
    max: f64,
    sum: f64,
    count: u64,
    version: Option<String>,
}

impl Book {
    /// Series tracked.
    pub(crate) fn len(&self) -> usize {
        self.series.len()
    }

    /// The gauge rows of `batch` that are resources (into `minutes`, by series key and minute)
    /// or limits (their newest value, into the book).
    pub(crate) fn gather(
        &mut self,
        batch: &RecordBatch,
        config: &CapacityConfig,
        now_ms: i64,
        minutes: &mut BTreeMap<String, BTreeMap<i64, MinuteAgg>>,
    ) -> Result<(), ArrowError> {
        let ts = timestamps(batch, "timestamp")?;
        let ts = ts.as_primitive::<TimestampMillisecondType>();
        let (service, name, kind) = (
            strings(batch, "service")?,
            strings(batch, "name")?,
            strings(batch, "kind")?,
        );
        let (service, name, kind) = (
            service.as_string::<i32>(),
            name.as_string::<i32>(),
            kind.as_string::<i32>(),
        );
        let (host, version) = (strings(batch, "host")?, strings(batch, "version")?);
        let (host, version) = (host.as_string::<i32>(), version.as_string::<i32>());
        let unit = strings(batch, "unit")?;
        let unit = unit.as_string::<i32>();
        let value = column(batch, "value")?;
        let value = value.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        let labels = column(batch, "labels")?;
        let labels: &MapArray = labels
            .as_map_opt()
            .ok_or_else(|| ArrowError::SchemaError("labels is not a map".into()))?;
        let mut pairs = Vec::new();
        for row in 0..batch.num_rows() {
            if kind.value(row) != "gauge" || ts.is_null(row) || value.is_null(row) {
                continue;
            }
            let (t, v) = (ts.value(row), value.value(row));
            if t > now_ms + FUTURE_SLACK_MS || !v.is_finite() {
                continue;
            }
            let gauge = name.value(row);
            let limit_of = config.is_limit_metric(gauge);
            let resource = config.resource(gauge);
            if !limit_of && resource.is_none() {
                continue;
            }
            map_entries(labels, row, &mut pairs);
            let mut sorted: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect();
            sorted.sort();
            let id = SeriesId {
                service: service.value(row).to_string(),
                name: gauge.to_string(),
                host: (!host.is_null(row)).then(|| host.value(row).to_string()),
                labels: sorted,
            };
            let key = id.key();
            if limit_of {
                if v > 0.0 {
                    self.limits.insert(key.clone(), v);
                }
                if resource.is_none() {
                    continue;
                }
            }
            let minute = t.div_euclid(MINUTE_MS) * MINUTE_MS;
            let agg = minutes.entry(key).or_default().entry(minute).or_default();
            if agg.count == 0 {
                agg.id = Some(id);
                agg.kind = resource.map(|r| r.kind);
                agg.percent =
                    !unit.is_null(row) && matches!(unit.value(row), "%" | "percent" | "pct");
                (agg.min, agg.max) = (v, v);
            }
            agg.min = agg.min.min(v);
            agg.max = agg.max.max(v);
            agg.sum += v;
            agg.count += 1;
            if !version.is_null(row) {
                agg.version = Some(version.value(row).to_string());
            }
        }
        Ok(())
    }

    /// Folds the gathered minutes into their series' states, in time order, judging each hour
    /// a series' minutes cross (the leak rows found on the way). The newest minute of all is
    /// left for the next cycle (it may still be filling), and a minute a series already folded
    /// is skipped. Returns that newest minute (epoch ms; 0 without data) and the rows.
    pub(crate) fn fold(
        &mut self,
        minutes: BTreeMap<String, BTreeMap<i64, MinuteAgg>>,
    ) -> (i64, Vec<LeakRow>) {
        let newest = minutes
            .values()
            .filter_map(|m| m.keys().next_back().copied())
            .max()
            .unwrap_or(0);
        let mut leaks = Vec::new();
        for (key, mins) in minutes {
            for (minute, agg) in mins {
                if minute >= newest {
                    break;
                }
                let Some(t) = self.track(&key, &agg) else {
                    break;
                };
                let last = t.state.last_seen_ms();
                if last.is_some_and(|l| minute <= l) {
                    continue;
                }
                if last.is_some_and(|l| minute.div_euclid(HOUR_MS) > l.div_euclid(HOUR_MS)) {
                    leaks.extend(judge_hour(t, minute.div_euclid(HOUR_MS) * HOUR_MS));
                }
                let mean = agg.sum / agg.count.max(1) as f64;
                t.state.observe(
                    minute,
                    agg.min,
                    agg.max,
                    mean,
                    agg.count,
                    agg.version.as_deref(),
                );
            }
        }
        (newest, leaks)
    }

    /// The series of `key`, tracked from now on when it is new and the book has room.
    fn track(&mut self, key: &str, agg: &MinuteAgg) -> Option<&mut Tracked> {
        if !self.series.contains_key(key) {
            let (Some(id), Some(kind)) = (agg.id.clone(), agg.kind) else {
                return None;
            };
            if self.series.len() >= MAX_SERIES {
                return None;
            }
            self.series.insert(
                key.to_string(),
                Tracked {
                    id,
                    kind,
                    state: SeriesState::default(),
                    forecast_hour: None,
                    percent: agg.percent,
                },
            );
        }
        self.series.get_mut(key)
    }

    /// At the data's newest minute `now_ms`: every series judged for the hour just closed,
    /// series unseen for a week forgotten, and a forecast for each series with a limit whose
    /// newest closed hour moved since its last one.
    pub(crate) fn close(
        &mut self,
        config: &CapacityConfig,
        now_ms: i64,
    ) -> (Vec<LeakRow>, Vec<ForecastRow>) {
        let (mut leaks, mut forecasts) = (Vec::new(), Vec::new());
        if now_ms <= 0 {
            return (leaks, forecasts);
        }
        let Book { series, limits } = self;
        series.retain(|_, t| {
            t.state
                .last_seen_ms()
                .is_some_and(|l| l >= now_ms - FORGET_MS)
        });
        let hour_start = now_ms.div_euclid(HOUR_MS) * HOUR_MS;
        let closed = hour_start / HOUR_MS - 1;
        for t in series.values_mut() {
            leaks.extend(judge_hour(t, hour_start));
            if t.forecast_hour.is_some_and(|h| h >= closed) {
                continue;
            }
            let limit = match config.resource(&t.id.name).map(|r| r.limit) {
                // A utilization in percent reaches its 1.0 at 100.
                Some(Limit::Fixed(l)) if t.percent && l == 1.0 => Some(100.0),
                Some(Limit::Fixed(l)) => Some(l),
                Some(Limit::Metric(m)) => limits.get(&t.id.with_name(&m).key()).copied(),
                _ => None,
            };
            let Some(limit) = limit else {
                continue;
            };
            t.forecast_hour = Some(closed);
            let leak = current_leak(&t.state);
            let f = forecast(
                &t.state,
                limit,
                hour_start,
                config.horizon_ms(),
                leak.as_ref(),
            );
            if f.current.is_finite() {
                forecasts.push(ForecastRow {
                    computed_at_ms: hour_start,
                    id: t.id.clone(),
                    limit,
                    forecast: f,
                });
            }
        }
        (leaks, forecasts)
    }
}

/// The leak row the hour closed at `at_ms` brings a memory series, if any.
fn judge_hour(t: &mut Tracked, at_ms: i64) -> Option<LeakRow> {
    if t.kind != ResourceKind::Memory {
        return None;
    }
    let (verdict, cleared) = match update(&mut t.state, at_ms)? {
        LeakChange::Started(v) | LeakChange::Continues(v) => (v, false),
        LeakChange::Cleared(v) => (v, true),
    };
    Some(LeakRow {
        detected_at_ms: at_ms,
        id: t.id.clone(),
        verdict,
        cleared,
    })
}
