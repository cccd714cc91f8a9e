//! The token, checked before a call's message is read: a gRPC service decodes its request
//! message before the handler runs, so without this gate anyone could make the server decode
//! messages of up to the size limit. `Handshake` passes (it carries the credentials), and so
//! does everything when no token is set; every other call without the token is answered
//! `UNAUTHENTICATED` from its headers alone. The handlers still check the token too.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};

use crate::state::AppState;

/// The path of Flight's handshake, which authenticates with basic credentials.
const HANDSHAKE: &str = "/arrow.flight.protocol.FlightService/Handshake";

/// Wraps a gRPC service in a [`TokenGate`].
#[derive(Clone)]
pub(crate) struct TokenGateLayer {
    pub(crate) state: AppState,
}

impl<S> Layer<S> for TokenGateLayer {
    type Service = TokenGate<S>;

    fn layer(&self, inner: S) -> TokenGate<S> {
        TokenGate {
            inner,
            state: self.state.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Clone)]
pub(crate) struct TokenGate<S> {
    inner: S,
    state: AppState,
}

/// Whether a request with these headers may be read.
fn admitted(state: &AppState, path: &str, authorization: Option<&str>) -> bool {
    if state.config.api_token.is_none() || path == HANDSHAKE {
        return true;
    }
    let given = authorization
        .and_then(crate::http::bearer_token)
        .unwrap_or("");
    state.token_matches(given)
}

impl<S, B> Service<axum::http::Request<B>> for TokenGate<S>
where
    S: Service<axum::http::Request<B>, Response = axum::http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let authorization = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if admitted(&self.state, req.uri().path(), authorization) {
            // The clone that was made ready serves this call; a fresh one waits for the next.
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            Box::pin(inner.call(req))
        } else {
            let answer =
                tonic::Status::unauthenticated("missing or wrong bearer token").into_http();
            Box::pin(async move { Ok(answer) })
        }
    }
}
