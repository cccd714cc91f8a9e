//! When a series reaches its limit: three models of the upper envelope (linear, seasonal,
//! sawtooth), an 80% interval calibrated by rolling-origin backtest, nulls beyond the horizon.

use super::leak::LeakVerdict;
use super::state::{daily_profile, ma_residuals, profile_from_residuals, Hour, Segment};
use super::{
    hinge_fit, hour_of_day, lag1, mad_sd, median, ols, theil_sen, SeriesState, HOUR_MS, MIN_GROW_H,
    MIN_POINTS,
};

/// The normal quantile of an 80% two-sided interval.
const Z80: f64 = 1.281_551_565_5;
/// Most backtest origins.
const BT_ORIGINS: usize = 6;
/// Hours of training before a backtest origin (and points trained on) ...
const BT_MIN_TRAIN_H: f64 = 12.0;
/// ... 48 h for a seasonal model (a daily profile needs two days).
const BT_SEASONAL_TRAIN_H: f64 = 48.0;
/// Fewest points of a fit window for a backtest at all.
const BT_MIN_POINTS: usize = 18;
/// Backtest origins are at least 3 hours apart (an eighth of the window otherwise).
const BT_MIN_STEP_H: f64 = 3.0;
/// A hinge starts the fit window only when it cuts the squared error of a line by 20%.
const HINGE_GAIN: f64 = 0.8;
/// An interval is never narrower than ±1 h: the data are hourly buckets.
const RESOLUTION_H: f64 = 1.0;
/// The sawtooth rate's uncertainty is at least 10% of the rate ...
const SAW_MIN_REL: f64 = 0.1;
/// ... and its slow edge at least 5% of it.
const SAW_MIN_LOW: f64 = 0.05;
/// Standard error of a median relative to a mean's: sqrt(pi / 2).
const MEDIAN_SE: f64 = 1.2533;
/// A segment needs 3 points to lend its rate to the sawtooth.
const SAW_MIN_POINTS: usize = 3;
/// Past cycles whose peaks reached 97% of the limit ended at the limit (OOM kills).
const OOM_FRAC: f64 = 0.97;
/// Largest lag-1 autocorrelation allowed for in the effective sample size.
const MAX_RHO: f64 = 0.95;
/// Smallest sd (no exactly-zero spread in a ratio).
const MIN_SD: f64 = 1e-12;
/// Longest horizon searched, in hours (a leap year), whatever is configured.
const MAX_HORIZON_H: f64 = 8784.0;

/// When a series reaches its limit: a row of `capacity_forecasts`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CapacityForecast {
    /// The last closed hour's maximum (NaN without one: write no row then).
    pub current: f64,
    /// Growth per hour of the model, in the metric's unit.
    pub growth_per_hour: f64,
    /// When the limit is reached; `None` when not within the horizon.
    pub exhausted_at_ms: Option<i64>,
    /// The early edge of its 80% interval (not before now).
    pub exhausted_low_ms: Option<i64>,
    /// The late edge (at most an hour past the horizon).
    pub exhausted_high_ms: Option<i64>,
    /// `linear`, `seasonal`, `sawtooth[:seasonal][:oom]`, `sawtooth:restarted-before-limit`
    /// (the leak is restarted before it reaches the limit), `reached` (at or over the limit
    /// and not falling), `short` (under 6 hours in the current segment) or `none` (no data).
    pub method: &'static str,
}

/// Forecasts when the series' upper envelope (hourly maxima) reaches `limit`, within
/// `horizon_ms` of `now_ms`. `leak` is the series' current leak ([`super::current_leak`]): a
/// leak with restarts is forecast as a sawtooth.
pub fn forecast(
    state: &SeriesState,
    limit: f64,
    now_ms: i64,
    horizon_ms: i64,
    leak: Option<&LeakVerdict>,
) -> CapacityForecast {
    let hours = state.closed(now_ms);
    let mut out = CapacityForecast {
        current: f64::NAN,
        growth_per_hour: 0.0,
        exhausted_at_ms: None,
        exhausted_low_ms: None,
        exhausted_high_ms: None,
        method: "none",
    };
    let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
        return out;
    };
    out.current = last.max;
    if !limit.is_finite() {
        return out;
    }
    if hours.len() < MIN_POINTS {
        out.method = "short";
        return out;
    }
    let origin = first.hour;
    let horizon_h = (horizon_ms as f64 / HOUR_MS as f64).min(MAX_HORIZON_H);
    if horizon_h.is_nan() || horizon_h < 0.0 {
        return out;
    }
    let segs = state.segments(hours);
    let upper: Vec<f64> = hours.iter().map(|b| b.max).collect();
    let c = Ctx {
        hours,
        segs: &segs,
        upper: &upper,
        origin,
        t0: now_ms.saturating_sub(origin.saturating_mul(HOUR_MS)) as f64 / HOUR_MS as f64,
        horizon_h,
        limit,
    };
    let restarted = segs.iter().filter(|s| s.after_restart).count();
    let leak_since = leak
        .filter(|v| v.leaking && v.restarts >= 1)
        .map(|v| v.since_ms.unwrap_or(i64::MIN).div_euclid(HOUR_MS));
    if leak_since.is_some() || restarted >= 2 {
        if let Some(f) = sawtooth(&c, leak_since, out.clone()) {
            return f;
        }
    }
    linear(&c, out)
}

/// What the models share.
struct Ctx<'a> {
    hours: &'a [Hour],
    segs: &'a [Segment],
    upper: &'a [f64],
    /// Hour 0 of `t`: the first closed hour held. A point of hour `h` is at `t = h - origin +
    /// 1` (a growing series reaches its hourly maximum at the end of the hour).
    origin: i64,
    /// Now.
    t0: f64,
    horizon_h: f64,
    limit: f64,
}

impl Ctx<'_> {
    fn t_of(&self, b: &Hour) -> f64 {
        (b.hour - self.origin + 1) as f64
    }

    fn ms(&self, t: f64) -> i64 {
        self.origin
            .saturating_mul(HOUR_MS)
            .saturating_add((t * HOUR_MS as f64).round() as i64)
    }

    /// Sets the three times from a crossing and the crossings of its two edges.
    fn set_times(
        &self,
        out: &mut CapacityForecast,
        cross: f64,
        low: Option<f64>,
        high: Option<f64>,
    ) {
        let low = low.map_or(self.t0, |l| l.min(cross - RESOLUTION_H));
        let high = high.map_or(self.t0 + self.horizon_h, |h| h.max(cross + RESOLUTION_H));
        out.exhausted_at_ms = Some(self.ms(cross));
        out.exhausted_low_ms = Some(self.ms(low.max(self.t0)));
        out.exhausted_high_ms = Some(self.ms(high));
    }
}

/// The first `t` in `[t0, t0 + horizon]` where `f(t) >= limit`, stepping by the hour and
/// interpolating linearly.
fn crossing(f: impl Fn(f64) -> f64, t0: f64, limit: f64, horizon_h: f64) -> Option<f64> {
    let (mut prev_t, mut prev_v) = (t0, f(t0));
    if prev_v >= limit {
        return Some(t0);
    }
    let steps = horizon_h.floor() as u32;
    for s in 1..=steps {
        let t = t0 + f64::from(s);
        let v = f(t);
        if v >= limit {
            return Some(if v == prev_v {
                t
            } else {
                prev_t + (limit - prev_v) / (v - prev_v) * (t - prev_t)
            });
        }
        (prev_t, prev_v) = (t, v);
    }
    None
}

/// A leak restarted before (or at) its limit: the pooled rate within its segments, from the
/// current segment's level. `None` when the rate is not positive (the linear model decides).
fn sawtooth(
    c: &Ctx<'_>,
    leak_since_hour: Option<i64>,
    mut out: CapacityForecast,
) -> Option<CapacityForecast> {
    let (cur, past) = c.segs.split_last()?;
    // The segments that tell the rate: the leak's (since it began), else every complete one
    // after the first (which began before the hours held).
    let done: Vec<(usize, &Segment)> = past
        .iter()
        .enumerate()
        .filter(|(k, s)| {
            let hb = s.of(c.hours);
            match (leak_since_hour, hb.first(), hb.last()) {
                (Some(since), Some(a), Some(z)) => {
                    hb.len() >= MIN_POINTS
                        && z.hour >= since
                        && (z.hour - a.hour) as f64 >= MIN_GROW_H
                }
                (None, Some(_), Some(_)) => *k > 0 && hb.len() >= SAW_MIN_POINTS,
                _ => false,
            }
        })
        .collect();
    let cycle = daily_profile(c.hours, c.segs, c.upper).cycle();
    let season = |x: f64| {
        cycle.map_or(0.0, |p| {
            p[hour_of_day(
                c.origin
                    .saturating_add((x - 1e-9).ceil() as i64)
                    .saturating_sub(1),
            )]
        })
    };
    let flat: Vec<f64> = c
        .hours
        .iter()
        .zip(c.upper)
        .map(|(b, u)| u - cycle.map_or(0.0, |p| p[hour_of_day(b.hour)]))
        .collect();
    let (mut slopes, mut levels, mut peaks, mut cycles) = (vec![], vec![], vec![], vec![]);
    for &(k, s) in &done {
        if let Some(next) = c.segs.get(k + 1) {
            if s.after_restart && next.after_restart {
                cycles.push((next.start - s.start) as f64); // a whole cycle, restart to restart
            }
        }
        let t: Vec<f64> = s.of(c.hours).iter().map(|b| c.t_of(b)).collect();
        let (b, a) = theil_sen(&t, s.of(&flat));
        slopes.push(b);
        levels.push(a + b * (s.start - c.origin) as f64);
        peaks.push(
            s.of(c.upper)
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max),
        );
    }
    let cur_t: Vec<f64> = cur.of(c.hours).iter().map(|b| c.t_of(b)).collect();
    let cur_y = cur.of(&flat);
    if cur_t.len() >= MIN_POINTS {
        slopes.push(theil_sen(&cur_t, cur_y).0);
    }
    let b = median(&slopes);
    if b.is_nan() || b <= 0.0 {
        return None;
    }
    let cur_start = (cur.start - c.origin) as f64;
    let a = if cur_t.len() >= SAW_MIN_POINTS {
        median(
            &cur_t
                .iter()
                .zip(cur_y)
                .map(|(t, y)| y - b * t)
                .collect::<Vec<_>>(),
        )
    } else {
        median(&levels) - b * cur_start
    };
    if !a.is_finite() {
        return None;
    }
    out.growth_per_hour = b;
    out.method = "sawtooth";
    let Some(cross) = crossing(|x| a + b * x + season(x), c.t0, c.limit, c.horizon_h) else {
        return Some(out);
    };
    let oom = !peaks.is_empty() && median(&peaks) >= OOM_FRAC * c.limit;
    let longest = cycles.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !oom && !cycles.is_empty() && cross > cur_start + longest {
        out.method = "sawtooth:restarted-before-limit";
        return Some(out);
    }
    // The interval: the rate's spread over segments, and the level's noise within them.
    let se = (MEDIAN_SE * mad_sd(&slopes) / (slopes.len() as f64).sqrt()).max(SAW_MIN_REL * b);
    let noise: Vec<f64> = done
        .iter()
        .zip(&levels)
        .map(|(&(_, s), level)| {
            let start = (s.start - c.origin) as f64;
            let r: Vec<f64> = s
                .of(c.hours)
                .iter()
                .zip(s.of(&flat))
                .map(|(h, y)| y - (level + b * (c.t_of(h) - start)))
                .collect();
            mad_sd(&r)
        })
        .collect();
    let lv = if noise.is_empty() {
        0.0
    } else {
        median(&noise)
    };
    let (fast, slow) = (b + Z80 * se, (b - Z80 * se).max(SAW_MIN_LOW * b));
    let level = a + b * c.t0;
    let t0 = c.t0;
    let low = crossing(
        |x| level + Z80 * lv + fast * (x - t0) + season(x),
        t0,
        c.limit,
        c.horizon_h,
    );
    let high = crossing(
        |x| level - Z80 * lv + slow * (x - t0) + season(x),
        t0,
        c.limit,
        c.horizon_h,
    );
    c.set_times(&mut out, cross, low, high);
    out.method = match (cycle.is_some(), oom) {
        (false, false) => "sawtooth",
        (true, false) => "sawtooth:seasonal",
        (false, true) => "sawtooth:oom",
        (true, true) => "sawtooth:seasonal:oom",
    };
    Some(out)
}

/// Linear or seasonal growth of the current segment, after its hinge.
fn linear(c: &Ctx<'_>, mut out: CapacityForecast) -> CapacityForecast {
    let Some(cur) = c.segs.last() else {
        return out;
    };
    let hb = cur.of(c.hours);
    if hb.len() < MIN_POINTS {
        out.method = "short";
        return out;
    }
    let t: Vec<f64> = hb.iter().map(|b| c.t_of(b)).collect();
    let y = cur.of(c.upper);
    // Where the upper envelope's growth began, when a hinge clearly fits better than a line.
    let j = match hinge_fit(&t, y, MIN_GROW_H) {
        Some(h) if h.j > 0 => {
            let (bl, al) = ols(&t, y);
            let sse_line: f64 = t
                .iter()
                .zip(y)
                .map(|(ti, yi)| (yi - al - bl * ti).powi(2))
                .sum();
            if h.sse < HINGE_GAIN * sse_line {
                h.j
            } else {
                0
            }
        }
        _ => 0,
    };
    let (hb, t, y) = (&hb[j..], &t[j..], &y[j..]);
    let m = LineModel::fit(hb, t, y, true, c.origin);
    out.growth_per_hour = m.b;
    out.method = if m.cycle.is_some() {
        "seasonal"
    } else {
        "linear"
    };
    if m.b.is_nan() || m.b <= 0.0 {
        if out.current >= c.limit {
            // At or over the limit and not falling: reached.
            out.method = "reached";
            c.set_times(&mut out, c.t0, Some(c.t0), Some(c.t0));
        }
        return out;
    }
    let q = backtest_multiplier(hb, t, y, m.cycle.is_some(), c.origin);
    let Some(cross) = crossing(|x| m.mean(x), c.t0, c.limit, c.horizon_h) else {
        return out;
    };
    let low = crossing(|x| m.mean(x) + q * m.sdev(x), c.t0, c.limit, c.horizon_h);
    let high = crossing(|x| m.mean(x) - q * m.sdev(x), c.t0, c.limit, c.horizon_h);
    c.set_times(&mut out, cross, low, high);
    out
}

/// A robust line (and a daily profile when significant) with a prediction sd that allows for
/// autocorrelated residuals (an effective sample size).
struct LineModel {
    a: f64,
    b: f64,
    cycle: Option<[f64; 24]>,
    origin: i64,
    sd: f64,
    neff: f64,
    profile_var: f64,
    t_mean: f64,
    sxx: f64,
}

impl LineModel {
    fn fit(hours: &[Hour], t: &[f64], y: &[f64], seasonal: bool, origin: i64) -> Self {
        let n = hours.len().min(t.len()).min(y.len()).max(1) as f64;
        let cycle = if seasonal {
            let hs: Vec<i64> = hours.iter().map(|b| b.hour).collect();
            profile_from_residuals(&ma_residuals(&hs, y)).cycle()
        } else {
            None
        };
        let flat: Vec<f64> = hours
            .iter()
            .zip(y)
            .map(|(b, v)| v - cycle.map_or(0.0, |p| p[hour_of_day(b.hour)]))
            .collect();
        let (b, a) = theil_sen(t, &flat);
        let res: Vec<f64> = t
            .iter()
            .zip(&flat)
            .map(|(ti, yi)| yi - (a + b * ti))
            .collect();
        let rho = lag1(&res).clamp(0.0, MAX_RHO);
        let neff = (n * (1.0 - rho) / (1.0 + rho)).max(2.0);
        // The variance of a median of the values of one hour of the day, relative to one value.
        let profile_var = if cycle.is_some() {
            std::f64::consts::FRAC_PI_2 / (n / 24.0).max(1.0)
        } else {
            0.0
        };
        let t_mean = t.iter().sum::<f64>() / n;
        let sxx = t.iter().map(|x| (x - t_mean) * (x - t_mean)).sum::<f64>() * neff / n;
        Self {
            a,
            b,
            cycle,
            origin,
            sd: mad_sd(&res).max(MIN_SD),
            neff,
            profile_var,
            t_mean,
            sxx,
        }
    }

    fn mean(&self, t: f64) -> f64 {
        let season = self.cycle.map_or(0.0, |p| {
            p[hour_of_day(
                self.origin
                    .saturating_add(t.floor() as i64)
                    .saturating_sub(1),
            )]
        });
        self.a + self.b * t + season
    }

    fn sdev(&self, t: f64) -> f64 {
        let d = t - self.t_mean;
        self.sd * (1.0 + 1.0 / self.neff + self.profile_var + d * d / self.sxx.max(MIN_SD)).sqrt()
    }
}

/// Rolling-origin backtest: origins every `step` hours back from the end, each trained on the
/// points before it and forecasting those after it; their standardized errors give the 80%
/// multiplier (shrunk toward the normal one, never below it).
fn backtest_multiplier(hours: &[Hour], t: &[f64], y: &[f64], seasonal: bool, origin: i64) -> f64 {
    let n = hours.len().min(t.len()).min(y.len());
    if n < BT_MIN_POINTS {
        return Z80;
    }
    let (first, last) = (t[0], t[n - 1]);
    let step = ((last - first) / 8.0).floor().max(BT_MIN_STEP_H);
    let min_train = if seasonal {
        BT_SEASONAL_TRAIN_H
    } else {
        BT_MIN_TRAIN_H
    };
    let mut z = Vec::new();
    let mut origins = 0;
    let mut o = last - step;
    while origins < BT_ORIGINS && o - first >= min_train {
        let cut = t[..n].partition_point(|&x| x <= o);
        if cut as f64 >= BT_MIN_TRAIN_H && cut < n {
            let m = LineModel::fit(&hours[..cut], &t[..cut], &y[..cut], seasonal, origin);
            for (&ti, &yi) in t[cut..n].iter().zip(&y[cut..n]) {
                let s = m.sdev(ti);
                z.push(if s > 0.0 {
                    (yi - m.mean(ti)) / s
                } else {
                    f64::INFINITY
                });
            }
            origins += 1;
        }
        o -= step;
    }
    crate::forecast::backtest::multipliers(&z).0
}
