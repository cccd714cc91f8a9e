//! Client queries rewritten before datafusion-postgres parses them, where its own rewrites fall
//! short.

use std::borrow::Cow;

/// The search-path lookup of Grafana's PostgreSQL datasource (its table and column pickers),
/// whitespace removed. datafusion-postgres replaces it with `''`, which matches no schema, so the
/// column picker would list nothing.
const GRAFANA_SEARCH_PATH: &str = "SELECTCASEWHENtrim(s[i])='\"$user\"'THENuserELSEtrim(s[i])END\
    FROMgenerate_series(array_lower(string_to_array(current_setting('search_path'),','),1),\
    array_upper(string_to_array(current_setting('search_path'),','),1))asi,\
    string_to_array(current_setting('search_path'),',')s";

/// The schemas of the search path (`current_setting('search_path')` of every session), as a
/// list: DataFusion plans no subquery in `ORDER BY`, where Grafana's table picker has one.
const SEARCH_PATH: &str = "'public'";

/// `sql` with Grafana's search-path lookups replaced by [`SEARCH_PATH`].
pub(crate) fn client_query(sql: &str) -> Cow<'_, str> {
    // The text without whitespace, and where each of its bytes is in `sql`.
    let (squeezed, at): (String, Vec<usize>) = sql
        .char_indices()
        .filter(|(_, c)| !c.is_whitespace())
        .map(|(i, c)| (c, i))
        .unzip();
    let pattern = GRAFANA_SEARCH_PATH.to_ascii_lowercase();
    let lower = squeezed.to_ascii_lowercase();
    if !lower.contains(&pattern) {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0; // bytes of `sql` copied so far
    let mut from = 0; // chars of `squeezed` searched so far
    let chars: Vec<char> = lower.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    while let Some(found) = find(&chars[from..], &pattern).map(|i| i + from) {
        let start = at[found];
        let last = found + pattern.len() - 1;
        let end = at[last] + chars[last].len_utf8();
        out.push_str(&sql[copied..start]);
        out.push_str(SEARCH_PATH);
        copied = end;
        from = found + pattern.len();
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

fn find(hay: &[char], needle: &[char]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grafanas_search_path_lookup_becomes_one_query_and_the_rest_stays() {
        let sql = r#"SELECT quote_ident(column_name) AS "column" FROM information_schema.columns
            WHERE quote_ident(table_name) = 'metrics' AND
              quote_ident(table_schema) IN (
              SELECT
                CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
              FROM
                generate_series(
                  array_lower(string_to_array(current_setting('search_path'),','),1),
                  array_upper(string_to_array(current_setting('search_path'),','),1)
                ) as i,
                string_to_array(current_setting('search_path'),',') s
              )"#;
        let out = client_query(sql);
        assert!(out.starts_with(
            "SELECT quote_ident(column_name) AS \"column\" FROM information_schema.columns"
        ));
        assert!(
            out.contains(&format!(
                "IN (\n              {SEARCH_PATH}\n              )"
            )),
            "{out}"
        );
        assert!(!out.contains("generate_series"));
        assert!(matches!(client_query("SELECT 1"), Cow::Borrowed(_)));
    }
}
