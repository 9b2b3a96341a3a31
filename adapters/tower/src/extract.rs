//! axum extractors: [`Authenticated`] and `Option<Authenticated>`.
//!
//! They read what [`M2mAuth`](crate::M2mAuth) left in the request extensions and never verify by
//! themselves: the layer is what authenticates. A handler that extracts [`Authenticated`] on a
//! route no [`M2mAuthLayer`](crate::M2mAuthLayer) covers answers 500 with a problem+json body
//! saying so (the core's `MiddlewareMissing` rejection), which a first test of the route
//! reveals.

use std::fmt;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use m2m_core::{Principal, Rejection, log_refusal};

m2m_core::caller_type!(
    /// The caller of an authenticated request; dereferences to its [`Principal`].
    ///
    /// As an axum extractor it reads the principal that [`M2mAuthLayer`](crate::M2mAuthLayer) put in
    /// the request extensions:
    ///
    /// - after an optional layer let a request without credentials through, it refuses the request
    ///   with the contract's 401 (rendered by the default responder);
    /// - with no layer in front of the route, it answers 500 (see [`AuthenticatedRejection`]).
    ///
    /// `Option<Authenticated>` is `None` for a request an optional layer let through without
    /// credentials, and still 500 when no layer ran.
    ///
    /// ```
    /// use m2m_tower::Authenticated;
    ///
    /// async fn whoami(Authenticated(principal): Authenticated) -> String {
    ///     principal.tenant().to_owned()
    /// }
    ///
    /// async fn greeting(caller: Option<Authenticated>) -> String {
    ///     match caller {
    ///         Some(caller) => format!("hello, {}", caller.tenant()),
    ///         None => "hello, stranger".to_owned(),
    ///     }
    /// }
    /// # let _ = axum::Router::<()>::new()
    /// #     .route("/v1/whoami", axum::routing::get(whoami))
    /// #     .route("/", axum::routing::get(greeting));
    /// ```
    Authenticated
);

/// Left in the extensions by an optional layer that let a request without credentials through.
#[derive(Clone)]
pub(crate) struct Unauthenticated(pub(crate) Rejection);

/// Why [`Authenticated`] could not be extracted: the core [`Rejection`], rendered as the
/// contract says.
///
/// - After an optional layer let a request without credentials through: the contract's 401.
/// - With no [`M2mAuthLayer`](crate::M2mAuthLayer) in front of the route:
///   [`RejectionKind::MiddlewareMissing`](m2m_core::RejectionKind::MiddlewareMissing), 500 with
///   a problem+json body, the same in every m2m adapter.
#[derive(Debug)]
pub struct AuthenticatedRejection(pub Rejection);

impl AuthenticatedRejection {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status()
    }

    /// The problem+json body.
    pub fn body(&self) -> String {
        self.0.body()
    }
}

impl fmt::Display for AuthenticatedRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for AuthenticatedRejection {}

impl IntoResponse for AuthenticatedRejection {
    /// The rejection's response; the refusal is logged here, once it is certain the request is
    /// refused.
    fn into_response(self) -> Response {
        log_refusal(&self.0);
        self.0.into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = AuthenticatedRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Self(principal.clone()));
        }
        Err(AuthenticatedRejection(
            match parts.extensions.get::<Unauthenticated>() {
                Some(Unauthenticated(rejection)) => rejection.clone(),
                None => Rejection::middleware_missing(),
            },
        ))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = AuthenticatedRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Some(Self(principal.clone())));
        }
        if parts.extensions.get::<Unauthenticated>().is_some() {
            return Ok(None);
        }
        Err(AuthenticatedRejection(Rejection::middleware_missing()))
    }
}
