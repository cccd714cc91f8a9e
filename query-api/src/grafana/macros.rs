//! Grafana-style macros in SQL targets, expanded to DataFusion SQL for the panel's range and
//! interval:
//!
//! | macro | becomes |
//! |---|---|
//! | `$__timeFilter(col)` | `col >= TIMESTAMP '<from>' AND col < TIMESTAMP '<to>'` |
//! | `$__timeFrom()`, `$__timeTo()` | `TIMESTAMP '<from>'`, `TIMESTAMP '<to>'` |
//! | `$__timeGroup(col)`, `$__timeGroup(col, 5m)` | `date_bin(INTERVAL '<ms> milliseconds', col, TIMESTAMP '1970-01-01T00:00:00Z')` |
//! | `$__dateFilter(col)` | `col BETWEEN DATE '<from day>' AND DATE '<to day>'` (for `date` columns) |
//! | `$__partitionFilter` | `date BETWEEN '<from day>' AND '<to day>'` (prunes the lake's `date=` directories) |
//! | `$__interval` | `INTERVAL '<ms> milliseconds'` |
//! | `$__interval_ms` | the interval in milliseconds |
//! | `$__from`, `$__to` | the range in epoch milliseconds |

use chrono::{DateTime, Utc};

use crate::http::error::ApiError;

/// A panel's time range and interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start of the range (epoch ms).
    pub from_ms: i64,
    /// End of the range (epoch ms).
    pub to_ms: i64,
    /// Grafana's interval (ms).
    pub interval_ms: i64,
}

/// `TIMESTAMP '...'` of epoch milliseconds.
pub fn ts_literal(ms: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    format!(
        "TIMESTAMP '{}'",
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

/// `YYYY-MM-DD` of epoch milliseconds.
pub fn day(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// A duration like `30s`, `5m`, `1h`, `2d`, `500ms` in milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        "w" => 604_800_000.0,
        _ => return None,
    };
    Some((n * factor).round() as i64)
}

fn bin(col: &str, ms: i64) -> String {
    format!("date_bin(INTERVAL '{ms} milliseconds', {col}, TIMESTAMP '1970-01-01T00:00:00Z')")
}

/// The arguments of a macro call that starts at `open` (the `(`): the text inside and the
/// index after the closing `)`.
fn call_args(sql: &str, open: usize) -> Result<(&str, usize), ApiError> {
    let mut depth = 0;
    for (i, c) in sql[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok((&sql[open + 1..open + i], open + i + 1));
                }
            }
            _ => {}
        }
    }
    // Up to 20 characters before the call, cut at a character boundary (the text may hold
    // multi-byte characters right before it).
    let from = sql
        .get(..open)
        .and_then(|before| before.char_indices().rev().nth(19).map(|(i, _)| i))
        .unwrap_or(0);
    Err(ApiError::BadRequest(format!(
        "unclosed macro call at: {}",
        sql.get(from..).unwrap_or(sql)
    )))
}

/// Expands every macro of `sql` for `w`.
///
/// # Errors
/// 400 for an unknown macro, a missing argument or an unclosed call.
pub fn expand(sql: &str, w: &Window) -> Result<String, ApiError> {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(pos) = rest.find("$__") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 3..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        let tail = &after[name_len..];
        let has_call = tail.starts_with('(');
        let (args, consumed) = if has_call {
            let base = pos + 3 + name_len;
            let (args, end) = call_args(rest, base)?;
            (Some(args.trim()), end)
        } else {
            (None, pos + 3 + name_len)
        };
        let need = |what: &str| -> Result<&str, ApiError> {
            args.filter(|a| !a.is_empty()).ok_or_else(|| {
                ApiError::BadRequest(format!("$__{name} needs {what}, e.g. $__{name}(timestamp)"))
            })
        };
        let text = match name {
            "timeFilter" => {
                let col = need("a column")?;
                format!(
                    "({col} >= {} AND {col} < {})",
                    ts_literal(w.from_ms),
                    ts_literal(w.to_ms)
                )
            }
            "dateFilter" => {
                let col = need("a column")?;
                format!(
                    "({col} BETWEEN DATE '{}' AND DATE '{}')",
                    day(w.from_ms),
                    day(w.to_ms)
                )
            }
            "partitionFilter" => format!(
                "(date BETWEEN '{}' AND '{}')",
                day(w.from_ms),
                day(w.to_ms)
            ),
            "timeFrom" => ts_literal(w.from_ms),
            "timeTo" => ts_literal(w.to_ms),
            "timeGroup" | "timeGroupAlias" => {
                let a = need("a column")?;
                let (col, ms) = match a.split_once(',') {
                    Some((c, i)) => (
                        c.trim(),
                        parse_duration_ms(i.trim().trim_matches('\'')).ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "$__timeGroup: {:?} is not a duration like 5m",
                                i.trim()
                            ))
                        })?,
                    ),
                    None => (a, w.interval_ms),
                };
                let b = bin(col, ms.max(1));
                if name == "timeGroupAlias" {
                    format!("{b} AS time")
                } else {
                    b
                }
            }
            "interval_ms" => w.interval_ms.to_string(),
            "interval" => format!("INTERVAL '{} milliseconds'", w.interval_ms),
            "from" => w.from_ms.to_string(),
            "to" => w.to_ms.to_string(),
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown macro $__{other} (known: $__timeFilter(col), $__timeFrom(), $__timeTo(), $__timeGroup(col[, 5m]), $__dateFilter(col), $__partitionFilter, $__interval, $__interval_ms, $__from, $__to)"
                )))
            }
        };
        out.push_str(&text);
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        from_ms: 1_763_805_600_000, // 2025-11-22T10:00:00Z
        to_ms: 1_763_827_200_000,   // 2025-11-22T16:00:00Z
        interval_ms: 30_000,
    };

    #[test]
    fn macros_expand() {
        let sql = "SELECT $__timeGroup(timestamp) AS t, count(*) FROM metrics WHERE $__timeFilter(timestamp) AND $__partitionFilter GROUP BY 1 -- $__interval_ms";
        let got = expand(sql, &W).unwrap();
        assert_eq!(
            got,
            "SELECT date_bin(INTERVAL '30000 milliseconds', timestamp, TIMESTAMP '1970-01-01T00:00:00Z') AS t, count(*) FROM metrics WHERE (timestamp >= TIMESTAMP '2025-11-22T10:00:00.000Z' AND timestamp < TIMESTAMP '2025-11-22T16:00:00.000Z') AND (date BETWEEN '2025-11-22' AND '2025-11-22') GROUP BY 1 -- 30000"
        );
        assert_eq!(
            expand("$__timeGroup(window_start, 5m)", &W).unwrap(),
            "date_bin(INTERVAL '300000 milliseconds', window_start, TIMESTAMP '1970-01-01T00:00:00Z')"
        );
        assert_eq!(
            expand("$__from-$__to $__interval", &W).unwrap(),
            "1763805600000-1763827200000 INTERVAL '30000 milliseconds'"
        );
    }

    /// Multi-byte text right before an unclosed call once sliced a character in two and
    /// dropped the connection.
    #[test]
    fn multibyte_text_before_an_unclosed_call_is_an_error_not_a_panic() {
        for before in [
            "é",
            "ééééééééééééééééééééé",
            "日本語のテキスト日本語のテキスト",
            "🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂",
        ] {
            let sql = format!("SELECT '{before}' $__timeFilter(timestamp");
            let e = expand(&sql, &W).unwrap_err().to_string();
            assert!(e.contains("unclosed macro call"), "{e}");
        }
    }

    #[test]
    fn bad_macros_are_named() {
        assert!(expand("$__nope", &W)
            .unwrap_err()
            .to_string()
            .contains("$__nope"));
        assert!(expand("$__timeFilter()", &W)
            .unwrap_err()
            .to_string()
            .contains("needs a column"));
        assert!(expand("$__timeFilter(x", &W).is_err());
        assert_eq!(parse_duration_ms("1.5h"), Some(5_400_000));
        assert_eq!(parse_duration_ms("abc"), None);
    }
}
