//! A small deterministic generator of minute rollups whose truth is known (the shapes of the
//! prototype's labelled set), and the job simulated over them (minutes in order, [`update`] at
//! every closed hour).

use crate::capacity::*;

pub(super) const MB: f64 = 1_048_576.0;
pub(super) const GB: f64 = 1_073_741_824.0;
/// Minutes in a day.
pub(super) const DAY: f64 = 1440.0;
/// A service's base memory.
pub(super) const BASE: f64 = 512.0 * MB;
/// 2025-01-01T00:00:00Z: series start at midnight UTC.
pub(super) const START_MS: i64 = 1_735_689_600_000;
/// `capacity.horizon`'s default.
pub(super) const HORIZON_MS: i64 = 30 * 24 * HOUR_MS;

/// SplitMix64: deterministic, and the same stream in the prototype's Python mirror.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn gauss(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// A generating process; times in minutes from the start, amounts in the metric's unit.
#[derive(Clone, Copy)]
pub(super) struct Shape {
    pub(super) seed: u64,
    pub(super) days: f64,
    pub(super) base: f64,
    pub(super) limit: Option<f64>,
    /// Garbage collector's sawtooth: (amplitude, period in minutes).
    pub(super) gc: Option<(f64, f64)>,
    /// Daily sine: (amplitude, phase as a fraction of a day).
    pub(super) daily: Option<(f64, f64)>,
    /// White noise sd per sample.
    pub(super) noise: f64,
    /// AR(1) noise sd (rho 0.97 per minute).
    pub(super) ar: f64,
    /// Leak: (growth per day, start minute); reset by restarts.
    pub(super) leak: Option<(f64, f64)>,
    /// The leak stops at this minute (fixed).
    pub(super) until: Option<f64>,
    /// Restarts every (hours, first minute).
    pub(super) every: Option<(f64, f64)>,
    /// Restarted when it reaches the limit.
    pub(super) oom: bool,
    /// Deploy of 1.1.0: (minute, step up, restart).
    pub(super) deploy: Option<(f64, f64, bool)>,
    /// Warm-up after each restart: (amplitude, time constant in minutes).
    pub(super) warmup: Option<(f64, f64)>,
    /// Linear growth per day (disks, ratios), not reset by restarts.
    pub(super) growth: f64,
    /// Values clipped to [0, 1] (a ratio).
    pub(super) clip1: bool,
    /// Memory held then freed: (start minute, minutes, amplitude).
    pub(super) bump: Option<(f64, f64, f64)>,
}

impl Shape {
    /// A service's memory: 512 MiB, a garbage collector's sawtooth of 8% every 3 minutes,
    /// noise of 0.4%, 5 days.
    pub(super) fn memory(seed: u64) -> Self {
        Self {
            seed,
            days: 5.0,
            base: BASE,
            limit: None,
            gc: Some((0.08 * BASE, 3.0)),
            daily: None,
            noise: 0.004 * BASE,
            ar: 0.0,
            leak: None,
            until: None,
            every: None,
            oom: false,
            deploy: None,
            warmup: None,
            growth: 0.0,
            clip1: false,
            bump: None,
        }
    }

    /// A disk of 100 GiB with 40 used, 5 days.
    pub(super) fn disk(seed: u64) -> Self {
        Self {
            base: 40.0 * GB,
            limit: Some(100.0 * GB),
            gc: None,
            noise: 0.02 * GB,
            ..Self::memory(seed)
        }
    }
}

/// A minute rollup of three samples.
pub(super) struct Row {
    pub(super) minute: i64,
    pub(super) min: f64,
    pub(super) max: f64,
    pub(super) mean: f64,
    pub(super) version: &'static str,
}

/// Rows of a generated series and its truth.
pub(super) struct Series {
    pub(super) rows: Vec<Row>,
    /// Minutes of its restarts.
    pub(super) restarts: Vec<f64>,
    /// First minute after the data at which a sample reaches the limit (within 60 days).
    pub(super) exhausted: Option<f64>,
    /// Minutes of data.
    pub(super) n: i64,
}

pub(super) fn generate(s: &Shape) -> Series {
    let mut rng = Rng(s.seed);
    let n = (s.days * DAY) as i64;
    let total = n + if s.limit.is_some() {
        (60.0 * DAY) as i64
    } else {
        0
    };
    let limit = s.limit.unwrap_or(f64::INFINITY);
    let (mut leak_acc, mut last_restart, mut ar) = (0.0, 0.0, 0.0);
    let mut next_every = s.every.map_or(f64::INFINITY, |e| e.1);
    let mut pending = false;
    let mut gc_phase = rng.uniform();
    let (mut rows, mut restarts, mut exhausted) = (Vec::new(), Vec::new(), None);
    for m in 0..total {
        let t = m as f64;
        let mut restart = std::mem::take(&mut pending);
        if let Some((hours, _)) = s.every {
            if t >= next_every {
                restart = true;
                next_every += hours * 60.0;
            }
        }
        if let Some((at, _, true)) = s.deploy {
            restart |= m == at as i64;
        }
        if restart {
            leak_acc = 0.0;
            last_restart = t;
            restarts.push(t);
            gc_phase = rng.uniform();
        }
        if let Some((rate, since)) = s.leak {
            if t >= since && s.until.is_none_or(|u| t < u) {
                leak_acc += rate / DAY;
            }
        }
        let mut v = s.base + leak_acc + s.growth * t / DAY;
        if let Some((amp, phase)) = s.daily {
            v += amp * 0.5 * (1.0 + (2.0 * std::f64::consts::PI * (t / DAY + phase)).sin());
        }
        if let Some((amp, tau)) = s.warmup {
            v += amp * (1.0 - (-(t - last_restart) / tau).exp());
        }
        if let Some((at, step, _)) = s.deploy {
            if t >= at {
                v += step;
            }
        }
        if let Some((t0, dur, amp)) = s.bump {
            if (t0..t0 + dur).contains(&t) {
                let f = (t - t0) / dur;
                v += amp * if f < 0.7 { f / 0.7 } else { (1.0 - f) / 0.3 };
            }
        }
        let gc_amp = s.gc.map_or(0.0, |g| g.0);
        if s.oom && v + gc_amp >= limit {
            pending = true;
            if m >= n && exhausted.is_none() {
                exhausted = Some(t);
                break;
            }
        }
        if s.ar > 0.0 {
            ar = 0.97 * ar + s.ar * (1.0f64 - 0.97 * 0.97).sqrt() * rng.gauss();
        }
        let mut vals = [0.0; 3];
        for (j, val) in vals.iter_mut().enumerate() {
            let mut x = v + ar;
            if let Some((amp, period)) = s.gc {
                x += amp * (((t + j as f64 / 3.0) / period + gc_phase) % 1.0);
            }
            if s.noise > 0.0 {
                x += s.noise * rng.gauss();
            }
            if s.clip1 {
                x = x.clamp(0.0, 1.0);
            }
            *val = x.max(0.0);
        }
        let (lo, hi) = (
            vals[0].min(vals[1]).min(vals[2]),
            vals[0].max(vals[1]).max(vals[2]),
        );
        if m >= n {
            if !s.oom && hi >= limit {
                exhausted = Some(t);
                break;
            }
            continue;
        }
        let deployed = s.deploy.is_some_and(|d| t >= d.0);
        rows.push(Row {
            minute: m,
            min: lo,
            max: hi,
            mean: (vals[0] + vals[1] + vals[2]) / 3.0,
            version: if deployed { "1.1.0" } else { "1.0.0" },
        });
    }
    restarts.retain(|r| *r < n as f64);
    Series {
        rows,
        restarts,
        exhausted,
        n,
    }
}

/// The job, simulated: rollups in order, [`update`] at every closed hour from hour 6.
pub(super) struct Run {
    pub(super) state: SeriesState,
    /// (hour, change) of every change reported.
    pub(super) changes: Vec<(i64, LeakChange)>,
    /// Hours at which a leak was current.
    pub(super) leaking: Vec<i64>,
}

pub(super) fn ms(minute: f64) -> i64 {
    START_MS + (minute * 60_000.0).round() as i64
}

pub(super) fn stream(g: &Series) -> Run {
    let mut run = Run {
        state: SeriesState::default(),
        changes: Vec::new(),
        leaking: Vec::new(),
    };
    let mut rows = g.rows.iter().peekable();
    for h in 6..=g.n / 60 {
        while let Some(r) = rows.next_if(|r| r.minute < h * 60) {
            let at = START_MS + r.minute * MINUTE_MS;
            run.state
                .observe(at, r.min, r.max, r.mean, 3, Some(r.version));
        }
        if let Some(c) = update(&mut run.state, START_MS + h * HOUR_MS) {
            run.changes.push((h, c));
        }
        if current_leak(&run.state).is_some() {
            run.leaking.push(h);
        }
    }
    run
}

pub(super) fn end_ms(g: &Series) -> i64 {
    START_MS + g.n * MINUTE_MS
}

/// (name, shape, minute its leak began, version then).
pub(super) fn leak_shapes() -> Vec<(&'static str, Shape, f64, &'static str)> {
    let (b, deploy, m) = (BASE, 2.2 * DAY - 333.0, Shape::memory);
    vec![
        (
            "linear 5%/d",
            Shape {
                leak: Some((0.05 * b, DAY)),
                ..m(1001)
            },
            DAY,
            "1.0.0",
        ),
        (
            "fast 40%/d",
            Shape {
                days: 4.0,
                leak: Some((0.4 * b, 2.5 * DAY)),
                ..m(1002)
            },
            2.5 * DAY,
            "1.0.0",
        ),
        (
            "sawtooth, restarted every 19 h",
            Shape {
                days: 6.0,
                limit: Some(2.0 * b),
                warmup: Some((0.03 * b, 10.0)),
                every: Some((19.0, 1.3 * DAY + 19.0 * 60.0 * 0.8)),
                leak: Some((0.3 * b, 1.3 * DAY)),
                ..m(1003)
            },
            1.3 * DAY,
            "1.0.0",
        ),
        (
            "sawtooth, OOM-killed at its limit",
            Shape {
                days: 4.75,
                limit: Some(1.5 * b),
                warmup: Some((0.04 * b, 15.0)),
                oom: true,
                leak: Some((0.6 * b, 1.3 * DAY)),
                ..m(1004)
            },
            1.3 * DAY,
            "1.0.0",
        ),
        (
            "after a deploy",
            Shape {
                warmup: Some((0.05 * b, 20.0)),
                deploy: Some((deploy, 0.0, true)),
                leak: Some((0.1 * b, deploy)),
                ..m(1005)
            },
            deploy,
            "1.1.0",
        ),
        (
            "with a daily cycle",
            Shape {
                days: 6.0,
                daily: Some((0.25 * b, 0.3)),
                leak: Some((0.08 * b, 2.0 * DAY)),
                ..m(1006)
            },
            2.0 * DAY,
            "1.0.0",
        ),
        (
            "towards a container limit",
            Shape {
                limit: Some(2.5 * b),
                leak: Some((0.2 * b, DAY)),
                ..m(1007)
            },
            DAY,
            "1.0.0",
        ),
        (
            // Its restart is detected in the ten-minute bucket before the deploy's minute: the
            // leak is still the new version's (the prototype said the old one's).
            "after a deploy that restarted a warmed-up cache",
            Shape {
                warmup: Some((0.3 * b, 20.0)),
                deploy: Some((deploy, 0.0, true)),
                leak: Some((0.1 * b, deploy)),
                ..m(1021)
            },
            deploy,
            "1.1.0",
        ),
    ]
}
