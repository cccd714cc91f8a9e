//! The lake's table layout: the one place that builds and parses data file paths.
//!
//! ```text
//! <table>/date=YYYY-MM-DD/hour=HH/part-<writer>-<uuid>.parquet   raw tables and hourly rollups
//! <table>/part-YYYY-MM-DD-<uuid>.parquet                          daily derived tables (costs)
//! <table>/part-<uuid>.parquet                                     tables with no day
//! ```

use chrono::NaiveDate;

/// Milliseconds in an hour: the lake's partitions are hours of event time.
pub const HOUR_MS: i64 = 3_600_000;

/// The lake-relative path of a new data file of `table` in `date`/`hour`, named after its
/// writer.
#[must_use]
pub fn data_file_path(table: &str, date: &str, hour: u32, writer: &str) -> String {
    format!(
        "{}part-{writer}-{}.parquet",
        hour_prefix(table, date, hour),
        uuid::Uuid::new_v4().simple()
    )
}

/// The folder of `table`'s files of one hour: `table/date=D/hour=HH/`.
#[must_use]
pub fn hour_prefix(table: &str, date: &str, hour: u32) -> String {
    format!("{}hour={hour:02}/", day_prefix(table, date))
}

/// The folder of `table`'s files of one day: `table/date=D/`.
#[must_use]
pub fn day_prefix(table: &str, date: &str) -> String {
    format!("{table}/date={date}/")
}

/// Whether `path` is a file of `table` in `date`/`hour`.
#[must_use]
pub fn in_hour(path: &str, table: &str, date: &str, hour: u32) -> bool {
    path.starts_with(&hour_prefix(table, date, hour))
}

/// `(date, hour)` of a partitioned path `table/date=D/hour=H/file`.
#[must_use]
pub fn hour_of(path: &str) -> Option<(String, u32)> {
    let mut parts = path.split('/');
    let _table = parts.next()?;
    let date = parts.next()?.strip_prefix("date=")?.to_string();
    let hour = parts.next()?.strip_prefix("hour=")?.parse().ok()?;
    Some((date, hour))
}

/// The first millisecond (UTC) of partition `date`/`hour`; `None` when `date` is not
/// `YYYY-MM-DD` or `hour` is not below 24.
#[must_use]
pub fn hour_start_ms(date: &str, hour: u32) -> Option<i64> {
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()?
        .and_hms_opt(hour, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
}

/// The day a lake file holds, when its path says: a `date=` folder, or a file name that starts
/// with the day (`part-YYYY-MM-DD-…`).
#[must_use]
pub fn file_day(path: &str) -> Option<NaiveDate> {
    let mut segments = path.split('/');
    segments.next()?; // the table
    for seg in segments {
        if let Some(d) = seg.strip_prefix("date=") {
            return NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
        }
        if let Some(name) = seg.strip_prefix("part-") {
            if let Some(d) = name.get(..10) {
                if let Ok(day) = NaiveDate::parse_from_str(d, "%Y-%m-%d") {
                    return Some(day);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_path_parses_back() {
        let p = data_file_path("metrics", "2026-11-22", 7, "ingest-1");
        assert!(
            p.starts_with("metrics/date=2026-11-22/hour=07/part-ingest-1-"),
            "{p}"
        );
        assert_eq!(hour_of(&p), Some(("2026-11-22".to_string(), 7)));
        assert!(in_hour(&p, "metrics", "2026-11-22", 7));
        assert!(!in_hour(&p, "metrics", "2026-11-22", 17));
        assert!(!in_hour(&p, "logs", "2026-11-22", 7));
        assert_eq!(file_day(&p), NaiveDate::from_ymd_opt(2026, 11, 22));
        assert!(p.starts_with(&day_prefix("metrics", "2026-11-22")));
    }

    #[test]
    fn days_of_unpartitioned_files() {
        assert_eq!(
            file_day("cost_daily/part-2026-09-30-abc.parquet"),
            NaiveDate::from_ymd_opt(2026, 9, 30)
        );
        assert_eq!(file_day("cost_forecasts/part-ab12.parquet"), None);
        assert_eq!(file_day("_reports/forecast-2026-10-01.json"), None);
        assert_eq!(hour_of("cost_daily/part-2026-09-30-abc.parquet"), None);
    }
}
