//! Arrow Flight SQL (CONTRACT section 8): ADBC and JDBC clients read results as Arrow record
//! batches, through the same engine as HTTP and PostgreSQL.

mod gate;
mod handle;
mod service;

use std::path::Path;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tonic::transport::{Identity, ServerTlsConfig};

use crate::state::AppState;
use gate::TokenGateLayer;
use service::OpslakeFlightSql;

/// Largest message the server sends, bytes (a batch of a large result).
const MAX_ENCODED_BYTES: usize = 64 << 20;
/// Largest message a client may send, bytes: commands, statements and one row of parameters.
const MAX_DECODED_BYTES: usize = 4 << 20;

/// Why the Flight SQL server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum FlightError {
    /// The TLS certificate or key file could not be read.
    #[error("failed to read the Flight SQL TLS file {path}")]
    ReadTls {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The gRPC server failed (TLS configuration included).
    #[error("the Flight SQL server failed")]
    Serve(#[from] tonic::transport::Error),
}

/// TLS for Flight SQL from a PEM certificate chain and private key.
///
/// # Errors
/// When a file cannot be read.
pub fn tls_config(cert: &Path, key: &Path) -> Result<ServerTlsConfig, FlightError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| FlightError::ReadTls {
            path: path.to_path_buf(),
            source,
        })
    };
    Ok(ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?)))
}

/// Answers Flight SQL clients on `listener` until `shutdown` completes, over TLS when `tls` is
/// given.
///
/// # Errors
/// When the TLS configuration is refused or the gRPC server fails.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), FlightError> {
    let service = FlightServiceServer::new(OpslakeFlightSql::new(state.clone()))
        .max_decoding_message_size(MAX_DECODED_BYTES)
        .max_encoding_message_size(MAX_ENCODED_BYTES);
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    server
        .layer(TokenGateLayer { state })
        .add_service(service)
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY, a small answer waits for the client's delayed ACK: 40 ms a
            // query with ADBC, whose statement is four calls.
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(FlightError::from)
}
