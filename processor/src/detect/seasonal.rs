//! The daily shape of a series, divided out before its change points are searched, so that a
//! daily cycle is not taken for a series of changes while a change of level stays one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Whether some calendar day of the series has a point in 90% of its times of day, in steps
/// of `phase_ms`.
fn well_covered_day(all: &[(i64, f64)], phase_ms: i64) -> bool {
    const DAY: i64 = 86_400_000;
    let mut days: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for &(w, _) in all {
        days.entry(w.div_euclid(DAY))
            .or_default()
            .insert(w.rem_euclid(DAY) / phase_ms);
    }
    let per_day = DAY / phase_ms;
    days.values().any(|p| p.len() as i64 * 10 >= per_day * 9)
}

/// The kept points of a series, (window, value), and their values with the shape divided out.
pub(crate) type Deseasonalized = (Vec<(i64, f64)>, Vec<f64>);

/// Divides each value by the daily shape of the series, so a daily cycle is not taken for a
/// series of changes while a change of level stays one. Shape and level are fitted together
/// (least squares in logs of a shape by time of day, a level, and the one step that fits
/// best), so a deploy inside the only full day is not learnt as part of the shape. Only times
/// of day seen on two days or more are kept (returned with their adjusted values). The times of
/// day are as fine as the series' cover allows: windows, else 5 minutes, 15 minutes or hours
/// (a sparse series has a daily cycle too). `None` until the series has one well-covered day
/// (90% of its times of day) even by the hour: a series shorter than a day, or one point per
/// benchmark run, is searched as it is.
pub(crate) fn deseasonalize(
    all: &[(i64, f64)],
    window_ms: i64,
    tail_len: usize,
) -> Option<Deseasonalized> {
    const DAY: i64 = 86_400_000;
    let phase_ms = [window_ms, 300_000, 900_000, 3_600_000]
        .into_iter()
        .filter(|p| *p >= window_ms && p % window_ms == 0 && DAY % p == 0)
        .find(|&p| well_covered_day(all, p))?;
    let per_day = DAY / phase_ms;
    let phase_of = |w: i64| (w.rem_euclid(DAY) / phase_ms) as usize;
    // A time of day seen on one day only cannot tell the shape from the level: its values
    // would echo whatever level is assumed and read as changes. Keep the times of day seen on
    // at least two days.
    let mut seen: HashMap<usize, BTreeSet<i64>> = HashMap::new();
    for &(w, _) in all {
        seen.entry(phase_of(w))
            .or_default()
            .insert(w.div_euclid(DAY));
    }
    let points: Vec<(i64, f64)> = all
        .iter()
        .copied()
        .filter(|(w, _)| seen.get(&phase_of(*w)).is_some_and(|d| d.len() >= 2))
        .collect();
    let n = points.len();
    if n == 0 {
        return None;
    }
    // Multiplicative (in logs) for positive series, additive otherwise.
    let positive = points.iter().all(|p| p.1 > 0.0);
    let v: Vec<f64> = points
        .iter()
        .map(|p| if positive { p.1.ln() } else { p.1 })
        .collect();
    let phase: Vec<usize> = points.iter().map(|p| phase_of(p.0)).collect();
    let phases = per_day as usize;
    // For a step at `cut`, least squares of v = shape[phase] + level + step·[i ≥ cut] by
    // alternating updates (the problem is convex, so they reach its optimum), on sums per time
    // of day and side of the cut: (sum, count) before, (sum, count) after.
    let total_sq: f64 = v.iter().map(|x| x * x).sum();
    let fit = |stats: &[(f64, f64, f64, f64)]| -> (Vec<f64>, f64) {
        let mut shape = vec![0.0f64; phases];
        let (mut before, mut after) = (0.0f64, 0.0f64);
        let (nb, na): (f64, f64) = stats
            .iter()
            .fold((0.0, 0.0), |(x, y), s| (x + s.1, y + s.3));
        for _ in 0..12 {
            for (p, (sb, cb, sa, ca)) in stats.iter().enumerate() {
                if cb + ca > 0.0 {
                    shape[p] = (sb + sa - before * cb - after * ca) / (cb + ca);
                }
            }
            let (mut rb, mut ra) = (0.0f64, 0.0f64);
            for (p, (sb, cb, sa, ca)) in stats.iter().enumerate() {
                rb += sb - shape[p] * cb;
                ra += sa - shape[p] * ca;
            }
            before = if nb > 0.0 { rb / nb } else { 0.0 };
            after = if na > 0.0 { ra / na } else { before };
        }
        let mut sse = total_sq;
        for (p, (sb, cb, sa, ca)) in stats.iter().enumerate() {
            let (lb, la) = (shape[p] + before, shape[p] + after);
            sse += -2.0 * (lb * sb + la * sa) + lb * lb * cb + la * la * ca;
        }
        (shape, sse)
    };
    // Everything before the cut at first; the cut then moves forward point by point.
    let mut stats = vec![(0.0f64, 0.0f64, 0.0f64, 0.0f64); phases];
    for (x, p) in v.iter().zip(&phase) {
        stats[*p].0 += x;
        stats[*p].1 += 1.0;
    }
    // The step that explains the series best, searched at every point of the tail where
    // change points are looked for (each fit costs a few passes over the times of day).
    let from = n.saturating_sub(tail_len);
    let edge = 6.min(n / 4);
    let lo = from.max(edge);
    let hi = n.saturating_sub(edge);
    let mut best = fit(&stats);
    let mut moved = n;
    for c in (lo..hi).rev() {
        while moved > c {
            moved -= 1;
            let s = &mut stats[phase[moved]];
            s.0 -= v[moved];
            s.1 -= 1.0;
            s.2 += v[moved];
            s.3 += 1.0;
        }
        let f = fit(&stats);
        if f.1 < best.1 - 1e-12 {
            best = f;
        }
    }
    let shape = best.0;
    let centre = shape.iter().sum::<f64>() / shape.len().max(1) as f64;
    let adjusted = points
        .iter()
        .zip(&phase)
        .map(|(p, ph)| {
            let s = shape[*ph] - centre;
            if positive {
                p.1 / s.exp()
            } else {
                p.1 - s
            }
        })
        .collect();
    Some((points, adjusted))
}
