//! NAB standard-profile scores of the anomaly detector on `../shared/data/nab`, in sample and
//! out of sample (leave one file out).
//!
//! ```sh
//! cargo run -p opslake-processor --example nab_holdout [-- <nab dir>]
//! ```
//!
//! Every setting of a grid (threshold × cool-down × warm-up) is scored on every file once.
//! *In sample* is the best setting's score over all files (what a sweep on the corpus itself
//! reports). *Out of sample*: for each file, the setting that scores best on the other files is
//! chosen and that file is scored with it; the held-out files' scores are then normalized
//! together, as NAB normalizes a corpus. The default setting's score is printed too.

use std::path::PathBuf;
use std::time::Instant;

use opslake_processor::detect::anomaly::{AnomalyConfig, Detector};
use opslake_processor::detect::nab::{corpus, normalized, score_file, FileScore, STANDARD};

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
    let mut grid = Vec::new();
    for threshold in [4.0, 6.0, 8.0, 10.0, 14.0] {
        for cooldown_days in [0.5, 1.0, 2.0] {
            for warmup in [24, 144] {
                grid.push(AnomalyConfig {
                    threshold,
                    cooldown_days,
                    warmup,
                });
            }
        }
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
        .position(|c| *c == AnomalyConfig::default())
        .expect("the default is in the grid");
    let best = best_on(&|_| true);
    let mut held_out = Vec::new();
    println!(
        "{:58} {:>30} {:>9}",
        "held-out file", "setting chosen on the others", "raw"
    );
    for f in 0..files.len() {
        let s = best_on(&|g| g != f);
        let c = grid[s];
        println!(
            "{:58} {:>30} {:>9.2}",
            files[f].name,
            format!("t={} cd={}d w={}", c.threshold, c.cooldown_days, c.warmup),
            scores[s][f].raw
        );
        held_out.push(scores[s][f]);
    }
    let c = grid[best];
    println!();
    println!(
        "{} files, {} settings, {:.1?}",
        files.len(),
        grid.len(),
        started.elapsed()
    );
    println!(
        "default setting (t={} cd={}d w={}):      {:.1}",
        grid[default].threshold,
        grid[default].cooldown_days,
        grid[default].warmup,
        total(default, &|_| true)
    );
    println!(
        "in sample, best setting (t={} cd={}d w={}): {:.1}",
        c.threshold,
        c.cooldown_days,
        c.warmup,
        total(best, &|_| true)
    );
    println!(
        "out of sample (leave one file out):        {:.1}",
        normalized(&held_out, STANDARD)
    );
}
