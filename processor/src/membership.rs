//! Splitting the processor's jobs between instances. Each instance keeps a heartbeat in the
//! lake's state (`processor.member.<id>` = when it expires), renewed by a commit before half
//! its time is up; the live members, sorted by id, take the jobs in turn (job `i` goes to
//! member `i mod n`). One instance does all the jobs; with the four jobs of today (metric
//! rollups, log rollups, costs, alerts), two instances split them 2 + 2 and four or more take
//! one each (the rest stand by). When a member stops or dies
//! its heartbeat lapses (or is removed on a clean stop) and the others take its jobs at their
//! next cycle.
//!
//! Assignment is advisory: two instances whose views of the membership differ for a moment
//! may both run a job, and then the job's commit precondition (its progress must not have
//! moved) lets exactly one of them record its work. So nothing is counted twice, and the
//! heartbeats only spread the load.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use opslake_lake::{CommitError, Lake, LakeError, LogEntry, Snapshot};
use tracing::info;

use crate::error::ProcessError;

/// Prefix of the heartbeat keys in the lake's state.
pub const MEMBER_PREFIX: &str = "processor.member.";

/// How long a heartbeat lasts: three cycles, at least 5 s and at most a minute.
pub fn heartbeat_ttl(interval: Duration) -> Duration {
    (interval * 3).clamp(Duration::from_secs(5), Duration::from_secs(60))
}

/// The live members of `snap` at `now_ms`, sorted.
pub fn live_members(snap: &Snapshot, now_ms: i64) -> Vec<String> {
    snap.state
        .iter()
        .filter_map(|(k, v)| {
            let id = k.strip_prefix(MEMBER_PREFIX)?;
            (v.as_i64()? > now_ms).then(|| id.to_string())
        })
        .collect()
}

/// The jobs of member `me` among `members` (sorted; `me` is counted even when missing), out
/// of `jobs`, which every member lists in the same order.
pub fn assignment(members: &[String], me: &str, jobs: &[&'static str]) -> Vec<&'static str> {
    let mut all: Vec<&str> = members.iter().map(String::as_str).collect();
    if !all.contains(&me) {
        all.push(me);
        all.sort_unstable();
    }
    let rank = all.iter().position(|m| *m == me).unwrap_or(0);
    jobs.iter()
        .enumerate()
        .filter(|(i, _)| i % all.len() == rank)
        .map(|(_, s)| *s)
        .collect()
}

/// One instance's membership: its heartbeat in the lake.
#[derive(Debug)]
pub struct Membership {
    lake: Arc<Lake>,
    /// The instance's id (its writer name).
    id: String,
    ttl: Duration,
}

impl Membership {
    /// The membership of instance `id`, whose heartbeat lasts [`heartbeat_ttl`] of `interval`.
    pub fn new(lake: Arc<Lake>, id: String, interval: Duration) -> Self {
        Self {
            lake,
            id,
            ttl: heartbeat_ttl(interval),
        }
    }

    /// Renews this instance's heartbeat when half its time is up (dropping members whose
    /// heartbeat lapsed long ago) and returns its share of `jobs`.
    ///
    /// # Errors
    /// When the lake cannot be read or written.
    pub async fn my_jobs(&self, jobs: &[&'static str]) -> Result<Vec<&'static str>, ProcessError> {
        let ttl = self.ttl.as_millis() as i64;
        let now = chrono::Utc::now().timestamp_millis();
        let key = format!("{MEMBER_PREFIX}{}", self.id);
        let snap = self.lake.snapshot().await?;
        let expires = snap.state.get(&key).and_then(serde_json::Value::as_i64);
        let snap = if expires.is_none_or(|e| e - now < ttl / 2) {
            let mut state = BTreeMap::new();
            state.insert(key, serde_json::json!(now + ttl));
            for (k, v) in snap.state.iter() {
                if k.starts_with(MEMBER_PREFIX) && v.as_i64().is_none_or(|e| e < now - ttl) {
                    state.insert(k.clone(), serde_json::Value::Null);
                }
            }
            let joined = expires.is_none();
            self.commit_state(state).await.map_err(|e| match e {
                CommitError::Lake(e) => ProcessError::Lake(e),
                CommitError::Conflict(r) => ProcessError::Lake(LakeError::Corrupt {
                    path: "_opslake_log".into(),
                    reason: r,
                }),
            })?;
            let snap = self.lake.snapshot().await?;
            if joined {
                info!(
                    member = self.id,
                    members = live_members(&snap, now).len(),
                    "processor joined"
                );
            }
            snap
        } else {
            snap
        };
        Ok(assignment(&live_members(&snap, now), &self.id, jobs))
    }

    /// Removes this instance's heartbeat so the others take its jobs at once.
    pub async fn leave(&self) {
        let mut state = BTreeMap::new();
        state.insert(
            format!("{MEMBER_PREFIX}{}", self.id),
            serde_json::Value::Null,
        );
        let _ = self.commit_state(state).await;
    }

    /// Commits heartbeat changes (state keys only; they never conflict).
    async fn commit_state(
        &self,
        state: BTreeMap<String, serde_json::Value>,
    ) -> Result<u64, CommitError> {
        self.lake
            .commit(
                LogEntry {
                    writer: self.id.clone(),
                    state,
                    ..Default::default()
                },
                |_| Ok(()),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    const JOBS: [&str; 3] = ["metrics", "logs", "costs"];

    #[test]
    fn jobs_are_split_between_live_members() {
        assert_eq!(assignment(&[], "a", &JOBS), JOBS.to_vec());
        let two = ids(&["a", "b"]);
        assert_eq!(assignment(&two, "a", &JOBS), vec!["metrics", "costs"]);
        assert_eq!(assignment(&two, "b", &JOBS), vec!["logs"]);
        let four = ids(&["a", "b", "c", "d"]);
        assert_eq!(assignment(&four, "d", &JOBS), Vec::<&str>::new());
        // A member not yet in the view counts itself.
        assert_eq!(
            assignment(&ids(&["b"]), "a", &JOBS),
            vec!["metrics", "costs"]
        );
        let mut every: Vec<&str> = ["a", "b", "c"]
            .iter()
            .flat_map(|m| assignment(&ids(&["a", "b", "c"]), m, &JOBS))
            .collect();
        every.sort_unstable();
        let mut all = JOBS.to_vec();
        all.sort_unstable();
        assert_eq!(every, all, "each job exactly once");
    }
}
