//! Cumulative histogram points turned into deltas per series, with the state this needs kept
//! exactly once.
//!
//! A cumulative point counts every value since its start time; `metric_histograms` holds what
//! each point adds to its series' previous point, so that rows add up over any window. A series
//! restarts (its counts begin again) when its start time changes or its count goes down; its
//! first point, or its first after a restart, is the delta of everything since its start. A
//! point that is not after the series' previous one (a redelivered request, or one out of
//! order) is refused rather than counted twice.
//!
//! The state is each series' last cumulative point, per Kafka partition: every batch sets the
//! state of the series it changed in the same lake commit as its rows and offsets, so a restart
//! or a rebalance resumes a partition with the state that matches its offset. A series'
//! cumulative points must therefore reach one partition (the Collector's Kafka exporter does so
//! with `partition_metrics_by_resource_attributes`, or a topic of one partition).

use std::collections::{BTreeMap, HashMap};

use opslake_schemas::{HistogramBuckets, HistogramEvent, Temporality};
use serde::{Deserialize, Serialize};

/// Prefix of the lake state keys of cumulative series.
const STATE_PREFIX: &str = "ingest.otlp_cumulative/";

/// The lake state key prefix of one partition's series.
pub(crate) fn partition_prefix(topic: &str, partition: i32) -> String {
    format!("{STATE_PREFIX}{topic}/{partition}/")
}

/// A series' last cumulative point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LastPoint {
    start_ns: u64,
    time_ns: u64,
    count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sum: Option<f64>,
    buckets: HistogramBuckets,
}

impl LastPoint {
    pub(crate) fn of(p: &HistogramEvent) -> Self {
        Self {
            start_ns: p.start_time_ns,
            time_ns: p.time_ns,
            count: p.count,
            sum: p.sum,
            buckets: p.buckets.clone(),
        }
    }
}

/// The last points of one partition's cumulative series, by series key, and the newest point
/// time seen among them (the clock their expiry is judged by: event time, so a replay expires
/// what the first run expired).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PartitionSeries {
    points: HashMap<String, LastPoint>,
    newest_ns: u64,
}

impl PartitionSeries {
    /// The last point of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&LastPoint> {
        self.points.get(key)
    }

    /// Whether `key` is a series of this partition.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.points.contains_key(key)
    }

    /// Series held.
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }

    /// Records `now` as the last point of `key`, and its lake state entry in `state`.
    pub(crate) fn set(
        &mut self,
        prefix: &str,
        key: String,
        now: LastPoint,
        state: &mut BTreeMap<String, serde_json::Value>,
    ) {
        self.newest_ns = self.newest_ns.max(now.time_ns);
        state.insert(
            format!("{prefix}{key}"),
            serde_json::to_value(&now).unwrap_or(serde_json::Value::Null),
        );
        self.points.insert(key, now);
    }

    /// Forgets the series without a point for `ttl` before the newest point of the partition,
    /// removing their lake state entries through `state` (a `null` removes a key); returns how
    /// many. A series that sends again later starts over: its next point counts whole, as
    /// after a restart of its exporter.
    pub(crate) fn expire(
        &mut self,
        prefix: &str,
        ttl: std::time::Duration,
        state: &mut BTreeMap<String, serde_json::Value>,
    ) -> usize {
        let ttl_ns = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        let before = self.newest_ns.saturating_sub(ttl_ns);
        if before == 0 {
            return 0;
        }
        let old: Vec<String> = self
            .points
            .iter()
            .filter(|(_, p)| p.time_ns < before)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &old {
            self.points.remove(k);
            state.insert(format!("{prefix}{k}"), serde_json::Value::Null);
        }
        old.len()
    }
}

/// Reads one partition's series from the lake state entries under its prefix; entries that do
/// not parse are left out (their series start again).
pub(crate) fn load<'a>(
    prefix: &str,
    entries: impl Iterator<Item = (&'a String, &'a serde_json::Value)>,
) -> PartitionSeries {
    let points: HashMap<String, LastPoint> = entries
        .filter_map(|(k, v)| {
            let series = k.strip_prefix(prefix)?;
            let last: LastPoint = serde_json::from_value(v.clone()).ok()?;
            Some((series.to_string(), last))
        })
        .collect();
    let newest_ns = points.values().map(|p| p.time_ns).max().unwrap_or(0);
    PartitionSeries { points, newest_ns }
}

/// What a point of a series becomes: the delta to store (`None`: no value counted since the
/// previous point) and the series' new last point (`None` for a delta point, which keeps no
/// state).
pub(crate) type Step = (Option<HistogramEvent>, Option<LastPoint>);

/// The step of point `p` of a series whose last point is `last`.
///
/// # Errors
/// When the point is not after the series' previous point.
pub(crate) fn step(last: Option<&LastPoint>, p: &HistogramEvent) -> Result<Step, String> {
    if p.temporality == Temporality::Delta {
        return Ok(((p.count > 0).then(|| p.clone()), None));
    }
    let delta = delta(last, p)?;
    Ok((delta.filter(|d| d.count > 0), Some(LastPoint::of(p))))
}

/// The change from `last` to the cumulative point `p` of one series.
///
/// # Errors
/// When `p` is not after `last`.
pub(crate) fn delta(
    last: Option<&LastPoint>,
    p: &HistogramEvent,
) -> Result<Option<HistogramEvent>, String> {
    let whole = || {
        Some(HistogramEvent {
            temporality: Temporality::Delta,
            ..p.clone()
        })
    };
    let Some(last) = last else { return Ok(whole()) };
    if p.start_time_ns != last.start_ns || p.count < last.count {
        return Ok(whole());
    }
    if p.time_ns <= last.time_ns {
        return Err(format!(
            "cumulative point at {} ns is not after its series' previous point at {} ns (a repeat or out of order)",
            p.time_ns, last.time_ns
        ));
    }
    let Some(buckets) = subtract(&p.buckets, &last.buckets) else {
        return Ok(whole());
    };
    Ok(Some(HistogramEvent {
        start_time_ns: last.time_ns,
        temporality: Temporality::Delta,
        count: p.count - last.count,
        sum: p.sum.zip(last.sum).map(|(a, b)| a - b),
        // The extremes of the interval are not known from two cumulative points.
        min: None,
        max: None,
        buckets,
        ..p.clone()
    }))
}

/// `now − before` bucket by bucket; `None` when the two do not line up (another layout, or a
/// count that went down: the series restarted).
fn subtract(now: &HistogramBuckets, before: &HistogramBuckets) -> Option<HistogramBuckets> {
    match (now, before) {
        (
            HistogramBuckets::Explicit { bounds, counts },
            HistogramBuckets::Explicit {
                bounds: b0,
                counts: c0,
            },
        ) => {
            if bounds != b0 || counts.len() != c0.len() {
                return None;
            }
            let counts = counts
                .iter()
                .zip(c0)
                .map(|(a, b)| a.checked_sub(*b))
                .collect::<Option<Vec<u64>>>()?;
            Some(HistogramBuckets::Explicit {
                bounds: bounds.clone(),
                counts,
            })
        }
        (
            HistogramBuckets::Exponential {
                scale,
                zero_count,
                zero_threshold,
                positive_offset,
                positive,
                negative_offset,
                negative,
            },
            HistogramBuckets::Exponential {
                scale: s0,
                zero_count: z0,
                zero_threshold: t0,
                positive_offset: po0,
                positive: p0,
                negative_offset: no0,
                negative: n0,
            },
        ) => {
            // An SDK lowers a cumulative histogram's scale as its range grows, never raises it.
            if scale > s0 || zero_threshold != t0 {
                return None;
            }
            let shift = u32::try_from(s0 - scale).ok()?;
            let positive =
                subtract_buckets(*positive_offset, positive, &downscale(*po0, p0, shift))?;
            let negative =
                subtract_buckets(*negative_offset, negative, &downscale(*no0, n0, shift))?;
            Some(HistogramBuckets::Exponential {
                scale: *scale,
                zero_count: zero_count.checked_sub(*z0)?,
                zero_threshold: *zero_threshold,
                positive_offset: *positive_offset,
                positive,
                negative_offset: *negative_offset,
                negative,
            })
        }
        _ => None,
    }
}

/// Exponential buckets `(offset, counts)` at a scale `shift` lower: bucket `i` becomes
/// `i >> shift`. As a map of index to count.
fn downscale(offset: i32, counts: &[u64], shift: u32) -> BTreeMap<i32, u64> {
    let mut out = BTreeMap::new();
    for (i, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let index = offset.saturating_add(i32::try_from(i).unwrap_or(i32::MAX));
        *out.entry(index >> shift.min(31)).or_insert(0) += c;
    }
    out
}

/// `counts` (from `offset`) minus `before`; `None` when a count would go below zero or a
/// bucket of `before` lies outside `counts`.
fn subtract_buckets(offset: i32, counts: &[u64], before: &BTreeMap<i32, u64>) -> Option<Vec<u64>> {
    let mut out = counts.to_vec();
    for (&index, &c) in before {
        let i = usize::try_from(i64::from(index) - i64::from(offset)).ok()?;
        let slot = out.get_mut(i)?;
        *slot = slot.checked_sub(c)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
