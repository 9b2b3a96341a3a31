//! axum extractors: [`Authenticated`] and `Option<Authenticated>`.
//!
//! They read what [`M2mAuth`](crate::M2mAuth) left in the request extensions and never verify by
//! themselves: the layer is what authenticates. A handler that extracts [`Authenticated`] on a
//! route no [`M2mAuthLayer`](crate::M2mAuthLayer) covers answers 500 with a problem+json body
//! saying so ([`LayerMissing`]), which a first test of the route reveals.

use std::fmt;
use std::ops::Deref;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::request::Parts;
use m2m_core::{PROBLEM_JSON, Principal, Rejection};

/// The caller of an authenticated request; dereferences to its [`Principal`].
///
/// As an axum extractor it reads the principal that [`M2mAuthLayer`](crate::M2mAuthLayer) put in
/// the request extensions:
///
/// - after an optional layer let a request without credentials through, it refuses the request
///   with the contract's 401 (rendered by the default responder);
/// - with no layer in front of the route, it answers 500 ([`LayerMissing`]).
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated(pub Principal);

impl Deref for Authenticated {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl From<Authenticated> for Principal {
    fn from(authenticated: Authenticated) -> Self {
        authenticated.0
    }
}

/// Left in the extensions by an optional layer that let a request without credentials through.
#[derive(Clone)]
pub(crate) struct Unauthenticated(pub(crate) Rejection);

/// Why [`Authenticated`] could not be extracted.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthenticatedRejection {
    /// An optional layer let the request through without credentials: the contract's 401.
    Unauthenticated(Rejection),
    /// No [`M2mAuthLayer`](crate::M2mAuthLayer) ran for this request: 500.
    LayerMissing(LayerMissing),
}

impl AuthenticatedRejection {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(rejection) => rejection.status(),
            Self::LayerMissing(missing) => missing.status(),
        }
    }

    /// The problem+json body.
    pub fn body(&self) -> String {
        match self {
            Self::Unauthenticated(rejection) => rejection.body(),
            Self::LayerMissing(missing) => missing.body().to_owned(),
        }
    }
}

impl fmt::Display for AuthenticatedRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unauthenticated(rejection) => fmt::Display::fmt(rejection, f),
            Self::LayerMissing(missing) => fmt::Display::fmt(missing, f),
        }
    }
}

impl std::error::Error for AuthenticatedRejection {}

impl IntoResponse for AuthenticatedRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthenticated(rejection) => rejection.into_response(),
            Self::LayerMissing(missing) => missing.into_response(),
        }
    }
}

/// The route extracts [`Authenticated`] but no [`M2mAuthLayer`](crate::M2mAuthLayer) ran: a
/// mistake in the application's wiring, answered with 500 and a problem+json body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerMissing;

macro_rules! layer_missing_detail {
    () => {
        "the handler reads the authenticated caller, but no M2mAuthLayer authenticated this \
         request: add M2mAuthLayer with Router::layer or Router::route_layer"
    };
}

impl LayerMissing {
    /// 500 Internal Server Error.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The problem+json body.
    pub fn body(&self) -> &'static str {
        concat!(
            r#"{"type":"about:blank","title":"Internal Server Error","status":500,"detail":""#,
            layer_missing_detail!(),
            r#""}"#
        )
    }
}

impl fmt::Display for LayerMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(layer_missing_detail!())
    }
}

impl std::error::Error for LayerMissing {}

impl IntoResponse for LayerMissing {
    fn into_response(self) -> Response {
        let mut response = Response::new(self.body().into());
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = AuthenticatedRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Self(principal.clone()));
        }
        match parts.extensions.get::<Unauthenticated>() {
            Some(Unauthenticated(rejection)) => {
                Err(AuthenticatedRejection::Unauthenticated(rejection.clone()))
            }
            None => Err(AuthenticatedRejection::LayerMissing(LayerMissing)),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = LayerMissing;

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
        Err(LayerMissing)
    }
}
