//! The leak test over a series' state ([`judge`]), and the verdict kept between cycles
//! ([`update`]), which decides the rows of `leaks`.

use super::state::{daily_profile, SeriesState, Tracked, Tracker};
use super::{
    finite_or_zero, hinge_fit, mad_sd, mann_kendall, median, mk_z, theil_sen, HOUR_MS, MINUTE_MS,
    MIN_GROW_H, MIN_POINTS,
};

/// Hours of growth (summed over a restart chain) before a leak is called, with the series'
/// daily profile known ...
const MIN_EVIDENCE_H: f64 = 12.0;
/// ... and while it is not (a daily cycle's rising phase plus a warm-up spans more than 24 h).
const NO_PROFILE_SPAN_H: f64 = 36.0;
/// Growth summed over the chain: at least 2% of the level.
const MIN_TOTAL_PCT: f64 = 2.0;
/// Slowest growth called a leak: 1% of the level per day (Theil-Sen).
const MIN_PCT_DAY: f64 = 1.0;
/// Mann-Kendall z of the growth, pooled over the chain.
const Z_MK: f64 = 3.0;
/// A member of a chain needs this z on its own (short segments cannot reach `Z_MK` alone).
const Z_SEG: f64 = 1.0;
/// Growth over the growth part: at least 4 robust sd of the hinge's residuals.
const GROWTH_SIGMA: f64 = 4.0;
/// No deceleration: the late slope keeps at least half of the early (or whole) one ...
const DECEL_RATIO: f64 = 0.5;
/// ... early and late being the first and last 24 h when the growth spans 48 h, else halves ...
const DECEL_DAY_H: f64 = 24.0;
/// ... less 2 standard errors of the late slope (from the hourly noise).
const Z_DECEL: f64 = 2.0;
/// Hours at the end whose median must still hold ...
const HELD_H: f64 = 3.0;
/// ... at least half of the growth (it did not come back).
const BACK_FRAC: f64 = 0.5;
/// Memory came back: a fall of at least 3 h after the (smoothed) high ...
const BACK_MIN_H: f64 = 3.0;
/// ... with a Mann-Kendall z of at most -1.5 ...
const Z_BACK: f64 = 1.5;
/// ... by at least 3 sd of the hourly noise (from second differences).
const BACK_SIGMA: f64 = 3.0;
/// Second differences have 6 times the variance of the noise.
const SECOND_DIFF_VAR: f64 = 6.0;
/// Fewest points of a half (or a day) of the growth part for its own slope.
const MIN_PART_POINTS: usize = 3;
/// A chain's score gains 10% per member beyond the first (capped at 1).
const CHAIN_BONUS: f64 = 0.1;
/// Consecutive hourly analyses saying "leaking" before a leak is reported.
const CONFIRM_RUNS: u32 = 3;
/// Consecutive determinate hourly analyses saying "not growing" before a leak is cleared.
const CLEAR_RUNS: u32 = 6;
/// A leak's row is written again when its growth changes by more than 25% ...
const MATERIAL_GROWTH: f64 = 0.25;
/// ... or its `since` moves by 6 h, ...
const MATERIAL_SINCE_MS: i64 = 6 * HOUR_MS;
/// ... at most every 6 hours (restarts and versions, always).
const MATERIAL_GAP_H: i64 = 6;

/// `method` of a leak found on the lower envelope.
pub const METHOD_LEAK: &str = "mk-lower-envelope";
/// `method` of a leak whose series was restarted while leaking (a sawtooth).
pub const METHOD_LEAK_RESTARTS: &str = "mk-lower-envelope:restarts";
/// `method` of the row saying a leak stopped.
pub const METHOD_CLEARED: &str = "mk-lower-envelope:cleared";
/// `method` of the row saying a leak with restarts stopped.
pub const METHOD_CLEARED_RESTARTS: &str = "mk-lower-envelope:restarts:cleared";

/// Not leaking: fewer than 6 closed hours, or only young segments.
const SHORT: &str = "short";
/// Not leaking: the current segment does not grow (determinate).
const FLAT: &str = "flat";
/// Not leaking: the pooled trend is not significant (determinate).
const WEAK: &str = "weak";
/// Not yet: too few hours of growth.
const TOO_EARLY: &str = "too-early";
/// Not yet: too few hours of growth while the daily cycle is unknown.
const UNKNOWN_CYCLE: &str = "unknown-cycle";
/// Not yet: too little growth in total.
const TOO_SMALL: &str = "too-small";

/// A leak verdict: a row of `leaks` when it starts, changes or clears.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LeakVerdict {
    /// Whether the series leaks.
    pub leaking: bool,
    /// When the growth began (a restart or deploy that began it, else the hour it began).
    pub since_ms: Option<i64>,
    /// Growth per hour in the metric's unit (median of the chain's Theil-Sen slopes).
    pub growth_per_hour: f64,
    /// Growth per day, percent of the level where the growth began.
    pub growth_pct_per_day: f64,
    /// The version running at `since`.
    pub version: Option<String>,
    /// Restarts detected at or after `since`.
    pub restarts: u32,
    /// How clearly every test passed, in [0, 1].
    pub score: f64,
    /// [`METHOD_LEAK`] or [`METHOD_LEAK_RESTARTS`] when leaking (or a cleared method); else
    /// why not: `short`, `flat`, `weak`, `too-early`, `unknown-cycle` or `too-small`.
    pub method: &'static str,
}

impl LeakVerdict {
    fn not_leaking(method: &'static str) -> Self {
        Self {
            leaking: false,
            since_ms: None,
            growth_per_hour: 0.0,
            growth_pct_per_day: 0.0,
            version: None,
            restarts: 0,
            score: 0.0,
            method,
        }
    }
}

/// What [`update`] says the job should write.
#[derive(Debug, Clone, PartialEq)]
pub enum LeakChange {
    /// The series started leaking (confirmed): write a `leaks` row.
    Started(LeakVerdict),
    /// It still leaks and its figures changed materially (restarts, version, `since`, growth):
    /// write a `leaks` row.
    Continues(LeakVerdict),
    /// It stopped: write this row (`growth_per_hour` 0, `method` ending in `:cleared`, with
    /// the `since`, version and restarts of the leak that stopped).
    Cleared(LeakVerdict),
}

/// The leak test of the series' closed hours at `now_ms`, unconfirmed (one analysis; the job
/// reports what [`update`] says).
pub fn judge(state: &SeriesState, now_ms: i64) -> LeakVerdict {
    analyse(state, now_ms).verdict
}

/// The leak the series is confirmed to have at its last analysis, if any.
pub fn current_leak(state: &SeriesState) -> Option<LeakVerdict> {
    let tracker = &state.tracker;
    if !tracker.leaking {
        return None;
    }
    tracker.current.as_ref().map(leaking)
}

/// Analyses the series when an hour with new data closed since its last analysis (else
/// returns `None` at once) and updates the verdict kept in the state: a leak is reported after
/// 3 consecutive hours say so, reported again only when its restarts or version change, or
/// (at most every 6 hours) its growth by 25% or its `since` by 6 hours, and cleared after 6
/// hours that clearly say "not growing" (hours that cannot tell, such as a young segment after
/// a restart or a deploy, hold it). Call it at most once per cycle, for `memory` series.
pub fn update(state: &mut SeriesState, now_ms: i64) -> Option<LeakChange> {
    let closed_hour = now_ms.div_euclid(HOUR_MS) - 1;
    if state
        .tracker
        .analysed_hour
        .is_some_and(|h| h >= closed_hour)
    {
        return None;
    }
    state.tracker.analysed_hour = Some(closed_hour);
    let newest = state.closed(now_ms).last().map(|b| b.hour)?;
    if state.tracker.data_hour == Some(newest) {
        return None;
    }
    state.tracker.data_hour = Some(newest);
    let analysis = analyse(state, now_ms);
    track(&mut state.tracker, analysis, closed_hour)
}

/// One analysis: the verdict, and whether its growth began before the hours held.
struct Analysis {
    verdict: LeakVerdict,
    since_truncated: bool,
}

fn track(tracker: &mut Tracker, analysis: Analysis, hour: i64) -> Option<LeakChange> {
    let v = analysis.verdict;
    tracker.leaking_runs = if v.leaking {
        tracker.leaking_runs.saturating_add(1)
    } else {
        0
    };
    if v.leaking && (tracker.leaking || tracker.leaking_runs >= CONFIRM_RUNS) {
        let mut now = tracked(&v);
        if let (true, true, Some(prev)) = (
            tracker.leaking,
            analysis.since_truncated,
            tracker.current.as_ref(),
        ) {
            // The growth began before the hours held: the origin found earlier stands.
            now.since_ms = prev.since_ms;
            now.version.clone_from(&prev.version);
        }
        let started = !tracker.leaking;
        tracker.leaking = true;
        tracker.quiet_runs = 0;
        tracker.current = Some(now.clone());
        let report = started
            || match (&tracker.reported, tracker.reported_hour) {
                (Some(r), Some(at)) => material(r, &now, hour - at),
                _ => true,
            };
        if !report {
            return None;
        }
        let verdict = leaking(&now);
        tracker.reported = Some(now);
        tracker.reported_hour = Some(hour);
        return Some(if started {
            LeakChange::Started(verdict)
        } else {
            LeakChange::Continues(verdict)
        });
    }
    if tracker.leaking {
        if v.method == FLAT || v.method == WEAK {
            tracker.quiet_runs = tracker.quiet_runs.saturating_add(1);
        }
        if tracker.quiet_runs >= CLEAR_RUNS {
            let last = tracker.current.take();
            *tracker = Tracker {
                analysed_hour: tracker.analysed_hour,
                data_hour: tracker.data_hour,
                ..Tracker::default()
            };
            return Some(LeakChange::Cleared(cleared(last)));
        }
    }
    None
}

/// Whether a leak's figures changed enough since the last row (`hours` ago) to write another.
fn material(reported: &Tracked, now: &Tracked, hours: i64) -> bool {
    if now.restarts != reported.restarts || now.version != reported.version {
        return true;
    }
    let moved = now.since_ms.abs_diff(reported.since_ms) >= MATERIAL_SINCE_MS.unsigned_abs();
    let growth = (now.growth_per_hour - reported.growth_per_hour).abs()
        > MATERIAL_GROWTH * reported.growth_per_hour.abs();
    hours >= MATERIAL_GAP_H && (moved || growth)
}

fn tracked(v: &LeakVerdict) -> Tracked {
    Tracked {
        since_ms: v.since_ms.unwrap_or_default(),
        version: v.version.clone(),
        growth_per_hour: finite_or_zero(v.growth_per_hour),
        growth_pct_per_day: finite_or_zero(v.growth_pct_per_day),
        restarts: v.restarts,
        score: finite_or_zero(v.score),
    }
}

fn leaking(t: &Tracked) -> LeakVerdict {
    LeakVerdict {
        leaking: true,
        since_ms: Some(t.since_ms),
        growth_per_hour: t.growth_per_hour,
        growth_pct_per_day: t.growth_pct_per_day,
        version: t.version.clone(),
        restarts: t.restarts,
        score: t.score,
        method: if t.restarts > 0 {
            METHOD_LEAK_RESTARTS
        } else {
            METHOD_LEAK
        },
    }
}

fn cleared(last: Option<Tracked>) -> LeakVerdict {
    let mut v = LeakVerdict::not_leaking(METHOD_CLEARED);
    if let Some(t) = last {
        v.since_ms = Some(t.since_ms);
        v.version = t.version;
        v.restarts = t.restarts;
        if t.restarts > 0 {
            v.method = METHOD_CLEARED_RESTARTS;
        }
    }
    v
}

/// A segment's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Too few hours to tell.
    Short,
    /// Not growing (or growing in a way a leak does not).
    Flat,
    /// Growing, significant only as part of a chain.
    Candidate,
    /// Growing, significant alone.
    Grow,
}

impl Status {
    fn growing(self) -> bool {
        matches!(self, Status::Grow | Status::Candidate)
    }
}

/// The leak test of one segment.
#[derive(Debug, Clone, Copy)]
struct SegTest {
    status: Status,
    /// Where growth began (hours since the first hour held).
    tau: f64,
    /// Theil-Sen slope of the growth part, per hour.
    b: f64,
    /// That slope in percent of the level at `tau`, per day.
    pct_day: f64,
    score: f64,
    mk_s: i64,
    mk_var: f64,
    /// Hours of the growth part.
    span: f64,
    /// Growth over the growth part.
    growth: f64,
    /// The level where growth began.
    level0: f64,
}

impl SegTest {
    fn short() -> Self {
        Self {
            status: Status::Short,
            tau: 0.0,
            b: 0.0,
            pct_day: 0.0,
            score: 0.0,
            mk_s: 0,
            mk_var: 0.0,
            span: 0.0,
            growth: 0.0,
            level0: 0.0,
        }
    }
}

/// The points of `(t, y)` whose `t` passes `keep`.
fn part(t: &[f64], y: &[f64], keep: impl Fn(f64) -> bool) -> (Vec<f64>, Vec<f64>) {
    t.iter().zip(y).filter(|(ti, _)| keep(**ti)).unzip()
}

/// The test of one segment: `t` in hours (increasing), `y` its lower envelope with the daily
/// profile removed.
fn segment_test(t: &[f64], y: &[f64]) -> SegTest {
    let n = t.len().min(y.len());
    let short = SegTest::short();
    if n < MIN_POINTS || t[n - 1] - t[0] < MIN_GROW_H {
        return short;
    }
    let (t, y) = (&t[..n], &y[..n]);
    let Some(h) = hinge_fit(t, y, MIN_GROW_H) else {
        return short;
    };
    let tau = t[h.j];
    let res: Vec<f64> = t
        .iter()
        .zip(y)
        .map(|(ti, yi)| yi - (h.a + h.b * (ti - tau).max(0.0)))
        .collect();
    let sd = mad_sd(&res);
    let (gt, gy) = (&t[h.j..], &y[h.j..]);
    let (g_first, g_last) = (gt[0], gt[gt.len() - 1]);
    let (mk_s, mk_var) = mann_kendall(gy);
    let z = mk_z(mk_s, mk_var);
    let (b, a) = theil_sen(gt, gy);
    let level0 = a + b * tau;
    let reference = if level0 != 0.0 { level0.abs() } else { 1.0 };
    let pct_day = 100.0 * b * 24.0 / reference;
    let span = g_last - g_first;
    let growth = b * span;
    // Halves of the growth part.
    let mid = 0.5 * (g_first + g_last);
    let (h1t, h1y) = part(gt, gy, |x| x <= mid);
    let (h2t, h2y) = part(gt, gy, |x| x >= mid);
    let b1 = if h1t.len() >= MIN_PART_POINTS {
        theil_sen(&h1t, &h1y).0
    } else {
        b
    };
    let b2 = if h2t.len() >= MIN_PART_POINTS {
        theil_sen(&h2t, &h2y).0
    } else {
        b
    };
    // It still holds its growth at the end.
    let (_, last) = part(gt, gy, |x| x > g_last - HELD_H);
    let held = if growth > 0.0 {
        (median(&last) - level0) / growth
    } else {
        0.0
    };
    // Memory that came back: after its high (3-point running median), the lower envelope
    // falls for hours, consistently, by more than its noise.
    let smooth: Vec<f64> = (0..gy.len())
        .map(|i| {
            median(
                gy.get(i.saturating_sub(1)..(i + 2).min(gy.len()))
                    .unwrap_or(&[]),
            )
        })
        .collect();
    let mut peak = 0;
    for (i, v) in smooth.iter().enumerate() {
        if *v > smooth[peak] {
            peak = i;
        }
    }
    let tail = &gy[peak..];
    let d2: Vec<f64> = gy.windows(3).map(|w| w[2] - 2.0 * w[1] + w[0]).collect();
    let noise = if d2.len() >= 3 {
        mad_sd(&d2) / SECOND_DIFF_VAR.sqrt()
    } else {
        sd
    };
    let mut came_back = false;
    if g_last - gt[peak] >= BACK_MIN_H && tail.len() >= 3 {
        let (ts, tv) = mann_kendall(tail);
        let drop = smooth[peak] - median(&tail[tail.len() - 3..]);
        came_back = mk_z(ts, tv) <= -Z_BACK && drop >= BACK_SIGMA * noise;
    }
    // No deceleration (a cache that fills and levels off).
    let slope_se = |ts: &[f64]| {
        let m = ts.iter().sum::<f64>() / ts.len().max(1) as f64;
        let sxx: f64 = ts.iter().map(|x| (x - m) * (x - m)).sum();
        if sxx > 0.0 {
            noise / sxx.sqrt()
        } else {
            f64::INFINITY
        }
    };
    let (late_t, b_late, ref_late) = if span >= 2.0 * DECEL_DAY_H {
        // Whole days: a daily shape, or a traffic-driven growth, is the same in both.
        let (et, ey) = part(gt, gy, |x| x < g_first + DECEL_DAY_H);
        let (lt, ly) = part(gt, gy, |x| x > g_last - DECEL_DAY_H);
        let b_early = theil_sen(&et, &ey).0;
        let b_late = theil_sen(&lt, &ly).0;
        (lt, b_late, b.max(b_early))
    } else {
        (h2t, b2, b.max(b1))
    };
    let se_late = if late_t.len() >= MIN_PART_POINTS {
        slope_se(&late_t)
    } else {
        0.0
    };
    let decel_ok = b_late >= DECEL_RATIO * ref_late - Z_DECEL * se_late;
    let ok = b > 0.0
        && pct_day >= MIN_PCT_DAY
        && growth >= GROWTH_SIGMA * sd
        && decel_ok
        && held >= BACK_FRAC
        && !came_back;
    let status = match (ok, z) {
        (true, z) if z >= Z_MK => Status::Grow,
        (true, z) if z >= Z_SEG => Status::Candidate,
        _ => Status::Flat,
    };
    // How clearly each test passed (the least of soft margins).
    let score = if b > 0.0 {
        let size = if sd > 0.0 {
            (growth / (2.0 * GROWTH_SIGMA * sd)).min(1.0)
        } else {
            1.0
        };
        (z / (2.0 * Z_MK))
            .min(1.0)
            .min((pct_day / (4.0 * MIN_PCT_DAY)).min(1.0))
            .min(size)
            .min((b2 / b).clamp(0.0, 1.0))
    } else {
        0.0
    };
    SegTest {
        status,
        tau,
        b,
        pct_day,
        score,
        mk_s,
        mk_var,
        span,
        growth,
        level0,
    }
}

/// The chain of growing segments ending at `k`: back over growing (and short) segments across
/// restarts, and across deploys when `across_deploys`; it stops at the first flat one.
fn walk(tests: &[SegTest], after_deploy: &[bool], k: usize, across_deploys: bool) -> Vec<usize> {
    let mut out = vec![k];
    let mut j = k;
    while j > 0 {
        if after_deploy.get(j).copied().unwrap_or(false) && !across_deploys {
            break;
        }
        j -= 1;
        match tests.get(j).map(|x| x.status) {
            Some(Status::Grow | Status::Candidate) => out.push(j),
            Some(Status::Short) => {}
            Some(Status::Flat) | None => break,
        }
    }
    out
}

fn analyse(state: &SeriesState, now_ms: i64) -> Analysis {
    let quiet = |method: &'static str| Analysis {
        verdict: LeakVerdict::not_leaking(method),
        since_truncated: false,
    };
    let hours = state.closed(now_ms);
    let Some(h0) = hours.first().map(|b| b.hour) else {
        return quiet(SHORT);
    };
    if hours.len() < MIN_POINTS {
        return quiet(SHORT);
    }
    let segs = state.segments(hours);
    let low: Vec<f64> = hours.iter().map(|b| b.min).collect();
    let profile = daily_profile(hours, &segs, &low);
    let deseasoned: Vec<f64> = hours.iter().map(|b| b.min - profile.at(b.hour)).collect();
    let tests: Vec<SegTest> = segs
        .iter()
        .map(|s| {
            let t: Vec<f64> = s.of(hours).iter().map(|b| (b.hour - h0) as f64).collect();
            segment_test(&t, s.of(&deseasoned))
        })
        .collect();
    let after_deploy: Vec<bool> = segs.iter().map(|s| s.after_deploy).collect();
    // The latest determinate segment must grow.
    let Some(k) = tests.iter().rposition(|x| x.status != Status::Short) else {
        return quiet(SHORT);
    };
    if !tests[k].status.growing() {
        return quiet(FLAT);
    }
    // Evidence: the chain since the last deploy (a deploy that brings a leak starts it).
    let chain = walk(&tests, &after_deploy, k, false);
    let members: Vec<&SegTest> = chain.iter().filter_map(|&c| tests.get(c)).collect();
    let known = profile.known();
    let need = if known {
        MIN_EVIDENCE_H
    } else {
        NO_PROFILE_SPAN_H
    };
    if members.iter().map(|x| x.span).sum::<f64>() < need {
        return quiet(if known { TOO_EARLY } else { UNKNOWN_CYCLE });
    }
    let grown: f64 = members
        .iter()
        .filter(|x| x.level0 != 0.0)
        .map(|x| x.growth / x.level0.abs())
        .sum();
    if 100.0 * grown < MIN_TOTAL_PCT {
        return quiet(TOO_SMALL);
    }
    let pooled_s = members.iter().map(|x| x.mk_s).sum::<i64>();
    let pooled_var = members.iter().map(|x| x.mk_var).sum::<f64>();
    if mk_z(pooled_s, pooled_var) < Z_MK {
        return quiet(WEAK);
    }
    // Attribution: a leak already growing before a deploy keeps its origin.
    let chain = walk(&tests, &after_deploy, k, true);
    let (Some(first), Some(first_seg)) = (
        chain.last().and_then(|&c| tests.get(c)),
        chain.last().and_then(|&c| segs.get(c)),
    ) else {
        return quiet(FLAT);
    };
    let tau_hour = h0.saturating_add(first.tau.round() as i64);
    let mut since_min = tau_hour.saturating_mul(60);
    if tau_hour == first_seg.start && first_seg.after_boundary() {
        // Growth began with the segment: the deploy or restart that began it is the start. A
        // deploy is exact to the minute, a restart only to its ten-minute bucket, and a deploy's
        // own restart is the deploy (so the leak is the new version's, and no drop of it).
        let boundary_hour = first_seg.start - 1;
        let in_boundary = |m: &i64| m.div_euclid(60) == boundary_hour;
        let event = state
            .deploys()
            .filter(in_boundary)
            .min()
            .or_else(|| state.restarts.iter().copied().filter(in_boundary).min());
        if let Some(m) = event {
            since_min = m;
        }
    }
    let restarts = state.restarts.iter().filter(|&&m| m >= since_min).count();
    let members: Vec<&SegTest> = chain.iter().filter_map(|&c| tests.get(c)).collect();
    let of = |f: fn(&SegTest) -> f64| median(&members.iter().copied().map(f).collect::<Vec<_>>());
    let bonus = 1.0 + CHAIN_BONUS * members.len().saturating_sub(1) as f64;
    let score = finite_or_zero(of(|x| x.score) * bonus).clamp(0.0, 1.0);
    Analysis {
        verdict: LeakVerdict {
            leaking: true,
            since_ms: Some(since_min.saturating_mul(MINUTE_MS)),
            growth_per_hour: of(|x| x.b),
            growth_pct_per_day: of(|x| x.pct_day),
            version: state.version_at(since_min).map(str::to_owned),
            restarts: u32::try_from(restarts).unwrap_or(u32::MAX),
            score,
            method: if restarts > 0 {
                METHOD_LEAK_RESTARTS
            } else {
                METHOD_LEAK
            },
        },
        since_truncated: tau_hour <= h0,
    }
}
