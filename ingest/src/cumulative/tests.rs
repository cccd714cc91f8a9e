use super::*;
use proptest::prelude::*;

/// `p` of `series` as ingest takes it: the delta, and the series' state recorded.
fn to_delta(
    series: &mut PartitionSeries,
    prefix: &str,
    key: &str,
    p: &HistogramEvent,
    state: &mut BTreeMap<String, serde_json::Value>,
) -> Result<Option<HistogramEvent>, String> {
    let (delta, now) = step(series.get(key), p)?;
    if let Some(now) = now {
        series.set(prefix, key.to_string(), now, state);
    }
    Ok(delta)
}

fn point(start_ns: u64, time_ns: u64, buckets: HistogramBuckets) -> HistogramEvent {
    let count = match &buckets {
        HistogramBuckets::Explicit { counts, .. } => counts.iter().sum(),
        HistogramBuckets::Exponential {
            zero_count,
            positive,
            negative,
            ..
        } => zero_count + positive.iter().sum::<u64>() + negative.iter().sum::<u64>(),
    };
    HistogramEvent {
        timestamp_ms: i64::try_from(time_ns / 1_000_000).unwrap(),
        start_time_ns: start_ns,
        time_ns,
        service: "s".into(),
        name: "n".into(),
        unit: None,
        host: None,
        version: None,
        labels: Vec::new(),
        temporality: Temporality::Cumulative,
        count,
        sum: None,
        min: None,
        max: None,
        buckets,
    }
}

fn explicit(counts: Vec<u64>) -> HistogramBuckets {
    HistogramBuckets::Explicit {
        bounds: vec![1.0, 10.0],
        counts,
    }
}

fn run(points: &[HistogramEvent]) -> Vec<Result<Option<HistogramEvent>, String>> {
    let mut series = PartitionSeries::default();
    let mut state = BTreeMap::new();
    points
        .iter()
        .map(|p| to_delta(&mut series, "p/", "k", p, &mut state))
        .collect()
}

#[test]
fn deltas_follow_the_series_through_a_reset_and_refuse_a_repeat() {
    let out = run(&[
        point(100, 1_000, explicit(vec![1, 2, 0])),
        point(100, 2_000, explicit(vec![1, 5, 1])),
        point(100, 2_000, explicit(vec![1, 5, 1])),
        // The process restarted: a new start time.
        point(2_500, 3_000, explicit(vec![0, 1, 0])),
        // The same start time but fewer values: a restart too.
        point(2_500, 4_000, explicit(vec![0, 0, 0])),
        point(2_500, 5_000, explicit(vec![0, 0, 2])),
    ]);
    let counts = |r: &Result<Option<HistogramEvent>, String>| match r {
        Ok(Some(HistogramEvent {
            buckets: HistogramBuckets::Explicit { counts, .. },
            ..
        })) => Some(counts.clone()),
        _ => None,
    };
    assert_eq!(counts(&out[0]), Some(vec![1, 2, 0]));
    assert_eq!(counts(&out[1]), Some(vec![0, 3, 1]));
    assert!(out[2].as_ref().unwrap_err().contains("not after"));
    assert_eq!(counts(&out[3]), Some(vec![0, 1, 0]));
    assert!(matches!(out[4], Ok(None)), "no values: no row");
    assert_eq!(counts(&out[5]), Some(vec![0, 0, 2]));
    let d = out[1].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(
        (d.start_time_ns, d.count, d.temporality),
        (1_000, 4, Temporality::Delta)
    );
}

#[test]
fn state_round_trips_through_the_lake_entries() {
    let mut series = PartitionSeries::default();
    let mut state = BTreeMap::new();
    let p = point(1, 10, explicit(vec![1, 1, 1]));
    to_delta(&mut series, "x/t/0/", "k", &p, &mut state).unwrap();
    let loaded = load("x/t/0/", state.iter());
    assert_eq!(loaded, series);
}

/// The exponential bucket index of `v` at `scale`.
fn index(v: f64, scale: i32) -> i32 {
    ((v.ln() / ((-f64::from(scale)).exp2() * std::f64::consts::LN_2)).ceil() as i64 - 1) as i32
}

fn exponential(values: &[f64], scale: i32) -> HistogramBuckets {
    let idx: Vec<i32> = values.iter().map(|v| index(*v, scale)).collect();
    let offset = idx.iter().copied().min().unwrap_or(0);
    let end = idx.iter().copied().max().unwrap_or(-1);
    let mut positive = vec![0u64; usize::try_from(end - offset + 1).unwrap_or(0)];
    for i in idx {
        positive[usize::try_from(i - offset).unwrap()] += 1;
    }
    HistogramBuckets::Exponential {
        scale,
        zero_count: 0,
        zero_threshold: 0.0,
        positive_offset: offset,
        positive,
        negative_offset: 0,
        negative: Vec::new(),
    }
}

fn totals(b: &HistogramBuckets) -> BTreeMap<i32, u64> {
    match b {
        HistogramBuckets::Exponential {
            positive_offset,
            positive,
            ..
        } => downscale(*positive_offset, positive, 0),
        HistogramBuckets::Explicit { .. } => unreachable!(),
    }
}

proptest! {
    /// Against a reference: an SDK records values interval by interval, lowers its scale as
    /// the range grows, and restarts now and then; each delta holds exactly the values of its
    /// interval (since the restart), at the point's scale.
    #[test]
    fn deltas_hold_exactly_each_intervals_values(
        intervals in proptest::collection::vec(
            (proptest::collection::vec(0.01f64..1e4, 1..20), 0u32..2, proptest::bool::weighted(0.15)),
            1..12,
        ),
    ) {
        let mut scale = 6;
        let mut start = 1u64;
        let mut since_start: Vec<f64> = Vec::new();
        let mut series = PartitionSeries::default();
        let mut state = BTreeMap::new();
        for (n, (values, lower, restart)) in intervals.iter().enumerate() {
            let time = (n as u64 + 1) * 1_000;
            if *restart {
                start = time - 1;
                since_start.clear();
            }
            scale -= i32::try_from(*lower).unwrap();
            since_start.extend(values);
            let p = point(start, time, exponential(&since_start, scale));
            let d = to_delta(&mut series, "p/", "k", &p, &mut state).unwrap().unwrap();
            // The reference: this interval's values alone (everything, right after a restart
            // or at the first point), at the point's scale.
            let own = if *restart || n == 0 { since_start.clone() } else { values.clone() };
            let want = totals(&exponential(&own, scale));
            let got: BTreeMap<i32, u64> = totals(&d.buckets).into_iter().filter(|(_, c)| *c > 0).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(d.count, own.len() as u64);
        }
    }
}

/// Series quiet for the time to live (by the partition's event time) are forgotten, and their
/// lake state entries removed in the same batch.
#[test]
fn series_without_points_for_the_ttl_expire() {
    const S: u64 = 1_000_000_000;
    let mut series = PartitionSeries::default();
    let mut state = BTreeMap::new();
    to_delta(
        &mut series,
        "p/",
        "quiet",
        &point(1, 10 * S, explicit(vec![1, 0, 0])),
        &mut state,
    )
    .unwrap();
    to_delta(
        &mut series,
        "p/",
        "busy",
        &point(1, 10 * S, explicit(vec![1, 0, 0])),
        &mut state,
    )
    .unwrap();
    let ttl = std::time::Duration::from_secs(3600);
    assert_eq!(series.expire("p/", ttl, &mut state), 0);
    to_delta(
        &mut series,
        "p/",
        "busy",
        &point(1, 3_700 * S, explicit(vec![2, 0, 0])),
        &mut state,
    )
    .unwrap();
    assert_eq!(series.expire("p/", ttl, &mut state), 1);
    assert!(!series.contains("quiet") && series.contains("busy"));
    assert_eq!(state["p/quiet"], serde_json::Value::Null);
    // A series back after its expiry counts whole, as after an exporter restart.
    let (d, _) = step(
        series.get("quiet"),
        &point(1, 3_800 * S, explicit(vec![3, 0, 0])),
    )
    .unwrap();
    assert_eq!(d.unwrap().count, 3);
}
