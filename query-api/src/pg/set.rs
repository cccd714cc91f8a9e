//! `SET` in a PostgreSQL session: what it may change, and only for that session.
//!
//! Every connection shares the engine's DataFusion session, so a `SET datafusion.*` run on it
//! would change what every other client (HTTP, Flight SQL, alert rules, SLOs) runs with. The
//! settings clients send on connect (`search_path`, `application_name`, `client_encoding`,
//! `DateStyle`, `extra_float_digits`, `TimeZone`, ...) are kept in the connection's own
//! metadata, where the session's answers read them; anything else is refused with SQLSTATE
//! 25006, as a read-only server refuses writes, and the session stays usable.

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr, Set, Statement};
use datafusion_postgres::hooks::{HookClient, QueryHook};
use pgwire::api::results::{Response, Tag};
use pgwire::api::ClientInfo;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::PgWireBackendMessage;

/// Session settings datafusion-postgres keeps in the connection's metadata itself (it parses
/// `statement_timeout`): passed on to its hook.
const PASSED_ON: &[&str] = &["statement_timeout"];

/// Session settings kept in the connection's metadata by this hook; the ones clients read back
/// are reported to the client with a `ParameterStatus`, under PostgreSQL's own spelling.
const SESSION_SETTINGS: &[(&str, Option<&str>)] = &[
    ("search_path", Some("search_path")),
    ("application_name", Some("application_name")),
    ("client_encoding", Some("client_encoding")),
    ("datestyle", Some("DateStyle")),
    ("intervalstyle", Some("IntervalStyle")),
    ("extra_float_digits", Some("extra_float_digits")),
    ("bytea_output", Some("bytea_output")),
    (
        "standard_conforming_strings",
        Some("standard_conforming_strings"),
    ),
    ("client_min_messages", None),
    ("lc_messages", None),
    ("lc_monetary", None),
    ("lc_numeric", None),
    ("lc_time", None),
    ("jit", None),
    ("idle_in_transaction_session_timeout", None),
    ("lock_timeout", None),
    ("default_transaction_read_only", None),
    ("geqo", None),
    ("timezone", Some("TimeZone")),
];

/// datafusion-postgres's metadata key of the session's time zone.
const TIMEZONE_KEY: &str = "timezone";

/// What to do with a `SET`.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Keep `value` under `key` in the session, and report it as `reported` when set.
    Keep {
        key: String,
        value: String,
        reported: Option<&'static str>,
    },
    /// A session statement with nothing to keep (transaction characteristics, `SET NAMES`).
    Accept,
    /// datafusion-postgres's own hook answers it (session metadata only).
    PassOn,
    /// Refused: it would change the shared engine.
    Refuse(String),
}

fn text(e: &Expr) -> String {
    let t = e.to_string();
    t.trim_matches('\'').trim_matches('"').to_string()
}

fn judge(set: &Set) -> Verdict {
    match set {
        Set::SingleAssignment {
            variable, values, ..
        } => {
            let var = variable.to_string().to_lowercase();
            if PASSED_ON.contains(&var.as_str()) {
                return Verdict::PassOn;
            }
            match SESSION_SETTINGS.iter().find(|(k, _)| *k == var) {
                Some((key, reported)) => Verdict::Keep {
                    key: (*key).to_string(),
                    value: values.iter().map(text).collect::<Vec<_>>().join(", "),
                    reported: *reported,
                },
                None => Verdict::Refuse(var),
            }
        }
        Set::SetTimeZone { value, .. } => Verdict::Keep {
            key: TIMEZONE_KEY.to_string(),
            value: text(value),
            reported: Some("TimeZone"),
        },
        Set::SetTransaction { .. } | Set::SetNames { .. } | Set::SetNamesDefault {} => {
            Verdict::Accept
        }
        other => Verdict::Refuse(other.to_string()),
    }
}

fn refused(what: &str) -> PgWireError {
    super::error_response(
        "25006",
        format!(
            "SET {what} is refused: the engine's settings are the server's; a session may set \
             search_path, application_name, client_encoding, DateStyle, extra_float_digits, \
             TimeZone and the like, for itself only"
        ),
    )
}

/// Answers `SET` statements before any other hook: keeps session settings in the connection,
/// refuses the rest, and passes `statement_timeout` on to datafusion-postgres's hook.
pub(crate) struct SessionSetHook;

impl SessionSetHook {
    async fn answer(
        statement: &Statement,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let Statement::Set(set) = statement else {
            return None;
        };
        match judge(set) {
            Verdict::PassOn => None,
            Verdict::Accept => Some(Ok(Response::Execution(Tag::new("SET")))),
            Verdict::Refuse(what) => Some(Err(refused(&what))),
            Verdict::Keep {
                key,
                value,
                reported,
            } => {
                client.metadata_mut().insert(key, value.clone());
                if let Some(name) = reported {
                    let status = ParameterStatus::new(name.to_string(), value);
                    if let Err(e) = client
                        .send_message(PgWireBackendMessage::ParameterStatus(status))
                        .await
                    {
                        return Some(Err(e));
                    }
                }
                Some(Ok(Response::Execution(Tag::new("SET"))))
            }
        }
    }
}

#[async_trait]
impl QueryHook for SessionSetHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::answer(statement, client).await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        // Refused at once; the others are planned by datafusion-postgres's hook (an empty
        // plan) and answered by `handle_extended_query`.
        match statement {
            Statement::Set(set) => match judge(set) {
                Verdict::Refuse(what) => Some(Err(refused(&what))),
                _ => None,
            },
            _ => None,
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::answer(statement, client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn verdict(sql: &str) -> Verdict {
        let s = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_statement()
            .unwrap();
        let Statement::Set(set) = s else {
            panic!("not a SET: {sql}")
        };
        judge(&set)
    }

    #[test]
    fn engine_settings_are_refused_and_session_settings_kept() {
        for sql in [
            "SET datafusion.execution.batch_size = 1",
            "SET datafusion.catalog.information_schema = false",
            "SET datafusion.runtime.memory_limit = '1G'",
            "SET ROLE admin",
            "SET SESSION AUTHORIZATION postgres",
            "SET work_mem = '1GB'",
        ] {
            assert!(matches!(verdict(sql), Verdict::Refuse(_)), "{sql}");
        }
        assert_eq!(
            verdict("SET search_path = public, \"$user\""),
            Verdict::Keep {
                key: "search_path".into(),
                value: "public, $user".into(),
                reported: Some("search_path")
            }
        );
        assert_eq!(
            verdict("SET TIME ZONE 'Europe/Paris'"),
            Verdict::Keep {
                key: TIMEZONE_KEY.into(),
                value: "Europe/Paris".into(),
                reported: Some("TimeZone")
            }
        );
        assert!(matches!(
            verdict("SET extra_float_digits = 3"),
            Verdict::Keep { .. }
        ));
        assert!(matches!(
            verdict("SET application_name = 'PostgreSQL JDBC Driver'"),
            Verdict::Keep { .. }
        ));
        assert!(matches!(
            verdict("SET DateStyle = 'ISO'"),
            Verdict::Keep { .. }
        ));
        assert!(matches!(
            verdict("SET client_encoding TO 'UTF8'"),
            Verdict::Keep { .. }
        ));
        assert_eq!(verdict("SET statement_timeout = '5s'"), Verdict::PassOn);
        assert_eq!(
            verdict("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED"),
            Verdict::Accept
        );
    }
}
