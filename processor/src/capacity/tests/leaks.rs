//! Leaks found with their start, version and restarts; healthy shapes never called leaking.

use super::generate::*;
use crate::capacity::*;

fn healthy_shapes() -> Vec<(&'static str, Shape)> {
    let (b, m) = (BASE, Shape::memory);
    vec![
        (
            "daily cycle",
            Shape {
                daily: Some((0.3 * b, 0.6)),
                ..m(1008)
            },
        ),
        (
            "GC sawtooth",
            Shape {
                gc: Some((0.3 * b, 7.0)),
                noise: 0.003 * b,
                ..m(1009)
            },
        ),
        (
            "cache warm-up after a deploy",
            Shape {
                warmup: Some((0.5 * b, 240.0)),
                deploy: Some((1.7 * DAY, 0.0, true)),
                ..m(1010)
            },
        ),
        (
            "step after a deploy",
            Shape {
                deploy: Some((2.0 * DAY + 77.0, 0.5 * b, true)),
                ..m(1011)
            },
        ),
        (
            "noisy",
            Shape {
                days: 6.0,
                gc: Some((0.2 * b, 2.0)),
                noise: 0.03 * b,
                ar: 0.03 * b,
                ..m(1012)
            },
        ),
        (
            "batch job holding memory 10 h",
            Shape {
                bump: Some((3.0 * DAY, 600.0, 0.5 * b)),
                ..m(1014)
            },
        ),
    ]
}

#[test]
fn every_leak_is_found_with_its_start_version_and_restarts() {
    for (name, shape, since, version) in leak_shapes() {
        let g = generate(&shape);
        let run = stream(&g);
        let leak = current_leak(&run.state).unwrap_or_else(|| panic!("{name}: not found"));
        let err_h = (leak.since_ms.unwrap() - ms(since)).abs() as f64 / HOUR_MS as f64;
        assert!(err_h <= 6.0, "{name}: since off by {err_h:.1} h: {leak:?}");
        assert_eq!(leak.version.as_deref(), Some(version), "{name}");
        let restarts = g.restarts.iter().filter(|r| **r > since).count();
        assert_eq!(leak.restarts as usize, restarts, "{name}: {leak:?}");
        let expected = if restarts > 0 {
            METHOD_LEAK_RESTARTS
        } else {
            METHOD_LEAK
        };
        assert_eq!(leak.method, expected, "{name}");
        assert!(
            leak.growth_per_hour > 0.0 && leak.growth_pct_per_day >= 1.0,
            "{name}: {leak:?}"
        );
        assert!((0.0..=1.0).contains(&leak.score), "{name}: {leak:?}");
        // One row when it starts, then one per restart at most: not a row per cycle.
        let started = run
            .changes
            .iter()
            .filter(|(_, c)| matches!(c, LeakChange::Started(_)))
            .count();
        assert_eq!(started, 1, "{name}: {:?}", run.changes);
        assert!(
            run.changes.len() <= 1 + restarts,
            "{name}: {:?}",
            run.changes
        );
        assert!(
            !run.changes
                .iter()
                .any(|(_, c)| matches!(c, LeakChange::Cleared(_))),
            "{name}"
        );
        // Confirmed within 2.5 days of its start (the prototype: 49 h at most).
        let first = run.leaking.first().copied().unwrap_or(i64::MAX / 120);
        assert!(
            (first * 60) as f64 - since <= 2.5 * DAY,
            "{name}: first leaking at hour {first}"
        );
    }
}

#[test]
fn no_healthy_series_is_ever_called_leaking() {
    for (name, shape) in healthy_shapes() {
        let run = stream(&generate(&shape));
        assert!(run.changes.is_empty(), "{name}: {:?}", run.changes);
        assert!(
            run.leaking.is_empty(),
            "{name}: leaking at hours {:?}",
            run.leaking
        );
    }
}

#[test]
fn a_leak_fixed_by_a_deploy_is_cleared() {
    let b = BASE;
    let fix = 3.5 * DAY;
    let shape = Shape {
        days: 6.0,
        leak: Some((0.3 * b, DAY)),
        until: Some(fix),
        deploy: Some((fix, 0.0, true)),
        ..Shape::memory(1020)
    };
    let run = stream(&generate(&shape));
    assert!(current_leak(&run.state).is_none());
    let Some((hour, LeakChange::Cleared(row))) = run.changes.last() else {
        panic!("not cleared: {:?}", run.changes);
    };
    assert!(
        matches!(run.changes.first(), Some((_, LeakChange::Started(_)))),
        "{:?}",
        run.changes
    );
    let after_h = *hour as f64 - fix / 60.0;
    assert!(
        (0.0..=24.0).contains(&after_h),
        "cleared {after_h} h after the fix"
    );
    assert!(!row.leaking && row.growth_per_hour == 0.0, "{row:?}");
    assert!(row.method.ends_with(":cleared"), "{row:?}");
    assert!(
        row.since_ms
            .is_some_and(|s| (s - ms(DAY)).abs() <= 6 * HOUR_MS),
        "{row:?}"
    );
}
