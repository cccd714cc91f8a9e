//! Choosing a method per series by rolling-origin backtest, and prediction intervals calibrated
//! on the errors the method really made.
//!
//! For a series of `n` days, each method forecasts from several origins (cut points) a
//! backtest horizon ahead, using only the days before the origin. Its errors give sMAPE, MASE
//! (scaled by the in-sample mean absolute error of the seasonal naive method, so below 1 beats
//! it) and the coverage of its intervals. The method with the lowest MASE makes the forecast.
//!
//! Intervals: each method states a standard deviation per step ahead; how many of them an 80%
//! or 95% interval spans comes from the backtest's standardized errors (their empirical
//! quantiles, shrunk toward the normal ones when there are few), so a method that is too sure
//! of itself gets wider intervals. The coverage stored in `forecast_accuracy` is measured on
//! each origin with multipliers learnt from the other origins only (leave one origin out), so
//! it is an honest figure.

use super::methods::{Forecast, Method};

/// Settings of forecasting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastConfig {
    /// Days forecast.
    pub horizon: usize,
    /// Season length (7: a week of days).
    pub season: usize,
    /// Fewest days of history to forecast at all.
    pub min_history: usize,
    /// Most backtest origins.
    pub max_origins: usize,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        Self {
            horizon: 30,
            season: 7,
            min_history: 21,
            max_origins: 6,
        }
    }
}

/// Backtest errors of one method on one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Accuracy {
    /// The method.
    pub method: Method,
    /// Backtest origins and days ahead of each.
    pub origins: usize,
    /// Days ahead of each origin.
    pub horizon: usize,
    /// Symmetric MAPE, percent (0..200).
    pub smape: f64,
    /// Mean absolute scaled error; `None` when the series never changes week on week.
    pub mase: Option<f64>,
    /// Share of actual values inside the 80% and 95% intervals (leave one origin out).
    pub coverage_80: f64,
    /// Share of actual values inside the 95% intervals.
    pub coverage_95: f64,
    /// Interval half-widths in model standard deviations, learnt from all origins.
    z80: f64,
    z95: f64,
}

/// One day of a forecast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The forecast value.
    pub forecast: f64,
    /// Lower bound of the 80% interval.
    pub lower_80: f64,
    /// Upper bound of the 80% interval.
    pub upper_80: f64,
    /// Lower bound of the 95% interval.
    pub lower_95: f64,
    /// Upper bound of the 95% interval.
    pub upper_95: f64,
}

/// A series' forecast and the backtest behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesForecast {
    /// The chosen method (best backtest).
    pub method: Method,
    /// One point per day ahead.
    pub points: Vec<Point>,
    /// Every method's backtest, in [`Method::ALL`] order.
    pub accuracy: Vec<Accuracy>,
}

impl SeriesForecast {
    /// The backtest of the chosen method.
    pub fn chosen(&self) -> &Accuracy {
        self.accuracy
            .iter()
            .find(|a| a.method == self.method)
            .expect("the chosen method was backtested")
    }
}

/// Why a series got no forecast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooShort {
    /// Days of history the series has.
    pub have: usize,
    /// Days it needs.
    pub need: usize,
}

impl std::fmt::Display for TooShort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "too short to forecast: {} days of history, at least {} needed",
            self.have, self.need
        )
    }
}

const Z80: f64 = 1.281_551_565_5;
const Z95: f64 = 1.959_963_985;
/// How much better (in backtest MASE) a method must be than the current choice to replace it.
const SWITCH_MARGIN: f64 = 0.9;
/// Pseudo-observations of the normal quantile in the shrinkage of the empirical one.
const PRIOR_WEIGHT: f64 = 30.0;

/// Forecasts of every method from one origin; the combination reuses the other two.
fn all_methods(y: &[f64], h: usize, m: usize) -> Vec<(Method, Forecast)> {
    let sn = Method::SeasonalNaive.forecast(y, h, m);
    let ets = Method::DampedEts.forecast(y, h, m);
    let th = Method::Theta.forecast(y, h, m);
    let combo = Forecast {
        mean: ets
            .mean
            .iter()
            .zip(&th.mean)
            .map(|(a, b)| 0.5 * (a + b))
            .collect(),
        sd: ets
            .sd
            .iter()
            .zip(&th.sd)
            .map(|(a, b)| 0.5 * (a + b))
            .collect(),
    };
    Method::ALL
        .iter()
        .map(|m| {
            let f = match m {
                Method::SeasonalNaive => sn.clone(),
                Method::DampedEts => ets.clone(),
                Method::Theta => th.clone(),
                Method::Combo => combo.clone(),
            };
            (*m, f)
        })
        .collect()
}

/// The `q` quantile (0..1) of `v`, by linear interpolation; `v` is sorted in place.
fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let r = q * (v.len() - 1) as f64;
    let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
    Some(v[lo] + (r - lo as f64) * (v[hi] - v[lo]))
}

/// Interval multipliers from standardized errors: the empirical quantiles of |z|, shrunk toward
/// the normal ones by [`PRIOR_WEIGHT`] pseudo-observations: (80%, 95%). The capacity
/// forecaster takes its 80% multiplier from here too.
pub(crate) fn multipliers(z: &[f64]) -> (f64, f64) {
    let mut abs: Vec<f64> = z
        .iter()
        .map(|v| v.abs())
        .filter(|v| v.is_finite())
        .collect();
    let n = abs.len() as f64;
    let shrink = |emp: Option<f64>, normal: f64| match emp {
        Some(e) => (n * e + PRIOR_WEIGHT * normal) / (n + PRIOR_WEIGHT),
        None => normal,
    };
    // Never narrower than the model's own normal intervals: a backtest of a few origins can
    // be luckier than the future.
    let q80 = shrink(quantile(&mut abs, 0.80), Z80).max(Z80);
    let q95 = shrink(quantile(&mut abs, 0.95), Z95).max(Z95);
    (q80, q95.max(q80))
}

/// Errors of one method from one origin.
struct OriginErrors {
    /// (actual, forecast, sd) per step.
    steps: Vec<(f64, f64, f64)>,
    /// In-sample seasonal naive MAE of the training part.
    scale: f64,
}

/// Mean absolute week-on-week change: the MASE scale.
fn naive_scale(y: &[f64], m: usize) -> f64 {
    let d: Vec<f64> = (m..y.len()).map(|t| (y[t] - y[t - m]).abs()).collect();
    if d.is_empty() {
        0.0
    } else {
        d.iter().sum::<f64>() / d.len() as f64
    }
}

fn smape(actual: f64, forecast: f64) -> f64 {
    let den = actual.abs() + forecast.abs();
    if den == 0.0 {
        0.0
    } else {
        200.0 * (actual - forecast).abs() / den
    }
}

fn z_of(actual: f64, forecast: f64, sd: f64) -> f64 {
    let e = actual - forecast;
    if e == 0.0 {
        0.0
    } else if sd > 0.0 {
        e / sd
    } else {
        f64::INFINITY
    }
}

/// The backtest origins of a series of `n` days: (origin, days ahead).
fn origins(n: usize, cfg: &ForecastConfig) -> (Vec<usize>, usize) {
    let min_train = 2 * cfg.season;
    let ahead = (n / 3).clamp(cfg.season, cfg.horizon.max(cfg.season));
    let step = (ahead / 2).max(1);
    let mut out = Vec::new();
    let mut o = n.saturating_sub(ahead);
    while o >= min_train && out.len() < cfg.max_origins {
        out.push(o);
        if o < step {
            break;
        }
        o -= step;
    }
    (out, ahead)
}

/// Backtests every method on `y` (daily values, oldest first), chooses the best by MASE (sMAPE
/// where MASE is undefined; within 2% the simpler one) and forecasts `cfg.horizon` days.
///
/// # Errors
/// [`TooShort`] when the series has fewer than `cfg.min_history` days, or too few for one
/// backtest origin.
pub fn forecast_series(y: &[f64], cfg: &ForecastConfig) -> Result<SeriesForecast, TooShort> {
    let m = cfg.season;
    let need = cfg.min_history.max(3 * m);
    let (cuts, ahead) = origins(y.len(), cfg);
    if y.len() < need || cuts.is_empty() {
        return Err(TooShort {
            have: y.len(),
            need,
        });
    }
    // errors[method][origin]
    let mut errors: Vec<Vec<OriginErrors>> = Method::ALL.iter().map(|_| Vec::new()).collect();
    for &o in &cuts {
        let train = &y[..o];
        let scale = naive_scale(train, m);
        let h = ahead.min(y.len() - o);
        for (i, (_, f)) in all_methods(train, h, m).into_iter().enumerate() {
            let steps = (0..h).map(|j| (y[o + j], f.mean[j], f.sd[j])).collect();
            errors[i].push(OriginErrors { steps, scale });
        }
    }
    let mut accuracy = Vec::with_capacity(Method::ALL.len());
    for (i, method) in Method::ALL.iter().enumerate() {
        let per_origin = &errors[i];
        let all_z: Vec<f64> = per_origin
            .iter()
            .flat_map(|o| o.steps.iter().map(|(a, f, s)| z_of(*a, *f, *s)))
            .collect();
        let (z80, z95) = multipliers(&all_z);
        let (mut inside80, mut inside95, mut points) = (0usize, 0usize, 0usize);
        let mut smapes = Vec::new();
        let mut mases = Vec::new();
        for (k, o) in per_origin.iter().enumerate() {
            let others: Vec<f64> = per_origin
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != k)
                .flat_map(|(_, o)| o.steps.iter().map(|(a, f, s)| z_of(*a, *f, *s)))
                .collect();
            let (l80, l95) = multipliers(&others);
            let mut abs_err = 0.0;
            for (a, f, s) in &o.steps {
                let e = (a - f).abs();
                abs_err += e;
                smapes.push(smape(*a, *f));
                inside80 += usize::from(e <= l80 * s);
                inside95 += usize::from(e <= l95 * s);
                points += 1;
            }
            if o.scale > 0.0 {
                mases.push(abs_err / o.steps.len() as f64 / o.scale);
            }
        }
        let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        accuracy.push(Accuracy {
            method: *method,
            origins: per_origin.len(),
            horizon: ahead,
            smape: avg(&smapes),
            mase: (mases.len() == per_origin.len()).then(|| avg(&mases)),
            coverage_80: inside80 as f64 / points.max(1) as f64,
            coverage_95: inside95 as f64 / points.max(1) as f64,
            z80,
            z95,
        });
    }
    let score = |a: &Accuracy| a.mase.unwrap_or(a.smape);
    // The combination is the default: a backtest of a few origins is a noisy judge, and
    // combinations hold up out of sample. Another method must beat it clearly.
    let combo = Method::ALL
        .iter()
        .position(|m| *m == Method::Combo)
        .expect("the combination is a method");
    let mut chosen = combo;
    for (i, a) in accuracy.iter().enumerate() {
        if score(a) < score(&accuracy[chosen]) * SWITCH_MARGIN {
            chosen = i;
        }
    }
    let method = accuracy[chosen].method;
    let points = forecast_with(y, &accuracy[chosen], cfg);
    Ok(SeriesForecast {
        method,
        points,
        accuracy,
    })
}

/// The forecast of the method of `backtest` on `y`, with the interval widths that backtest
/// calibrated; non-negative series are floored at 0.
pub fn forecast_with(y: &[f64], backtest: &Accuracy, cfg: &ForecastConfig) -> Vec<Point> {
    let (z80, z95) = (backtest.z80, backtest.z95);
    let f = backtest.method.forecast(y, cfg.horizon, cfg.season);
    let floor = if y.iter().all(|v| *v >= 0.0) {
        0.0
    } else {
        f64::NEG_INFINITY
    };
    f.mean
        .iter()
        .zip(&f.sd)
        .map(|(mu, sd)| Point {
            forecast: mu.max(floor),
            lower_80: (mu - z80 * sd).max(floor),
            upper_80: (mu + z80 * sd).max(floor),
            lower_95: (mu - z95 * sd).max(floor),
            upper_95: (mu + z95 * sd).max(floor),
        })
        .collect()
}

/// MASE scale of a training series: its mean absolute week-on-week change.
pub fn mase_scale(y: &[f64], m: usize) -> f64 {
    naive_scale(y, m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Trend + weekly cycle + noise, from a seed.
    fn series(n: usize, seed: u64, noise: f64) -> Vec<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|t| {
                let weekly = [1.0, 1.05, 1.1, 1.05, 1.0, 0.7, 0.65][t % 7];
                let trend = 200.0 + 1.5 * t as f64;
                trend * weekly * (1.0 + noise * (rng.random::<f64>() - 0.5))
            })
            .collect()
    }

    #[test]
    fn a_short_series_says_so() {
        let e = forecast_series(&series(15, 1, 0.1), &ForecastConfig::default()).unwrap_err();
        assert_eq!(e.have, 15);
        assert!(e.to_string().contains("too short"));
    }

    #[test]
    fn trend_and_week_are_recovered_within_the_intervals() {
        let cfg = ForecastConfig::default();
        let mut inside = 0;
        let mut total = 0;
        for seed in 0..10 {
            let all = series(120, seed, 0.08);
            let (hist, future) = all.split_at(90);
            let f = forecast_series(hist, &cfg).unwrap();
            assert_eq!(f.points.len(), 30);
            for (p, actual) in f.points.iter().zip(future) {
                assert!(p.lower_95 <= p.lower_80 && p.lower_80 <= p.forecast);
                assert!(p.forecast <= p.upper_80 && p.upper_80 <= p.upper_95);
                inside += usize::from((p.lower_95..=p.upper_95).contains(actual));
                total += 1;
            }
            // The trend is recovered: the forecast month's total is within 5% of the truth.
            let got: f64 = f.points.iter().map(|p| p.forecast).sum();
            let want: f64 = future.iter().sum();
            assert!(
                (got - want).abs() / want < 0.05,
                "seed {seed}: {got} vs {want}"
            );
            // Better than seasonal naive on the same backtest.
            let snaive = f
                .accuracy
                .iter()
                .find(|a| a.method == Method::SeasonalNaive)
                .unwrap();
            assert!(
                f.chosen().mase.unwrap() < snaive.mase.unwrap(),
                "{:?} vs {snaive:?}",
                f.chosen()
            );
        }
        let coverage = inside as f64 / total as f64;
        assert!((0.88..=1.0).contains(&coverage), "95% coverage {coverage}");
    }

    #[test]
    fn a_constant_series_is_forecast_as_constant() {
        let y = vec![10.0; 40];
        let f = forecast_series(&y, &ForecastConfig::default()).unwrap();
        assert!(f.points.iter().all(|p| (p.forecast - 10.0).abs() < 1e-6));
        assert!(f.chosen().mase.is_none());
    }
}
