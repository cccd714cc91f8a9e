//! Which way a series' moves are bad: a rise of latency or of an error rate is bad news, a fall
//! of throughput is, and a gauge (CPU, queue depth) may be bad either way. Anomalies are only
//! the moves the bad way; a change point is a regression the bad way and an improvement the
//! other.
//!
//! Set per metric name in `processor.detect.directions` (an exact name, or a prefix ending in
//! `*`); otherwise guessed from the words of the name (see [`Directions::of`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which way a series' moves are bad.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A rise is bad (latency, error rates).
    Up,
    /// A fall is bad (throughput).
    Down,
    /// Either way (gauges, and series whose meaning is not known).
    #[default]
    Both,
}

impl Direction {
    /// Whether a move from `expected` to `observed` is the bad way.
    pub fn is_bad(self, expected: f64, observed: f64) -> bool {
        match self {
            Self::Up => observed > expected,
            Self::Down => observed < expected,
            Self::Both => true,
        }
    }

    /// What a change from `before` to `after` is for a metric of this direction: `regression`,
    /// `improvement`, or `change` when either way may be bad.
    pub fn judge_change(self, before: f64, after: f64) -> &'static str {
        match self {
            Self::Both => "change",
            _ if self.is_bad(before, after) => "regression",
            _ => "improvement",
        }
    }
}

/// Words of a metric name that say a rise is bad.
const UP_WORDS: &[&str] = &[
    "duration", "latency", "delay", "lag", "error", "errors", "failure", "failures", "fail",
    "failed", "timeout", "timeouts", "rtt", "ttfb", "wait", "queue",
];
/// Words of a metric name that say a fall is bad.
const DOWN_WORDS: &[&str] = &[
    "throughput",
    "rps",
    "qps",
    "tps",
    "ops",
    "availability",
    "success",
    "hits",
    "apdex",
];

/// The direction of each metric name, as configured (`processor.detect.directions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Directions(BTreeMap<String, Direction>);

impl Directions {
    /// Directions from (name or `prefix*`, direction) pairs.
    pub fn new<S: Into<String>>(pairs: impl IntoIterator<Item = (S, Direction)>) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The direction of metric `name`: its configured name, else the longest configured prefix
    /// (`http.*`), else from the words of the name (split at anything not a letter or digit):
    /// up for `duration`, `latency`, `delay`, `lag`, `error(s)`, `fail(ed|ure|ures)`,
    /// `timeout(s)`, `rtt`, `ttfb`, `wait`, `queue`; down for `throughput`, `rps`, `qps`, `tps`,
    /// `ops`, `availability`, `success`, `hits`, `apdex`; both otherwise (and when words of
    /// both kinds appear).
    pub fn of(&self, name: &str) -> Direction {
        if let Some(d) = self.0.get(name) {
            return *d;
        }
        let prefixed = self
            .0
            .iter()
            .filter_map(|(k, d)| k.strip_suffix('*').map(|p| (p, d)))
            .filter(|(p, _)| name.starts_with(p))
            .max_by_key(|(p, _)| p.len());
        if let Some((_, d)) = prefixed {
            return *d;
        }
        let lower = name.to_ascii_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let up = words.iter().any(|w| UP_WORDS.contains(w));
        let down = words.iter().any(|w| DOWN_WORDS.contains(w));
        match (up, down) {
            (true, false) => Direction::Up,
            (false, true) => Direction::Down,
            _ => Direction::Both,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_which_way_is_bad_unless_configured() {
        let d = Directions::new([
            ("jobs.done", Direction::Down),
            ("batch.*", Direction::Up),
            ("batch.rows.*", Direction::Down),
        ]);
        assert_eq!(d.of("http.server.duration"), Direction::Up);
        assert_eq!(d.of("db_query_latency_ms"), Direction::Up);
        assert_eq!(d.of("errors"), Direction::Up);
        assert_eq!(d.of("benchmark.throughput"), Direction::Down);
        assert_eq!(d.of("cpu.utilization"), Direction::Both);
        // "uptime" is not "time", "lagoon" is not "lag".
        assert_eq!(d.of("host.uptime"), Direction::Both);
        assert_eq!(d.of("lagoon.depth"), Direction::Both);
        assert_eq!(d.of("jobs.done"), Direction::Down);
        assert_eq!(d.of("batch.size"), Direction::Up);
        assert_eq!(d.of("batch.rows.per_second"), Direction::Down);
        assert_eq!(Direction::Up.judge_change(10.0, 12.0), "regression");
        assert_eq!(Direction::Up.judge_change(10.0, 8.0), "improvement");
        assert_eq!(Direction::Down.judge_change(10.0, 8.0), "regression");
        assert_eq!(Direction::Both.judge_change(10.0, 8.0), "change");
    }

    #[test]
    fn directions_read_from_configuration() {
        let d: Directions =
            serde_json::from_str(r#"{"app.score": "down", "queue.*": "both"}"#).unwrap();
        assert_eq!(d.of("app.score"), Direction::Down);
        assert_eq!(d.of("queue.depth"), Direction::Both);
        assert!(serde_json::from_str::<Directions>(r#"{"x": "sideways"}"#).is_err());
    }
}
