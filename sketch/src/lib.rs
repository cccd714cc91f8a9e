#![warn(missing_docs, unreachable_pub)]

//! DDSketch: a quantile sketch with a relative-error guarantee, mergeable by adding counts.
//!
//! Hand-written rather than taken from `sketches-ddsketch` for three reasons: rollups need the
//! interpolated quantile of SQL's `quantile_cont`/`percentile_cont` (the crate returns the value
//! at one rank, which is not within 1% of an interpolated percentile in a sparse tail); the
//! serialized sketch is a column of the lake that users merge in SQL for years, so its encoding
//! must be ours, small and versioned; and the exact min and max must clamp the ends.
//!
//! Buckets follow Masson, Rim and Lee, "DDSketch" (VLDB 2019): a value `v > 0` goes to bucket
//! `k = ceil(ln v / ln γ)` with `γ = (1 + α) / (1 - α)`, and the bucket is represented by
//! `2γ^k / (γ + 1)`, which is within `α` of every value in `(γ^(k-1), γ^k]`. Negative values
//! use a mirrored store; magnitudes under [`MIN_INDEXABLE`] count as zero.

mod histogram;
mod rank;
#[cfg(feature = "sql")]
pub mod udf;

pub use histogram::{ExponentialBuckets, PointSummary, SPREAD_POINTS};

use std::fmt;

/// Relative accuracy of every sketch opslake writes: 0.9%, so that percentiles stay within 1%
/// of exact values with room for floating-point rounding and for checkers whose exact
/// percentile differs from ours in the last digits (at exactly 1% the worst case measured
/// 0.99994%).
pub const DEFAULT_ALPHA: f64 = 0.009;

/// Magnitudes below this are counted as zero (latencies and levels are never this small).
pub const MIN_INDEXABLE: f64 = 1e-9;

/// The relative accuracies a stored sketch may declare (opslake writes [`DEFAULT_ALPHA`]).
const ACCURACIES: std::ops::RangeInclusive<f64> = 1e-4..=0.5;

const MAGIC: u8 = b'D';
const FORMAT_VERSION: u8 = 1;

/// A decoding failure: the bytes are not a sketch of this format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an opslake DDSketch: {0}")]
pub struct DecodeError(&'static str);

/// Dense counts of consecutive bucket keys starting at `offset`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Bins {
    offset: i32,
    counts: Vec<u64>,
}

impl Bins {
    #[inline]
    fn add(&mut self, key: i32, n: u64) {
        // The common case first: a key inside the bins (a key below `offset` wraps to a huge
        // index and falls through, as does any key of empty bins).
        let i = key.wrapping_sub(self.offset) as u32 as usize;
        if let Some(c) = self.counts.get_mut(i) {
            // Saturating: counts come from outside (stored or sent sketches); a sum past 2^64
            // must not wrap or panic.
            *c = c.saturating_add(n);
            return;
        }
        self.grow_to(key, n);
    }

    fn grow_to(&mut self, key: i32, n: u64) {
        if self.counts.is_empty() {
            self.offset = key;
            self.counts.push(n);
            return;
        }
        if key < self.offset {
            let grow = (self.offset - key) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = key;
        }
        let i = (key - self.offset) as usize;
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] = self.counts[i].saturating_add(n);
    }

    fn merge(&mut self, other: &Bins) {
        let (Some(first), Some(last)) = (other.first_nonzero(), other.last_nonzero()) else {
            return;
        };
        // Make room for `other`'s range once, then add its counts slice to slice.
        self.grow_to(first, 0);
        self.grow_to(last, 0);
        let from = (first - other.offset) as usize..=(last - other.offset) as usize;
        let at = (first - self.offset) as usize;
        for (a, b) in self.counts[at..].iter_mut().zip(&other.counts[from]) {
            *a = a.saturating_add(*b);
        }
    }

    fn first_nonzero(&self) -> Option<i32> {
        let i = self.counts.iter().position(|&c| c > 0)?;
        Some(self.offset + i as i32)
    }

    fn last_nonzero(&self) -> Option<i32> {
        let i = self.counts.iter().rposition(|&c| c > 0)?;
        Some(self.offset + i as i32)
    }

    fn nonzero(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| (self.offset + i as i32, c))
    }
}

/// A DDSketch with exact count, sum, min and max.
#[derive(Clone, PartialEq)]
pub struct DDSketch {
    alpha: f64,
    ln_gamma: f64,
    pos: Bins,
    neg: Bins,
    zero: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl fmt::Debug for DDSketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DDSketch")
            .field("alpha", &self.alpha)
            .field("count", &self.count)
            .field("min", &self.min)
            .field("max", &self.max)
            .field(
                "buckets",
                &(self.pos.nonzero().count() + self.neg.nonzero().count()),
            )
            .finish()
    }
}

impl Default for DDSketch {
    fn default() -> Self {
        Self::new(DEFAULT_ALPHA)
    }
}

impl DDSketch {
    /// An empty sketch with relative accuracy `alpha` (0 < alpha < 1).
    pub fn new(alpha: f64) -> Self {
        assert!(alpha > 0.0 && alpha < 1.0, "alpha must be in (0, 1)");
        let gamma = (1.0 + alpha) / (1.0 - alpha);
        Self {
            alpha,
            ln_gamma: gamma.ln(),
            pos: Bins::default(),
            neg: Bins::default(),
            zero: 0,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    fn key(&self, magnitude: f64) -> i32 {
        // `ceil` without a libm call (x86-64's baseline has no rounding instruction): truncate,
        // then step up when a positive fraction was cut off; the same integer as `f64::ceil`
        // for every key a finite magnitude has (|x| < 50,000).
        let x = magnitude.ln() / self.ln_gamma;
        let t = x as i32;
        t.saturating_add(i32::from(f64::from(t) < x))
    }

    /// The representative of bucket `key`, `2γ^k / (γ + 1)`, given `γ`.
    fn bucket_value_with(&self, key: i32, gamma: f64) -> f64 {
        2.0 * (f64::from(key) * self.ln_gamma).exp() / (gamma + 1.0)
    }

    /// Adds one value; non-finite values are ignored (the decoder refuses them upstream).
    #[inline]
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if v > MIN_INDEXABLE {
            let k = self.key(v);
            self.pos.add(k, 1);
        } else if v < -MIN_INDEXABLE {
            let k = self.key(-v);
            self.neg.add(k, 1);
        } else {
            self.zero += 1;
        }
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Adds `values` in order, as many calls of [`DDSketch::add`] would.
    pub fn add_all(&mut self, values: &[f64]) {
        for &v in values {
            self.add(v);
        }
    }

    /// Adds every value of `other`; the result equals the sketch of the union of both inputs.
    /// A sketch of another accuracy is merged bucket by bucket at its representatives, so the
    /// result holds the coarser of the two accuracies (opslake writes one accuracy only; this
    /// keeps a foreign sketch from stopping a fold).
    pub fn merge(&mut self, other: &DDSketch) {
        if other.count == 0 {
            return;
        }
        if (self.alpha - other.alpha).abs() >= 1e-12 {
            let gamma = other.ln_gamma.exp();
            for (k, c) in other.pos.nonzero() {
                let k2 = self.key(other.bucket_value_with(k, gamma));
                self.pos.add(k2, c);
            }
            for (k, c) in other.neg.nonzero() {
                let k2 = self.key(other.bucket_value_with(k, gamma));
                self.neg.add(k2, c);
            }
        } else {
            self.pos.merge(&other.pos);
            self.neg.merge(&other.neg);
        }
        self.zero = self.zero.saturating_add(other.zero);
        self.count = self.count.saturating_add(other.count);
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The relative accuracy the sketch was built with.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// How many values were added (exact).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The sum of the values added (exact up to floating-point rounding).
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Whether no value was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Smallest value added, if any.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest value added, if any.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// Mean of the values added, if any.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// The estimates of the values of the 0-based `ranks` (ascending) in sorted order, in one
    /// walk over the buckets.
    fn values_at_ranks(&self, ranks: &[u64]) -> Vec<f64> {
        debug_assert!(ranks.is_sorted());
        let n = ranks.len();
        let mut out = vec![self.max; n];
        // Ranks at the ends are the exact min and max; the rest are found in bucket order.
        let mut next = 0;
        while next < n && ranks[next] == 0 {
            out[next] = self.min;
            next += 1;
        }
        let last = ranks.partition_point(|&r| r.saturating_add(1) < self.count);
        if next >= last {
            return out;
        }
        // `γ` once, not per bucket found.
        let gamma = self.ln_gamma.exp();
        let bucket_value = |k: i32| self.bucket_value_with(k, gamma);
        let mut seen = 0u64;
        let mut take = |seen: u64, value: &dyn Fn() -> f64, next: &mut usize| {
            if *next < last && seen > ranks[*next] {
                let v = within(value(), self.min, self.max);
                while *next < last && seen > ranks[*next] {
                    out[*next] = v;
                    *next += 1;
                }
            }
        };
        // Negative values, most negative (largest magnitude key) first.
        for (k, c) in self.neg.nonzero().rev() {
            seen = seen.saturating_add(c);
            take(seen, &|| -bucket_value(k), &mut next);
        }
        seen = seen.saturating_add(self.zero);
        take(seen, &|| 0.0, &mut next);
        for (k, c) in self.pos.nonzero() {
            if next >= last {
                break;
            }
            seen = seen.saturating_add(c);
            take(seen, &|| bucket_value(k), &mut next);
        }
        out
    }

    /// The `q` quantile (0 ≤ q ≤ 1) interpolated between ranks as SQL's `quantile_cont` does:
    /// rank `q·(n−1)`. Each of the two ranks is within `alpha` of its exact value, so the
    /// interpolation is within `alpha` of the exact interpolated quantile.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.quantiles([q]).map(|[v]| v)
    }

    /// Several quantiles (each 0 ≤ q ≤ 1, in any order) as [`DDSketch::quantile`] gives them one
    /// by one, in one walk over the buckets.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> Option<[f64; N]> {
        if self.count == 0 || !qs.iter().all(|q| (0.0..=1.0).contains(q)) {
            return None;
        }
        let n = (self.count - 1) as f64;
        let ranks: Vec<u64> = qs
            .iter()
            .flat_map(|q| {
                let r = q * n;
                [r.floor() as u64, r.ceil() as u64]
            })
            .collect();
        // Ranks of neighbouring quantiles can interleave (the ceiling of one above the floor of
        // the next): the walk takes them sorted and distinct.
        let mut sorted = ranks.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let values = self.values_at_ranks(&sorted);
        let at = |r: u64| values[sorted.binary_search(&r).expect("every rank is walked")];
        Some(std::array::from_fn(|i| {
            let r = qs[i] * n;
            let (lo, hi) = (at(ranks[2 * i]), at(ranks[2 * i + 1]));
            if ranks[2 * i] == ranks[2 * i + 1] {
                lo
            } else {
                lo + (r - ranks[2 * i] as f64) * (hi - lo)
            }
        }))
    }

    /// The compact, versioned binary form stored in the lake's sketch columns.
    pub fn to_bytes(&self) -> Vec<u8> {
        let buckets = self.pos.nonzero().count() + self.neg.nonzero().count();
        let mut out = Vec::with_capacity(40 + buckets * 3);
        out.push(MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.alpha.to_le_bytes());
        put_varint(&mut out, self.count);
        put_varint(&mut out, self.zero);
        out.extend_from_slice(&self.sum.to_le_bytes());
        out.extend_from_slice(&self.min.to_le_bytes());
        out.extend_from_slice(&self.max.to_le_bytes());
        for bins in [&self.pos, &self.neg] {
            put_varint(&mut out, bins.nonzero().count() as u64);
            let mut prev: Option<i32> = None;
            for (k, c) in bins.nonzero() {
                match prev {
                    None => put_varint(&mut out, zigzag(k)),
                    Some(p) => put_varint(&mut out, (k - p) as u64),
                }
                put_varint(&mut out, c);
                prev = Some(k);
            }
        }
        out
    }

    /// Reads the form written by [`DDSketch::to_bytes`].
    ///
    /// # Errors
    /// When the bytes are not a sketch of this format or are inconsistent.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut s = DDSketch::new(Reader { bytes, pos: 0 }.header()?);
        s.merge_bytes(bytes)?;
        Ok(s)
    }

    /// Merges the sketch that `bytes` hold (the form of [`DDSketch::to_bytes`]) into this one,
    /// bucket by bucket, without building it: how SQL's sketch aggregates fold stored sketches.
    ///
    /// # Errors
    /// When the bytes are not a sketch of this format, are inconsistent, or are of another
    /// accuracy. This sketch may then hold part of them: discard it.
    pub fn merge_bytes(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        if (r.header()? - self.alpha).abs() >= 1e-12 {
            return Err(DecodeError(
                "sketches of different accuracy cannot be merged",
            ));
        }
        let count = r.varint()?;
        let zero = r.varint()?;
        let (sum, min, max) = (r.f64()?, r.f64()?, r.f64()?);
        // Checked before a bucket is added: the quantile walk clamps to [min, max], which must
        // be a range, and sums and means must be numbers.
        // `add` takes finite values only, so a sketch's min and max are finite numbers.
        if count > 0 && !(min <= max && min.is_finite() && max.is_finite()) {
            return Err(DecodeError("min is above max, or not a finite number"));
        }
        if sum.is_nan() {
            return Err(DecodeError("sum is not a number"));
        }
        let mut total = zero;
        for neg in [false, true] {
            let n = r.varint()?;
            let mut key = 0i32;
            for i in 0..n {
                let raw = r.varint()?;
                key = if i == 0 {
                    unzigzag(raw)?
                } else {
                    i32::try_from(raw)
                        .ok()
                        .and_then(|d| key.checked_add(d))
                        .ok_or(DecodeError("bucket key out of range"))?
                };
                if !(-40_000..=40_000).contains(&key) {
                    return Err(DecodeError("bucket key out of range"));
                }
                let c = r.varint()?;
                total = total.checked_add(c).ok_or(DecodeError("count overflow"))?;
                if neg {
                    self.neg.add(key, c);
                } else {
                    self.pos.add(key, c);
                }
            }
        }
        if total != count {
            return Err(DecodeError("bucket counts do not add up to the count"));
        }
        if r.pos != bytes.len() {
            return Err(DecodeError("trailing bytes"));
        }
        self.count = self
            .count
            .checked_add(count)
            .ok_or(DecodeError("count overflow"))?;
        if count == 0 {
            // An empty sketch holds min +inf, max -inf and sum 0: nothing to merge.
            return Ok(());
        }
        self.zero = self.zero.saturating_add(zero);
        self.sum += sum;
        self.min = self.min.min(min);
        self.max = self.max.max(max);
        Ok(())
    }

    /// Heap bytes held by the buckets.
    pub fn heap_bytes(&self) -> usize {
        (self.pos.counts.capacity() + self.neg.counts.capacity()) * std::mem::size_of::<u64>()
    }
}

/// `v` limited to `[lo, hi]`; unlike `f64::clamp`, never panics (a range the input made
/// inconsistent gives `lo`).
fn within(v: f64, lo: f64, hi: f64) -> f64 {
    if v > hi {
        hi
    } else if v < lo || v.is_nan() {
        lo
    } else {
        v
    }
}

fn zigzag(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn unzigzag(v: u64) -> Result<i32, DecodeError> {
    let v = u32::try_from(v).map_err(|_| DecodeError("bucket key out of range"))?;
    Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    /// The magic byte and format version, then the accuracy.
    fn header(&mut self) -> Result<f64, DecodeError> {
        if self.byte()? != MAGIC {
            return Err(DecodeError("bad magic byte"));
        }
        if self.byte()? != FORMAT_VERSION {
            return Err(DecodeError("unknown format version"));
        }
        let alpha = self.f64()?;
        // Accuracies a sketch can have: finer ones put every value beyond the range of keys.
        if !(ACCURACIES.contains(&alpha)) {
            return Err(DecodeError("accuracy out of range"));
        }
        Ok(alpha)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.pos).ok_or(DecodeError("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn f64(&mut self) -> Result<f64, DecodeError> {
        let end = self.pos + 8;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or(DecodeError("truncated"))?;
        self.pos = end;
        Ok(f64::from_le_bytes(s.try_into().expect("8 bytes")))
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint too long"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `quantile_cont` over sorted values: the exact answer the sketch must be within 1% of.
    fn exact(sorted: &[f64], q: f64) -> f64 {
        let r = q * (sorted.len() - 1) as f64;
        let lo = r.floor() as usize;
        let hi = r.ceil() as usize;
        sorted[lo] + (r - lo as f64) * (sorted[hi] - sorted[lo])
    }

    /// The bucket key is `ceil(ln v / ln γ)` for every magnitude, exact powers of γ included.
    #[test]
    fn key_is_the_ceiling_of_the_log() {
        let s = DDSketch::default();
        let gamma = s.ln_gamma.exp();
        let mut v = MIN_INDEXABLE;
        while v < 1e300 {
            for m in [v, v * gamma, v.next_up(), v.next_down(), 1.0, 1.0 + 1e-16] {
                assert_eq!(s.key(m), (m.ln() / s.ln_gamma).ceil() as i32, "{m}");
            }
            v *= 1.37;
        }
        assert_eq!(s.key(f64::MAX), (f64::MAX.ln() / s.ln_gamma).ceil() as i32);
    }

    fn check(values: &[f64]) -> Result<(), TestCaseError> {
        let mut s = DDSketch::default();
        for &v in values {
            s.add(v);
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let want = exact(&sorted, q);
            let got = s.quantile(q).unwrap();
            let err = (got - want).abs();
            prop_assert!(
                err <= DEFAULT_ALPHA * want.abs() + 1e-9,
                "q={q}: got {got}, exact {want}, relative error {}",
                err / want.abs()
            );
        }
        Ok(())
    }

    fn lognormal(mu: f64, sigma: f64) -> impl Strategy<Value = f64> {
        // Box–Muller from two uniforms, so the strategy shrinks on plain numbers.
        (0.0001f64..1.0, 0.0f64..1.0).prop_map(move |(u1, u2)| {
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            (mu + sigma * z).exp()
        })
    }

    /// The quantile as the sketch computed it before `quantiles`: one walk per rank.
    fn reference_quantile(s: &DDSketch, q: f64) -> f64 {
        let at = |rank: u64| -> f64 {
            if rank == 0 {
                return s.min;
            }
            if rank + 1 >= s.count {
                return s.max;
            }
            let gamma = s.ln_gamma.exp();
            let mut seen = 0u64;
            for (k, c) in s.neg.nonzero().rev() {
                seen = seen.saturating_add(c);
                if seen > rank {
                    return (-s.bucket_value_with(k, gamma)).clamp(s.min, s.max);
                }
            }
            seen += s.zero;
            if seen > rank {
                return 0.0f64.clamp(s.min, s.max);
            }
            for (k, c) in s.pos.nonzero() {
                seen = seen.saturating_add(c);
                if seen > rank {
                    return s.bucket_value_with(k, gamma).clamp(s.min, s.max);
                }
            }
            s.max
        };
        let r = q * (s.count - 1) as f64;
        let (lo, hi) = (r.floor() as u64, r.ceil() as u64);
        if lo == hi {
            at(lo)
        } else {
            at(lo) + (r - lo as f64) * (at(hi) - at(lo))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn lognormal_latencies_within_one_percent(
            v in prop::collection::vec(lognormal(3.0, 1.2), 100..3000)
        ) {
            check(&v)?;
        }

        #[test]
        fn uniform_and_heavy_tails_within_one_percent(
            v in prop::collection::vec(
                prop_oneof![0.001f64..1e6, (1.0f64..2.0).prop_map(|x| x.powi(40))],
                100..2000,
            )
        ) {
            check(&v)?;
        }

        #[test]
        fn negative_and_zero_values_within_one_percent(
            v in prop::collection::vec(prop_oneof![-1e4f64..-0.01, Just(0.0), 0.01f64..1e4], 100..2000)
        ) {
            let mut s = DDSketch::default();
            for &x in &v { s.add(x); }
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 0.1, 0.5, 0.9, 1.0] {
                let want = exact(&sorted, q);
                let got = s.quantile(q).unwrap();
                // Interpolating across zero mixes signs; the bound then holds on each end.
                let lo = sorted[(q * (sorted.len() - 1) as f64).floor() as usize];
                let hi = sorted[(q * (sorted.len() - 1) as f64).ceil() as usize];
                let tol = DEFAULT_ALPHA * lo.abs().max(hi.abs()) + 1e-9;
                prop_assert!((got - want).abs() <= tol, "q={q}: got {got}, exact {want}");
            }
        }

        #[test]
        fn merge_equals_union(
            a in prop::collection::vec(lognormal(2.0, 1.0), 0..500),
            b in prop::collection::vec(prop_oneof![-50.0f64..50.0, lognormal(5.0, 2.0)], 0..500),
        ) {
            let mut sa = DDSketch::default();
            let mut sb = DDSketch::default();
            let mut su = DDSketch::default();
            for &x in &a { sa.add(x); su.add(x); }
            for &x in &b { sb.add(x); su.add(x); }
            sa.merge(&sb);
            prop_assert_eq!(sa.count(), su.count());
            prop_assert_eq!(sa.min(), su.min());
            prop_assert_eq!(sa.max(), su.max());
            prop_assert_eq!(&sa.pos, &su.pos);
            prop_assert_eq!(&sa.neg, &su.neg);
            for q in [0.0, 0.5, 0.99, 1.0] {
                prop_assert_eq!(sa.quantile(q), su.quantile(q));
            }
        }

        #[test]
        fn quantiles_in_one_walk_equal_the_rank_by_rank_walk(
            v in prop::collection::vec(prop_oneof![-50.0f64..50.0, lognormal(3.0, 1.0), Just(0.0)], 1..400),
        ) {
            let mut s = DDSketch::default();
            for &x in &v { s.add(x); }
            let qs = [0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0, 0.25];
            let got = s.quantiles(qs).unwrap();
            for (q, got) in qs.into_iter().zip(got) {
                prop_assert_eq!(got, reference_quantile(&s, q), "q={}", q);
            }
        }

        #[test]
        fn bytes_round_trip(v in prop::collection::vec(prop_oneof![-1e9f64..1e9, Just(0.0)], 0..500)) {
            let mut s = DDSketch::default();
            for &x in &v { s.add(x); }
            let back = DDSketch::from_bytes(&s.to_bytes()).unwrap();
            prop_assert_eq!(back.count(), s.count());
            prop_assert_eq!(&back.pos, &s.pos);
            prop_assert_eq!(&back.neg, &s.neg);
            prop_assert_eq!(back.quantile(0.5), s.quantile(0.5));
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = DDSketch::from_bytes(&bytes);
        }
    }

    #[test]
    fn empty_sketch_has_no_quantiles() {
        let s = DDSketch::default();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(DDSketch::from_bytes(&s.to_bytes()).unwrap().count(), 0);
    }

    /// Stored or sent bytes whose min is above their max once panicked every quantile walk
    /// (`f64::clamp`), in SQL and in the rollups: they are refused at decoding now.
    #[test]
    fn refuses_a_minimum_above_the_maximum_or_a_nan() {
        let mut s = DDSketch::default();
        s.add_all(&[1.0, 2.0, 3.0]);
        let good = s.to_bytes();
        // Header: magic, version, alpha (8), count and zero (1 each), then sum, min, max.
        let at = 2 + 8 + 1 + 1;
        let mut min_above = good.clone();
        min_above[at + 8..at + 16].copy_from_slice(&10.0f64.to_le_bytes());
        assert!(DDSketch::from_bytes(&min_above).is_err());
        let mut acc = DDSketch::default();
        assert!(acc.merge_bytes(&min_above).is_err());
        let mut nan_sum = good.clone();
        nan_sum[at..at + 8].copy_from_slice(&f64::NAN.to_le_bytes());
        assert!(DDSketch::from_bytes(&nan_sum).is_err());
        let mut nan_max = good.clone();
        nan_max[at + 16..at + 24].copy_from_slice(&f64::NAN.to_le_bytes());
        assert!(DDSketch::from_bytes(&nan_max).is_err());
        // Found by the fuzzer: an infinite min and max made an interpolated quantile NaN.
        let mut infinite = good;
        infinite[at + 8..at + 16].copy_from_slice(&f64::NEG_INFINITY.to_le_bytes());
        infinite[at + 16..at + 24].copy_from_slice(&f64::INFINITY.to_le_bytes());
        assert!(DDSketch::from_bytes(&infinite).is_err());
    }

    /// Sketches of another accuracy merge (at the coarser accuracy) rather than panic.
    #[test]
    fn sketches_of_another_accuracy_merge() {
        let mut a = DDSketch::default();
        a.add_all(&[1.0, 10.0, 100.0]);
        let mut b = DDSketch::new(0.05);
        b.add_all(&[-5.0, 0.0, 50.0]);
        a.merge(&b);
        assert_eq!(a.count(), 6);
        assert_eq!((a.min(), a.max()), (Some(-5.0), Some(100.0)));
        let median = a.quantile(0.5).unwrap();
        assert!((1.0..=10.5).contains(&median), "{median}");
    }

    /// Counts near 2^64 saturate instead of overflowing.
    #[test]
    fn huge_counts_saturate() {
        let mut big = DDSketch::default();
        big.add_n(5.0, u64::MAX - 1);
        let bytes = big.to_bytes();
        let mut acc = DDSketch::default();
        acc.merge(&big);
        acc.merge(&big);
        assert_eq!(acc.count(), u64::MAX);
        let _ = acc.quantiles([0.0, 0.5, 1.0]);
        let _ = acc.rank(5.0);
        let mut into = DDSketch::default();
        into.merge_bytes(&bytes).unwrap();
        assert!(
            into.merge_bytes(&bytes).is_err(),
            "the count would pass 2^64"
        );
    }

    #[test]
    fn refuses_foreign_bytes() {
        assert!(DDSketch::from_bytes(b"hello").is_err());
        let mut b = DDSketch::default().to_bytes();
        b.push(0);
        assert!(DDSketch::from_bytes(&b).is_err());
    }
}
