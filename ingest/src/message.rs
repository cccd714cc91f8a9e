//! One Kafka message decoded into what the batch takes from it, apart from the batch: rows,
//! histogram rows with their sketches, refusals, and the cumulative series it moves.
//!
//! This is ingest's panic boundary (ARCHITECTURE, "Lines of defence"): decoding runs on input
//! anyone can send, so [`decode_guarded`] catches a panic while decoding one message and turns
//! the message into one refusal naming it. Nothing of the message has touched the batch or the
//! series state by then, so the message is dead-lettered whole, its offset is covered like any
//! other, and ingest goes on with the next one.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use opslake_schemas::series::write_series_key;
use opslake_schemas::{Event, HistogramEvent, Refusal, Temporality};

use crate::config::TopicKind;
use crate::cumulative::{step, LastPoint, PartitionSeries};
use crate::metrics::METRICS;

/// What one message becomes.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Accepted rows, with their `_index`.
    pub(crate) events: Vec<(u32, Event)>,
    /// Accepted histogram rows (deltas), with their `_index` and sketch.
    pub(crate) histograms: Vec<(u32, HistogramEvent, Vec<u8>)>,
    /// Refused items.
    pub(crate) refused: Vec<Refusal>,
    /// The cumulative series' new last points, in order.
    pub(crate) series: Vec<(String, LastPoint)>,
    /// Series new to the partition, in order (for the check of series split over partitions).
    pub(crate) new_series: Vec<String>,
    /// Items accepted (histogram points with nothing new since the last one included).
    pub(crate) accepted: usize,
    /// Approximate bytes it decoded into.
    pub(crate) bytes: usize,
}

/// Limits of the cumulative series state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeriesLimit {
    /// Most cumulative series one partition keeps.
    pub(crate) max_series: usize,
}

/// [`decode`] behind the panic boundary: a panic becomes one refusal of the whole message.
pub(crate) fn decode_guarded(
    kind: TopicKind,
    payload: Option<&[u8]>,
    series: &PartitionSeries,
    limit: SeriesLimit,
) -> Outcome {
    match catch_unwind(AssertUnwindSafe(|| decode(kind, payload, series, limit))) {
        Ok(outcome) => outcome,
        Err(panic) => {
            METRICS.decode_panics.inc();
            let what = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".to_string());
            tracing::error!(
                panic = what,
                "decoding a message panicked; it goes to the dead letters and ingest goes on"
            );
            Outcome {
                refused: vec![Refusal {
                    index: None,
                    reason: format!(
                        "opslake could not decode this message (a defect in opslake, please \
                         report it: {what}); it was set aside so that ingest goes on"
                    ),
                    element: None,
                }],
                bytes: payload.map_or(0, <[u8]>::len),
                ..Outcome::default()
            }
        }
    }
}

/// Decodes one message value (`None`: the message has none) of a topic of `kind`; `series` is
/// its partition's cumulative series as of the message.
pub(crate) fn decode(
    kind: TopicKind,
    payload: Option<&[u8]>,
    series: &PartitionSeries,
    limit: SeriesLimit,
) -> Outcome {
    let Some(payload) = payload else {
        return Outcome {
            refused: vec![Refusal {
                index: None,
                reason: "message has no value".to_string(),
                element: None,
            }],
            ..Outcome::default()
        };
    };
    let decoded = kind.decode(payload);
    let mut out = Outcome {
        bytes: payload.len(),
        accepted: decoded.events.len(),
        refused: decoded.refused,
        ..Outcome::default()
    };
    out.bytes += decoded
        .events
        .iter()
        .map(|(_, e)| e.approx_bytes())
        .sum::<usize>();
    out.events = decoded.events;
    if decoded.histograms.is_empty() {
        return out;
    }
    // Series this message moved, over the partition's (a series may have several points in one
    // request).
    let mut moved: HashMap<String, usize> = HashMap::new();
    let mut key = Vec::new();
    for (index, h) in decoded.histograms {
        write_series_key(
            &mut key,
            &h.service,
            &h.name,
            h.version.as_deref(),
            &h.labels,
        );
        let series_key = String::from_utf8_lossy(&key).into_owned();
        let last = moved
            .get(&series_key)
            .map(|&i| &out.series[i].1)
            .or_else(|| series.get(&series_key));
        let is_new = last.is_none() && h.temporality == Temporality::Cumulative;
        if is_new && series.len() + out.new_series.len() >= limit.max_series {
            out.refused.push(Refusal {
                index: Some(index),
                reason: format!(
                    "metric {:?} of service {:?}: the partition already keeps {} cumulative \
                     series (ingest.otlp_max_series); send delta temporality, or raise the limit",
                    h.name, h.service, limit.max_series
                ),
                element: None,
            });
            continue;
        }
        match step(last, &h) {
            Ok((delta, now)) => {
                out.accepted += 1;
                if let Some(now) = now {
                    if is_new {
                        out.new_series.push(series_key.clone());
                    }
                    match moved.get(&series_key) {
                        Some(&i) => out.series[i].1 = now,
                        None => {
                            moved.insert(series_key, out.series.len());
                            out.series.push((key_string(&key), now));
                        }
                    }
                }
                if let Some(delta) = delta {
                    let sketch = delta.sketch().to_bytes();
                    out.bytes += delta.approx_bytes() + sketch.len();
                    out.histograms.push((index, delta, sketch));
                }
            }
            // The message is the dead letter's payload (once per message).
            Err(reason) => out.refused.push(Refusal {
                index: Some(index),
                reason: format!("metric {:?} of service {:?}: {reason}", h.name, h.service),
                element: None,
            }),
        }
    }
    out
}

fn key_string(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}
