//! PagerDuty Events API v2: one event per alert, `trigger` when it fires and `resolve` when it
//! ends, with the fingerprint as `dedup_key` so PagerDuty keeps one incident per alert.

use serde_json::json;

use super::{rfc3339, Notification, Origin, Request};
use crate::alerts::book::AlertState;
use crate::alerts::config::ReceiverConfig;

/// PagerDuty refuses longer summaries.
const MAX_SUMMARY: usize = 1024;

pub(super) fn render(r: &ReceiverConfig, origin: &Origin, group: &[Notification]) -> Vec<Request> {
    let key = r
        .routing_key
        .as_ref()
        .map(|k| k.expose().to_string())
        .unwrap_or_default();
    group
        .iter()
        .map(|n| {
            let body = if n.status == AlertState::Resolved {
                json!({
                    "routing_key": key,
                    "event_action": "resolve",
                    "dedup_key": n.alert.fingerprint,
                })
            } else {
                let a = &n.alert;
                let mut summary = a
                    .annotations
                    .get("summary")
                    .cloned()
                    .unwrap_or_else(|| a.alertname().to_string());
                if summary.len() > MAX_SUMMARY {
                    let mut cut = MAX_SUMMARY;
                    while !summary.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    summary.truncate(cut);
                }
                let severity = match a.severity() {
                    s @ ("critical" | "error" | "warning" | "info") => s,
                    _ => "warning",
                };
                json!({
                    "routing_key": key,
                    "event_action": "trigger",
                    "dedup_key": a.fingerprint,
                    "payload": {
                        "summary": summary,
                        "source": a.labels.get("service").cloned().unwrap_or_else(|| "opslake".into()),
                        "severity": severity,
                        "timestamp": rfc3339(a.starts_at_ms()),
                        "component": a.labels.get("service"),
                        "group": a.labels.get("name").or(a.labels.get("slo")),
                        "class": a.alertname(),
                        "custom_details": {
                            "labels": a.labels,
                            "annotations": a.annotations,
                            "value": a.value,
                        },
                    },
                    "links": [{
                        "href": origin.link(a),
                        "text": "the query behind this alert",
                    }],
                    "client": "opslake",
                    "client_url": origin.external_url,
                })
            };
            Request {
                url: r.endpoint(),
                body,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{note, origin, receiver};
    use super::*;

    #[test]
    fn trigger_and_resolve_share_the_fingerprint_as_dedup_key() {
        let r = receiver("pagerduty");
        let fire = render(&r, &origin(), &[note("a", AlertState::Firing, "critical")]);
        let b = &fire[0].body;
        assert_eq!(b["event_action"], "trigger");
        assert_eq!(b["routing_key"], "R0UT3");
        assert_eq!(b["payload"]["severity"], "critical");
        assert_eq!(b["payload"]["source"], "a");
        assert_eq!(b["payload"]["summary"], "p99 of a is 612 ms");
        let end = render(
            &r,
            &origin(),
            &[note("a", AlertState::Resolved, "critical")],
        );
        assert_eq!(end[0].body["event_action"], "resolve");
        assert_eq!(end[0].body["dedup_key"], b["dedup_key"]);
    }
}
