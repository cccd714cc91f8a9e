//! The web console (CONTRACT section 7): one HTML page for every console URL, and its scripts
//! and styles, all compiled into the binary from `query-api/console/`. The page holds no data:
//! its scripts ask the API, with the token when one is set, so the page and its assets are
//! served without one.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::http::error::ApiError;
use crate::state::AppState;

/// The console's Content-Security-Policy: the reports' policy, with the console's own scripts
/// and styles (files of this origin, never inline) and requests to this origin allowed.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One file of the console.
struct Asset {
    name: &'static str,
    body: &'static str,
    mime: &'static str,
}

macro_rules! asset {
    ($name:literal, $mime:expr) => {
        Asset {
            name: $name,
            body: include_str!(concat!("../../console/", $name)),
            mime: $mime,
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("nav.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("range.js", JS),
    asset!("chart.js", JS),
    asset!("queries.js", JS),
    asset!("pages/detections.js", JS),
    asset!("pages/capacity.js", JS),
    asset!("pages/overview.js", JS),
    asset!("pages/service.js", JS),
    asset!("pages/costs.js", JS),
    asset!("pages/alerts.js", JS),
    asset!("pages/sql.js", JS),
    asset!("pages/pipeline.js", JS),
];

const INDEX: &str = include_str!("../../console/index.html");

/// The console's routes: its pages, and its assets under `/console/`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/services/{service}", get(page))
        .route("/costs", get(page))
        .route("/alerts", get(page))
        .route("/sql", get(page))
        .route("/pipeline", get(page))
        .route("/console/{*file}", get(file))
}

/// A weak validator of a file's content (FNV-1a), so a browser revalidates in one round trip.
fn etag(body: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

/// Each file's ETag, computed once: the index's first, then the assets' in order.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    std::iter::once(INDEX)
        .chain(ASSETS.iter().map(|a| a.body))
        .map(etag)
        .collect()
});

fn serve(headers: &HeaderMap, index: usize, body: &'static str, mime: &'static str) -> Response {
    let tag = &ETAGS[index];
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag.as_str()));
    let mut res = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(mime))],
            body,
        )
            .into_response()
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONSOLE_CSP),
    );
    res
}

async fn page(headers: HeaderMap) -> Response {
    serve(&headers, 0, INDEX, "text/html; charset=utf-8")
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => serve(&headers, i + 1, ASSETS[i].body, ASSETS[i].mime),
        None => ApiError::NotFound(format!("no console file {name:?}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module the scripts import is served, so a missing asset fails here, not in a
    /// browser.
    #[test]
    fn every_imported_module_is_served() {
        let names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let dir = a.name.rsplit_once('/').map_or("", |(d, _)| d);
            for line in a.body.lines().filter(|l| l.starts_with("import ")) {
                let target = line
                    .split(['"', '\''])
                    .nth(1)
                    .unwrap_or_else(|| panic!("{}: import without a path: {line}", a.name));
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for p in target.split('/') {
                    match p {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        p => parts.push(p),
                    }
                }
                let resolved = parts.join("/");
                assert!(
                    names.contains(&resolved.as_str()),
                    "{} imports {target}, which is not served",
                    a.name
                );
            }
        }
        assert!(INDEX.contains("/console/app.js") && INDEX.contains("/console/app.css"));
        assert!(!INDEX.contains("<script>"), "no inline script");
    }
}
