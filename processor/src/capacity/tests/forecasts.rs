//! Capacity forecasts against the truth of generated fills.

use super::generate::*;
use crate::capacity::*;

/// (name, shape, whether the limit is reached within 30 days).
fn limit_shapes() -> Vec<(&'static str, Shape, bool)> {
    let d = Shape::disk;
    let ratio = Shape {
        days: 6.0,
        base: 0.45,
        limit: Some(1.0),
        noise: 0.01,
        daily: Some((0.2, 0.37)),
        growth: 0.04,
        clip1: true,
        ..d(1019)
    };
    vec![
        (
            "disk +6 GB/d",
            Shape {
                growth: 6.0 * GB,
                ..d(1015)
            },
            true,
        ),
        (
            "disk +4 GB/d, 2 days left",
            Shape {
                days: 3.0,
                base: 60.0 * GB,
                limit: Some(80.0 * GB),
                growth: 4.0 * GB,
                ..d(1016)
            },
            true,
        ),
        ("utilization with a daily cycle", ratio, true),
        (
            "disk +1 GB/d, 94 days left",
            Shape {
                days: 6.0,
                base: 100.0 * GB,
                limit: Some(200.0 * GB),
                growth: GB,
                ..d(1017)
            },
            false,
        ),
        (
            "flat disk",
            Shape {
                base: 60.0 * GB,
                ..d(1018)
            },
            false,
        ),
    ]
}

/// Checks the forecast at the end of `shape` against the truth: within 10% of the time left,
/// inside its 80% interval.
fn assert_forecast_near_the_truth(name: &str, shape: &Shape) {
    let g = generate(shape);
    let run = stream(&g);
    let limit = shape.limit.unwrap();
    let now = end_ms(&g);
    let f = forecast(
        &run.state,
        limit,
        now,
        HORIZON_MS,
        current_leak(&run.state).as_ref(),
    );
    let truth = ms(g.exhausted.unwrap_or_else(|| panic!("{name}: no truth")));
    let left = (truth - (now - MINUTE_MS)) as f64;
    let at = f
        .exhausted_at_ms
        .unwrap_or_else(|| panic!("{name}: null: {f:?}"));
    let err = (at - truth).abs() as f64 / left;
    assert!(
        err <= 0.10,
        "{name}: error {err:.3} of the time left: {f:?}"
    );
    let (lo, hi) = (f.exhausted_low_ms.unwrap(), f.exhausted_high_ms.unwrap());
    assert!(now <= lo && (lo..=hi).contains(&at), "{name}: {f:?}");
    assert!(
        (lo..=hi).contains(&truth),
        "{name}: 80% interval misses the truth: {f:?}"
    );
    assert!(
        f.growth_per_hour > 0.0 && f.current <= limit,
        "{name}: {f:?}"
    );
}

#[test]
fn linear_fills_are_forecast_within_ten_percent_of_the_time_left() {
    for (name, shape, _) in limit_shapes().into_iter().filter(|s| s.2) {
        assert_forecast_near_the_truth(name, &shape);
    }
    let (name, shape, _, _) = leak_shapes().swap_remove(6);
    assert_forecast_near_the_truth(name, &shape);
}

#[test]
fn a_leak_killed_at_its_limit_is_forecast_to_its_next_kill() {
    let (name, shape, _, _) = leak_shapes().swap_remove(3);
    assert_forecast_near_the_truth(name, &shape);
}

#[test]
fn nothing_within_the_horizon_is_three_nulls() {
    let mut cases: Vec<(&str, Shape, i64)> = limit_shapes()
        .into_iter()
        .filter(|s| !s.2)
        .map(|s| (s.0, s.1, HORIZON_MS))
        .collect();
    // Five days left, a two-day horizon.
    cases.push((
        "disk, horizon shorter than the time left",
        limit_shapes()[0].1,
        2 * 24 * HOUR_MS,
    ));
    for (name, shape, horizon) in cases {
        let g = generate(&shape);
        let run = stream(&g);
        let f = forecast(&run.state, shape.limit.unwrap(), end_ms(&g), horizon, None);
        assert_eq!(
            (f.exhausted_at_ms, f.exhausted_low_ms, f.exhausted_high_ms),
            (None, None, None),
            "{name}: {f:?}"
        );
        assert!(f.current.is_finite(), "{name}: {f:?}");
    }
    // A leak restarted well before its limit never reaches it.
    let (_, shape, _, _) = leak_shapes().swap_remove(2);
    let g = generate(&shape);
    let run = stream(&g);
    let leak = current_leak(&run.state);
    let f = forecast(
        &run.state,
        shape.limit.unwrap(),
        end_ms(&g),
        HORIZON_MS,
        leak.as_ref(),
    );
    assert_eq!(f.exhausted_at_ms, None, "{f:?}");
    assert_eq!(f.method, "sawtooth:restarted-before-limit", "{f:?}");
}
