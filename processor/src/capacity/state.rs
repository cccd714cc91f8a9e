//! The bounded state kept per series between cycles, and the views the analyses read from it:
//! closed hours, segments between restarts and deploys, the daily profile.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::{hinge_fit, hour_of_day, lag1, mad_sd, median, HOUR_MS, MINUTE_MS, MIN_GROW_H};

/// Hourly buckets kept (7 days).
const WINDOW_H: i64 = 168;
/// Ten-minute minima kept for the restart detector (24 h).
const TEN_KEEP: usize = 144;
/// A restart is judged against the floor of the last 6 closed ten-minute buckets (1 h) ...
const RESTART_LOOKBACK: usize = 6;
/// ... of those at most 36 buckets (6 h) old, so a restart that left a gap is still seen.
const RESTART_GAP_MAX: i64 = 36;
/// Fewest buckets in that floor.
const RESTART_MIN_FLOOR: usize = 3;
/// Fewest closed buckets (2 h) before any drop is judged.
const RESTART_MIN_HISTORY: usize = 12;
/// Fewest consecutive ten-minute changes for their spread to count.
const RESTART_MIN_DIFFS: usize = 6;
/// A restart drops at least 5% of the level ...
const RESTART_MIN_FRAC: f64 = 0.05;
/// ... and at least 6 robust sd of the ten-minute changes, times the square root of the gap
/// in buckets (across a gap the level may have drifted).
const RESTART_SIGMA: f64 = 6.0;
/// Restarts and version changes kept.
const MAX_EVENTS: usize = 64;
/// Longest version kept, in bytes (cut at a character boundary).
const MAX_VERSION_LEN: usize = 128;
/// Largest magnitude observed: beyond it sums of squares overflow (no gauge measures it).
const MAX_ABS: f64 = 1e150;
/// Hours a segment needs for a daily profile, and residuals a profile needs.
const PROFILE_MIN_H: usize = 48;
/// Hours of the day (of 24) with at least 2 residuals that a profile needs.
const PROFILE_MIN_HOURS: usize = 18;
/// Hinge-profile backfitting rounds, when the moving average leaves too few residuals.
const PROFILE_ITER: usize = 2;
/// "No daily cycle" from hinge residuals is trusted only below this lag-1 autocorrelation
/// (a hinge fits a warm-up badly, and its misfit is not noise).
const PROFILE_MAX_RHO: f64 = 0.5;
/// A profile is used when its range is at least 4 robust sd of what remains.
const SEASON_K: f64 = 4.0;
/// Half of the centred 2x24 moving average's window, in hours.
const MA_HALF: usize = 12;

/// One hour of a series (short names: the state is stored as JSON).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct Hour {
    /// Hours since the epoch.
    #[serde(rename = "h")]
    pub(super) hour: i64,
    /// Smallest value: the lower envelope.
    #[serde(rename = "lo")]
    pub(super) min: f64,
    /// Largest value: the upper envelope.
    #[serde(rename = "hi")]
    pub(super) max: f64,
    /// Mean weighted by count.
    #[serde(rename = "m")]
    pub(super) mean: f64,
    /// Samples.
    #[serde(rename = "n")]
    pub(super) count: u64,
}

impl Hour {
    fn fold(&mut self, min: f64, max: f64, mean: f64, count: u64) {
        self.min = self.min.min(min);
        self.max = self.max.max(max);
        let (had, add) = (self.count.max(1) as f64, count.max(1) as f64);
        self.mean += (mean - self.mean) * (add / (had + add));
        self.count = self.count.saturating_add(count);
    }
}

/// The minimum of a ten-minute bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct TenMin {
    /// Ten-minute buckets since the epoch.
    #[serde(rename = "k")]
    pub(super) bucket: i64,
    /// Smallest value.
    #[serde(rename = "v")]
    pub(super) min: f64,
}

/// A version that started running at a minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct VersionChange {
    /// Minutes since the epoch.
    #[serde(rename = "m")]
    pub(super) minute: i64,
    /// The version.
    #[serde(rename = "v")]
    pub(super) version: String,
}

/// A leak's figures as last seen, kept between cycles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Tracked {
    /// When the growth began.
    pub(super) since_ms: i64,
    /// The version running then.
    pub(super) version: Option<String>,
    /// Growth per hour, in the metric's unit.
    pub(super) growth_per_hour: f64,
    /// Growth per day, percent of the level at `since`.
    pub(super) growth_pct_per_day: f64,
    /// Restarts at or after `since`.
    pub(super) restarts: u32,
    /// Score in [0, 1].
    pub(super) score: f64,
}

/// The verdict kept between analyses (hysteresis), and when the series was last analysed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Tracker {
    /// The newest closed hour at the last call of `update` that looked at the series.
    pub(super) analysed_hour: Option<i64>,
    /// The newest closed hour with data at the last analysis.
    pub(super) data_hour: Option<i64>,
    /// Whether a leak is current.
    pub(super) leaking: bool,
    /// Consecutive analyses that said leaking.
    pub(super) leaking_runs: u32,
    /// Consecutive determinate analyses that said not leaking, while leaking.
    pub(super) quiet_runs: u32,
    /// The leak's latest figures.
    pub(super) current: Option<Tracked>,
    /// The figures of the last row written.
    pub(super) reported: Option<Tracked>,
    /// The hour of that row.
    pub(super) reported_hour: Option<i64>,
}

/// What the job keeps per series between cycles: bounded (at most 168 hourly buckets, 144
/// ten-minute minima, 64 restarts, 64 version changes and the verdict), stored as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeriesState {
    /// Hourly buckets, oldest first, unique hours within the last 168.
    pub(super) hours: Vec<Hour>,
    /// Closed ten-minute minima, oldest first.
    pub(super) ten: Vec<TenMin>,
    /// The ten-minute bucket being filled.
    pub(super) open_ten: Option<TenMin>,
    /// Minutes of the restarts detected, oldest first.
    pub(super) restarts: Vec<i64>,
    /// Version changes, oldest first; the first is the version first seen.
    pub(super) versions: Vec<VersionChange>,
    /// The newest minute observed.
    pub(super) last_minute: Option<i64>,
    /// The leak verdict kept between analyses.
    pub(super) tracker: Tracker,
}

impl SeriesState {
    /// Folds one minute rollup of the series in: its window start, its `min`, `max`, `mean`
    /// and `count`, and the version it ran. Points come in time order; a late one is folded
    /// into its hour when that hour is still held (else ignored) and changes no version. Two
    /// rows of one minute (two versions during a deploy) are both folded. Non-finite values
    /// are ignored; `min > max` is swapped; a non-finite mean becomes the midpoint. The caller
    /// drops rows from the future (past its watermark): the 168 hours held end at the newest
    /// point, so one far-future timestamp would push out the history.
    pub fn observe(
        &mut self,
        window_start_ms: i64,
        min: f64,
        max: f64,
        mean: f64,
        count: u64,
        version: Option<&str>,
    ) {
        let ok = |v: f64| v.is_finite() && v.abs() <= MAX_ABS;
        if !ok(min) || !ok(max) {
            return;
        }
        let (min, max) = if min <= max { (min, max) } else { (max, min) };
        let mean = if mean.is_finite() {
            mean.clamp(min, max)
        } else {
            0.5 * (min + max)
        };
        let minute = window_start_ms.div_euclid(MINUTE_MS);
        let late = self.last_minute.is_some_and(|l| minute < l);
        if let (false, Some(v)) = (late, version) {
            self.note_version(minute, v);
        }
        self.fold_hour(minute.div_euclid(60), min, max, mean, count);
        self.fold_ten(minute.div_euclid(10), min);
        self.last_minute = Some(self.last_minute.map_or(minute, |l| l.max(minute)));
    }

    /// The start of the newest minute observed, if any: for expiring series that stopped.
    pub fn last_seen_ms(&self) -> Option<i64> {
        self.last_minute.map(|m| m.saturating_mul(MINUTE_MS))
    }

    /// Whether nothing was observed.
    pub fn is_empty(&self) -> bool {
        self.hours.is_empty()
    }

    fn note_version(&mut self, minute: i64, version: &str) {
        let v = truncated(version, MAX_VERSION_LEN);
        if self.versions.last().is_some_and(|c| c.version == v) {
            return;
        }
        // The rows of one minute come in any order: a flip back within the minute of the last
        // change undoes it rather than adding a second change.
        let flip_back = matches!(
            self.versions.as_slice(),
            [.., before, last] if last.minute == minute && before.version == v
        );
        if flip_back {
            self.versions.pop();
            return;
        }
        self.versions.push(VersionChange {
            minute,
            version: v.to_owned(),
        });
        keep_last(&mut self.versions, MAX_EVENTS);
    }

    fn fold_hour(&mut self, hour: i64, min: f64, max: f64, mean: f64, count: u64) {
        match self.hours.binary_search_by_key(&hour, |b| b.hour) {
            Ok(i) => {
                if let Some(b) = self.hours.get_mut(i) {
                    b.fold(min, max, mean, count);
                }
            }
            Err(i) => {
                let newest = self.hours.last().map_or(hour, |b| b.hour.max(hour));
                let oldest_kept = newest - (WINDOW_H - 1);
                if hour < oldest_kept {
                    return; // too late: its hour left the window
                }
                self.hours.insert(
                    i,
                    Hour {
                        hour,
                        min,
                        max,
                        mean,
                        count,
                    },
                );
                let gone = self.hours.partition_point(|b| b.hour < oldest_kept);
                self.hours.drain(..gone);
            }
        }
    }

    fn fold_ten(&mut self, bucket: i64, min: f64) {
        let Some(open) = self.open_ten else {
            self.open_ten = Some(TenMin { bucket, min });
            return;
        };
        if bucket == open.bucket {
            self.open_ten = Some(TenMin {
                bucket,
                min: open.min.min(min),
            });
        } else if bucket > open.bucket {
            self.close_ten(open);
            self.open_ten = Some(TenMin { bucket, min });
        } else if let Ok(i) = self.ten.binary_search_by_key(&bucket, |b| b.bucket) {
            // Late: into its bucket when held; the restart test of that bucket is not redone.
            if let Some(b) = self.ten.get_mut(i) {
                b.min = b.min.min(min);
            }
        }
    }

    /// Closes a ten-minute bucket: a restart when its minimum falls abruptly below the floor
    /// of the hour before it (a daily decline is gradual and never does).
    fn close_ten(&mut self, closed: TenMin) {
        let k = closed.bucket;
        let from = self.ten.len().saturating_sub(RESTART_LOOKBACK);
        let prev: Vec<f64> = self.ten[from..]
            .iter()
            .filter(|b| k - b.bucket <= RESTART_GAP_MAX)
            .map(|b| b.min)
            .collect();
        if prev.len() >= RESTART_MIN_FLOOR && self.ten.len() >= RESTART_MIN_HISTORY {
            let floor = prev.iter().copied().fold(f64::INFINITY, f64::min);
            let level = median(&prev);
            let diffs: Vec<f64> = self
                .ten
                .windows(2)
                .filter(|w| w[1].bucket - w[0].bucket == 1)
                .map(|w| w[1].min - w[0].min)
                .collect();
            let sd = if diffs.len() >= RESTART_MIN_DIFFS {
                mad_sd(&diffs)
            } else {
                0.0
            };
            let gap = self.ten.last().map_or(1, |b| (k - b.bucket).max(1));
            let threshold =
                (RESTART_MIN_FRAC * level.abs()).max(RESTART_SIGMA * sd * (gap as f64).sqrt());
            if closed.min < floor - threshold {
                self.restarts.push(k.saturating_mul(10));
                keep_last(&mut self.restarts, MAX_EVENTS);
            }
        }
        self.ten.push(closed);
        keep_last(&mut self.ten, TEN_KEEP);
    }

    /// The version running at `minute` (the first one seen before any change).
    pub(super) fn version_at(&self, minute: i64) -> Option<&str> {
        let first = self.versions.first()?;
        let v = self
            .versions
            .iter()
            .take_while(|c| c.minute <= minute)
            .last()
            .unwrap_or(first);
        Some(&v.version)
    }

    /// Minutes of the version changes after the first version seen.
    pub(super) fn deploys(&self) -> impl Iterator<Item = i64> + '_ {
        self.versions.iter().skip(1).map(|c| c.minute)
    }

    /// The hours closed at `now_ms` (their end is not after it), oldest first.
    pub(super) fn closed(&self, now_ms: i64) -> &[Hour] {
        let n = self
            .hours
            .partition_point(|b| b.hour.saturating_add(1).saturating_mul(HOUR_MS) <= now_ms);
        &self.hours[..n]
    }

    /// `hours` (closed hours of this state) split at restarts and deploys. A boundary in hour
    /// `hb` ends the segment before it; the next one starts at `hb + 1`, and hour `hb` itself
    /// (before and after mixed) belongs to none. The last segment is the current one (possibly
    /// empty, after a boundary in the newest hours).
    pub(super) fn segments(&self, hours: &[Hour]) -> Vec<Segment> {
        let Some(h0) = hours.first().map(|b| b.hour) else {
            return Vec::new();
        };
        // (hour, restart, deploy), merged per hour.
        let mut bounds: Vec<(i64, bool, bool)> = self
            .restarts
            .iter()
            .map(|m| (m.div_euclid(60), true, false))
            .chain(self.deploys().map(|m| (m.div_euclid(60), false, true)))
            .filter(|b| b.0 >= h0)
            .collect();
        bounds.sort_by_key(|b| b.0);
        bounds.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 |= later.1;
                kept.2 |= later.2;
            }
            same
        });
        let mut segs = Vec::new();
        let mut cur = Segment {
            start: h0,
            range: 0..0,
            after_restart: false,
            after_deploy: false,
        };
        let mut pending = bounds.iter().peekable();
        for (i, b) in hours.iter().enumerate() {
            while let Some(&&(hb, restart, deploy)) = pending.peek() {
                if hb >= b.hour {
                    break;
                }
                cur = cur.close_at(hb, restart, deploy, i, &mut segs);
                pending.next();
            }
            if pending.peek().is_some_and(|bd| bd.0 == b.hour) {
                continue; // the mixed hour
            }
            if cur.range.is_empty() {
                cur.range = i..i + 1;
            } else {
                cur.range.end = i + 1;
            }
        }
        for &(hb, restart, deploy) in pending {
            cur = cur.close_at(hb, restart, deploy, hours.len(), &mut segs);
        }
        segs.push(cur);
        segs
    }
}

/// Consecutive closed hours between two boundaries.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Segment {
    /// Its first hour: the hour after its boundary (or the first hour held).
    pub(super) start: i64,
    /// Indices of its hours among the closed hours.
    pub(super) range: Range<usize>,
    /// It began at a restart.
    pub(super) after_restart: bool,
    /// It began at a version change.
    pub(super) after_deploy: bool,
}

impl Segment {
    /// Pushes this segment (when it has hours) and returns the one after boundary hour `hb`,
    /// empty at index `at`.
    fn close_at(
        self,
        hb: i64,
        restart: bool,
        deploy: bool,
        at: usize,
        segs: &mut Vec<Segment>,
    ) -> Segment {
        if !self.range.is_empty() {
            segs.push(self);
        }
        Segment {
            start: hb.saturating_add(1),
            range: at..at,
            after_restart: restart,
            after_deploy: deploy,
        }
    }

    /// Whether it began at a boundary rather than at the first hour held.
    pub(super) fn after_boundary(&self) -> bool {
        self.after_restart || self.after_deploy
    }

    /// Its part of `values` (aligned with the closed hours).
    pub(super) fn of<'a, T>(&self, values: &'a [T]) -> &'a [T] {
        values.get(self.range.clone()).unwrap_or(&[])
    }
}

/// A series' daily profile (24 hours of the day, UTC).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Daily {
    /// Not estimable yet (no segment of 48 h).
    Unknown,
    /// Known: no significant daily cycle.
    Flat,
    /// A significant daily cycle, by hour of the day, centred on 0.
    Cycle([f64; 24]),
}

impl Daily {
    /// Whether a profile could be estimated (flat or a cycle).
    pub(super) fn known(&self) -> bool {
        !matches!(self, Daily::Unknown)
    }

    /// The cycle, when significant.
    pub(super) fn cycle(&self) -> Option<[f64; 24]> {
        match self {
            Daily::Cycle(p) => Some(*p),
            _ => None,
        }
    }

    /// The cycle's value at an hour since the epoch (0 without a cycle).
    pub(super) fn at(&self, hour: i64) -> f64 {
        match self {
            Daily::Cycle(p) => p[hour_of_day(hour)],
            _ => 0.0,
        }
    }
}

/// The daily profile of `values` (aligned with `hours`). Only segments of at least 48 h are
/// used, never across a restart or a deploy: a service restarted at the same hour every day
/// draws the same shape every day, leak or warm-up alike, and that shape must not be taken for
/// a daily cycle. Residuals from a centred 2x24 moving average when there are 48 of them; else
/// from a hinge (flat, then linear: the leak model) backfitted with the profile.
pub(super) fn daily_profile(hours: &[Hour], segs: &[Segment], values: &[f64]) -> Daily {
    let long: Vec<&Segment> = segs
        .iter()
        .filter(|s| s.range.len() >= PROFILE_MIN_H)
        .collect();
    let mut res = Vec::new();
    for s in &long {
        let hs: Vec<i64> = s.of(hours).iter().map(|b| b.hour).collect();
        res.extend(ma_residuals(&hs, s.of(values)));
    }
    if res.len() >= PROFILE_MIN_H {
        return profile_from_residuals(&res);
    }
    if long.is_empty() {
        return Daily::Unknown;
    }
    let mut p = [0.0; 24];
    for _ in 0..PROFILE_ITER {
        res.clear();
        for s in &long {
            let (hb, v) = (s.of(hours), s.of(values));
            let Some(h0) = hb.first().map(|b| b.hour) else {
                continue;
            };
            let t: Vec<f64> = hb.iter().map(|b| (b.hour - h0) as f64).collect();
            let y: Vec<f64> = hb
                .iter()
                .zip(v)
                .map(|(b, x)| x - p[hour_of_day(b.hour)])
                .collect();
            let Some(fit) = hinge_fit(&t, &y, MIN_GROW_H) else {
                continue;
            };
            let tau = t.get(fit.j).copied().unwrap_or(0.0);
            for ((b, x), tt) in hb.iter().zip(v).zip(&t) {
                res.push((b.hour, x - (fit.a + fit.b * (tt - tau).max(0.0))));
            }
        }
        match profile_from_residuals(&res) {
            Daily::Unknown => return Daily::Unknown,
            Daily::Flat => {
                let r: Vec<f64> = res.iter().map(|x| x.1).collect();
                return if lag1(&r) < PROFILE_MAX_RHO {
                    Daily::Flat
                } else {
                    Daily::Unknown
                };
            }
            Daily::Cycle(q) => p = q,
        }
    }
    Daily::Cycle(p)
}

/// Residuals from a centred 2x24 moving average, for each point whose hours `c - 12 ..= c + 12`
/// are all present: `y[c] - (y[c-12]/2 + y[c-11..=c+11] + y[c+12]/2) / 24`. A whole day's
/// average cancels a daily cycle whatever the trend's shape. `hours` are strictly increasing.
pub(super) fn ma_residuals(hours: &[i64], y: &[f64]) -> Vec<(i64, f64)> {
    let n = hours.len().min(y.len());
    let mut out = Vec::new();
    for i in MA_HALF..n.saturating_sub(MA_HALF) {
        let c = hours[i];
        // 25 increasing hours spanning 24 are the 25 consecutive ones.
        if hours[i - MA_HALF] != c - MA_HALF as i64 || hours[i + MA_HALF] != c + MA_HALF as i64 {
            continue;
        }
        let inner: f64 = y[i + 1 - MA_HALF..i + MA_HALF].iter().sum();
        let avg = (0.5 * y[i - MA_HALF] + inner + 0.5 * y[i + MA_HALF]) / 24.0;
        out.push((c, y[i] - avg));
    }
    out
}

/// A profile from residuals `(hour, r)`: medians per hour of the day (gaps filled from the
/// nearest hours), centred. [`Daily::Flat`] when its range is below [`SEASON_K`] robust sd of
/// what remains, [`Daily::Unknown`] with too few residuals.
pub(super) fn profile_from_residuals(res: &[(i64, f64)]) -> Daily {
    if res.len() < PROFILE_MIN_H {
        return Daily::Unknown;
    }
    let mut by_hour: [Vec<f64>; 24] = Default::default();
    for &(c, r) in res {
        by_hour[hour_of_day(c)].push(r);
    }
    let Some(q) = fill_profile(&by_hour) else {
        return Daily::Unknown;
    };
    let m = median(&q);
    let p = q.map(|x| x - m);
    let rest: Vec<f64> = res.iter().map(|&(c, r)| r - p[hour_of_day(c)]).collect();
    let sd = mad_sd(&rest);
    let lo = p.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = hi - lo;
    if range > 0.0 && range >= SEASON_K * sd {
        Daily::Cycle(p)
    } else {
        Daily::Flat
    }
}

/// Medians per hour of the day with at least 2 values; an hour with fewer takes the mean of
/// its nearest present hours on each side (circular). `None` with fewer than
/// [`PROFILE_MIN_HOURS`] hours present.
fn fill_profile(by_hour: &[Vec<f64>; 24]) -> Option<[f64; 24]> {
    let p: [Option<f64>; 24] =
        std::array::from_fn(|k| (by_hour[k].len() >= 2).then(|| median(&by_hour[k])));
    if p.iter().flatten().count() < PROFILE_MIN_HOURS {
        return None;
    }
    Some(std::array::from_fn(|k| {
        p[k].unwrap_or_else(|| {
            let after = (1..24).find_map(|s| p[(k + s) % 24]);
            let before = (1..24).find_map(|s| p[(k + 24 - s) % 24]);
            let near: Vec<f64> = after.into_iter().chain(before).collect();
            near.iter().sum::<f64>() / near.len().max(1) as f64
        })
    }))
}

/// Keeps the last `max` items.
fn keep_last<T>(v: &mut Vec<T>, max: usize) {
    let excess = v.len().saturating_sub(max);
    v.drain(..excess);
}

/// `v` cut to at most `max` bytes at a character boundary.
fn truncated(v: &str, max: usize) -> &str {
    if v.len() <= max {
        return v;
    }
    let end = v
        .char_indices()
        .map(|(i, _)| i)
        .take_while(|&i| i <= max)
        .last()
        .unwrap_or(0);
    v.get(..end).unwrap_or("")
}
