//! The HTTP front end: the API of CONTRACT section 5 (SQL, tables, alerts, SLOs, reports, the
//! pipeline), the web console, health, readiness and metrics.

pub mod alerts;
pub mod capacity;
pub mod console;
pub mod error;
pub mod pipeline;
pub mod reports;
pub mod routes;

/// The token of an `Authorization: Bearer <token>` header value; the scheme's case does not
/// matter (RFC 9110 section 11.1), nor the spaces around the token.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER  s3cret ",
            " Bearer s3cret",
        ] {
            assert_eq!(bearer_token(v), Some("s3cret"), "{v:?}");
        }
        for v in ["Basic s3cret", "Bearer", "Bearer ", "s3cret", ""] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }
}
