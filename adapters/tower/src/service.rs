//! [`M2mAuth`]: the service that authenticates each request before its inner service sees it.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{Extensions, HeaderMap, Request, Response};
use m2m_core::Decision;
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
        // A cached token (or a request needing no token) is decided here, without a future or
        // an allocation.
        if let Some(decision) = self.settings.admission.decide_cached(&request) {
            let mut request = request;
            return match apply(&self.settings, decision, &mut request) {
                Ok(()) => ResponseFuture::inner(self.inner.call(request)),
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

/// What a decision is applied to: the request itself (no moves on the hot path), or its parts
/// across a wait.
trait Head {
    fn headers_mut(&mut self) -> &mut HeaderMap;
    fn extensions_mut(&mut self) -> &mut Extensions;
}

impl<B> Head for Request<B> {
    fn headers_mut(&mut self) -> &mut HeaderMap {
        Request::headers_mut(self)
    }

    fn extensions_mut(&mut self) -> &mut Extensions {
        Request::extensions_mut(self)
    }
}

impl Head for Parts {
    fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }
}

/// Translates the core's decision: the principal into the extensions and the headers to strip
/// out, the pass of a request without credentials or of a preflight, or the rejection response.
fn apply<R, ResBody>(
    settings: &Settings<R>,
    decision: Decision,
    head: &mut impl Head,
) -> Result<(), Response<ResBody>>
where
    R: OnRejection<ResBody>,
{
    match decision {
        Decision::Admit(admitted) => {
            for placement in admitted.headers_to_strip() {
                head.headers_mut().remove(placement.header_name());
            }
            head.extensions_mut().insert(admitted.into_principal());
            Ok(())
        }
        Decision::Anonymous(rejection) => {
            head.extensions_mut().insert(Unauthenticated(rejection));
            Ok(())
        }
        Decision::Preflight => Ok(()),
        Decision::Refuse(rejection) => Err(settings.on_rejection.on_rejection(rejection)),
    }
}

/// Decides about the request when the store must answer, then either hands it to `inner`
/// (returning the inner future, which the [`ResponseFuture`] polls without a box) or renders
/// the rejection.
async fn authenticate<S, R, ReqBody, ResBody>(
    settings: Arc<Settings<R>>,
    mut inner: S,
    request: Request<ReqBody>,
) -> Result<S::Future, Result<Response<ResBody>, S::Error>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: OnRejection<ResBody>,
{
    // The parts, not the request, are borrowed across the wait: bodies need not be `Sync`.
    let (mut parts, body) = request.into_parts();
    let decision = settings.admission.decide(&parts).await;
    match apply(&settings, decision, &mut parts) {
        Ok(()) => Ok(inner.call(Request::from_parts(parts, body))),
        Err(response) => Err(Ok(response)),
    }
}
