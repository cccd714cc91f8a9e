//! A Slack incoming webhook: one message per group, its `text` the headline (what
//! notifications and screen readers show) and one attachment per alert, red while firing and
//! green once resolved. Everything taken from an alert (labels, annotations, values: data and
//! configuration people did not write for Slack) is escaped as Slack asks (`&`, `<`, `>`), so
//! that it can neither mention (`<!channel>`, `<@U123>`) nor link (`<http://…|text>`).

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
    let alertname = escape(group.first().map_or("", |n| n.alert.alertname()));
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
                .map(|(k, v)| json!({ "title": escape(k), "value": escape(v), "short": true }))
                .collect();
            if let Some(v) = n.alert.value {
                fields.push(json!({ "title": "value", "value": format_number(v), "short": true }));
            }
            let summary = n
                .alert
                .annotations
                .get("summary")
                .map_or_else(|| alertname.clone(), |s| escape(s));
            let description = n
                .alert
                .annotations
                .get("description")
                .map(|d| escape(d))
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

/// Text as Slack shows it literally: its three control characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
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

    /// Data in an alert cannot mention anyone or hide a link in a Slack message.
    #[test]
    fn alert_text_is_escaped() {
        let r = receiver("slack");
        let mut n = note("<!channel> & <@U123>", AlertState::Firing, "critical");
        n.alert.annotations.insert(
            "description".into(),
            "see <http://evil.example|the runbook>".into(),
        );
        let body = render(&r, &origin(), &[n])[0].body.to_string();
        for raw in ["<!channel>", "<@U123>", "<http://evil.example"] {
            assert!(!body.contains(raw), "{raw} in {body}");
        }
        assert!(
            body.contains("&lt;!channel&gt; &amp; &lt;@U123&gt;"),
            "{body}"
        );
    }
}
