//! `bench/forecast`: how accurate are opslake's forecasts, and how honest are their intervals?
//!
//! Nested, out-of-sample evaluation: for each series and each cut, the last 30 days after the
//! cut are hidden; opslake backtests and chooses a method on the days before the cut only, and
//! every method (with the intervals its own backtest calibrated) and opslake's choice are then
//! scored on the hidden 30 days. MASE is scaled by the training part's in-sample seasonal
//! naive error; "vs snaive" divides a method's MASE by seasonal naive's on the same hidden days.
//!
//! Data: generated cloud fleets (resources with trends, weekly cycles, noise, level shifts and
//! spikes, plus their totals), and NYC taxi demand (NAB `realKnownCause/nyc_taxi.csv`, 30-minute
//! counts summed to days) cut at four points.
//!
//! Usage: `cargo run --release -p opslake-processor --example bench_forecast -- [NYC_TAXI_CSV]`

use std::collections::BTreeMap;

use opslake_processor::forecast::{
    forecast_series, forecast_with, mase_scale, ForecastConfig, Method,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};

const HOLDOUT: usize = 30;

#[derive(Default, Clone)]
struct Score {
    abs_err_scaled: f64,
    smape: f64,
    inside_80: usize,
    inside_95: usize,
    points: usize,
    series: usize,
}

impl Score {
    fn mase(&self) -> f64 {
        self.abs_err_scaled / self.points.max(1) as f64
    }
}

/// One generated fleet: `n` resources over `days` days, and the fleet's total.
fn fleet(seed: u64, n: usize, days: usize) -> Vec<(String, Vec<f64>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let size = LogNormal::new(3.0, 1.0).unwrap();
    let mut out = Vec::new();
    let mut total = vec![0.0; days];
    for r in 0..n {
        let level: f64 = size.sample(&mut rng);
        let trend: f64 = rng.random_range(-0.003..0.008);
        let weekend: f64 = if rng.random::<f64>() < 0.6 {
            rng.random_range(0.5..0.95)
        } else {
            1.0
        };
        let noise_sd: f64 = rng.random_range(0.02..0.12);
        let noise = Normal::new(0.0, noise_sd).unwrap();
        // A third of the resources change size once (a resize or a new workload).
        let shift_at = (rng.random::<f64>() < 0.33).then(|| rng.random_range(20..days));
        let shift: f64 = rng.random_range(0.6..1.6);
        let phase = rng.random_range(0..7);
        let mut y = Vec::with_capacity(days);
        for (t, sum) in total.iter_mut().enumerate() {
            let dow = (t + phase) % 7;
            let w = if dow >= 5 { weekend } else { 1.0 };
            let s = if shift_at.is_some_and(|a| t >= a) {
                shift
            } else {
                1.0
            };
            let spike = if rng.random::<f64>() < 0.01 { 1.8 } else { 1.0 };
            let v = level
                * (1.0 + trend).powi(t as i32)
                * w
                * s
                * spike
                * (1.0 + noise.sample(&mut rng));
            y.push(v.max(0.0));
            *sum += v.max(0.0);
        }
        out.push((format!("fleet{seed}/r{r}"), y));
    }
    out.push((format!("fleet{seed}/total"), total));
    out
}

fn nyc_taxi(path: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let mut days: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let Some((ts, v)) = line.split_once(',') else {
            continue;
        };
        let Ok(v) = v.trim().parse::<f64>() else {
            continue;
        };
        *days.entry(ts[..10].to_string()).or_default() += v;
    }
    // The last day may be partial: keep whole days (48 half hours) only.
    let counts: BTreeMap<String, usize> = text.lines().skip(1).fold(BTreeMap::new(), |mut m, l| {
        *m.entry(l[..10].to_string()).or_default() += 1;
        m
    });
    days.into_iter()
        .filter(|(d, _)| counts.get(d) == Some(&48))
        .map(|(_, v)| v)
        .collect()
}

fn smape(a: f64, f: f64) -> f64 {
    let d = a.abs() + f.abs();
    if d == 0.0 {
        0.0
    } else {
        200.0 * (a - f).abs() / d
    }
}

/// Scores every method and opslake's choice on one cut of one series.
fn evaluate(
    train: &[f64],
    test: &[f64],
    cfg: &ForecastConfig,
    scores: &mut BTreeMap<String, Score>,
    chosen: &mut BTreeMap<String, usize>,
) {
    let Ok(f) = forecast_series(train, cfg) else {
        return;
    };
    let scale = mase_scale(train, cfg.season);
    if scale <= 0.0 {
        return;
    }
    *chosen.entry(f.method.name().to_string()).or_default() += 1;
    let mut add = |name: &str, points: &[opslake_processor::forecast::Point]| {
        let s = scores.entry(name.to_string()).or_default();
        s.series += 1;
        for (p, a) in points.iter().zip(test) {
            s.abs_err_scaled += (a - p.forecast).abs() / scale;
            s.smape += smape(*a, p.forecast);
            s.inside_80 += usize::from((p.lower_80..=p.upper_80).contains(a));
            s.inside_95 += usize::from((p.lower_95..=p.upper_95).contains(a));
            s.points += 1;
        }
    };
    for a in &f.accuracy {
        add(a.method.name(), &forecast_with(train, a, cfg));
    }
    add("opslake (chosen per series)", &f.points);
}

fn print_table(title: &str, scores: &BTreeMap<String, Score>, chosen: &BTreeMap<String, usize>) {
    let snaive = scores
        .get(Method::SeasonalNaive.name())
        .map_or(f64::NAN, Score::mase);
    println!("\n{title}");
    println!(
        "| method | series | MASE | vs seasonal naive | sMAPE % | 80% coverage | 95% coverage |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut rows: Vec<(&String, &Score)> = scores.iter().collect();
    rows.sort_by(|a, b| a.1.mase().total_cmp(&b.1.mase()));
    for (name, s) in rows {
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.1} | {:.1}% | {:.1}% |",
            s.series,
            s.mase(),
            s.mase() / snaive,
            s.smape / s.points.max(1) as f64,
            100.0 * s.inside_80 as f64 / s.points.max(1) as f64,
            100.0 * s.inside_95 as f64 / s.points.max(1) as f64
        );
    }
    let picks: Vec<String> = chosen.iter().map(|(m, n)| format!("{m} {n}")).collect();
    println!("opslake's choices: {}", picks.join(", "));
}

fn main() {
    let taxi_path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data/nab/data/realKnownCause/nyc_taxi.csv".into());
    let cfg = ForecastConfig::default();
    let started = std::time::Instant::now();

    let mut scores = BTreeMap::new();
    let mut chosen = BTreeMap::new();
    let mut n = 0;
    for seed in 1..=3 {
        for (_, y) in fleet(seed, 60, 120) {
            let (train, test) = y.split_at(y.len() - HOLDOUT);
            evaluate(train, test, &cfg, &mut scores, &mut chosen);
            n += 1;
        }
    }
    print_table(
        &format!("Generated fleets: {n} series of 120 days (3 fleets of 60 resources and their totals), last 30 days hidden"),
        &scores,
        &chosen,
    );

    let taxi = nyc_taxi(&taxi_path);
    let mut scores = BTreeMap::new();
    let mut chosen = BTreeMap::new();
    let cuts = [
        taxi.len() - 30,
        taxi.len() - 60,
        taxi.len() - 90,
        taxi.len() - 120,
    ];
    for cut in cuts {
        evaluate(
            &taxi[..cut],
            &taxi[cut..cut + HOLDOUT],
            &cfg,
            &mut scores,
            &mut chosen,
        );
    }
    print_table(
        &format!(
            "NYC taxi (NAB), {} days of trips summed from 30-minute counts; 4 cuts, each scored on the 30 days after it",
            taxi.len()
        ),
        &scores,
        &chosen,
    );
    println!("\n({:.1} s)", started.elapsed().as_secs_f64());
}
