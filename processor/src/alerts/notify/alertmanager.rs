//! Alertmanager's API v2: `POST {url}/api/v2/alerts` with a list of alerts. A firing alert
//! carries an `endsAt` a few re-send intervals ahead (so Alertmanager resolves it by itself if
//! opslake goes away, as Prometheus does) and is re-sent until it resolves; a resolve carries
//! the time it ended.

use serde_json::{json, Value};

use super::{rfc3339, Notification, Origin, Request};
use crate::alerts::book::AlertState;
use crate::alerts::config::ReceiverConfig;
use opslake_schemas::Secret;

pub(super) fn render(r: &ReceiverConfig, origin: &Origin, group: &[Notification]) -> Vec<Request> {
    let now = chrono::Utc::now().timestamp_millis();
    let alerts: Vec<Value> = group
        .iter()
        .map(|n| {
            let ends = match n.status {
                AlertState::Resolved => n.ends_at_ms.unwrap_or(now),
                _ => now + origin.firing_for.as_millis() as i64,
            };
            json!({
                "labels": n.alert.labels,
                "annotations": n.alert.annotations,
                "startsAt": rfc3339(n.alert.starts_at_ms()),
                "endsAt": rfc3339(ends),
                "generatorURL": origin.link(&n.alert),
            })
        })
        .collect();
    let base = r.endpoint();
    let url = format!("{}/api/v2/alerts", base.expose().trim_end_matches('/'));
    vec![Request {
        url: Secret::new(url),
        body: Value::Array(alerts),
    }]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{note, origin, receiver};
    use super::*;

    #[test]
    fn alerts_carry_labels_times_and_an_explicit_end_on_resolve() {
        let r = receiver("alertmanager");
        let req = render(
            &r,
            &origin(),
            &[
                note("a", AlertState::Firing, "critical"),
                note("b", AlertState::Resolved, "critical"),
            ],
        );
        assert_eq!(req.len(), 1);
        assert_eq!(
            req[0].url.expose(),
            "http://hooks.example/T0KEN/api/v2/alerts"
        );
        let a = &req[0].body[0];
        assert_eq!(a["labels"]["alertname"], "P99High");
        assert_eq!(a["startsAt"], "2023-11-14T22:14:20.000Z");
        assert!(a["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with("http://opslake:8080/sql"));
        assert_eq!(req[0].body[1]["endsAt"], "2023-11-14T22:23:20.000Z");
    }
}
