//! The capacity job's method on labelled series, for `bench/leaks.py`: reads series as JSON
//! lines on stdin (`{"id", "kind": "memory"|"other", "limit": number|null, "now": minute,
//! "rows": [[minute, count, sum, min, max, version], ...]}`, minutes since an origin), streams
//! each through a [`SeriesState`] as the job does (every hour its minutes cross judged, the
//! verdict kept), forecasts at the end, and prints one JSON line per series.
//!
//! `--cycle N` instead times an hour of the job's minute cycles over N series of a week of
//! history each (a minute of every series folded per cycle, the series whose hour closes then
//! judged and forecast) and prints the worst and mean cycle, seconds.
//!
//! ```text
//! python3 bench/leaks.py            # builds and runs this example
//! cargo run --release -p opslake-processor --example capacity_bench -- --cycle 10000
//! ```

use std::io::{BufRead, Write};
use std::time::Instant;

use opslake_processor::capacity::{
    current_leak, forecast, judged_at, update, LeakChange, SeriesState,
};
use serde_json::{json, Value};

/// 2026-01-01T00:00:00Z: minute 0 of a series (a day boundary, so daily shapes line up).
const ORIGIN_MS: i64 = 1_767_225_600_000;
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const HORIZON_MS: i64 = 30 * 24 * HOUR_MS;

fn ms(minute: f64) -> i64 {
    ORIGIN_MS + (minute * MINUTE_MS as f64).round() as i64
}

fn minute(ms: i64) -> f64 {
    (ms - ORIGIN_MS) as f64 / MINUTE_MS as f64
}

/// The job's fold of one series' minutes: each hour its minutes cross is judged (`update`),
/// as `jobs/capacity` does; returns the state and the hours its verdict was "leaking".
fn stream(rows: &[Value], memory: bool) -> (SeriesState, Vec<i64>, u32) {
    let mut state = SeriesState::default();
    let mut leaking_hours = Vec::new();
    let mut changes = 0;
    let mut last_hour: Option<i64> = None;
    for r in rows {
        let Some(r) = r.as_array() else { continue };
        let f = |i: usize| r.get(i).and_then(Value::as_f64).unwrap_or(f64::NAN);
        let at = ms(f(0).floor());
        let hour = at.div_euclid(HOUR_MS);
        if last_hour.is_some_and(|h| hour > h) && memory {
            if update(&mut state, hour * HOUR_MS).is_some() {
                changes += 1;
            }
            if current_leak(&state).is_some() {
                leaking_hours.push(hour);
            }
        }
        last_hour = Some(hour);
        let count = f(1).max(1.0);
        state.observe(
            at,
            f(3),
            f(4),
            f(2) / count,
            count as u64,
            r.get(5).and_then(Value::as_str),
        );
    }
    (state, leaking_hours, changes)
}

fn judge(series: &Value) -> Value {
    let memory = series["kind"] == "memory";
    let rows = series["rows"].as_array().cloned().unwrap_or_default();
    let (mut state, leaking_hours, _) = stream(&rows, memory);
    let now = ms(series["now"].as_f64().unwrap_or(0.0)) + MINUTE_MS;
    let now_hour = now.div_euclid(HOUR_MS) * HOUR_MS;
    if memory {
        let _: Option<LeakChange> = update(&mut state, now_hour);
    }
    let leak = current_leak(&state);
    let f = series["limit"]
        .as_f64()
        .map(|limit| forecast(&state, limit, now_hour, HORIZON_MS, leak.as_ref()));
    json!({
        "id": series["id"],
        "leaking": leak.is_some(),
        "since": leak.as_ref().and_then(|l| l.since_ms).map(minute),
        "restarts": leak.as_ref().map_or(0, |l| l.restarts),
        "growth_pct_per_day": leak.as_ref().map_or(0.0, |l| l.growth_pct_per_day),
        "method": leak.as_ref().map_or("none", |l| l.method),
        "first_leaking_hour": leaking_hours.first().map(|h| minute(h * HOUR_MS) / 60.0),
        "exhausted_at": f.as_ref().and_then(|f| f.exhausted_at_ms).map(minute),
        "exhausted_at_low": f.as_ref().and_then(|f| f.exhausted_low_ms).map(minute),
        "exhausted_at_high": f.as_ref().and_then(|f| f.exhausted_high_ms).map(minute),
        "forecast_method": f.as_ref().map(|f| f.method),
    })
}

/// The job's minute cycles over `n` series of a week of minutes each, for an hour: each
/// cycle folds a minute of every series and judges (and forecasts) the series whose hour
/// closes in that minute (`judged_at` spreads them over the hour). Returns (worst cycle,
/// mean cycle), seconds.
fn cycle(n: usize) -> (f64, f64) {
    let week = 7 * 24 * 60;
    let level = |i: usize, m: i64| {
        let x = (i as f64 * 0.37 + m as f64 * 0.011).sin();
        5.0e8
            * (1.0
                + 0.05 * x
                + if i.is_multiple_of(10) {
                    m as f64 / 1.0e5
                } else {
                    0.0
                })
    };
    let hashes: Vec<u64> = (0..n as u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    // A week of history, the last closed hour already judged: the steady state.
    let mut states: Vec<SeriesState> = (0..n)
        .map(|i| {
            let mut s = SeriesState::default();
            for m in 0..week {
                let v = level(i, m);
                s.observe(ms(m as f64), v, v * 1.04, v * 1.02, 3, Some("1.0.0"));
            }
            update(
                &mut s,
                judged_at(ms(week as f64), hashes[i]).div_euclid(HOUR_MS) * HOUR_MS,
            );
            s
        })
        .collect();
    let (mut worst, mut total) = (0.0f64, 0.0);
    for m in week..week + 60 {
        let start = Instant::now();
        let now = ms((m + 1) as f64);
        for (i, s) in states.iter_mut().enumerate() {
            let v = level(i, m);
            s.observe(ms(m as f64), v, v * 1.04, v * 1.02, 3, Some("1.0.0"));
            let at = judged_at(now, hashes[i]).div_euclid(HOUR_MS) * HOUR_MS;
            if update(s, at).is_some() || (m - week) == (hashes[i] % 60) as i64 {
                let leak = current_leak(s);
                let _ = forecast(s, 1.0e9, at, HORIZON_MS, leak.as_ref());
            }
        }
        let took = start.elapsed().as_secs_f64();
        worst = worst.max(took);
        total += took;
    }
    (worst, total / 60.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--cycle") {
        let n = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(10_000);
        let (worst, mean) = cycle(n);
        println!(
            "{}",
            json!({"series": n, "worst_seconds": worst, "mean_seconds": mean})
        );
        return;
    }
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(series) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let _ = writeln!(out, "{}", judge(&series));
    }
}
