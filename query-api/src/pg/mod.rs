//! The PostgreSQL wire protocol (CONTRACT section 8): psql, Grafana's PostgreSQL datasource,
//! DBeaver, Metabase and any PostgreSQL driver query the lake through the same engine as HTTP.

mod auth;
mod encode;
mod rewrite;
mod session;
mod set;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pgwire::api::PgWireServerHandlers;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::state::AppState;
use auth::TokenLogin;
use session::PgSession;

/// Why the PostgreSQL server could not start.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The TLS certificate file could not be read.
    #[error("failed to read the TLS certificate {path}")]
    ReadCertificate {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// The TLS key file could not be read.
    #[error("failed to read the TLS private key {path}")]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate and key do not make a TLS configuration.
    #[error("the TLS certificate and key are not usable together")]
    Tls(#[source] rustls::Error),
}

/// TLS for PostgreSQL connections, from a PEM certificate chain and private key.
///
/// # Errors
/// When a file cannot be read or the pair is not usable.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, PgError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| PgError::ReadCertificate {
            path: cert.to_path_buf(),
            source,
        })?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| PgError::ReadKey {
        path: key.to_path_buf(),
        source,
    })?;
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(PgError::Tls)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(PgError::Tls)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// An `ERROR` response with SQLSTATE `code`; the session stays usable.
pub(crate) fn error_response(code: &str, message: String) -> pgwire::error::PgWireError {
    pgwire::error::PgWireError::UserError(Box::new(pgwire::error::ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message,
    )))
}

struct Handlers {
    session: Arc<PgSession>,
    login: Arc<TokenLogin>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        Arc::clone(&self.session)
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        Arc::clone(&self.session)
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::clone(&self.login)
    }
}

/// How the PostgreSQL server takes connections.
#[derive(Clone, Default)]
pub struct PgOptions {
    /// TLS, when configured.
    pub tls: Option<TlsAcceptor>,
    /// Refuse connections that did not negotiate TLS.
    pub tls_required: bool,
}

/// Connections that have not logged in yet, at most; more are closed at once.
const MAX_LOGGING_IN: usize = 16;
/// How long a connection may take to log in.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers PostgreSQL clients on `listener` until `shutdown` completes; at most
/// `max_connections` connections at once, of which at most [`MAX_LOGGING_IN`] not logged in
/// yet, each for at most [`LOGIN_TIMEOUT`] (more are closed at once, with a warning logged).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    options: PgOptions,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(state.config.max_connections.max(1)));
    let logging_in = Arc::new(Semaphore::new(MAX_LOGGING_IN));
    let session = Arc::new(PgSession::new(state.clone()));
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "failed to accept a PostgreSQL connection");
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::warn!(%peer, "PostgreSQL connection refused: max_connections reached");
            continue;
        };
        let Ok(login_slot) = Arc::clone(&logging_in).try_acquire_owned() else {
            tracing::warn!(%peer, "PostgreSQL connection refused: {MAX_LOGGING_IN} connections are logging in");
            continue;
        };
        // Small answers go out at once rather than after the client's delayed ACK.
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "failed to set TCP_NODELAY");
        }
        let (logged_in, login) = oneshot::channel();
        let handlers = Arc::new(Handlers {
            session: Arc::clone(&session),
            login: Arc::new(TokenLogin::new(
                state.clone(),
                options.tls_required,
                logged_in,
            )),
        });
        let tls = options.tls.clone();
        let mut connection = tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                tracing::debug!(%peer, error = %e, "PostgreSQL connection ended with an error");
            }
        });
        tokio::spawn(async move {
            // A connection that has not logged in within the timeout is closed; one that has
            // no longer counts against the connections logging in.
            tokio::select! {
                _ = &mut connection => {}
                r = tokio::time::timeout(LOGIN_TIMEOUT, login) => {
                    drop(login_slot);
                    if !matches!(r, Ok(Ok(()))) {
                        tracing::debug!(%peer, "PostgreSQL connection closed: no login in time");
                        connection.abort();
                    }
                    let _ = connection.await;
                }
            }
            drop(permit);
        });
    }
}
