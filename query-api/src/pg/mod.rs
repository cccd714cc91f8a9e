//! The PostgreSQL wire protocol (CONTRACT section 8): psql, Grafana's PostgreSQL datasource,
//! DBeaver, Metabase and any PostgreSQL driver query the lake through the same engine as HTTP.

mod auth;
mod encode;
mod rewrite;
mod session;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgwire::api::PgWireServerHandlers;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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

/// Answers PostgreSQL clients on `listener` until `shutdown` completes; at most
/// `max_connections` connections at once (more are closed at once, with a warning logged).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(state.config.max_connections.max(1)));
    let handlers = Arc::new(Handlers {
        session: Arc::new(PgSession::new(state.clone())),
        login: Arc::new(TokenLogin::new(state)),
    });
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
        // Small answers go out at once rather than after the client's delayed ACK.
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "failed to set TCP_NODELAY");
        }
        let handlers = Arc::clone(&handlers);
        let tls = tls.clone();
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                tracing::debug!(%peer, error = %e, "PostgreSQL connection ended with an error");
            }
            drop(permit);
        });
    }
}
