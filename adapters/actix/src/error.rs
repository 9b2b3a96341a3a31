//! Rejections as actix responses: the core [`Rejection`] rendered byte for byte.

use std::fmt;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use m2m_core::{Rejection, log_refusal};

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
/// Implements [`ResponseError`]: the core [`Rejection`] exactly (or the custom responder's
/// response, when the middleware that let the request through has one): the contract's 401 on
/// a request an optional middleware let through without credentials, and 500 with the core's
/// `MiddlewareMissing` body on a route no middleware covers.
pub struct AuthenticationError {
    rejection: Rejection,
    responder: Option<Responder>,
}

impl AuthenticationError {
    pub(crate) fn rejected(rejection: Rejection, responder: Option<Responder>) -> Self {
        Self {
            rejection,
            responder,
        }
    }

    /// The core rejection.
    pub fn rejection(&self) -> &Rejection {
        &self.rejection
    }
}

impl From<Rejection> for AuthenticationError {
    fn from(rejection: Rejection) -> Self {
        Self::rejected(rejection, None)
    }
}

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
        fmt::Display::fmt(&self.rejection, f)
    }
}

impl std::error::Error for AuthenticationError {}

impl ResponseError for AuthenticationError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.rejection.status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The response; the refusal is logged here, once it is certain the request is refused
    /// (`Option<Authenticated>` turns the error into `None` without a response).
    fn error_response(&self) -> HttpResponse {
        log_refusal(&self.rejection);
        match &self.responder {
            Some(responder) => responder(self.rejection.clone()),
            None => rejection_response(&self.rejection),
        }
    }
}
