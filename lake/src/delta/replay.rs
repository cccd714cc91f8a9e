//! A table's Delta head: the state at its newest version, replayed from `_last_checkpoint`,
//! the checkpoint it names, and the JSON commits after it. Kept in memory between catch-ups, so
//! that the steady state reads nothing: a commit this process writes is applied to the head
//! directly, and only a version someone else wrote (found when creating it fails) is read.

use std::collections::BTreeMap;

use object_store::ObjectStoreExt;

use super::actions::{
    commit_path, from_ndjson, last_checkpoint_path, Action, Add, LastCheckpoint, MetaData,
    Protocol, Remove, Txn, APP_ID, LOG_DIR,
};
use super::{checkpoint, DeltaError};
use crate::Lake;

/// The replayed state of one table's Delta log.
#[derive(Debug, Clone, Default)]
pub(crate) struct Head {
    /// The newest version applied; `None` while the table has no log.
    pub(crate) version: Option<u64>,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) metadata: Option<MetaData>,
    /// The newest `txn` of each application.
    pub(crate) txns: BTreeMap<String, Txn>,
    /// Live files by `add.path`.
    pub(crate) files: BTreeMap<String, Add>,
    /// Removed files by `remove.path`, until a checkpoint drops them as expired.
    pub(crate) tombstones: BTreeMap<String, Remove>,
    /// The opslake log version through which every entry touching the table is in the log, as
    /// far as this process knows (at least the newest `txn`).
    pub(crate) through: u64,
}

impl Head {
    /// The opslake version the newest `txn` of opslake names.
    pub(crate) fn mirrored(&self) -> Option<u64> {
        self.txns
            .get(APP_ID)
            .and_then(|t| u64::try_from(t.version).ok())
    }

    /// The version the next commit creates.
    pub(crate) fn next_version(&self) -> u64 {
        self.version.map_or(0, |v| v + 1)
    }

    /// Applies the actions of one version (or of a checkpoint), in order.
    pub(crate) fn apply(&mut self, actions: &[Action]) {
        for a in actions {
            if let Some(p) = &a.protocol {
                self.protocol = Some(p.clone());
            }
            if let Some(m) = &a.metadata {
                self.metadata = Some(m.clone());
            }
            if let Some(t) = &a.txn {
                self.txns.insert(t.app_id.clone(), t.clone());
            }
            if let Some(r) = &a.remove {
                self.files.remove(&r.path);
                self.tombstones.insert(r.path.clone(), r.clone());
            }
            if let Some(add) = &a.add {
                self.tombstones.remove(&add.path);
                self.files.insert(add.path.clone(), add.clone());
            }
        }
        if let Some(m) = self.mirrored() {
            self.through = self.through.max(m);
        }
    }

    /// Reads and applies every version after the head's, up to the newest; returns how many.
    ///
    /// # Errors
    /// When a commit cannot be read or does not parse.
    pub(crate) async fn advance(&mut self, lake: &Lake, table: &str) -> Result<u64, DeltaError> {
        let mut read = 0;
        loop {
            let next = self.next_version();
            match read_commit(lake, table, next).await? {
                Some(actions) => {
                    self.apply(&actions);
                    self.version = Some(next);
                    read += 1;
                }
                None => return Ok(read),
            }
        }
    }
}

/// Reads `table`'s head: from the checkpoint `_last_checkpoint` names (if any), then every JSON
/// commit after it.
///
/// # Errors
/// When a file of the log cannot be read or does not parse, or the log has commits but
/// neither version 0 nor a checkpoint to start from.
pub(crate) async fn load(lake: &Lake, table: &str) -> Result<Head, DeltaError> {
    let mut head = Head::default();
    if let Some(last) = read_last_checkpoint(lake, table).await? {
        if let Some(actions) = checkpoint::read(lake, table, last.version).await? {
            head.apply(&actions);
            head.version = Some(last.version);
        }
    }
    head.advance(lake, table).await?;
    if head.version.is_none() && has_commits(lake, table).await? {
        return Err(DeltaError::Corrupt {
            path: format!("{table}/{LOG_DIR}"),
            reason: "commits but no version 0 and no _last_checkpoint to start from".into(),
        });
    }
    Ok(head)
}

/// Reads the body of a log file; `None` when it does not exist.
pub(crate) async fn read_file(lake: &Lake, rel: &str) -> Result<Option<bytes::Bytes>, DeltaError> {
    let store_err = |source| DeltaError::Store {
        path: rel.to_string(),
        source,
    };
    match lake.store().get(&lake.path(rel)).await {
        Ok(r) => Ok(Some(r.bytes().await.map_err(store_err)?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(store_err(e)),
    }
}

/// The actions of commit `version`; `None` when it does not exist.
///
/// # Errors
/// When it cannot be read or does not parse.
pub(crate) async fn read_commit(
    lake: &Lake,
    table: &str,
    version: u64,
) -> Result<Option<Vec<Action>>, DeltaError> {
    let rel = commit_path(table, version);
    let Some(body) = read_file(lake, &rel).await? else {
        return Ok(None);
    };
    from_ndjson(&body)
        .map(Some)
        .map_err(|e| DeltaError::Corrupt {
            path: rel,
            reason: e.to_string(),
        })
}

async fn read_last_checkpoint(
    lake: &Lake,
    table: &str,
) -> Result<Option<LastCheckpoint>, DeltaError> {
    let rel = last_checkpoint_path(table);
    let Some(body) = read_file(lake, &rel).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| DeltaError::Corrupt {
            path: rel,
            reason: e.to_string(),
        })
}

/// Whether `table`'s log folder holds any commit (one list request, only for a table whose
/// version 0 is missing).
async fn has_commits(lake: &Lake, table: &str) -> Result<bool, DeltaError> {
    use futures::TryStreamExt;
    let rel = format!("{table}/{LOG_DIR}");
    let metas: Vec<_> = lake
        .store()
        .list(Some(&lake.path(&rel)))
        .try_collect()
        .await
        .map_err(|source| DeltaError::Store {
            path: rel.clone(),
            source,
        })?;
    Ok(metas
        .iter()
        .any(|m| m.location.filename().is_some_and(|n| n.ends_with(".json"))))
}
