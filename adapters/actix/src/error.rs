//! Rejections as actix responses: the core [`Rejection`] rendered byte for byte.

use std::fmt;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use m2m_core::Rejection;

/// A custom rejection responder, set with [`M2mAuth::on_rejection`](crate::M2mAuth::on_rejection).
pub(crate) type Responder = Arc<dyn Fn(Rejection) -> HttpResponse + Send + Sync>;

/// The actix response for `rejection`: its status, every header it names, and its problem+json
/// body.
pub fn rejection_response(rejection: &Rejection) -> HttpResponse {
    let status = StatusCode::from_u16(rejection.status().as_u16())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    for (name, value) in rejection.headers() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            response.append_header((name, value));
        }
    }
    response.body(rejection.body())
}

/// Why [`Authenticated`](crate::Authenticated) could not be extracted.
///
/// Implements [`ResponseError`]: refused credentials answer exactly the core [`Rejection`] (or
/// the custom responder's response, when the middleware that let the request through has one);
/// a route with no way to authenticate answers 500.
pub struct AuthenticationError {
    rejection: Option<Rejection>,
    responder: Option<Responder>,
}

impl AuthenticationError {
    pub(crate) fn rejected(rejection: Rejection, responder: Option<Responder>) -> Self {
        Self {
            rejection: Some(rejection),
            responder,
        }
    }

    /// Neither an [`M2mAuth`](crate::M2mAuth) middleware ran nor is a
    /// [`Verifier`](m2m_core::Verifier) registered as app data.
    pub(crate) fn not_configured() -> Self {
        Self {
            rejection: None,
            responder: None,
        }
    }

    /// The core rejection, if the credentials were refused; `None` when the route has no way to
    /// authenticate (no middleware, no `Verifier` in app data).
    pub fn rejection(&self) -> Option<&Rejection> {
        self.rejection.as_ref()
    }
}

impl From<Rejection> for AuthenticationError {
    fn from(rejection: Rejection) -> Self {
        Self::rejected(rejection, None)
    }
}

const NOT_CONFIGURED: &str = "m2m authentication is not configured for this route: wrap it in \
    m2m_actix::M2mAuth or register an m2m_core::Verifier with App::app_data";

impl fmt::Debug for AuthenticationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticationError")
            .field("rejection", &self.rejection)
            .field("custom_responder", &self.responder.is_some())
            .finish()
    }
}

impl fmt::Display for AuthenticationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rejection {
            Some(rejection) => fmt::Display::fmt(rejection, f),
            None => f.write_str(NOT_CONFIGURED),
        }
    }
}

impl std::error::Error for AuthenticationError {}

impl ResponseError for AuthenticationError {
    fn status_code(&self) -> StatusCode {
        match &self.rejection {
            Some(rejection) => StatusCode::from_u16(rejection.status().as_u16())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            None => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match (&self.rejection, &self.responder) {
            (Some(rejection), Some(responder)) => responder(rejection.clone()),
            (Some(rejection), None) => rejection_response(rejection),
            (None, _) => HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body(NOT_CONFIGURED),
        }
    }
}
