//! A Slack incoming webhook: one message per group, its `text` the headline (what
//! notifications and screen readers show) and one attachment per alert, red while firing and
//! green once resolved.

use serde_json::{json, Value};

use super::{Notification, Origin, Request};
use crate::alerts::book::AlertState;
use crate::alerts::config::ReceiverConfig;
use crate::alerts::rule::format_number;

pub(super) fn render(r: &ReceiverConfig, origin: &Origin, group: &[Notification]) -> Vec<Request> {
    let firing = group
        .iter()
        .filter(|n| n.status == AlertState::Firing)
        .count();
    let alertname = group.first().map_or("", |n| n.alert.alertname());
    let text = if firing > 0 {
        format!("[FIRING:{firing}] {alertname}")
    } else {
        format!("[RESOLVED:{}] {alertname}", group.len())
    };
    let attachments: Vec<Value> = group
        .iter()
        .map(|n| {
            let resolved = n.status == AlertState::Resolved;
            let mut fields: Vec<Value> = n
                .alert
                .labels
                .iter()
                .filter(|(k, _)| *k != "alertname")
                .map(|(k, v)| json!({ "title": k, "value": v, "short": true }))
                .collect();
            if let Some(v) = n.alert.value {
                fields.push(json!({ "title": "value", "value": format_number(v), "short": true }));
            }
            let summary = n
                .alert
                .annotations
                .get("summary")
                .cloned()
                .unwrap_or_else(|| alertname.to_string());
            let description = n
                .alert
                .annotations
                .get("description")
                .cloned()
                .unwrap_or_default();
            json!({
                "color": if resolved { "good" } else { "danger" },
                "fallback": format!("{} {summary}", if resolved { "RESOLVED" } else { "FIRING" }),
                "title": format!("{} {summary}", if resolved { "Resolved:" } else { "Firing:" }),
                "title_link": origin.link(&n.alert),
                "text": description,
                "fields": fields,
                "footer": "opslake",
                "ts": n.alert.starts_at_ms() / 1000,
            })
        })
        .collect();
    vec![Request {
        url: r.endpoint(),
        body: json!({ "text": text, "attachments": attachments }),
    }]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{note, origin, receiver};
    use super::*;

    #[test]
    fn a_message_has_a_headline_and_an_attachment_per_alert() {
        let r = receiver("slack");
        let req = render(
            &r,
            &origin(),
            &[
                note("a", AlertState::Firing, "critical"),
                note("b", AlertState::Resolved, "critical"),
            ],
        );
        let b = &req[0].body;
        assert_eq!(b["text"], "[FIRING:1] P99High");
        assert_eq!(b["attachments"][0]["color"], "danger");
        assert_eq!(b["attachments"][1]["color"], "good");
        assert_eq!(b["attachments"][0]["title"], "Firing: p99 of a is 612 ms");
    }
}
