//! The [`Authenticated`] extractor: the caller's [`Principal`] in a handler's arguments.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use m2m_core::{Principal, Rejection};

use crate::error::AuthenticationError;
use crate::middleware::Unauthenticated;

m2m_core::caller_type!(
    /// The authenticated caller, as a handler argument.
    ///
    /// It reads what an [`M2mAuth`](crate::M2mAuth) middleware decided for this request and never
    /// verifies by itself:
    /// 1. the [`Principal`] the middleware admitted;
    /// 2. a request an optional `M2mAuth` let through without credentials: refused with the core's
    ///    401 (use `Option<Authenticated>` to accept it as `None`);
    /// 3. no middleware ran: 500 with the core's `MiddlewareMissing` problem+json body, as in every
    ///    m2m adapter.
    ///
    /// `Option<Authenticated>` is `None` whenever the extraction fails.
    Authenticated
);

impl FromRequest for Authenticated {
    type Error = AuthenticationError;
    type Future = Ready<Result<Self, AuthenticationError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let extensions = req.extensions();
        if let Some(principal) = extensions.get::<Principal>() {
            return ready(Ok(Authenticated(principal.clone())));
        }
        let error = match extensions.get::<Unauthenticated>() {
            Some(unauthenticated) => AuthenticationError::rejected(
                unauthenticated.rejection.clone(),
                unauthenticated.responder.clone(),
            ),
            None => AuthenticationError::from(Rejection::middleware_missing()),
        };
        ready(Err(error))
    }
}
