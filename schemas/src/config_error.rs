//! The error of a bad setting: it names the key, so start-up stops saying what to fix.

use std::path::PathBuf;

/// A setting opslake cannot start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key holds a value that is wrong for it (or is unknown).
    #[error("invalid configuration key `{key}`: {reason}")]
    Key {
        /// The key as a user writes it: `processor.window`.
        key: String,
        /// What is wrong, never repeating a secret value.
        reason: String,
    },
    /// The file given with `--config` is not there.
    #[error("config file {} does not exist", .0.display())]
    MissingFile(PathBuf),
    /// Several keys are wrong at once (one line each).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Vec<ConfigError>),
}

impl ConfigError {
    /// A wrong value of `key`.
    pub fn key(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Key {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_key() {
        let e = ConfigError::key("processor.window", "7m does not divide an hour");
        assert_eq!(
            e.to_string(),
            "invalid configuration key `processor.window`: 7m does not divide an hour"
        );
        let both = ConfigError::Several(vec![e.clone(), ConfigError::key("a.b", "bad")]);
        assert_eq!(both.to_string().lines().count(), 2);
    }
}
