//! The notification outbox: what each receiver is owed, kept in the lake's state.
//!
//! A notification (an alert fired or resolved) is recorded as owed to each receiver whose
//! matchers it meets, in the same commit as the alert's state change, under
//! `alerts.outbox/<receiver>/<seq>`; the receiver's worker delivers the owed notifications in
//! order and then removes them in a commit of its own. So a crash between the two commits
//! re-sends (at least once, with the receiver's own deduplication key: Alertmanager's labels,
//! PagerDuty's `dedup_key`, the webhook's `groupKey`), and a crash before the first commit
//! loses nothing either: the change is evaluated again. Re-sends of firing alerts to
//! Alertmanager are not owed (the next re-send comes anyway).

use std::collections::BTreeMap;

use opslake_lake::Snapshot;
use serde_json::Value;

use super::notification::Notification;

/// Prefix of the outbox's lake state keys.
pub const OUTBOX_PREFIX: &str = "alerts.outbox/";

/// Notifications a receiver is owed at most; beyond, the oldest are dropped (and counted).
pub const MAX_OWED: usize = 10_000;

/// One notification owed to one receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Owed {
    /// The receiver's name.
    pub receiver: String,
    /// Its place in the order of notifications (unique in the lake).
    pub seq: u64,
    /// The notification.
    pub note: Notification,
}

impl Owed {
    /// Its lake state key.
    pub fn key(&self) -> String {
        key(&self.receiver, self.seq)
    }
}

/// The lake state key of notification `seq` owed to `receiver`.
pub fn key(receiver: &str, seq: u64) -> String {
    format!("{OUTBOX_PREFIX}{receiver}/{seq:020}")
}

/// `(receiver, seq)` of an outbox key.
fn parse(key: &str) -> Option<(&str, u64)> {
    let (receiver, seq) = key.strip_prefix(OUTBOX_PREFIX)?.rsplit_once('/')?;
    Some((receiver, seq.parse().ok()?))
}

/// Every notification owed in `snap`, by receiver, in order.
pub fn owed(snap: &Snapshot) -> BTreeMap<String, Vec<Owed>> {
    let mut out: BTreeMap<String, Vec<Owed>> = BTreeMap::new();
    for (k, v) in snap
        .state
        .range(OUTBOX_PREFIX.to_string()..)
        .take_while(|(k, _)| k.starts_with(OUTBOX_PREFIX))
    {
        let Some((receiver, seq)) = parse(k) else {
            continue;
        };
        let Ok(note) = serde_json::from_value::<Notification>(v.clone()) else {
            continue;
        };
        out.entry(receiver.to_string()).or_default().push(Owed {
            receiver: receiver.to_string(),
            seq,
            note,
        });
    }
    for list in out.values_mut() {
        list.sort_by_key(|o| o.seq);
    }
    out
}

/// The state entries that settle the outbox for this commit: `new` notifications recorded,
/// the oldest dropped where a receiver would be owed more than [`MAX_OWED`], and the entries
/// of receivers that are no longer configured removed. Returns the entries and how many were
/// dropped.
pub fn settle(
    already: &BTreeMap<String, Vec<Owed>>,
    new: &[Owed],
    receivers: &[&str],
) -> (BTreeMap<String, Value>, usize) {
    let mut state = BTreeMap::new();
    let mut dropped = 0;
    for (receiver, list) in already {
        if !receivers.contains(&receiver.as_str()) {
            for o in list {
                state.insert(o.key(), Value::Null);
            }
        }
    }
    for receiver in receivers {
        let before = already.get(*receiver).map_or(&[][..], Vec::as_slice);
        let added: Vec<&Owed> = new.iter().filter(|o| o.receiver == *receiver).collect();
        let over = (before.len() + added.len()).saturating_sub(MAX_OWED);
        for o in before.iter().take(over) {
            state.insert(o.key(), Value::Null);
        }
        dropped += over;
        for o in added.iter().skip(over.saturating_sub(before.len())) {
            if let Ok(v) = serde_json::to_value(&o.note) {
                state.insert(o.key(), v);
            }
        }
    }
    (state, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::book::AlertState;
    use crate::alerts::notify::tests::note;

    fn owed(receiver: &str, seq: u64) -> Owed {
        Owed {
            receiver: receiver.into(),
            seq,
            note: note("a", AlertState::Firing, "critical"),
        }
    }

    #[test]
    fn keys_sort_in_the_order_of_notifications() {
        assert!(key("r", 9) < key("r", 10));
        assert_eq!(parse(&key("on/call", 42)), Some(("on/call", 42)));
    }

    #[test]
    fn settling_records_new_drops_the_oldest_beyond_the_cap_and_forgets_removed_receivers() {
        let mut already = BTreeMap::new();
        already.insert("gone".to_string(), vec![owed("gone", 1)]);
        already.insert(
            "r".to_string(),
            (2..2 + MAX_OWED as u64).map(|s| owed("r", s)).collect(),
        );
        let new = [owed("r", 20_000), owed("r", 20_001)];
        let (state, dropped) = settle(&already, &new, &["r"]);
        assert_eq!(dropped, 2);
        assert_eq!(state[&key("gone", 1)], Value::Null);
        assert_eq!(state[&key("r", 2)], Value::Null);
        assert_eq!(state[&key("r", 3)], Value::Null);
        assert!(!state.contains_key(&key("r", 4)));
        assert!(state[&key("r", 20_001)].is_object());
    }
}
