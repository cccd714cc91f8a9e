//! Logging in: with an API token set, the password is the token (any user name, any database);
//! without one, anyone may connect, as on the HTTP API.

use std::fmt::Debug;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    DefaultServerParameterProvider, LoginInfo, StartupHandler,
};
use pgwire::api::{
    ClientInfo, PgWireConnectionState, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use tokio::sync::oneshot;

use crate::state::AppState;

/// The startup of one connection: the token as a cleartext password (wrap the connection in
/// TLS where the network is not trusted; `pg_tls_required` refuses connections without it).
/// Tells the server when the login succeeded, so that a connection stops counting as one that
/// has not logged in.
pub(crate) struct TokenLogin {
    state: AppState,
    parameters: DefaultServerParameterProvider,
    keys: RandomPidSecretKeyGenerator,
    tls_required: bool,
    logged_in: Mutex<Option<oneshot::Sender<()>>>,
}

impl TokenLogin {
    pub(crate) fn new(state: AppState, tls_required: bool, logged_in: oneshot::Sender<()>) -> Self {
        let mut parameters = DefaultServerParameterProvider::default();
        // Every session is read-only; clients that look at this know before they try.
        parameters.default_transaction_read_only = true;
        parameters.server_version = crate::engine::pg_compat::SERVER_VERSION.to_string();
        Self {
            state,
            parameters,
            keys: RandomPidSecretKeyGenerator::default(),
            tls_required,
            logged_in: Mutex::new(Some(logged_in)),
        }
    }

    async fn accept<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (pid, key) = self.keys.generate(client);
        client.set_pid_and_secret_key(pid, key);
        finish_authentication(client, &self.parameters).await?;
        if let Some(tx) = self
            .logged_in
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            let _ = tx.send(());
        }
        Ok(())
    }
}

#[async_trait]
impl StartupHandler for TokenLogin {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                if self.tls_required && !client.is_secure() {
                    // PostgreSQL's answer when its pg_hba.conf asks for SSL (`hostssl`).
                    return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                        "FATAL".to_owned(),
                        "28000".to_owned(),
                        "this server takes TLS connections only (pg_tls_required); connect with sslmode=require".to_owned(),
                    ))));
                }
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.state.config.api_token.is_none() {
                    return self.accept(client).await;
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                if !self.state.token_matches(&password.password) {
                    let user = LoginInfo::from_client_info(client)
                        .user()
                        .map(str::to_owned)
                        .unwrap_or_default();
                    return Err(PgWireError::InvalidPassword(user));
                }
                self.accept(client).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
