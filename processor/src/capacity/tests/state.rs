//! The per-series state: analyses once per closed hour, late and odd input, bounded size.

use super::generate::*;
use crate::capacity::*;

#[test]
fn update_analyses_once_per_closed_hour_with_new_data() {
    let mut state = SeriesState::default();
    for m in 0..(10 * 60) {
        state.observe(START_MS + m * MINUTE_MS, 1.0, 2.0, 1.5, 3, Some("1"));
    }
    let at = START_MS + 10 * HOUR_MS + 5 * MINUTE_MS;
    let _ = update(&mut state, at);
    assert_eq!(state.tracker.analysed_hour, Some((at / HOUR_MS) - 1));
    let before = state.clone();
    assert_eq!(update(&mut state, at + 30 * MINUTE_MS), None);
    assert_eq!(state, before, "a second call in the hour changes nothing");
    // An hour later without new data: looked at, not analysed.
    assert_eq!(update(&mut state, at + HOUR_MS), None);
    assert_eq!(state.tracker.data_hour, before.tracker.data_hour);
    assert_eq!(state.tracker.leaking_runs, before.tracker.leaking_runs);
}

#[test]
fn late_points_fold_into_their_hour_and_change_no_version() {
    let mut state = SeriesState::default();
    for m in 0..180 {
        state.observe(START_MS + m * MINUTE_MS, 10.0, 20.0, 15.0, 1, Some("2.0"));
    }
    state.observe(START_MS + 30 * MINUTE_MS, 5.0, 25.0, 15.0, 1, Some("1.0"));
    let first = state.hours[0];
    assert_eq!((first.min, first.max, first.count), (5.0, 25.0, 61));
    assert_eq!(state.versions.len(), 1);
    // Older than the 168 hours held: ignored.
    state.observe(START_MS + 400 * HOUR_MS, 1.0, 1.0, 1.0, 1, Some("2.0"));
    let held = state.hours.len();
    state.observe(START_MS, 0.0, 0.0, 0.0, 1, Some("2.0"));
    assert_eq!(state.hours.len(), held);
    assert!(state
        .hours
        .iter()
        .all(|h| h.hour > START_MS / HOUR_MS + 200));
}

#[test]
fn rows_of_two_versions_in_one_minute_are_one_deploy() {
    let mut state = SeriesState::default();
    for m in 0..10 {
        state.observe(START_MS + m * MINUTE_MS, 1.0, 1.0, 1.0, 1, Some("1.0"));
    }
    // The deploy's minute holds rows of both versions, the new one first.
    state.observe(START_MS + 10 * MINUTE_MS, 1.0, 1.0, 1.0, 1, Some("2.0"));
    state.observe(START_MS + 10 * MINUTE_MS, 1.0, 1.0, 1.0, 1, Some("1.0"));
    state.observe(START_MS + 11 * MINUTE_MS, 1.0, 1.0, 1.0, 1, Some("2.0"));
    state.observe(START_MS + 12 * MINUTE_MS, 1.0, 1.0, 1.0, 1, None);
    let changes: Vec<(i64, &str)> = state
        .versions
        .iter()
        .map(|c| (c.minute - START_MS / MINUTE_MS, c.version.as_str()))
        .collect();
    assert_eq!(changes, vec![(0, "1.0"), (11, "2.0")]);
    assert_eq!(state.version_at(START_MS / MINUTE_MS + 10), Some("1.0"));
}

#[test]
fn odd_input_neither_panics_nor_poisons_the_state() {
    let mut state = SeriesState::default();
    assert!(!judge(&state, START_MS).leaking);
    assert_eq!(update(&mut state, START_MS), None);
    let f = forecast(&state, 1.0, START_MS, HORIZON_MS, None);
    assert!(f.current.is_nan() && f.exhausted_at_ms.is_none() && f.method == "none");
    let long_version = "é".repeat(1000);
    let odd = [
        (START_MS, f64::NAN, 1.0, 1.0, 1, Some("1")),
        (START_MS, 1.0, f64::INFINITY, 1.0, 1, Some("1")),
        (START_MS, 5.0, 1.0, f64::NAN, u64::MAX, Some("1")),
        (START_MS + 7, 1e300, 1e300, 1e300, u64::MAX, Some("")),
        (
            START_MS + 2 * MINUTE_MS,
            -1e12,
            1e12,
            0.0,
            0,
            Some(long_version.as_str()),
        ),
        (START_MS - 90 * MINUTE_MS, 3.0, 4.0, 3.5, 1, Some("late")),
        (i64::MIN, 1.0, 2.0, 1.5, 3, None),
        (i64::MAX, 1.0, 2.0, 1.5, 3, Some("x")),
        (START_MS + 5 * MINUTE_MS, 1.0, 2.0, 1.5, 3, Some("y")),
    ];
    for (at, min, max, mean, count, version) in odd {
        state.observe(at, min, max, mean, count, version);
        for now in [START_MS, START_MS + 30 * 24 * HOUR_MS, i64::MIN, i64::MAX] {
            let _ = judge(&state, now);
            let _ = update(&mut state, now);
            for limit in [1.0, f64::NAN, -1.0, f64::INFINITY] {
                for horizon in [HORIZON_MS, -1, 0, i64::MAX] {
                    let _ = forecast(&state, limit, now, horizon, None);
                }
            }
        }
    }
    assert!(state.versions.iter().all(|v| v.version.len() <= 128));
    let json = serde_json::to_string(&state).unwrap();
    let back: SeriesState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state);
}

#[test]
fn random_order_and_gaps_keep_the_state_bounded() {
    let mut rng = Rng(99);
    let mut state = SeriesState::default();
    for _ in 0..20_000 {
        let minute = (rng.uniform() * 30.0 * DAY) as i64;
        let v = rng.uniform() * 100.0;
        state.observe(
            START_MS + minute * MINUTE_MS,
            v,
            v + 1.0,
            v + 0.5,
            2,
            Some("v"),
        );
        if rng.uniform() < 0.01 {
            let _ = update(&mut state, START_MS + minute * MINUTE_MS);
        }
    }
    assert!(state.hours.len() <= 168 && state.ten.len() <= 144);
    assert!(state.restarts.len() <= 64 && state.versions.len() <= 64);
    assert!(state.hours.windows(2).all(|w| w[0].hour < w[1].hour));
}

#[test]
fn the_state_survives_json_and_stays_small() {
    let (_, shape, _, _) = leak_shapes().swap_remove(2);
    let g = generate(&Shape { days: 8.0, ..shape });
    let run = stream(&g);
    let json = serde_json::to_string(&run.state).unwrap();
    let back: SeriesState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, run.state);
    assert!(json.len() < 32 * 1024, "{} bytes", json.len());
    assert_eq!(run.state.hours.len(), 168);
}
