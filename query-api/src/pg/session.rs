//! A PostgreSQL session: datafusion-postgres parses (its PostgreSQL compatibility rewrites),
//! answers `SET`, `SHOW` and transaction statements, and provides `pg_catalog`; every query runs
//! through opslake's engine, with the same read-only rule, limits, cache and turns as HTTP.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::{DfSessionService, Parser};
use futures::Sink;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;

use super::encode;
use crate::engine::error::{from_datafusion, QueryError};
use crate::query_metrics::Protocol;
use crate::state::AppState;

/// A parsed statement: its text, and the statement and plan when it holds one.
type PgStatement = (String, Option<(Statement, LogicalPlan)>);

/// The query handlers of every connection.
pub(crate) struct PgSession {
    df: DfSessionService,
    parser: Arc<ResultParser>,
    state: AppState,
}

impl PgSession {
    pub(crate) fn new(state: AppState) -> Self {
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            // First: `SET` changes this session only, never the shared engine.
            Arc::new(super::set::SessionSetHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
            Arc::new(EngineHook {
                state: state.clone(),
            }),
        ];
        let ctx = Arc::new(state.engine.context().clone());
        let df = DfSessionService::new_with_hooks(ctx, hooks);
        let parser = Arc::new(ResultParser {
            inner: df.query_parser(),
        });
        Self { df, parser, state }
    }
}

/// An engine error as a PostgreSQL error response (the one place PostgreSQL decides their
/// SQLSTATEs); the session stays usable.
pub(crate) fn pg_error(e: QueryError) -> PgWireError {
    let code = match &e {
        QueryError::Refused(_) => "25006",  // read_only_sql_transaction
        QueryError::Invalid(_) => "42000",  // syntax_error_or_access_rule_violation
        QueryError::TooLarge(_) => "54000", // program_limit_exceeded
        QueryError::Timeout(_) => "57014",  // query_canceled
        QueryError::Busy => "53300",        // too_many_connections
        QueryError::Internal(inner) => {
            tracing::error!(error = ?inner, "internal error answering a PostgreSQL client");
            "XX000"
        }
    };
    super::error_response(code, e.to_string())
}

/// Runs every statement no earlier hook answered through the engine.
struct EngineHook {
    state: AppState,
}

#[async_trait]
impl QueryHook for EngineHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let engine = &self.state.engine;
        let result = self
            .state
            .answer(Protocol::Postgres, async {
                engine.run(engine.plan(statement).await?).await
            })
            .await;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        if let Some(notice) = result.as_ref().ok().and_then(truncation_notice) {
            if let Err(e) = client.send_message(notice).await {
                return Some(Err(e));
            }
        }
        Some(
            result
                .map_err(pg_error)
                .and_then(|r| encode::response(r, &Format::UnifiedText, options))
                .map(Response::Query),
        )
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        Some(self.state.engine.plan(statement).await.map_err(pg_error))
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // `PgSession::do_query` runs queries itself: it knows the result format asked for.
        None
    }
}

#[async_trait]
impl SimpleQueryHandler for PgSession {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let query = super::rewrite::client_query(query);
        SimpleQueryHandler::do_query(&self.df, client, &query).await
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgSession {
    type Statement = PgStatement;
    type QueryParser = ResultParser;

    fn query_parser(&self) -> Arc<ResultParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some((statement, plan)) = portal.statement.statement.1.as_ref() else {
            return ExtendedQueryHandler::do_query(&self.df, client, portal, max_rows).await;
        };
        if crate::engine::guard::check_statement(statement).is_err() {
            // `SET`, `SHOW` and transactions, which the hooks answer.
            return ExtendedQueryHandler::do_query(&self.df, client, portal, max_rows).await;
        }
        let params = self.parameters(portal, plan)?;
        let plan = plan
            .clone()
            .replace_params_with_values(&params)
            .map_err(|e| pg_error(from_datafusion(e)))?;
        let engine = &self.state.engine;
        let result = self
            .state
            .answer(Protocol::Postgres, engine.run(plan))
            .await
            .map_err(pg_error)?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        if let Some(notice) = truncation_notice(&result) {
            use futures::SinkExt;
            client.send(notice).await?;
        }
        encode::response(result, &portal.result_column_format, options).map(Response::Query)
    }
}

/// A `WARNING` notice (SQLSTATE 01000) saying that the answer was cut short, and by which
/// limit: psql prints it, drivers hand it to the application.
fn truncation_notice(result: &crate::engine::QueryResult) -> Option<PgWireBackendMessage> {
    let t = result.truncation?;
    let info = ErrorInfo::new(
        "WARNING".to_owned(),
        "01000".to_owned(),
        format!("opslake: {} [{}]", t.message(), t.label()),
    );
    Some(PgWireBackendMessage::NoticeResponse(info.into()))
}

impl PgSession {
    /// The bound parameters of `portal`, typed as the plan infers them (`$1` first).
    fn parameters(
        &self,
        portal: &Portal<PgStatement>,
        plan: &LogicalPlan,
    ) -> PgWireResult<ParamValues> {
        let types = plan
            .get_parameter_types()
            .map_err(|e| pg_error(from_datafusion(e)))?;
        let mut ids: Vec<(usize, Option<DataType>)> = types
            .into_iter()
            .filter_map(|(id, t)| Some((id.strip_prefix('$')?.parse().ok()?, t)))
            .collect();
        ids.sort_by_key(|(n, _)| *n);
        let inferred: Vec<Option<&DataType>> = ids.iter().map(|(_, t)| t.as_ref()).collect();
        let wire = self
            .parser
            .get_parameter_types(&portal.statement.statement)?;
        let wire: Vec<Option<&Type>> = wire.iter().map(Some).collect();
        deserialize_parameters_with_server_types(portal, &inferred, &wire)
    }
}

/// datafusion-postgres's parser, describing results as [`encode`] sends them (maps as text).
pub(crate) struct ResultParser {
    inner: Arc<Parser>,
}

#[async_trait]
impl QueryParser for ResultParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let sql = super::rewrite::client_query(sql);
        self.inner.parse_sql(client, &sql, types).await
    }

    fn get_parameter_types(&self, statement: &PgStatement) -> PgWireResult<Vec<Type>> {
        self.inner.get_parameter_types(statement)
    }

    fn get_result_schema(
        &self,
        statement: &PgStatement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match statement {
            (_, Some((s, plan))) if crate::engine::guard::check_statement(s).is_ok() => {
                encode::fields(
                    plan.schema().as_arrow(),
                    format.unwrap_or(&Format::UnifiedText),
                    None,
                )
            }
            _ => self.inner.get_result_schema(statement, format),
        }
    }
}
