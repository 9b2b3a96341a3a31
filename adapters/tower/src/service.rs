//! [`M2mAuth`]: the service that authenticates each request before its inner service sees it.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response, header::ACCESS_CONTROL_REQUEST_METHOD};
use m2m_core::RejectionKind;
use tower_service::Service;

use crate::extract::Unauthenticated;
use crate::future::ResponseFuture;
use crate::layer::{DefaultOnRejection, OnRejection, Settings};

/// Authenticates requests, then calls the inner service with the caller's
/// [`Principal`](m2m_core::Principal) in the request extensions.
///
/// Built by [`M2mAuthLayer`](crate::M2mAuthLayer). The response body type is the inner
/// service's: rejections are rendered into it through `From<String>` (the default responder) or
/// by the custom responder, so an axum `Router` keeps `axum::body::Body` and a bare service keeps
/// its own body (`String`, `Full<Bytes>`…).
pub struct M2mAuth<S, R = DefaultOnRejection> {
    inner: S,
    settings: Arc<Settings<R>>,
}

impl<S, R> M2mAuth<S, R> {
    pub(crate) fn from_settings(inner: S, settings: Arc<Settings<R>>) -> Self {
        Self { inner, settings }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, R> Clone for M2mAuth<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: Arc::clone(&self.settings),
        }
    }
}

impl<S: fmt::Debug, R> fmt::Debug for M2mAuth<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("M2mAuth")
            .field("inner", &self.inner)
            .field("settings", &self.settings)
            .finish()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for M2mAuth<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: OnRejection<ResBody> + Send + Sync + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if self.settings.cors_preflight && is_cors_preflight(&request) {
            return ResponseFuture::inner(self.inner.call(request));
        }
        // A cached token is decided here, without a future or an allocation.
        let settings = &self.settings;
        let cached = settings
            .scopes
            .with(|scopes| settings.verifier.verify_cached(request.headers(), scopes));
        if let Some(outcome) = cached {
            let (mut parts, body) = request.into_parts();
            return match admit(settings, &mut parts, outcome) {
                Ok(()) => ResponseFuture::inner(self.inner.call(Request::from_parts(parts, body))),
                Err(response) => ResponseFuture::rejected(response),
            };
        }
        // The store must answer. The service that was polled ready goes into the future; a
        // clone stays for the next request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let settings = Arc::clone(&self.settings);
        ResponseFuture::verifying(Box::pin(authenticate(settings, inner, request)))
    }
}

/// `OPTIONS` with `Access-Control-Request-Method`.
fn is_cors_preflight<B>(request: &Request<B>) -> bool {
    request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// Applies a verification outcome to the request: the principal into the extensions (and the
/// credential header out, if asked), the pass of an optional layer, or the rejection response.
fn admit<R, ResBody>(
    settings: &Settings<R>,
    parts: &mut http::request::Parts,
    outcome: Result<m2m_core::Principal, m2m_core::Rejection>,
) -> Result<(), Response<ResBody>>
where
    R: OnRejection<ResBody>,
{
    match outcome {
        Ok(principal) => {
            if settings.strip_credentials {
                let header = principal.token_type().placement().header_name();
                parts.headers.remove(header);
            }
            parts.extensions.insert(principal);
            Ok(())
        }
        Err(rejection)
            if settings.optional && rejection.kind() == RejectionKind::MissingCredentials =>
        {
            parts.extensions.insert(Unauthenticated(rejection));
            Ok(())
        }
        Err(rejection) => Err(settings.on_rejection.on_rejection(rejection)),
    }
}

/// Verifies the request when the store must answer, then either hands it to `inner` (returning
/// the inner future, which the [`ResponseFuture`] polls without a box) or renders the rejection.
async fn authenticate<S, R, ReqBody, ResBody>(
    settings: Arc<Settings<R>>,
    mut inner: S,
    request: Request<ReqBody>,
) -> Result<S::Future, Result<Response<ResBody>, S::Error>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: OnRejection<ResBody>,
{
    let (mut parts, body) = request.into_parts();
    let outcome = {
        // Off the hot path: a vector costs nothing next to the store's answer.
        let scopes: Vec<&str> = settings.scopes.iter().collect();
        settings.verifier.verify(&parts.headers, &scopes).await
    };
    match admit(&settings, &mut parts, outcome) {
        Ok(()) => Ok(inner.call(Request::from_parts(parts, body))),
        Err(response) => Err(Ok(response)),
    }
}
