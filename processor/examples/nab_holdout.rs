//! NAB standard-profile scores of the anomaly detector on `../shared/data/nab`, out of sample by
//! corpus, beside the issue's rolling median/MAD baseline scored the same way.
//!
//! ```sh
//! cargo run --release -p opslake-processor --features nab --example nab_holdout [-- <nab dir>]
//! ```
//!
//! Every setting of a small grid (the settings that mean something: the floor and the memory)
//! is scored on every file once. *Leave one corpus out*: for each corpus, the setting that
//! scores best on the other corpora (their files normalized together; ties go to the later
//! setting) is chosen and the held-out corpus is scored with it; the held-out files of all
//! corpora are then normalized together for the overall figure. The baseline (each point's
//! distance from the median of the previous day's points in units of 1.4826 × their MAD,
//! flagged above a threshold, then a day's cool-down) chooses its threshold from 3 to 20 the
//! same way. A corpus without windows (`artificialNoAnomaly`) normalizes to 0/0, so its raw
//! score and false positives are shown instead. The default setting's in-sample score over all
//! files is printed too.

use std::path::PathBuf;
use std::time::Instant;

use opslake_processor::detect::anomaly::{AnomalyConfig, Detector};
use opslake_processor::detect::nab::corpus::{self, NabFile};
use opslake_processor::detect::nab::{normalized, score_file, FileScore, STANDARD};

/// Thresholds of the baseline's grid.
const BASELINE_THRESHOLDS: std::ops::RangeInclusive<u32> = 3..=20;

fn describe(c: &AnomalyConfig) -> String {
    format!(
        "floor {}, memory {}d, gap {}d, run {}",
        c.floor, c.memory_days, c.gap_days, c.run_points
    )
}

/// The median of sorted values (the mean of the middle two for an even count).
fn median_sorted(s: &[f64]) -> f64 {
    let mid = s.len() / 2;
    if s.len() % 2 == 1 {
        s[mid]
    } else {
        (s[mid - 1] + s[mid]) / 2.0
    }
}

/// The median of `|v - med|` over sorted values, walking out from `med` on both sides.
fn mad_sorted(s: &[f64], med: f64) -> f64 {
    let split = s.partition_point(|&v| v < med);
    let (mut left, mut right) = (split, split);
    let (mut prev, mut cur) = (0.0, 0.0);
    for _ in 0..=s.len() / 2 {
        let l = left.checked_sub(1).map(|i| med - s[i]);
        let r = s.get(right).map(|&v| v - med);
        prev = cur;
        cur = match (l, r) {
            (Some(l), Some(r)) if l < r => {
                left -= 1;
                l
            }
            (_, Some(r)) => {
                right += 1;
                r
            }
            (Some(l), None) => {
                left -= 1;
                l
            }
            (None, None) => break,
        };
    }
    if s.len() % 2 == 1 {
        cur
    } else {
        (prev + cur) / 2.0
    }
}

/// The baseline's score of every point: its distance from the median of the previous `day`
/// points in units of 1.4826 × their MAD. Where the MAD is 0, a point at the median scores 0
/// and any other point infinity. The first `day` points score 0.
fn baseline_scores(values: &[f64], day: usize) -> Vec<f64> {
    let mut out = vec![0.0; values.len()];
    if values.len() <= day {
        return out;
    }
    let mut window = values[..day].to_vec();
    window.sort_unstable_by(f64::total_cmp);
    for i in day..values.len() {
        let med = median_sorted(&window);
        let mad = mad_sorted(&window, med);
        let dist = (values[i] - med).abs();
        out[i] = if mad > 0.0 {
            dist / (1.4826 * mad)
        } else if dist > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        let old = values[i - day];
        let at = window.partition_point(|v| v.total_cmp(&old).is_lt());
        window.remove(at);
        let at = window.partition_point(|v| v.total_cmp(&values[i]).is_le());
        window.insert(at, values[i]);
    }
    out
}

/// The baseline's detections: scores above `threshold`, then a day's cool-down.
fn baseline_detect(scores: &[f64], day: usize, threshold: f64) -> Vec<bool> {
    let mut next = 0;
    scores
        .iter()
        .enumerate()
        .map(|(i, &z)| {
            let hit = z > threshold && i >= next;
            if hit {
                next = i + day + 1;
            }
            hit
        })
        .collect()
}

/// The detector's detections on one file.
fn detect(f: &NabFile, cfg: AnomalyConfig) -> Vec<bool> {
    let mut d = Detector::new(Detector::points_per_day(f.median_interval()), cfg);
    f.values
        .iter()
        .map(|&v| d.push(v).is_some_and(|e| e.anomalous))
        .collect()
}

/// What one detector's grid scored: `scores[setting][file]`.
struct Scored {
    scores: Vec<Vec<FileScore>>,
}

/// A corpus held out: the setting chosen on the others and the held-out files' scores.
struct HeldOut {
    setting: usize,
    files: Vec<FileScore>,
}

impl Scored {
    fn total(&self, s: usize, keep: &dyn Fn(usize) -> bool) -> f64 {
        let kept: Vec<FileScore> = self.scores[s]
            .iter()
            .enumerate()
            .filter(|(f, _)| keep(*f))
            .map(|(_, x)| *x)
            .collect();
        normalized(&kept, STANDARD)
    }

    /// The setting scoring best on the kept files; ties go to the later one.
    fn best_on(&self, keep: &dyn Fn(usize) -> bool) -> usize {
        (0..self.scores.len())
            .max_by(|&a, &b| self.total(a, keep).total_cmp(&self.total(b, keep)))
            .expect("a grid")
    }

    /// Leave one corpus out: per corpus, the setting best on the other corpora's files.
    fn leave_one_corpus_out(&self, files: &[NabFile], corpora: &[String]) -> Vec<HeldOut> {
        corpora
            .iter()
            .map(|c| {
                let setting = self.best_on(&|g| files[g].corpus != *c);
                let held = (0..files.len())
                    .filter(|&g| files[g].corpus == *c)
                    .map(|g| self.scores[setting][g])
                    .collect();
                HeldOut {
                    setting,
                    files: held,
                }
            })
            .collect()
    }
}

fn false_positives(files: &[FileScore]) -> usize {
    files.iter().map(|x| x.false_positives).sum()
}

/// A corpus's figure: normalized, or the raw score for a corpus without windows.
fn corpus_value(files: &[FileScore]) -> f64 {
    if files.iter().all(|x| x.windows == 0) {
        files.iter().map(|x| x.raw).sum()
    } else {
        normalized(files, STANDARD)
    }
}

fn corpus_cell(files: &[FileScore]) -> String {
    let fp = false_positives(files);
    if files.iter().all(|x| x.windows == 0) {
        format!("raw {:+.2} ({fp} FP)", corpus_value(files))
    } else {
        format!("{:.1} ({fp} FP)", corpus_value(files))
    }
}

/// The held-out files of every corpus normalized together, and their false positives.
fn overall(held: &[HeldOut]) -> (f64, usize) {
    let all: Vec<FileScore> = held.iter().flat_map(|h| h.files.iter().copied()).collect();
    (normalized(&all, STANDARD), false_positives(&all))
}

/// Scores every setting on every file, printing progress.
fn score_grid(
    what: &str,
    n: usize,
    started: &Instant,
    run: &dyn Fn(usize) -> Vec<FileScore>,
) -> Scored {
    let scores = (0..n)
        .map(|s| {
            eprint!(
                "\r{what}: setting {}/{n} ({:.0?})    ",
                s + 1,
                started.elapsed()
            );
            run(s)
        })
        .collect();
    eprintln!();
    Scored { scores }
}

fn main() {
    let root = std::env::args().nth(1).map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/data/nab"
            ))
        },
        PathBuf::from,
    );
    let files = corpus::load(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    let mut corpora: Vec<String> = files.iter().map(|f| f.corpus.clone()).collect();
    corpora.dedup();
    let started = Instant::now();
    eprintln!(
        "{} files of {} corpora, {} points",
        files.len(),
        corpora.len(),
        files.iter().map(|f| f.values.len()).sum::<usize>()
    );

    let base = AnomalyConfig::default();
    let mut grid = Vec::new();
    for floor in [1.5, 2.0, 2.5, 3.0] {
        for memory_days in [2.0, 3.0, 4.0] {
            grid.push(AnomalyConfig {
                floor,
                memory_days,
                ..base
            });
        }
    }
    if !grid.contains(&base) {
        grid.push(base);
    }
    let new = score_grid("robust-run-record", grid.len(), &started, &|s| {
        files
            .iter()
            .map(|f| score_file(&f.times, &detect(f, grid[s]), &f.windows, STANDARD))
            .collect()
    });

    let thresholds: Vec<f64> = BASELINE_THRESHOLDS.map(f64::from).collect();
    let days: Vec<usize> = files
        .iter()
        .map(|f| Detector::points_per_day(f.median_interval()))
        .collect();
    let baseline_z: Vec<Vec<f64>> = files
        .iter()
        .zip(&days)
        .enumerate()
        .map(|(i, (f, &day))| {
            eprint!("\rbaseline scores: file {}/{}    ", i + 1, files.len());
            baseline_scores(&f.values, day)
        })
        .collect();
    eprintln!();
    let baseline = score_grid("baseline", thresholds.len(), &started, &|s| {
        files
            .iter()
            .enumerate()
            .map(|(g, f)| {
                let detected = baseline_detect(&baseline_z[g], days[g], thresholds[s]);
                score_file(&f.times, &detected, &f.windows, STANDARD)
            })
            .collect()
    });

    println!("in sample (all {} files), per setting:", files.len());
    for (s, c) in grid.iter().enumerate() {
        println!(
            "  {:44} {:>6.1} ({} FP)",
            describe(c),
            new.total(s, &|_| true),
            false_positives(&new.scores[s])
        );
    }
    let held_new = new.leave_one_corpus_out(&files, &corpora);
    let held_baseline = baseline.leave_one_corpus_out(&files, &corpora);
    println!();
    println!("leave one corpus out (each corpus scored with the setting best on the others):");
    println!(
        "  {:24} {:>7}  {:44} {:>18}  {:>13} {:>18}  beats",
        "held-out corpus",
        "windows",
        "robust-run-record: setting",
        "score",
        "baseline: thr",
        "score"
    );
    let mut beats_all = true;
    for ((c, n), b) in corpora.iter().zip(&held_new).zip(&held_baseline) {
        let windows: usize = n.files.iter().map(|x| x.windows).sum();
        let beats = corpus_value(&n.files) > corpus_value(&b.files);
        beats_all &= beats;
        println!(
            "  {:24} {:>7}  {:44} {:>18}  {:>13} {:>18}  {}",
            c,
            windows,
            describe(&grid[n.setting]),
            corpus_cell(&n.files),
            thresholds[b.setting],
            corpus_cell(&b.files),
            if beats { "yes" } else { "NO" }
        );
    }
    let (new_overall, new_fp) = overall(&held_new);
    let (baseline_overall, baseline_fp) = overall(&held_baseline);
    println!(
        "  overall (held-out files normalized together): robust-run-record {new_overall:.1} \
         ({new_fp} FP), baseline {baseline_overall:.1} ({baseline_fp} FP)"
    );
    println!(
        "  >= 60 overall: {}; above the baseline on every held-out corpus: {}",
        if new_overall >= 60.0 { "yes" } else { "NO" },
        if beats_all { "yes" } else { "NO" }
    );
    let default = grid
        .iter()
        .position(|c| *c == base)
        .expect("the default is in the grid");
    println!();
    println!(
        "default setting ({}), in sample: {:.1} ({} FP)",
        describe(&base),
        new.total(default, &|_| true),
        false_positives(&new.scores[default])
    );
    println!(
        "{} files, {} + {} settings, {:.1?}",
        files.len(),
        grid.len(),
        thresholds.len(),
        started.elapsed()
    );
}
