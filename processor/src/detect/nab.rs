//! The Numenta Anomaly Benchmark scorer (Lavin and Ahmad, 2015), as a reusable tool: scores
//! detections against labelled windows with a cost profile, and normalizes the total so that
//! the null detector scores 0 and the perfect one 100. It follows NAB's sweeper: a detection
//! inside a window counts once, the earlier the better (scaled sigmoid of its position); a
//! detection outside counts against, less the further it is after a window; a missed window
//! costs `fn_weight`; the first 15% of each file (at most 750 points) is not scored.
//!
//! An evaluation harness, not part of the pipeline: compiled for the crate's tests and with the
//! `nab` feature (for `examples/nab_holdout.rs`), never into the binary.

/// Weights of a NAB profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Weight of a detected window.
    pub tp_weight: f64,
    /// Weight of a false positive.
    pub fp_weight: f64,
    /// Weight of a missed window.
    pub fn_weight: f64,
}

/// NAB's standard profile.
pub const STANDARD: Profile = Profile {
    tp_weight: 1.0,
    fp_weight: 0.11,
    fn_weight: 1.0,
};

/// The score parts of one file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FileScore {
    /// Raw score: TP + FP + FN parts.
    pub raw: f64,
    /// Labelled anomaly windows of the file.
    pub windows: usize,
    /// Windows with a detection inside.
    pub detected_windows: usize,
    /// Detections outside every window.
    pub false_positives: usize,
}

fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// NAB's probationary period: 15% of the file, at most 750 points.
pub fn probation(len: usize) -> usize {
    ((0.15 * len as f64).floor() as usize).min(750)
}

/// Scores one file: `times` of every point (ascending), whether each point is a detection,
/// and the labelled windows as inclusive `(start, end)` times.
pub fn score_file(
    times: &[i64],
    detected: &[bool],
    windows: &[(i64, i64)],
    p: Profile,
) -> FileScore {
    let probation = probation(times.len());
    // Window index ranges.
    let ranges: Vec<(usize, usize)> = windows
        .iter()
        .filter_map(|&(s, e)| {
            let l = times.iter().position(|&t| t >= s)?;
            let r = times.iter().rposition(|&t| t <= e)?;
            (l <= r).then_some((l, r))
        })
        .collect();
    let mut out = FileScore {
        windows: ranges.len(),
        ..Default::default()
    };
    let mut detected_in = vec![false; ranges.len()];
    let mut tp = 0.0;
    let mut fp = 0.0;
    for (i, &d) in detected.iter().enumerate() {
        if !d || i < probation {
            continue;
        }
        if let Some(w) = ranges.iter().position(|&(l, r)| l <= i && i <= r) {
            if !detected_in[w] {
                detected_in[w] = true;
                let (l, r) = ranges[w];
                let width = (r - l + 1) as f64;
                let pos = -((r - i + 1) as f64) / width;
                tp += scaled_sigmoid(pos) * p.tp_weight;
            }
        } else {
            out.false_positives += 1;
            let prev = ranges.iter().rev().find(|&&(_, r)| r < i);
            let unweighted = match prev {
                None => -1.0,
                Some(&(l, r)) => {
                    let width = (r - l + 1) as f64;
                    scaled_sigmoid((i - r) as f64 / (width - 1.0).max(1.0))
                }
            };
            fp += unweighted * p.fp_weight;
        }
    }
    out.detected_windows = detected_in.iter().filter(|d| **d).count();
    let missed = (out.windows - out.detected_windows) as f64;
    out.raw = tp + fp - missed * p.fn_weight;
    out
}

/// NAB's normalized score over files: 100 × (raw − null) / (perfect − null).
pub fn normalized(files: &[FileScore], p: Profile) -> f64 {
    let windows: usize = files.iter().map(|f| f.windows).sum();
    let raw: f64 = files.iter().map(|f| f.raw).sum();
    let null = -(windows as f64) * p.fn_weight;
    let perfect = windows as f64 * scaled_sigmoid(-1.0) * p.tp_weight;
    if perfect == null {
        return 0.0;
    }
    100.0 * (raw - null) / (perfect - null)
}

/// Reading the NAB corpus laid out as in `../shared/data/nab`.
pub mod corpus {
    use std::path::Path;

    /// One labelled file.
    pub struct NabFile {
        /// Its name: its path under `data/` (`realKnownCause/nyc_taxi.csv`).
        pub name: String,
        /// Its corpus: the folder under `data/` (`realKnownCause`).
        pub corpus: String,
        /// Timestamps (epoch ms).
        pub times: Vec<i64>,
        /// Values, one per timestamp.
        pub values: Vec<f64>,
        /// Labelled anomaly windows, (start, end) epoch ms.
        pub windows: Vec<(i64, i64)>,
    }

    impl NabFile {
        /// The median time between two points (ms): the series' cadence.
        pub fn median_interval(&self) -> i64 {
            let mut d: Vec<i64> = self
                .times
                .windows(2)
                .map(|w| w[1] - w[0])
                .filter(|d| *d > 0)
                .collect();
            d.sort_unstable();
            d.get(d.len() / 2).copied().unwrap_or(60_000)
        }
    }

    fn parse_time(s: &str) -> Option<i64> {
        let s = s.trim();
        let s = s.split('.').next()?;
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .ok()
            .map(|t| t.and_utc().timestamp_millis())
    }

    /// Every file of `root/data` with its windows from `root/labels/combined_windows.json`,
    /// sorted by name (so a corpus's files are together).
    ///
    /// # Errors
    /// When a file cannot be read or parsed.
    pub fn load(root: &Path) -> Result<Vec<NabFile>, String> {
        let labels: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("labels/combined_windows.json"))
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let mut names: Vec<&String> = labels
            .as_object()
            .ok_or("labels are not an object")?
            .keys()
            .collect();
        names.sort();
        for name in names {
            let path = root.join("data").join(name);
            if !path.exists() {
                continue;
            }
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut times = Vec::new();
            let mut values = Vec::new();
            for line in text.lines().skip(1) {
                let Some((t, v)) = line.split_once(',') else {
                    continue;
                };
                if let (Some(t), Ok(v)) = (parse_time(t), v.trim().parse::<f64>()) {
                    times.push(t);
                    values.push(v);
                }
            }
            let windows = labels[name]
                .as_array()
                .ok_or("windows are not a list")?
                .iter()
                .filter_map(|w| Some((parse_time(w[0].as_str()?)?, parse_time(w[1].as_str()?)?)))
                .collect();
            let corpus = name.split('/').next().unwrap_or_default().to_string();
            out.push(NabFile {
                name: name.clone(),
                corpus,
                times,
                values,
                windows,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_scores_zero_and_perfect_scores_100() {
        let times: Vec<i64> = (0..1000).collect();
        let windows = [(500, 599)];
        let none = vec![false; 1000];
        let f = score_file(&times, &none, &windows, STANDARD);
        assert_eq!(normalized(&[f], STANDARD), 0.0);
        let mut first = none.clone();
        first[500] = true;
        let f = score_file(&times, &first, &windows, STANDARD);
        assert!((normalized(&[f], STANDARD) - 100.0).abs() < 1e-9);
        // A late detection scores less; a false positive before any window costs fp_weight.
        let mut late = none.clone();
        late[590] = true;
        late[300] = true;
        let f = score_file(&times, &late, &windows, STANDARD);
        assert_eq!(f.false_positives, 1);
        assert!(f.raw < 0.3 && f.raw > -0.2, "{f:?}");
        // Detections in the probationary period are not scored.
        let mut early = none;
        early[10] = true;
        assert_eq!(
            score_file(&times, &early, &windows, STANDARD).false_positives,
            0
        );
    }
}
