//! The [`M2mAuth`] middleware: verifies every request it wraps before the handler runs.
//!
//! The middleware only translates: it copies the two credential headers into the core's
//! [`Verifier`], stores the resulting [`Principal`] in the request extensions, and turns a
//! [`Rejection`] into an early response (the right side of an [`EitherBody`]) without calling the
//! wrapped service.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName};
use actix_web::{Error, HttpMessage, HttpResponse};
use m2m_core::{Principal, Rejection, RejectionKind, Verifier};

use crate::error::{Responder, rejection_response};
use crate::headers::credential_headers;

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Authenticates every request of the service it wraps (an `App`, a `web::scope` or a
/// `web::resource`), with the same options as the other m2m adapters.
///
/// On success the caller's [`Principal`] is in the request extensions, where the
/// [`Authenticated`](crate::Authenticated) extractor finds it. On failure the client receives
/// the core [`Rejection`] exactly (status, `WWW-Authenticate` or `Retry-After`,
/// `Cache-Control: no-store`, problem+json body), or what [`on_rejection`](Self::on_rejection)
/// returns.
///
/// Scopes required on an inner scope are checked by a second `M2mAuth` there; it verifies the
/// token again (a cache hit), so put [`strip_credentials`](Self::strip_credentials) on the
/// innermost one.
#[derive(Clone)]
#[must_use]
pub struct M2mAuth {
    verifier: Verifier,
    scopes: Arc<[Box<str>]>,
    optional: bool,
    cors_preflight: bool,
    strip_credentials: bool,
    responder: Option<Responder>,
}

impl M2mAuth {
    /// A middleware that verifies with `verifier`, requiring no scope, not optional, letting CORS
    /// preflights through and leaving the credential headers in place.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            scopes: Arc::from([]),
            optional: false,
            cors_preflight: true,
            strip_credentials: false,
            responder: None,
        }
    }

    /// Requires every one of `scopes` on each request (403 `insufficient_scope` otherwise).
    pub fn require_scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.scopes = scopes
            .into_iter()
            .map(|scope| scope.into().into_boxed_str())
            .collect();
        self
    }

    /// When `true`, a request with no credentials at all reaches the handler without a
    /// [`Principal`] (so `Option<Authenticated>` is `None`); any other failure is still refused.
    pub fn optional(mut self, optional: bool) -> Self {
        self.optional = optional;
        self
    }

    /// When `true` (the default), a CORS preflight (`OPTIONS` with
    /// `Access-Control-Request-Method`) passes through untouched.
    pub fn cors_preflight(mut self, pass_through: bool) -> Self {
        self.cors_preflight = pass_through;
        self
    }

    /// When `true`, `X-API-KEY` and `Authorization` are removed from an authenticated request
    /// before the handler sees it (default `false`).
    pub fn strip_credentials(mut self, strip: bool) -> Self {
        self.strip_credentials = strip;
        self
    }

    /// Answers rejections with `responder` instead of the core's response.
    pub fn on_rejection<F>(mut self, responder: F) -> Self
    where
        F: Fn(Rejection) -> HttpResponse + Send + Sync + 'static,
    {
        self.responder = Some(Arc::new(responder));
        self
    }

    fn respond(&self, rejection: Rejection) -> HttpResponse {
        match &self.responder {
            Some(responder) => responder(rejection),
            None => rejection_response(&rejection),
        }
    }
}

impl fmt::Debug for M2mAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("M2mAuth")
            .field("verifier", &self.verifier)
            .field("scopes", &self.scopes)
            .field("optional", &self.optional)
            .field("cors_preflight", &self.cors_preflight)
            .field("strip_credentials", &self.strip_credentials)
            .field("custom_responder", &self.responder.is_some())
            .finish()
    }
}

/// A request let through in optional mode without credentials: what an `Authenticated`
/// extractor on it answers.
#[derive(Clone)]
pub(crate) struct Unauthenticated {
    pub(crate) rejection: Rejection,
    pub(crate) responder: Option<Responder>,
}

impl<S, B> Transform<S, ServiceRequest> for M2mAuth
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = M2mAuthMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(M2mAuthMiddleware {
            service: Rc::new(service),
            auth: Rc::new(self.clone()),
        }))
    }
}

/// The service [`M2mAuth`] wraps around the inner service.
pub struct M2mAuthMiddleware<S> {
    service: Rc<S>,
    auth: Rc<M2mAuth>,
}

impl<S> fmt::Debug for M2mAuthMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("M2mAuthMiddleware")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// The response future of [`M2mAuthMiddleware`].
pub type ResponseFuture<B> =
    Pin<Box<dyn Future<Output = Result<ServiceResponse<EitherBody<B>>, Error>>>>;

fn is_cors_preflight(req: &ServiceRequest) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

impl<S, B> Service<ServiceRequest> for M2mAuthMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<B>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        if self.auth.cors_preflight && is_cors_preflight(&req) {
            let response = self.service.call(req);
            return Box::pin(
                async move { response.await.map(ServiceResponse::map_into_left_body) },
            );
        }
        let service = Rc::clone(&self.service);
        let auth = Rc::clone(&self.auth);
        let headers = credential_headers(req.headers());
        Box::pin(async move {
            let scopes: Vec<&str> = auth.scopes.iter().map(|scope| &**scope).collect();
            match auth.verifier.verify(&headers, &scopes).await {
                Ok(principal) => {
                    if auth.strip_credentials {
                        req.headers_mut().remove(X_API_KEY);
                        req.headers_mut().remove(header::AUTHORIZATION);
                    }
                    req.extensions_mut().insert::<Principal>(principal);
                }
                Err(rejection)
                    if auth.optional && rejection.kind() == RejectionKind::MissingCredentials =>
                {
                    req.extensions_mut().insert(Unauthenticated {
                        rejection,
                        responder: auth.responder.clone(),
                    });
                }
                Err(rejection) => {
                    let response = auth.respond(rejection);
                    return Ok(req.into_response(response).map_into_right_body());
                }
            }
            service
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        })
    }
}
