//! The `series` column of the `metrics` table: a metric series' identity (service, name, version
//! and labels) as one canonical string.
//!
//! Ingest writes it next to the columns it is made of. Parquet stores it dictionary-encoded
//! (each distinct series once per column chunk, then small integers), so a reader that groups
//! rows by series, as the processor's rollups do, reads one integer column instead of three
//! string columns and a map, and parses each distinct series once. In SQL it is a handy
//! grouping key: `GROUP BY series`.
//!
//! The form is a JSON array, `["service","name","version",[["key","value"],...]]`, with `null`
//! for a missing version and the labels sorted by key: the same series gives the same string,
//! and any JSON reader can take it apart.

/// A series' parts: service, name, version and labels (sorted by key).
pub type SeriesParts = (String, String, Option<String>, Vec<(String, String)>);

/// Writes the canonical form of a series into `out` (cleared first). `labels` must be sorted by
/// key with unique keys, as decoded events hold them.
pub fn write_series_key<K: AsRef<str>, V: AsRef<str>>(
    out: &mut Vec<u8>,
    service: &str,
    name: &str,
    version: Option<&str>,
    labels: &[(K, V)],
) {
    debug_assert!(labels.windows(2).all(|w| w[0].0.as_ref() < w[1].0.as_ref()));
    out.clear();
    serde_json::to_writer(&mut *out, &(service, name, version, Pairs(labels)))
        .expect("strings always serialize");
}

/// Labels as a JSON array of pairs, without collecting them first (ingest writes one key per
/// event).
struct Pairs<'a, K, V>(&'a [(K, V)]);

impl<K: AsRef<str>, V: AsRef<str>> serde::Serialize for Pairs<'_, K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
    }
}

/// The canonical form of a series (see [`write_series_key`]).
pub fn series_key<K: AsRef<str>, V: AsRef<str>>(
    service: &str,
    name: &str,
    version: Option<&str>,
    labels: &[(K, V)],
) -> String {
    let mut out = Vec::new();
    write_series_key(&mut out, service, name, version, labels);
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// Takes a canonical series string apart; `None` when it is not one.
pub fn parse_series_key(key: &str) -> Option<SeriesParts> {
    let parts: SeriesParts = serde_json::from_str(key).ok()?;
    parts.3.windows(2).all(|w| w[0].0 < w[1].0).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_form_is_a_json_array_with_sorted_labels() {
        let k = series_key(
            "checkout",
            "http.server.duration",
            Some("1.4.2"),
            &[("endpoint", "/pay"), ("method", "GET")],
        );
        assert_eq!(
            k,
            r#"["checkout","http.server.duration","1.4.2",[["endpoint","/pay"],["method","GET"]]]"#
        );
        let none: [(&str, &str); 0] = [];
        assert_eq!(series_key("a", "b", None, &none), r#"["a","b",null,[]]"#);
    }

    #[test]
    fn strings_that_are_not_series_are_refused() {
        for bad in [
            "",
            "[]",
            r#"["a","b"]"#,
            r#"["a","b",null,[["z","1"],["a","2"]]]"#,
            r#"{"service":"a"}"#,
        ] {
            assert_eq!(parse_series_key(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parse_inverts_write(
            service in ".{0,12}",
            name in ".{0,12}",
            version in proptest::option::of(".{0,8}"),
            labels in proptest::collection::btree_map(".{0,6}", ".{0,6}", 0..5),
        ) {
            let labels: Vec<(String, String)> = labels.into_iter().collect();
            let key = series_key(&service, &name, version.as_deref(), &labels);
            prop_assert_eq!(parse_series_key(&key), Some((service, name, version, labels)));
        }
    }
}
