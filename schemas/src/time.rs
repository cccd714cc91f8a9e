//! Timestamps as the contract accepts them: RFC 3339 strings with any offset, integer epoch
//! milliseconds, and (billing only) FOCUS's naive `YYYY-MM-DD HH:MM:SS`, read as UTC.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// The latest accepted instant: 9999-12-31T23:59:59.999Z.
pub const MAX_MS: i64 = 253_402_300_799_999;

/// Parses a timestamp string into epoch milliseconds.
///
/// # Errors
/// A message saying what was expected, when the string is no accepted form.
pub fn parse_timestamp_str(s: &str, allow_naive: bool) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return check_range(t.timestamp_millis());
    }
    if allow_naive {
        for fmt in [
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M:%S%.f",
        ] {
            if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
                return check_range(t.and_utc().timestamp_millis());
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return check_range(
                d.and_hms_opt(0, 0, 0)
                    .map_or(0, |t| t.and_utc().timestamp_millis()),
            );
        }
        Err(format!(
            "expected an RFC 3339 timestamp, `YYYY-MM-DD HH:MM:SS` or epoch milliseconds, found {}",
            quote(s)
        ))
    } else {
        Err(format!(
            "expected an RFC 3339 timestamp or epoch milliseconds, found {}",
            quote(s)
        ))
    }
}

/// Checks that epoch milliseconds lie in 1970-01-01 ..= 9999-12-31.
///
/// # Errors
/// When the instant is outside that range.
pub fn check_range(ms: i64) -> Result<i64, String> {
    if (0..=MAX_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(format!(
            "timestamp {ms} is outside 1970-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z"
        ))
    }
}

/// The `date=YYYY-MM-DD/hour=HH` partition of an instant.
pub fn partition_of(ms: i64) -> (String, u32) {
    let t = DateTime::from_timestamp_millis(ms).unwrap_or_default();
    (t.format("%Y-%m-%d").to_string(), chrono::Timelike::hour(&t))
}

fn quote(s: &str) -> String {
    let mut q: String = s.chars().take(64).collect();
    if q.len() < s.len() {
        q.push('…');
    }
    format!("{q:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_offsets_and_millis() {
        assert_eq!(
            parse_timestamp_str("2026-11-22T10:00:00.123Z", false),
            Ok(1_795_341_600_123)
        );
        assert_eq!(
            parse_timestamp_str("2026-11-22T11:00:00.123+01:00", false),
            Ok(1_795_341_600_123)
        );
    }

    #[test]
    fn naive_only_for_billing() {
        assert!(parse_timestamp_str("2024-09-18 22:00:00", false).is_err());
        assert_eq!(
            parse_timestamp_str("2024-09-18 22:00:00", true),
            Ok(1_726_696_800_000)
        );
    }

    #[test]
    fn partitions_by_utc_hour() {
        assert_eq!(
            partition_of(1_795_341_600_123),
            ("2026-11-22".to_string(), 10)
        );
    }
}
