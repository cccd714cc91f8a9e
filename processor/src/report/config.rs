//! Settings of scheduled reports (`[reports]`).

use std::str::FromStr as _;
use std::time::Duration;

use opslake_schemas::Secret;
use serde::{Deserialize, Serialize};

/// Settings of scheduled reports (`[reports]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// Generate forecast reports on the schedule (in `opslake run` and `opslake process`).
    pub enabled: bool,
    /// Cron schedule in UTC: `minute hour day month weekday`, or with seconds first.
    pub schedule: String,
    /// URL the report's JSON is POSTed to once it is stored; a secret (such URLs carry their
    /// credentials), never printed.
    pub webhook_url: Option<Secret>,
    /// Kafka topic the report's JSON is produced to (key: the report id), e.g.
    /// `telemetry.reports`.
    pub topic: Option<String>,
    /// Attempts of a failing report or delivery before giving up until the next slot.
    pub attempts: u32,
    /// Wait after the first failed attempt; it doubles after each further one.
    #[serde(with = "humantime_serde")]
    pub retry_delay: Duration,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            schedule: "0 6 * * *".into(),
            webhook_url: None,
            topic: None,
            attempts: 4,
            retry_delay: Duration::from_secs(30),
        }
    }
}

impl ReportConfig {
    /// The parsed schedule.
    ///
    /// # Errors
    /// Names the key and what is wrong with the pattern.
    pub fn cron(&self) -> Result<croner::Cron, opslake_schemas::ConfigError> {
        croner::Cron::from_str(&self.schedule).map_err(|e| {
            opslake_schemas::ConfigError::key(
                "reports.schedule",
                format!(
                    "{e} in {:?} (expected cron fields `minute hour day month weekday`, optionally with seconds first, e.g. \"0 6 * * *\")",
                    self.schedule
                ),
            )
        })
    }

    /// Checks the settings; the error names the key.
    ///
    /// # Errors
    /// When the schedule or the webhook URL does not parse, or attempts is 0.
    pub fn validate(&self) -> Result<(), opslake_schemas::ConfigError> {
        use opslake_schemas::ConfigError;
        self.cron()?;
        if let Some(u) = &self.webhook_url {
            let ok = reqwest::Url::parse(u.expose())
                .map(|u| matches!(u.scheme(), "http" | "https"))
                .unwrap_or(false);
            if !ok {
                // The value is not repeated: it is a secret.
                return Err(ConfigError::key(
                    "reports.webhook_url",
                    "not an http(s) URL",
                ));
            }
        }
        if self.attempts == 0 {
            return Err(ConfigError::key("reports.attempts", "at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_with_and_without_seconds() {
        let mut c = ReportConfig::default();
        assert!(c.validate().is_ok());
        c.schedule = "*/5 * * * * *".into();
        assert!(c.validate().is_ok());
        c.schedule = "every day".into();
        assert!(
            matches!(c.validate().unwrap_err(), opslake_schemas::ConfigError::Key { key, .. } if key == "reports.schedule")
        );
        c = ReportConfig {
            webhook_url: Some(Secret::new("ftp://x")),
            ..Default::default()
        };
        assert!(
            matches!(c.validate().unwrap_err(), opslake_schemas::ConfigError::Key { key, .. } if key == "reports.webhook_url")
        );
    }
}
