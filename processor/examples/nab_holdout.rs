//! NAB standard-profile scores of the anomaly detector on `../shared/data/nab`, in sample and
//! out of sample (leave one file out).
//!
//! ```sh
//! cargo run -p opslake-processor --example nab_holdout [-- <nab dir>]
//! ```
//!
//! Every setting of a grid is scored on every file once: the point rule (one point's score
//! over a threshold) and the anomaly likelihood (the mean score of the last points against the
//! series' own scores), each with its cool-downs. *In sample* is the best setting's score over
//! all files (what a sweep on the corpus itself reports). *Out of sample*: for each file, the
//! setting that scores best on the other files is chosen and that file is scored with it; the
//! held-out files' scores are then normalized together, as NAB normalizes a corpus. The
//! default setting's score is printed too, with its detections file by file.

use std::path::PathBuf;
use std::time::Instant;

use opslake_processor::detect::anomaly::{AnomalyConfig, Detector};
use opslake_processor::detect::nab::{corpus, normalized, score_file, FileScore, STANDARD};

fn describe(c: &AnomalyConfig) -> String {
    if c.likelihood > 0.0 {
        format!(
            "likelihood {} over {} pts (>= {}), cd {}d",
            c.likelihood, c.short_points, c.min_short_score, c.cooldown_days
        )
    } else {
        format!("point > {}, cd {}d", c.threshold, c.cooldown_days)
    }
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
    let base = AnomalyConfig::default();
    let env_list = |k: &str, d: &[f64]| -> Vec<f64> {
        std::env::var(k).map_or_else(
            |_| d.to_vec(),
            |v| v.split(',').map(|x| x.parse().expect("a number")).collect(),
        )
    };
    let mut grid = Vec::new();
    for cooldown_days in [0.5, 1.0, 2.0] {
        for threshold in [6.0, 8.0, 10.0, 14.0] {
            grid.push(AnomalyConfig {
                threshold,
                cooldown_days,
                likelihood: 0.0,
                ..base
            });
        }
        for likelihood in [1.25, 1.5, 1.75, 2.0] {
            for short_points in [5, 10, 20] {
                for min_short_score in env_list("NAB_M", &[3.0, 4.0, 5.0]) {
                    grid.push(AnomalyConfig {
                        cooldown_days,
                        likelihood,
                        short_points,
                        min_short_score,
                        ..base
                    });
                }
            }
        }
    }
    if !grid.contains(&base) {
        grid.push(base);
    }
    let started = Instant::now();
    // scores[setting][file]
    let scores: Vec<Vec<FileScore>> = grid
        .iter()
        .enumerate()
        .map(|(i, cfg)| {
            eprint!(
                "\rsetting {}/{} ({:.0?})",
                i + 1,
                grid.len(),
                started.elapsed()
            );
            files
                .iter()
                .map(|f| {
                    let mut d = Detector::new(Detector::points_per_day(f.median_interval()), *cfg);
                    let detected: Vec<bool> = f
                        .values
                        .iter()
                        .map(|&v| d.push(v).is_some_and(|e| e.anomalous))
                        .collect();
                    score_file(&f.times, &detected, &f.windows, STANDARD)
                })
                .collect()
        })
        .collect();
    eprintln!();
    let total = |s: usize, keep: &dyn Fn(usize) -> bool| -> f64 {
        let kept: Vec<FileScore> = (0..files.len())
            .filter(|&f| keep(f))
            .map(|f| scores[s][f])
            .collect();
        normalized(&kept, STANDARD)
    };
    let best_on = |keep: &dyn Fn(usize) -> bool| -> usize {
        (0..grid.len())
            .max_by(|&a, &b| total(a, keep).total_cmp(&total(b, keep)))
            .expect("a grid")
    };
    let default = grid
        .iter()
        .position(|c| *c == base)
        .expect("the default is in the grid");
    let best = best_on(&|_| true);
    let mut held_out = Vec::new();
    println!(
        "{:58} {:>36} {:>6}",
        "held-out file", "setting chosen on the others", "raw"
    );
    for f in 0..files.len() {
        let s = best_on(&|g| g != f);
        println!(
            "{:58} {:>36} {:>6.2}",
            files[f].name,
            describe(&grid[s]),
            scores[s][f].raw
        );
        held_out.push(scores[s][f]);
    }
    println!();
    println!("default setting, file by file:");
    for (f, file) in files.iter().enumerate() {
        let x = scores[default][f];
        println!(
            "  {:58} {:>6.2}  windows found {}/{}  false positives {}",
            file.name, x.raw, x.detected_windows, x.windows, x.false_positives
        );
    }
    let fps = |s: usize| -> usize { scores[s].iter().map(|x| x.false_positives).sum() };
    println!();
    println!(
        "{} files, {} settings, {:.1?}",
        files.len(),
        grid.len(),
        started.elapsed()
    );
    println!(
        "default setting ({}): {:.1} ({} false positives)",
        describe(&grid[default]),
        total(default, &|_| true),
        fps(default)
    );
    println!(
        "in sample, best setting ({}): {:.1}",
        describe(&grid[best]),
        total(best, &|_| true)
    );
    println!(
        "out of sample (leave one file out): {:.1}",
        normalized(&held_out, STANDARD)
    );
    if std::env::var_os("NAB_ALL").is_some() {
        for (s, c) in grid.iter().enumerate() {
            println!(
                "  {:40} {:>6.1} ({} false positives)",
                describe(c),
                total(s, &|_| true),
                fps(s)
            );
        }
    }
}
