//! A generic webhook in Alertmanager's webhook format (`version` "4"), so that anything that
//! takes Alertmanager's webhooks takes opslake's.

use serde_json::{json, Value};

use super::{common, rfc3339, Notification, Origin, Request};
use crate::alerts::book::AlertState;
use crate::alerts::config::ReceiverConfig;

/// Alertmanager's zero time, the `endsAt` of a firing alert in its webhooks.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub(super) fn render(r: &ReceiverConfig, origin: &Origin, group: &[Notification]) -> Vec<Request> {
    let firing = group.iter().any(|n| n.status == AlertState::Firing);
    let alertname = group.first().map_or("", |n| n.alert.alertname());
    let alerts: Vec<Value> = group
        .iter()
        .map(|n| {
            json!({
                "status": if n.status == AlertState::Resolved { "resolved" } else { "firing" },
                "labels": n.alert.labels,
                "annotations": n.alert.annotations,
                "startsAt": rfc3339(n.alert.starts_at_ms()),
                "endsAt": n.ends_at_ms.map_or(ZERO_TIME.to_string(), rfc3339),
                "generatorURL": origin.link(&n.alert),
                "fingerprint": n.alert.fingerprint,
            })
        })
        .collect();
    let body = json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"),
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": r.name,
        "groupLabels": { "alertname": alertname },
        "commonLabels": common(group, |n| &n.alert.labels),
        "commonAnnotations": common(group, |n| &n.alert.annotations),
        "externalURL": origin.external_url,
        "alerts": alerts,
    });
    vec![Request {
        url: r.endpoint(),
        body,
    }]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{note, origin, receiver};
    use super::*;

    #[test]
    fn a_group_is_one_alertmanager_webhook_message() {
        let r = receiver("webhook");
        let req = render(
            &r,
            &origin(),
            &[
                note("a", AlertState::Resolved, "critical"),
                note("b", AlertState::Resolved, "critical"),
            ],
        );
        let b = &req[0].body;
        assert_eq!(b["version"], "4");
        assert_eq!(b["status"], "resolved");
        assert_eq!(b["groupLabels"]["alertname"], "P99High");
        assert_eq!(b["commonLabels"]["severity"], "critical");
        assert!(b["commonLabels"].get("service").is_none());
        assert_eq!(b["alerts"].as_array().unwrap().len(), 2);
        assert_eq!(b["alerts"][0]["status"], "resolved");
        assert_eq!(b["alerts"][0]["fingerprint"].as_str().unwrap().len(), 16);
        let firing = render(&r, &origin(), &[note("a", AlertState::Firing, "critical")]);
        assert_eq!(firing[0].body["alerts"][0]["endsAt"], ZERO_TIME);
    }
}
