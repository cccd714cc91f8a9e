//! The Delta log's actions as JSON: one action per line of a commit file
//! (`_delta_log/<version:020>.json`), with the field names and types of PROTOCOL.md. The same
//! structs read commits and the rows of a checkpoint (decoded to the same JSON).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `txn.appId` of opslake's commits: `txn.version` is the opslake log version a Delta
/// version mirrors.
pub(crate) const APP_ID: &str = "opslake";

/// Reader version 1 and writer version 2: enough for `timestamp` (UTC), maps, binary, dates,
/// statistics, `txn` and classic checkpoints; no table features.
pub(crate) const MIN_READER_VERSION: i32 = 1;
/// See [`MIN_READER_VERSION`].
pub(crate) const MIN_WRITER_VERSION: i32 = 2;

/// Partition values, configuration: a map of strings (`null` is a null partition value).
pub(crate) type StringMap = BTreeMap<String, Option<String>>;

/// `add`: a data file enters the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Add {
    /// Relative to the table root, percent-encoded ([`encode_path`]).
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) partition_values: StringMap,
    pub(crate) size: i64,
    pub(crate) modification_time: i64,
    pub(crate) data_change: bool,
    /// The file's statistics, a JSON document in a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stats: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tags: Option<StringMap>,
}

/// `remove`: a data file leaves the table (a tombstone until it is vacuumed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Remove {
    pub(crate) path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deletion_timestamp: Option<i64>,
    pub(crate) data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) extended_file_metadata: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) partition_values: Option<StringMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) size: Option<i64>,
}

/// `metaData.format`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Format {
    pub(crate) provider: String,
    #[serde(default)]
    pub(crate) options: StringMap,
}

/// `metaData`: the table's id, schema, partition columns and properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetaData {
    pub(crate) id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    pub(crate) format: Format,
    pub(crate) schema_string: String,
    #[serde(default)]
    pub(crate) partition_columns: Vec<String>,
    #[serde(default)]
    pub(crate) configuration: StringMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) created_time: Option<i64>,
}

/// `protocol`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Protocol {
    pub(crate) min_reader_version: i32,
    pub(crate) min_writer_version: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reader_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) writer_features: Option<Vec<String>>,
}

impl Protocol {
    /// The protocol opslake's tables use.
    pub(crate) fn opslake() -> Self {
        Self {
            min_reader_version: MIN_READER_VERSION,
            min_writer_version: MIN_WRITER_VERSION,
            reader_features: None,
            writer_features: None,
        }
    }
}

/// `txn`: how far an application's writes got (opslake: the log version mirrored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Txn {
    pub(crate) app_id: String,
    pub(crate) version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_updated: Option<i64>,
}

/// One line of a commit file, or one row of a checkpoint: at most one of the fields is set
/// (actions this code does not know, such as `cdc` or `domainMetadata`, leave all unset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Action {
    #[serde(
        rename = "commitInfo",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) commit_info: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) protocol: Option<Protocol>,
    #[serde(rename = "metaData", default, skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<MetaData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) remove: Option<Remove>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) add: Option<Add>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) txn: Option<Txn>,
}

impl Action {
    pub(crate) fn commit_info(v: serde_json::Value) -> Self {
        Self {
            commit_info: Some(v),
            ..Self::default()
        }
    }

    pub(crate) fn protocol(p: Protocol) -> Self {
        Self {
            protocol: Some(p),
            ..Self::default()
        }
    }

    pub(crate) fn metadata(m: MetaData) -> Self {
        Self {
            metadata: Some(m),
            ..Self::default()
        }
    }

    pub(crate) fn add(a: Add) -> Self {
        Self {
            add: Some(a),
            ..Self::default()
        }
    }

    pub(crate) fn remove(r: Remove) -> Self {
        Self {
            remove: Some(r),
            ..Self::default()
        }
    }

    pub(crate) fn txn(t: Txn) -> Self {
        Self {
            txn: Some(t),
            ..Self::default()
        }
    }
}

/// Newline-delimited JSON of `actions`, one per line.
pub(crate) fn to_ndjson(actions: &[Action]) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256 * actions.len());
    for a in actions {
        serde_json::to_writer(&mut out, a)?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Parses newline-delimited JSON actions; blank lines are skipped.
pub(crate) fn from_ndjson(body: &[u8]) -> Result<Vec<Action>, serde_json::Error> {
    body.split(|b| *b == b'\n')
        .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
        .map(serde_json::from_slice)
        .collect()
}

/// The table folder's name of the log.
pub(crate) const LOG_DIR: &str = "_delta_log";

/// Lake-relative path of commit `version` of `table`.
pub(crate) fn commit_path(table: &str, version: u64) -> String {
    format!("{table}/{LOG_DIR}/{version:020}.json")
}

/// Lake-relative path of the checkpoint of `version` of `table`.
pub(crate) fn checkpoint_path(table: &str, version: u64) -> String {
    format!("{table}/{LOG_DIR}/{version:020}.checkpoint.parquet")
}

/// Lake-relative path of `table`'s `_last_checkpoint`.
pub(crate) fn last_checkpoint_path(table: &str) -> String {
    format!("{table}/{LOG_DIR}/_last_checkpoint")
}

/// `_last_checkpoint`: the newest checkpoint's version and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LastCheckpoint {
    pub(crate) version: u64,
    pub(crate) size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) size_in_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) num_of_add_files: Option<u64>,
}

/// A data file's path as `add.path` and `remove.path` hold it: relative to the table root, a
/// URI path that readers percent-decode. opslake's names (`[A-Za-z0-9=_./-]`) stay as they
/// are; any other byte is percent-encoded.
pub(crate) fn encode_path(table_relative: &str) -> String {
    let mut out = String::with_capacity(table_relative.len());
    for b in table_relative.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'=' | b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_only_what_needs_it() {
        assert_eq!(
            encode_path("date=2026-11-22/hour=07/part-ingest-1-ab.parquet"),
            "date=2026-11-22/hour=07/part-ingest-1-ab.parquet"
        );
        assert_eq!(
            encode_path("part-writer a:b-é.parquet"),
            "part-writer%20a%3Ab-%C3%A9.parquet"
        );
    }

    #[test]
    fn actions_round_trip_one_per_line() {
        let actions = vec![
            Action::protocol(Protocol::opslake()),
            Action::txn(Txn {
                app_id: APP_ID.into(),
                version: 7,
                last_updated: Some(1),
            }),
        ];
        let body = to_ndjson(&actions).unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        assert_eq!(
            text,
            "{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":2}}\n\
             {\"txn\":{\"appId\":\"opslake\",\"version\":7,\"lastUpdated\":1}}\n"
        );
        assert_eq!(from_ndjson(&body).unwrap(), actions);
    }
}
