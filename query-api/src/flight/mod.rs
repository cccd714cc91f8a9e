//! Arrow Flight SQL (CONTRACT section 8): ADBC and JDBC clients read results as Arrow record
//! batches, through the same engine as HTTP and PostgreSQL.

mod handle;
mod service;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;

use crate::state::AppState;
use service::OpslakeFlightSql;

/// Largest message a client may send or receive, bytes (a batch of a large result).
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Answers Flight SQL clients on `listener` until `shutdown` completes.
///
/// # Errors
/// When the gRPC server fails.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let service = FlightServiceServer::new(OpslakeFlightSql::new(state))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY, a small answer waits for the client's delayed ACK: 40 ms a
            // query with ADBC, whose statement is four calls.
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
