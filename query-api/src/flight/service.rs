//! The Flight SQL service: statements, prepared statements and the catalog, answered by the
//! engine under the same read-only rule, limits, cache and turns as HTTP.

use std::pin::Pin;
use std::sync::LazyLock;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt,
    SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::logical_expr::LogicalPlan;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::handle::Prepared;
use crate::engine::error::{from_datafusion, QueryError};
use crate::engine::result::{QueryResult, TRUNCATED_HEADER};
use crate::query_metrics::Protocol;
use crate::state::AppState;

/// The catalog and schema every table is in.
const CATALOG: &str = "datafusion";
const SCHEMA: &str = "public";

static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "opslake");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0_i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.build().expect("the server's SQL info builds")
});

/// The Flight SQL front end.
#[derive(Clone)]
pub(crate) struct OpslakeFlightSql {
    state: AppState,
}

impl OpslakeFlightSql {
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Refuses a call without the token (when one is set).
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::http::bearer_token)
            .unwrap_or("");
        if self.state.token_matches(given) {
            Ok(())
        } else {
            Err(Status::unauthenticated("missing or wrong bearer token"))
        }
    }

    async fn plan(&self, sql: &str) -> Result<LogicalPlan, Status> {
        self.state.engine.plan_sql(sql).await.map_err(status)
    }

    async fn run(&self, prepared: Prepared) -> Result<QueryResult, Status> {
        let engine = &self.state.engine;
        let run = async {
            let mut plan = engine.plan_sql(&prepared.sql).await?;
            if let Some(values) = prepared.param_values()? {
                plan = plan.with_param_values(values).map_err(from_datafusion)?;
            }
            engine.run(plan).await
        };
        self.state
            .answer(Protocol::FlightSql, run)
            .await
            .map_err(status)
    }
}

/// An engine error as a gRPC status: the one place Flight SQL decides their codes.
fn status(e: QueryError) -> Status {
    match e {
        QueryError::Refused(_) | QueryError::Invalid(_) => Status::invalid_argument(e.to_string()),
        QueryError::TooLarge(_) => Status::out_of_range(e.to_string()),
        QueryError::Timeout(_) => Status::deadline_exceeded(e.to_string()),
        QueryError::Busy => Status::resource_exhausted(e.to_string()),
        QueryError::Internal(inner) => {
            tracing::error!(error = ?inner, "internal error answering a Flight SQL client");
            Status::internal("internal error")
        }
    }
}

fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

/// A flight of one endpoint whose ticket is `ticket`, describing `schema`.
fn flight_info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// The flight of a catalog command (`GetTables`, ...): its ticket is the command itself.
fn describe(
    schema: &Schema,
    command: &impl ProstMessageExt,
    request: Request<FlightDescriptor>,
) -> Result<Response<FlightInfo>, Status> {
    flight_info(
        schema,
        command.as_any().encode_to_vec(),
        request.into_inner(),
    )
}

type DataStream = <OpslakeFlightSql as FlightService>::DoGetStream;

/// Streams the one batch a catalog command's builder made.
fn one_batch<E: std::fmt::Display>(
    schema: SchemaRef,
    batch: Result<RecordBatch, E>,
) -> Result<Response<DataStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    Ok(stream(schema, vec![batch]))
}

/// Streams an answer as Flight data. An answer cut short by a limit says so twice: in the
/// `app_metadata` of its first message (`truncated: rows=N`) and in the response header
/// `x-opslake-truncated`.
fn answer(result: QueryResult) -> Response<DataStream> {
    let mut encoder = FlightDataEncoderBuilder::new().with_schema(result.schema);
    if let Some(t) = result.truncation {
        encoder = encoder.with_metadata(format!("truncated: {}", t.label()).into());
    }
    let data = encoder
        .build(futures::stream::iter(result.batches.into_iter().map(Ok)))
        .map_err(Status::from);
    let mut response = Response::new(Box::pin(data) as DataStream);
    if let Some(t) = result.truncation {
        if let Ok(v) = t.label().parse() {
            response.metadata_mut().insert(TRUNCATED_HEADER, v);
        }
    }
    response
}

/// Streams batches as Flight data.
fn stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> Response<DataStream> {
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::iter(batches.into_iter().map(Ok)))
        .map_err(Status::from);
    Response::new(Box::pin(data))
}

/// Most bytes of parameters a prepared statement is bound with (they are one row).
const MAX_PARAMETER_BYTES: usize = 1 << 20;

/// The parameters a prepared statement takes: `$1`, `$2`, ... typed as the plan infers them.
fn parameter_schema(plan: &LogicalPlan) -> Result<Schema, Status> {
    let types = plan
        .get_parameter_types()
        .map_err(|e| status(from_datafusion(e)))?;
    let mut ids: Vec<(usize, String, Option<DataType>)> = types
        .into_iter()
        .filter_map(|(id, t)| Some((id.strip_prefix('$')?.parse().ok()?, id, t)))
        .collect();
    ids.sort_by_key(|(n, ..)| *n);
    Ok(Schema::new(
        ids.into_iter()
            .map(|(_, id, t)| Field::new(id, t.unwrap_or(DataType::Utf8), true))
            .collect::<Vec<_>>(),
    ))
}

#[tonic::async_trait]
impl FlightSqlService for OpslakeFlightSql {
    type FlightService = Self;

    /// Basic authentication with the token as password (any user name) answers the token as
    /// the bearer token of the following calls.
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        use base64::Engine as _;
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let basic = header
            .trim_start()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .map(|(_, b)| b.trim());
        let password = if let Some(b) = basic {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|_| Status::invalid_argument("authorization is not base64"))?;
            let text = String::from_utf8(decoded)
                .map_err(|_| Status::invalid_argument("authorization is not UTF-8"))?;
            text.split_once(':')
                .map(|(_, p)| p.to_string())
                .unwrap_or_default()
        } else {
            crate::http::bearer_token(header).unwrap_or("").to_string()
        };
        if !self.state.token_matches(&password) {
            return Err(Status::unauthenticated("wrong token"));
        }
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: password.clone().into(),
        };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        if !password.is_empty() {
            let value = format!("Bearer {password}")
                .parse()
                .map_err(|_| Status::invalid_argument("the token is not a header value"))?;
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let plan = self.plan(&query.query).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        flight_info(
            plan.schema().as_arrow(),
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        self.authorize(&request)?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("the ticket is not a statement of opslake"))?;
        let result = self
            .run(Prepared {
                sql,
                parameters: None,
            })
            .await?;
        Ok(answer(result))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        self.authorize(&request)?;
        let plan = self.plan(&query.query).await?;
        let handle = Prepared {
            sql: query.query,
            parameters: None,
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.encode().map_err(status)?,
            dataset_schema: schema_bytes(plan.schema().as_arrow())?,
            parameter_schema: schema_bytes(&parameter_schema(&plan)?)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.authorize(&request)?;
        let mut prepared = Prepared::decode(&query.prepared_statement_handle).map_err(status)?;
        let mut batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
            request
                .into_inner()
                .map_err(arrow_flight::error::FlightError::from),
        );
        // Parameters are one row: the last batch binds, and all of them together are bounded.
        let mut bytes = 0usize;
        let mut last = None;
        while let Some(batch) = batches
            .try_next()
            .await
            .map_err(|e| Status::invalid_argument(format!("parameters do not decode: {e}")))?
        {
            bytes += batch.get_array_memory_size();
            if bytes > MAX_PARAMETER_BYTES {
                return Err(Status::invalid_argument(format!(
                    "parameters of more than {MAX_PARAMETER_BYTES} bytes; a prepared statement binds one row"
                )));
            }
            last = Some(batch);
        }
        prepared.parameters = last;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(prepared.encode().map_err(status)?),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let prepared = Prepared::decode(&query.prepared_statement_handle).map_err(status)?;
        let plan = self.plan(&prepared.sql).await?;
        flight_info(
            plan.schema().as_arrow(),
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        self.authorize(&request)?;
        let prepared = Prepared::decode(&query.prepared_statement_handle).map_err(status)?;
        let result = self.run(prepared).await?;
        Ok(answer(result))
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        // Handles hold everything; nothing is kept to release.
        self.authorize(&request)
    }

    async fn do_put_statement_update(
        &self,
        _query: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.authorize(&request)?;
        Err(status(QueryError::Refused("updates".into())))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = query.into_builder().schema();
        describe(&schema, &query, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        self.authorize(&request)?;
        let mut b = query.into_builder();
        b.append(CATALOG);
        one_batch(b.schema(), b.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = query.clone().into_builder().schema();
        describe(&schema, &query, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        self.authorize(&request)?;
        let mut b = query.into_builder();
        b.append(CATALOG, SCHEMA);
        one_batch(b.schema(), b.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = query.clone().into_builder().schema();
        describe(&schema, &query, request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        self.authorize(&request)?;
        let tables = self.state.engine.tables().await.map_err(status)?;
        let mut b = query.into_builder();
        for (name, schema) in tables {
            b.append(CATALOG, SCHEMA, name, "TABLE", &schema)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        one_batch(b.schema(), b.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = query.into_builder().schema();
        describe(&schema, &query, request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        self.authorize(&request)?;
        let mut b = query.into_builder();
        b.append("TABLE");
        one_batch(b.schema(), b.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = query.clone().into_builder(&SQL_INFO).schema();
        describe(&schema, &query, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        self.authorize(&request)?;
        let b = query.into_builder(&SQL_INFO);
        one_batch(b.schema(), b.build())
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DataStream>, Status> {
        self.authorize(&request)?;
        Err(Status::unimplemented(format!(
            "opslake does not answer {}",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
