//! Forecasting methods for daily series with a weekly cycle: seasonal naive, trend
//! exponential smoothing with additive weekly seasonality (ETS(A,Ad,A), Holt-Winters with a
//! damping factor fitted in [0.8, 1], so a linear trend is kept when the data says so),
//! the Theta method with classical seasonal adjustment, and their combination.
//!
//! Hand-written: the one Rust ETS crate (`augurs-ets`) does not implement seasonal models and
//! there is no Theta crate; these are the textbook definitions (Hyndman et al., "Forecasting
//! with exponential smoothing", 2008; Hyndman & Billah, "Unmasking the Theta method", 2003)
//! on plain slices, with no clock and no I/O.
//!
//! Every method returns, per step ahead, a point forecast and the standard deviation of its
//! h-step error under the model. The backtest (`backtest.rs`) calibrates how many standard
//! deviations an interval spans from the errors the method really made.

/// A forecast: per step ahead (index 0 is one step ahead), the point and the model's standard
/// deviation of the error.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Point forecast per step ahead.
    pub mean: Vec<f64>,
    /// Standard deviation of the error per step ahead.
    pub sd: Vec<f64>,
}

/// The methods opslake chooses among, by rolling-origin backtest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// The value of the same weekday a week before.
    SeasonalNaive,
    /// ETS(A,Ad,A): additive errors, (damped) additive trend, additive seasonality.
    DampedEts,
    /// Theta (θ = 0 and θ = 2 lines), on the seasonally adjusted series.
    Theta,
    /// The mean of damped ETS and Theta (combinations won the M competitions more than once).
    Combo,
}

impl Method {
    /// Every method, simplest first (ties go to the simpler one).
    pub const ALL: [Method; 4] = [
        Method::SeasonalNaive,
        Method::Theta,
        Method::DampedEts,
        Method::Combo,
    ];

    /// The name stored in `cost_forecasts.method` and `forecast_accuracy.method`.
    pub fn name(self) -> &'static str {
        match self {
            Method::SeasonalNaive => "seasonal_naive",
            Method::DampedEts => "ets",
            Method::Theta => "theta",
            Method::Combo => "ets_theta_combo",
        }
    }

    /// Forecasts `h` steps after `y`, with season length `m`.
    /// `y` must hold at least two seasons (`2 * m` points).
    pub fn forecast(self, y: &[f64], h: usize, m: usize) -> Forecast {
        match self {
            Method::SeasonalNaive => seasonal_naive(y, h, m),
            Method::DampedEts => DampedEts::fit(y, m).forecast(h),
            Method::Theta => theta(y, h, m),
            Method::Combo => {
                let a = DampedEts::fit(y, m).forecast(h);
                let b = theta(y, h, m);
                Forecast {
                    mean: a
                        .mean
                        .iter()
                        .zip(&b.mean)
                        .map(|(x, y)| 0.5 * (x + y))
                        .collect(),
                    // The errors of the two are strongly correlated; the mean of the two spreads
                    // is a fair model value, and the backtest calibrates it anyway.
                    sd: a.sd.iter().zip(&b.sd).map(|(x, y)| 0.5 * (x + y)).collect(),
                }
            }
        }
    }
}

fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        0.0
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}

/// Seasonal naive: `y[n + h] = y[n + h - m·k]`; the error of a step `k` seasons ahead is the
/// sum of `k` seasonal differences.
pub fn seasonal_naive(y: &[f64], h: usize, m: usize) -> Forecast {
    let n = y.len();
    let diffs: Vec<f64> = (m..n).map(|t| y[t] - y[t - m]).collect();
    let sigma = (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len().max(1) as f64).sqrt();
    let mut out = Forecast {
        mean: Vec::with_capacity(h),
        sd: Vec::with_capacity(h),
    };
    for step in 1..=h {
        let k = (step - 1) / m + 1;
        out.mean.push(y[n - m + (step - 1) % m]);
        out.sd.push(sigma * (k as f64).sqrt());
    }
    out
}

/// A fitted ETS(A,Ad,A) model in error-correction form:
/// `ŷ = l + φb + s[t-m]`, `e = y - ŷ`, `l ← l + φb + αe`, `b ← φb + βe`, `s[t] ← s[t-m] + γe`.
#[derive(Debug, Clone, PartialEq)]
pub struct DampedEts {
    /// Level smoothing.
    pub alpha: f64,
    /// Trend smoothing.
    pub beta: f64,
    /// Seasonal smoothing.
    pub gamma: f64,
    /// Trend damping.
    pub phi: f64,
    m: usize,
    level: f64,
    trend: f64,
    /// The last `m` seasonal states; `season[i]` belongs to the step `n + 1 + i` (mod m).
    season: Vec<f64>,
    sigma: f64,
}

#[derive(Debug, Clone, Copy)]
struct EtsParams {
    alpha: f64,
    beta: f64,
    gamma: f64,
    phi: f64,
}

impl EtsParams {
    fn admissible(self) -> bool {
        self.alpha > 0.0
            && self.alpha < 1.0
            && self.beta >= 0.0
            && self.beta <= self.alpha
            && self.gamma >= 0.0
            && self.gamma <= 1.0 - self.alpha
            && (0.8..=1.0).contains(&self.phi)
    }
}

/// Initial states: the first season's mean as level, the change between the first two
/// seasons' means as trend, the first season's deviations as seasonal states.
fn ets_init(y: &[f64], m: usize) -> (f64, f64, Vec<f64>) {
    let first = mean(&y[..m]);
    let second = mean(&y[m..2 * m]);
    let trend = (second - first) / m as f64;
    // The level at the end of the first season's midpoint, carried to its start.
    let level = first - trend * (m as f64 - 1.0) / 2.0;
    let season = (0..m).map(|i| y[i] - (level + trend * i as f64)).collect();
    (level, trend, season)
}

/// Runs the recursions over `y`; returns the sum of squared one-step errors and the states
/// after the last point.
fn ets_run(y: &[f64], m: usize, p: EtsParams) -> (f64, f64, f64, Vec<f64>) {
    let (mut l, mut b, mut s) = ets_init(y, m);
    // States start before y[0]: step the level back so that the first forecast is y[0]'s.
    l -= b;
    let mut sse = 0.0;
    for (t, &obs) in y.iter().enumerate() {
        let i = t % m;
        let fit = l + p.phi * b + s[i];
        let e = obs - fit;
        sse += e * e;
        l = l + p.phi * b + p.alpha * e;
        b = p.phi * b + p.beta * e;
        s[i] += p.gamma * e;
    }
    (sse, l, b, s)
}

impl DampedEts {
    /// Fits the smoothing parameters by least squares of the one-step errors: a grid, then
    /// coordinate search around its best point.
    pub fn fit(y: &[f64], m: usize) -> Self {
        let n = y.len();
        let sse = |p: EtsParams| {
            if p.admissible() {
                ets_run(y, m, p).0
            } else {
                f64::INFINITY
            }
        };
        let mut best = EtsParams {
            alpha: 0.2,
            beta: 0.01,
            gamma: 0.05,
            phi: 0.9,
        };
        let mut best_sse = sse(best);
        for alpha in [0.05, 0.1, 0.2, 0.35, 0.5, 0.7] {
            for beta_frac in [0.0, 0.05, 0.2, 0.5] {
                for gamma in [0.0f64, 0.05, 0.15, 0.3] {
                    for phi in [0.85, 0.92, 0.98, 1.0] {
                        let p = EtsParams {
                            alpha,
                            beta: alpha * beta_frac,
                            gamma: gamma.min(1.0 - alpha),
                            phi,
                        };
                        let v = sse(p);
                        if v < best_sse {
                            best_sse = v;
                            best = p;
                        }
                    }
                }
            }
        }
        // Coordinate search with shrinking steps.
        let mut step = 0.05;
        while step > 0.002 {
            let mut improved = false;
            for coord in 0..4 {
                for dir in [-1.0, 1.0] {
                    let mut p = best;
                    match coord {
                        0 => p.alpha += dir * step,
                        1 => p.beta += dir * step * 0.5,
                        2 => p.gamma += dir * step,
                        _ => p.phi += dir * step * 0.5,
                    }
                    let v = sse(p);
                    if v < best_sse {
                        best_sse = v;
                        best = p;
                        improved = true;
                    }
                }
            }
            if !improved {
                step /= 2.0;
            }
        }
        let (sse, level, trend, s) = ets_run(y, m, best);
        // Degrees of freedom: 4 smoothing parameters and 2 + m initial states (the seasonal
        // states sum to about zero, one less).
        let k = (4 + 2 + m - 1).min(n.saturating_sub(1));
        let sigma = (sse / (n - k).max(1) as f64).sqrt();
        let season = (0..m).map(|i| s[(n + i) % m]).collect();
        Self {
            alpha: best.alpha,
            beta: best.beta,
            gamma: best.gamma,
            phi: best.phi,
            m,
            level,
            trend,
            season,
            sigma,
        }
    }

    /// Forecasts `h` steps with the variance of Hyndman et al. (2008), class 1:
    /// `v_h = σ²(1 + Σ_{j<h} c_j²)`, `c_j = α + β·φ_j + γ·[j mod m = 0]`, `φ_j = φ + … + φ^j`.
    pub fn forecast(&self, h: usize) -> Forecast {
        let mut mean = Vec::with_capacity(h);
        let mut sd = Vec::with_capacity(h);
        let mut damp = 0.0;
        let mut pow = 1.0;
        let mut var_sum = 1.0f64;
        for step in 1..=h {
            pow *= self.phi;
            damp += pow;
            mean.push(self.level + damp * self.trend + self.season[(step - 1) % self.m]);
            sd.push(self.sigma * var_sum.sqrt());
            // c_j for j = step, used from the next step on.
            let seasonal = if step % self.m == 0 { self.gamma } else { 0.0 };
            let c = self.alpha + self.beta * damp + seasonal;
            var_sum += c * c;
        }
        Forecast { mean, sd }
    }
}

/// Lag-`k` autocorrelation.
fn acf(y: &[f64], k: usize) -> f64 {
    let mu = mean(y);
    let den: f64 = y.iter().map(|v| (v - mu).powi(2)).sum();
    if den == 0.0 || k >= y.len() {
        return 0.0;
    }
    let num: f64 = (k..y.len()).map(|t| (y[t] - mu) * (y[t - k] - mu)).sum();
    num / den
}

/// Whether `y` has a season of length `m`: the lag-m autocorrelation is significant at 90%
/// (the test of the M4 Theta benchmark).
pub fn is_seasonal(y: &[f64], m: usize) -> bool {
    let n = y.len();
    if n < 3 * m {
        return n >= 2 * m && acf(y, m) > 0.3;
    }
    let r: Vec<f64> = (1..=m).map(|k| acf(y, k)).collect();
    let spread = (1.0 + 2.0 * r[..m - 1].iter().map(|v| v * v).sum::<f64>()) / n as f64;
    r[m - 1].abs() > 1.645 * spread.sqrt()
}

/// Seasonal indices of classical decomposition, per phase `t mod m`: multiplicative (mean 1)
/// for positive series, additive (mean 0) otherwise.
fn seasonal_indices(y: &[f64], m: usize) -> (Vec<f64>, bool) {
    let n = y.len();
    let multiplicative = y.iter().all(|v| *v > 0.0);
    // Centred moving average of order m (2×m when m is even).
    let half = m / 2;
    let mut sums = vec![0.0; m];
    let mut counts = vec![0usize; m];
    for t in half..n.saturating_sub(half) {
        let ma = if m % 2 == 1 {
            mean(&y[t - half..=t + half])
        } else {
            if t + half >= n {
                continue;
            }
            let w: f64 =
                y[t - half + 1..t + half].iter().sum::<f64>() + 0.5 * (y[t - half] + y[t + half]);
            w / m as f64
        };
        let ratio = if multiplicative { y[t] / ma } else { y[t] - ma };
        if ratio.is_finite() {
            sums[t % m] += ratio;
            counts[t % m] += 1;
        }
    }
    let mut idx: Vec<f64> = sums
        .iter()
        .zip(&counts)
        .map(|(s, c)| {
            if *c == 0 {
                if multiplicative {
                    1.0
                } else {
                    0.0
                }
            } else {
                s / *c as f64
            }
        })
        .collect();
    let centre = mean(&idx);
    for v in &mut idx {
        if multiplicative {
            *v /= centre;
        } else {
            *v -= centre;
        }
    }
    (idx, multiplicative)
}

/// Simple exponential smoothing with the level started at the mean of the first `m` points
/// (robust to an odd first point): (SSE, final level).
fn ses(x: &[f64], alpha: f64, m: usize) -> (f64, f64) {
    let mut l = mean(&x[..m.clamp(1, x.len())]);
    let mut sse = 0.0;
    for &v in x {
        let e = v - l;
        sse += e * e;
        l += alpha * e;
    }
    (sse, l)
}

/// The Theta method (θ = 0 line: the linear trend; θ = 2 line: smoothed by SES), which is SES
/// with drift equal to half the trend's slope, on the seasonally adjusted series when the
/// season is significant.
pub fn theta(y: &[f64], h: usize, m: usize) -> Forecast {
    let n = y.len();
    let seasonal = m > 1 && is_seasonal(y, m);
    let (idx, multiplicative) = if seasonal {
        seasonal_indices(y, m)
    } else {
        (vec![1.0; m.max(1)], true)
    };
    let phase = |t: usize| idx[t % idx.len()];
    let x: Vec<f64> = y
        .iter()
        .enumerate()
        .map(|(t, v)| {
            if multiplicative {
                v / phase(t)
            } else {
                v - phase(t)
            }
        })
        .collect();
    // Slope of the θ = 0 line: least squares of x on t.
    let tm = (n as f64 - 1.0) / 2.0;
    let xm = mean(&x);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (t, v) in x.iter().enumerate() {
        let dt = t as f64 - tm;
        sxy += dt * (v - xm);
        sxx += dt * dt;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    // SES smoothing parameter by least squares: a grid, then a refinement.
    let mut best = (f64::INFINITY, 0.5);
    for i in 1..100 {
        let a = f64::from(i) / 100.0;
        let (sse, _) = ses(&x, a, m);
        if sse < best.0 {
            best = (sse, a);
        }
    }
    let alpha = best.1;
    let (sse, level) = ses(&x, alpha, m);
    let sigma = (sse / (n.saturating_sub(2)).max(1) as f64).sqrt();
    let mut out = Forecast {
        mean: Vec::with_capacity(h),
        sd: Vec::with_capacity(h),
    };
    let tail = (1.0 - alpha).powi(n as i32) / alpha;
    for step in 1..=h {
        let drift = 0.5 * slope * ((step as f64 - 1.0) + 1.0 / alpha - tail);
        let x_hat = level + drift;
        let s = phase(n + step - 1);
        let sd_x = sigma * (1.0 + (step as f64 - 1.0) * alpha * alpha).sqrt();
        if multiplicative {
            out.mean.push(x_hat * s);
            out.sd.push(sd_x * s);
        } else {
            out.mean.push(x_hat + s);
            out.sd.push(sd_x);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly(n: usize, level: f64, slope: f64) -> Vec<f64> {
        (0..n)
            .map(|t| {
                let weekend = if t % 7 >= 5 { 0.7 } else { 1.0 };
                (level + slope * t as f64) * weekend
            })
            .collect()
    }

    #[test]
    fn seasonal_naive_repeats_the_last_week() {
        let y = weekly(28, 100.0, 0.0);
        let f = seasonal_naive(&y, 10, 7);
        assert_eq!(f.mean[..7], y[21..28]);
        assert_eq!(f.mean[7], y[21]);
        assert!(f.sd.iter().all(|s| *s == 0.0), "no change, no spread");
    }

    #[test]
    fn methods_recover_a_noiseless_trend_and_week() {
        let y = weekly(70, 100.0, 1.0);
        let future = weekly(84, 100.0, 1.0)[70..].to_vec();
        for method in [Method::DampedEts, Method::Theta, Method::Combo] {
            let f = method.forecast(&y, 14, 7);
            for (h, (got, want)) in f.mean.iter().zip(&future).enumerate() {
                let err = (got - want).abs() / want;
                assert!(err < 0.08, "{method:?} step {h}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn ets_variance_grows_with_the_horizon() {
        let mut y = weekly(56, 50.0, 0.2);
        for (t, v) in y.iter_mut().enumerate() {
            *v += if t % 3 == 0 { 2.0 } else { -1.0 };
        }
        let f = DampedEts::fit(&y, 7).forecast(30);
        assert!(f.sd.windows(2).all(|w| w[1] >= w[0]));
        assert!(f.sd[0] > 0.0);
    }

    #[test]
    fn seasonality_test_tells_weeks_from_noise() {
        assert!(is_seasonal(&weekly(56, 100.0, 0.0), 7));
        // White noise from a linear congruential generator.
        let mut x: u64 = 12_345;
        let flat: Vec<f64> = (0..56)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                100.0 + (x >> 40) as f64 / (1u64 << 24) as f64 * 10.0
            })
            .collect();
        assert!(!is_seasonal(&flat, 7));
    }
}
