//! Layered configuration: defaults, then `--config FILE` (TOML), then `OPSLAKE_*` environment,
//! then flags. Unknown keys and wrong types stop start-up with the key that is wrong.

use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use opslake_ingest::IngestConfig;
use opslake_processor::alerts::AlertsConfig;
use opslake_processor::capacity::CapacityConfig;
use opslake_processor::report::config::ReportConfig;
use opslake_processor::slo::SloConfig;
use opslake_processor::ProcessorConfig;
use opslake_schemas::{ConfigError, Secret};
use serde::{Deserialize, Serialize};

/// Settings of the query engine and API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySection {
    /// Longest a query may run before it is answered 408.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Most rows a query returns; the answer says `truncated` when it had more.
    pub max_rows: usize,
    /// Memory pool shared by running queries, in bytes; a query that needs more fails cleanly.
    pub memory_limit: usize,
    /// Queries running at once; more wait in line up to `queue_timeout`, then get 429 with
    /// `Retry-After`.
    pub max_concurrent: usize,
    /// Longest wait in line for a turn to run.
    #[serde(with = "humantime_serde")]
    pub queue_timeout: Duration,
    /// Largest request body, in bytes; larger ones are answered 413.
    pub max_body_bytes: usize,
    /// Origins allowed to call the API from a browser (CORS), e.g. `["https://grafana.example.com"]`
    /// or `["*"]`; empty sends no CORS headers.
    pub cors_origins: Vec<String>,
    /// Memory for cached query results, bytes (0 turns the cache off).
    pub cache_bytes: usize,
    /// Open PostgreSQL connections at once; more are closed at once.
    pub max_connections: usize,
    /// Most bytes of rows one answer holds (as Arrow arrays), on every protocol; rows beyond
    /// are left out and the answer says it was truncated.
    pub max_result_bytes: usize,
}

impl Default for QuerySection {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_rows: 100_000,
            memory_limit: 2 << 30,
            max_concurrent: 8,
            queue_timeout: Duration::from_secs(5),
            max_body_bytes: 1 << 20,
            cors_origins: Vec::new(),
            cache_bytes: 256 << 20,
            max_connections: 100,
            max_result_bytes: opslake_query_api::engine::DEFAULT_MAX_RESULT_BYTES,
        }
    }
}

/// All of opslake's settings; secrets print as `<redacted>` (`Debug`, `opslake config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka bootstrap servers (`OPSLAKE_BROKERS`).
    pub brokers: String,
    /// The lake: a directory or `file://` URL (`OPSLAKE_LAKE`).
    pub lake: String,
    /// Keep every table's Delta Lake log (`_delta_log/`) beside opslake's own
    /// (`lake_delta`, `OPSLAKE_LAKE_DELTA`; CONTRACT section 11).
    pub lake_delta: bool,
    /// Address of the HTTP API (`OPSLAKE_LISTEN`).
    pub listen: String,
    /// Address of the PostgreSQL wire protocol in `run` and `serve` (`OPSLAKE_PG_LISTEN`,
    /// `--pg-listen`), e.g. `127.0.0.1:5433`; unset: off.
    pub pg_listen: Option<String>,
    /// PEM certificate chain for PostgreSQL connections over TLS (with `pg_tls_key`); unset:
    /// no TLS.
    pub pg_tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `pg_tls_cert`.
    pub pg_tls_key: Option<std::path::PathBuf>,
    /// Refuse PostgreSQL connections that do not use TLS (needs `pg_tls_cert`).
    pub pg_tls_required: bool,
    /// Address of Arrow Flight SQL in `run` and `serve` (`OPSLAKE_FLIGHT_LISTEN`,
    /// `--flight-listen`), e.g. `127.0.0.1:50051`; unset: off.
    pub flight_listen: Option<String>,
    /// PEM certificate chain for Flight SQL over TLS (with `flight_tls_key`); unset: no TLS.
    pub flight_tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `flight_tls_cert`.
    pub flight_tls_key: Option<std::path::PathBuf>,
    /// Bearer token the API asks for, except on `/healthz` and `/readyz` (`OPSLAKE_API_TOKEN`);
    /// never printed. Empty is a configuration error (unset it to have no token).
    pub api_token: Option<Secret>,
    /// Serve without a token on an address other than loopback (`listen`, `pg_listen`,
    /// `flight_listen`); without it, such a configuration stops start-up.
    pub allow_unauthenticated: bool,
    /// `text` or `json` logs.
    pub log_format: String,
    /// How long a shutdown may take to flush before the process exits anyway.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Ingest settings.
    pub ingest: IngestConfig,
    /// Query engine and API settings.
    pub query: QuerySection,
    /// Processor settings (rollup window, cycle interval, cost analytics).
    pub processor: ProcessorConfig,
    /// Scheduled forecast reports.
    pub reports: ReportConfig,
    /// Alert rules, receivers and cost budgets (`[alerts]`).
    pub alerts: AlertsConfig,
    /// Service level objectives (`[[slos]]`).
    pub slos: Vec<SloConfig>,
    /// Resource trends: memory leaks and capacity forecasts (`[capacity]`).
    pub capacity: CapacityConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            lake: "./lake".into(),
            lake_delta: true,
            listen: "127.0.0.1:8080".into(),
            pg_listen: None,
            pg_tls_cert: None,
            pg_tls_key: None,
            pg_tls_required: false,
            flight_listen: None,
            flight_tls_cert: None,
            flight_tls_key: None,
            api_token: None,
            allow_unauthenticated: false,
            log_format: "text".into(),
            shutdown_timeout: Duration::from_secs(30),
            ingest: IngestConfig::default(),
            query: QuerySection::default(),
            processor: ProcessorConfig::default(),
            reports: ReportConfig::default(),
            alerts: AlertsConfig::default(),
            slos: Vec::new(),
            capacity: CapacityConfig::default(),
        }
    }
}

/// Values given as flags; `None` leaves the layer below in force.
#[derive(Debug, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brokers: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lake: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flight_listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
}

/// Loads the configuration.
///
/// # Errors
/// Names the key and the problem when a layer holds an unknown key or a wrong value.
pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Config, ConfigError> {
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if let Some(f) = file {
        if !f.exists() {
            return Err(ConfigError::MissingFile(f.to_path_buf()));
        }
        fig = fig.merge(Toml::file(f));
    }
    fig = fig
        .merge(Env::prefixed("OPSLAKE_").split("__").ignore(&["config"]))
        .merge(Serialized::defaults(flags));
    let mut cfg: Config = fig.extract().map_err(|e| {
        ConfigError::Several(
            e.into_iter()
                .map(|err| {
                    let source = err
                        .metadata
                        .as_ref()
                        .map(|m| m.name.to_string())
                        .unwrap_or_default();
                    ConfigError::key(err.path.join("."), format!("({source}) {}", err.kind))
                })
                .collect(),
        )
    })?;
    if !matches!(cfg.log_format.as_str(), "text" | "json") {
        return Err(ConfigError::key(
            "log_format",
            format!("expected `text` or `json`, found `{}`", cfg.log_format),
        ));
    }
    cfg.listen
        .parse::<std::net::SocketAddr>()
        .map_err(|e| ConfigError::key("listen", format!("{e}: `{}`", cfg.listen)))?;
    for (key, addr) in [
        ("pg_listen", &cfg.pg_listen),
        ("flight_listen", &cfg.flight_listen),
    ] {
        if let Some(a) = addr {
            a.parse::<std::net::SocketAddr>()
                .map_err(|e| ConfigError::key(key, format!("{e}: `{a}`")))?;
        }
    }
    for (cert, key, c, k) in [
        (
            &cfg.pg_tls_cert,
            &cfg.pg_tls_key,
            "pg_tls_cert",
            "pg_tls_key",
        ),
        (
            &cfg.flight_tls_cert,
            &cfg.flight_tls_key,
            "flight_tls_cert",
            "flight_tls_key",
        ),
    ] {
        match (cert, key) {
            (Some(_), None) => return Err(ConfigError::key(k, format!("is needed with {c}"))),
            (None, Some(_)) => return Err(ConfigError::key(c, format!("is needed with {k}"))),
            _ => {}
        }
    }
    if cfg.pg_tls_required && cfg.pg_tls_cert.is_none() {
        return Err(ConfigError::key(
            "pg_tls_required",
            "needs pg_tls_cert and pg_tls_key",
        ));
    }
    check_auth(&cfg)?;
    if cfg.ingest.partitions < 1 {
        return Err(ConfigError::key("ingest.partitions", "must be at least 1"));
    }
    cfg.processor.capacity = cfg.capacity.clone();
    cfg.processor.validate()?;
    cfg.reports.validate()?;
    cfg.alerts.validate()?;
    opslake_processor::slo::config::validate(&cfg.slos)?;
    Ok(cfg)
}

/// An empty token is a mistake, not "no token"; a server reachable from other hosts without a
/// token must be asked for (`allow_unauthenticated`).
fn check_auth(cfg: &Config) -> Result<(), ConfigError> {
    if cfg
        .api_token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        return Err(ConfigError::key(
            "api_token",
            "is empty: set a token, or unset OPSLAKE_API_TOKEN to serve without one",
        ));
    }
    if cfg.api_token.is_some() || cfg.allow_unauthenticated {
        return Ok(());
    }
    for (key, addr) in [
        ("listen", Some(&cfg.listen)),
        ("pg_listen", cfg.pg_listen.as_ref()),
        ("flight_listen", cfg.flight_listen.as_ref()),
    ] {
        let Some(addr) = addr else { continue };
        let loopback = addr
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback());
        if !loopback {
            return Err(ConfigError::key(
                key,
                format!(
                    "`{addr}` is reachable from other hosts and no api_token is set: set \
                     OPSLAKE_API_TOKEN, or allow_unauthenticated = true to serve it to anyone"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server reachable from other hosts needs a token, or the explicit setting; an empty
    /// token stops start-up.
    #[test]
    fn serving_other_hosts_needs_a_token() {
        let dir = std::env::temp_dir().join(format!("opslake-cfg-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        let load_toml = |toml: &str| {
            std::fs::write(&f, toml).unwrap();
            load(Some(&f), &FlagOverrides::default())
        };
        let e = load_toml("listen = \"0.0.0.0:8080\"\n").unwrap_err();
        assert!(e.to_string().contains("`listen`"), "{e}");
        let e = load_toml("pg_listen = \"[::]:5433\"\n").unwrap_err();
        assert!(e.to_string().contains("pg_listen"), "{e}");
        load_toml("listen = \"0.0.0.0:8080\"\nallow_unauthenticated = true\n").unwrap();
        load_toml("listen = \"0.0.0.0:8080\"\napi_token = \"t0ken\"\n").unwrap();
        load_toml("listen = \"127.0.0.1:8080\"\npg_listen = \"[::1]:5433\"\n").unwrap();
        let e = load_toml("api_token = \"\"\n").unwrap_err();
        assert!(e.to_string().contains("api_token"), "{e}");
        assert!(!e.to_string().contains("t0ken"));
        let e = load_toml("pg_tls_required = true\n").unwrap_err();
        assert!(e.to_string().contains("pg_tls_required"), "{e}");
        let e = load_toml("flight_tls_cert = \"/c.pem\"\n").unwrap_err();
        assert!(e.to_string().contains("flight_tls_key"), "{e}");
    }

    #[test]
    fn unknown_key_names_the_key() {
        let dir = std::env::temp_dir().join(format!("opslake-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, "[ingest]\nflush_rowz = 5\n").unwrap();
        let e = load(Some(&f), &FlagOverrides::default()).unwrap_err();
        assert!(e.to_string().contains("flush_rowz"), "{e}");
        std::fs::write(&f, "[ingest]\nflush_interval = \"soon\"\n").unwrap();
        let e = load(Some(&f), &FlagOverrides::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("invalid configuration key `ingest.flush_interval`"),
            "{e}"
        );
        std::fs::write(
            &f,
            "lake = \"/tmp/x\"\n[ingest]\nflush_interval = \"500ms\"\n",
        )
        .unwrap();
        let c = load(
            Some(&f),
            &FlagOverrides {
                lake: Some("/tmp/y".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.lake, "/tmp/y");
        assert_eq!(c.ingest.flush_interval, Duration::from_millis(500));
    }

    /// Which way each metric's moves are bad, from the file; a direction that is not one
    /// stops start-up naming the key.
    #[test]
    fn metric_directions_are_read_from_the_file() {
        use opslake_processor::detect::direction::Direction;
        let dir = std::env::temp_dir().join(format!("opslake-cfg-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "[processor.detect.directions]\n\"jobs.completed\" = \"down\"\n\"queue.*\" = \"up\"\n",
        )
        .unwrap();
        let c = load(Some(&f), &FlagOverrides::default()).unwrap();
        let d = &c.processor.detect.directions;
        assert_eq!(d.of("jobs.completed"), Direction::Down);
        assert_eq!(d.of("queue.depth"), Direction::Up);
        assert_eq!(d.of("cpu.utilization"), Direction::Both);
        std::fs::write(&f, "[processor.detect.directions]\nx = \"sideways\"\n").unwrap();
        let e = load(Some(&f), &FlagOverrides::default()).unwrap_err();
        assert!(e.to_string().contains("processor.detect.directions"), "{e}");
    }

    /// The contract's alerting example loads; a receiver's URL never prints; a bad SLO stops
    /// start-up naming its key.
    #[test]
    fn alerts_and_slos_are_read_from_the_file() {
        let dir = std::env::temp_dir().join(format!("opslake-cfg-alerts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        let example = r#"
[alerts]
interval = "15s"
resend_interval = "1m"
max_age = "1h"

[[alerts.rules]]
name = "CheckoutP99High"
sql = """SELECT service, quantile_merge(sketch, 0.99) AS value FROM metric_rollups_1m
         WHERE name = 'http.server.duration' AND window_start >= now() - INTERVAL '5 minutes'
         GROUP BY service HAVING quantile_merge(sketch, 0.99) > 500"""
for = "1m"
severity = "critical"
labels = { team = "payments" }
annotations = { summary = "p99 of {{ service }} is {{ value }} ms" }

[[alerts.receivers]]
name = "oncall"
kind = "slack"
url = "https://hooks.slack.example/services/T0P/SECRET"
match = { severity = "critical" }

[[alerts.budgets]]
scope = "provider"
key = "aws"
monthly = 5000.0

[[slos]]
name = "checkout-latency"
kind = "latency"
service = "checkout"
metric = "http.server.duration"
filter = { endpoint = "/api/pay" }
threshold = 300.0
objective = 0.999
period = "30d"
"#;
        std::fs::write(&f, example).unwrap();
        let c = load(Some(&f), &FlagOverrides::default()).unwrap();
        assert_eq!(c.alerts.rules[0].for_, Duration::from_secs(60));
        assert_eq!(c.slos[0].period, Duration::from_secs(30 * 86_400));
        assert!(!format!("{c:?}").contains("SECRET"));
        assert!(!toml::to_string(&c).unwrap().contains("SECRET"));
        std::fs::write(&f, example.replace("objective = 0.999", "objective = 99.9")).unwrap();
        let e = load(Some(&f), &FlagOverrides::default()).unwrap_err();
        assert!(e.to_string().contains("slos[0].objective"), "{e}");
    }
}
