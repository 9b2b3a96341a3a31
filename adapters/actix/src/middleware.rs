//! The [`M2mAuth`] middleware: verifies every request it wraps before the handler runs.
//!
//! The middleware only translates: it hands the two credential headers to the core's
//! [`Verifier`], stores the resulting [`Principal`] in the request extensions, and turns a
//! [`Rejection`] into an early response (the right side of an [`EitherBody`]) without calling the
//! wrapped service.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName};
use actix_web::{Error, HttpMessage, HttpResponse};
use futures_util::future::LocalBoxFuture;
use m2m_core::{Principal, Rejection, RejectionKind, RequiredScopes, Verifier};
use pin_project_lite::pin_project;

use crate::error::{Responder, rejection_response};
use crate::headers::ActixHeaders;

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
    scopes: RequiredScopes,
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
            scopes: RequiredScopes::default(),
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
        self.scopes = RequiredScopes::new(scopes);
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

pin_project! {
    /// The response future of [`M2mAuthMiddleware`]: the wrapped service's future, polled in
    /// place, when the verifier's cache decided the request in `call`; the early rejection; or,
    /// when the store must answer, the boxed verification followed by the wrapped service.
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner {
            #[pin]
            future: F,
        },
        Rejected {
            response: Option<ServiceResponse<EitherBody<B>>>,
        },
        Verifying {
            future: LocalBoxFuture<'static, Result<ServiceResponse<EitherBody<B>>, Error>>,
        },
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Rejected { .. } => "rejected",
            Kind::Verifying { .. } => "verifying",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, B> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future
                .poll(cx)
                .map(|result| result.map(ServiceResponse::map_into_left_body)),
            KindProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after it completed"))),
            KindProj::Verifying { future } => future.as_mut().poll(cx),
        }
    }
}

fn is_cors_preflight(req: &ServiceRequest) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

impl M2mAuth {
    /// Applies a verification outcome to the request: the principal into the extensions (and
    /// the credential headers out, if asked), the pass of an optional middleware, or the
    /// rejection response.
    fn admit(
        &self,
        req: &mut ServiceRequest,
        outcome: Result<Principal, Rejection>,
    ) -> Result<(), HttpResponse> {
        match outcome {
            Ok(principal) => {
                if self.strip_credentials {
                    req.headers_mut().remove(X_API_KEY);
                    req.headers_mut().remove(header::AUTHORIZATION);
                }
                req.extensions_mut().insert::<Principal>(principal);
                Ok(())
            }
            Err(rejection)
                if self.optional && rejection.kind() == RejectionKind::MissingCredentials =>
            {
                req.extensions_mut().insert(Unauthenticated {
                    rejection,
                    responder: self.responder.clone(),
                });
                Ok(())
            }
            Err(rejection) => Err(self.respond(rejection)),
        }
    }
}

impl<S, B> Service<ServiceRequest> for M2mAuthMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        if self.auth.cors_preflight && is_cors_preflight(&req) {
            return ResponseFuture {
                kind: Kind::Inner {
                    future: self.service.call(req),
                },
            };
        }
        // A cached token is decided here, without a boxed future.
        let auth = &self.auth;
        let cached = auth.scopes.with(|scopes| {
            auth.verifier
                .verify_cached(&ActixHeaders(req.headers()), scopes)
        });
        if let Some(outcome) = cached {
            let kind = match auth.admit(&mut req, outcome) {
                Ok(()) => Kind::Inner {
                    future: self.service.call(req),
                },
                Err(response) => Kind::Rejected {
                    response: Some(req.into_response(response).map_into_right_body()),
                },
            };
            return ResponseFuture { kind };
        }
        let service = Rc::clone(&self.service);
        let auth = Rc::clone(&self.auth);
        let future = Box::pin(async move {
            let scopes: Vec<&str> = auth.scopes.iter().collect();
            let outcome = auth
                .verifier
                .verify(&ActixHeaders(req.headers()), &scopes)
                .await;
            if let Err(response) = auth.admit(&mut req, outcome) {
                return Ok(req.into_response(response).map_into_right_body());
            }
            service
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        });
        ResponseFuture {
            kind: Kind::Verifying { future },
        }
    }
}
