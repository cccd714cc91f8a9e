//! The `[alerts]` section: evaluation settings, rules, receivers and cost budgets.

use std::collections::BTreeMap;
use std::time::Duration;

use opslake_schemas::{ConfigError, Secret};
use serde::{Deserialize, Serialize};

/// The built-in alerts' names (what `alerts.disable_builtin` may name).
pub const BUILTIN_NAMES: [&str; 7] = [
    "OpslakeAnomaly",
    "OpslakeRegression",
    "OpslakeSLOBurnRate",
    "OpslakeCostBudget",
    "OpslakePipeline",
    "OpslakeMemoryLeak",
    "OpslakeCapacity",
];

/// Settings of alerting (`[alerts]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Time between evaluations of the rules.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Active alerts are re-sent to Alertmanager receivers this often.
    #[serde(with = "humantime_serde")]
    pub resend_interval: Duration,
    /// Alerts about data older than this (a backfill, a replay) are recorded, never notified.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// `OpslakePipeline` fires when ingest or a rollup job has made no progress for this long
    /// while data waits for it.
    #[serde(with = "humantime_serde")]
    pub stuck_after: Duration,
    /// Built-in alerts to turn off, by name (`OpslakeAnomaly`, `OpslakeRegression`,
    /// `OpslakeSLOBurnRate`, `OpslakeCostBudget`, `OpslakePipeline`); all are on by default.
    pub disable_builtin: Vec<String>,
    /// Where people reach opslake (the console and API), for the links alerts carry; the API's
    /// own address when unset.
    pub external_url: Option<String>,
    /// Alert rules.
    pub rules: Vec<RuleConfig>,
    /// Where alerts are sent.
    pub receivers: Vec<ReceiverConfig>,
    /// Monthly cost budgets, checked against the month-end forecast.
    pub budgets: Vec<BudgetConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            resend_interval: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
            stuck_after: Duration::from_secs(300),
            disable_builtin: Vec::new(),
            external_url: None,
            rules: Vec::new(),
            receivers: Vec::new(),
            budgets: Vec::new(),
        }
    }
}

/// How urgent an alert is (its `severity` label).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record.
    Info,
    /// Look at it soon.
    #[default]
    Warning,
    /// Something is broken.
    Error,
    /// Page someone.
    Critical,
}

impl Severity {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Critical => "critical",
        }
    }
}

/// One alert rule (`[[alerts.rules]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The alert's `alertname` label.
    pub name: String,
    /// A query returning one row per alert instance: its string columns become labels, a
    /// numeric `value` column the value, a timestamp `at` column the time of the data (for
    /// `max_age`).
    pub sql: String,
    /// How long an instance stays pending before it fires; `0s` fires at once.
    #[serde(rename = "for", default, with = "humantime_serde")]
    pub for_: Duration,
    /// The `severity` label.
    #[serde(default)]
    pub severity: Severity,
    /// Labels added to every instance.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations, with `{{ column }}` filled from the instance's row.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The kinds of receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    /// Alertmanager's API v2 (`{url}/api/v2/alerts`).
    Alertmanager,
    /// Alertmanager's webhook JSON, posted to `url`.
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// PagerDuty Events API v2.
    Pagerduty,
}

/// One receiver (`[[alerts.receivers]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// The receiver's name in logs and `/metrics`.
    pub name: String,
    /// What it speaks.
    pub kind: ReceiverKind,
    /// Where it listens; a secret for webhooks, Slack and PagerDuty (it often holds a token),
    /// never printed. PagerDuty's defaults to `https://events.pagerduty.com/v2/enqueue`.
    #[serde(default)]
    pub url: Option<Secret>,
    /// PagerDuty's integration key; never printed.
    #[serde(default)]
    pub routing_key: Option<Secret>,
    /// Label matchers (equality): only alerts whose labels match all of them; absent: every
    /// alert.
    #[serde(rename = "match", default)]
    pub matchers: BTreeMap<String, String>,
    /// Alerts changing within this long are sent together (one message per group).
    #[serde(default = "default_group_wait", with = "humantime_serde")]
    pub group_wait: Duration,
    /// Longest one delivery attempt may take.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_group_wait() -> Duration {
    Duration::from_secs(1)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

impl ReceiverConfig {
    /// The URL deliveries go to.
    pub fn endpoint(&self) -> Secret {
        match (&self.url, self.kind) {
            (Some(u), _) => u.clone(),
            (None, _) => Secret::new(PAGERDUTY_EVENTS_URL),
        }
    }

    /// Whether an alert with `labels` goes to this receiver.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
    }
}

/// A monthly cost budget (`[[alerts.budgets]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// `total`, `provider`, `service` or `resource`.
    pub scope: String,
    /// The provider, service or resource id (`total` for the total).
    #[serde(default = "total")]
    pub key: String,
    /// The budget of a calendar month, in the bill's currency.
    pub monthly: f64,
}

fn total() -> String {
    "total".into()
}

fn url_ok(u: &str) -> bool {
    reqwest::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

impl AlertsConfig {
    /// Checks the settings; the error names the key.
    ///
    /// # Errors
    /// A zero interval, a rule without a name or query, duplicate names, a receiver without
    /// the URL or key it needs, a budget with an unknown scope, an unknown built-in.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval.is_zero() {
            return Err(ConfigError::key("alerts.interval", "must be more than 0s"));
        }
        if self.resend_interval.is_zero() {
            return Err(ConfigError::key(
                "alerts.resend_interval",
                "must be more than 0s",
            ));
        }
        for b in &self.disable_builtin {
            if !BUILTIN_NAMES.contains(&b.as_str()) {
                return Err(ConfigError::key(
                    "alerts.disable_builtin",
                    format!(
                        "{b} is not a built-in alert (one of {})",
                        BUILTIN_NAMES.join(", ")
                    ),
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let key = |f: &str| format!("alerts.rules[{i}].{f}");
            if r.name.trim().is_empty() {
                return Err(ConfigError::key(key("name"), "must not be empty"));
            }
            if BUILTIN_NAMES.contains(&r.name.as_str()) {
                return Err(ConfigError::key(
                    key("name"),
                    format!("{} is a built-in alert's name", r.name),
                ));
            }
            if !names.insert(r.name.as_str()) {
                return Err(ConfigError::key(
                    key("name"),
                    format!("{} is used by another rule", r.name),
                ));
            }
            if r.sql.trim().is_empty() {
                return Err(ConfigError::key(key("sql"), "must not be empty"));
            }
        }
        let mut receivers = std::collections::BTreeSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            let key = |f: &str| format!("alerts.receivers[{i}].{f}");
            if !receivers.insert(r.name.as_str()) || r.name.trim().is_empty() {
                return Err(ConfigError::key(
                    key("name"),
                    "must be a name no other receiver has",
                ));
            }
            match (&r.url, r.kind) {
                (None, ReceiverKind::Pagerduty) => {}
                (None, _) => return Err(ConfigError::key(key("url"), "is required")),
                // The value is not repeated: it is a secret.
                (Some(u), _) if !url_ok(u.expose()) => {
                    return Err(ConfigError::key(key("url"), "not an http(s) URL"))
                }
                _ => {}
            }
            if r.kind == ReceiverKind::Pagerduty
                && r.routing_key.as_ref().is_none_or(Secret::is_empty)
            {
                return Err(ConfigError::key(
                    key("routing_key"),
                    "a pagerduty receiver needs its integration key",
                ));
            }
            if r.timeout.is_zero() {
                return Err(ConfigError::key(key("timeout"), "must be more than 0s"));
            }
        }
        for (i, b) in self.budgets.iter().enumerate() {
            let key = |f: &str| format!("alerts.budgets[{i}].{f}");
            if !matches!(
                b.scope.as_str(),
                "total" | "provider" | "service" | "resource"
            ) {
                return Err(ConfigError::key(
                    key("scope"),
                    format!("{} is not total, provider, service or resource", b.scope),
                ));
            }
            if !(b.monthly.is_finite() && b.monthly > 0.0) {
                return Err(ConfigError::key(key("monthly"), "must be more than 0"));
            }
        }
        if let Some(u) = &self.external_url {
            if !url_ok(u) {
                return Err(ConfigError::key(
                    "alerts.external_url",
                    "not an http(s) URL",
                ));
            }
        }
        Ok(())
    }

    /// Whether the built-in alert `name` is on.
    pub fn builtin_on(&self, name: &str) -> bool {
        !self.disable_builtin.iter().any(|d| d == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> AlertsConfig {
        let v: toml::Value = toml::from_str(toml_text).unwrap();
        v.try_into().unwrap()
    }

    #[test]
    fn the_contract_example_parses_and_validates() {
        let cfg = parse(
            r#"
            interval = "15s"
            resend_interval = "1m"
            max_age = "1h"
            [[rules]]
            name = "CheckoutP99High"
            sql = "SELECT 1"
            for = "1m"
            severity = "critical"
            labels = { team = "payments" }
            annotations = { summary = "p99 of {{ service }} is {{ value }} ms" }
            [[receivers]]
            name = "oncall"
            kind = "alertmanager"
            url = "http://alertmanager:9093"
            match = { severity = "critical" }
            [[budgets]]
            scope = "provider"
            key = "aws"
            monthly = 5000.0
            "#,
        );
        cfg.validate().unwrap();
        assert_eq!(cfg.rules[0].for_, Duration::from_secs(60));
        assert_eq!(cfg.rules[0].severity, Severity::Critical);
        let mut labels = BTreeMap::from([("severity".to_string(), "critical".to_string())]);
        assert!(cfg.receivers[0].matches(&labels));
        labels.insert("severity".into(), "warning".into());
        assert!(!cfg.receivers[0].matches(&labels));
    }

    #[test]
    fn bad_settings_name_their_key_and_never_a_secret() {
        let mut cfg = parse(
            r#"
            [[receivers]]
            name = "pd"
            kind = "pagerduty"
            "#,
        );
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("alerts.receivers[0].routing_key"), "{e}");
        cfg.receivers[0].routing_key = Some(Secret::new("R0UT1NG"));
        cfg.receivers[0].url = Some(Secret::new("ftp://hooks.example/T0KEN"));
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("alerts.receivers[0].url") && !e.contains("T0KEN"),
            "{e}"
        );
        assert!(!format!("{cfg:?}").contains("R0UT1NG"));
        let cfg = parse("disable_builtin = [\"OpslakeNope\"]");
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("alerts.disable_builtin"));
        let cfg = parse("[[rules]]\nname = \"OpslakeAnomaly\"\nsql = \"SELECT 1\"");
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("alerts.rules[0].name"));
    }
}
