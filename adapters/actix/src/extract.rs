//! The [`Authenticated`] extractor: the caller's [`Principal`] in a handler's arguments.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use m2m_core::{Principal, Verifier};

use crate::error::AuthenticationError;
use crate::headers::ActixHeaders;
use crate::middleware::Unauthenticated;

/// The authenticated caller, as a handler argument.
///
/// Where it looks, in order:
/// 1. the [`Principal`] an [`M2mAuth`](crate::M2mAuth) middleware stored for this request;
/// 2. a request an optional `M2mAuth` let through without credentials: refused with the core's
///    401 (use `Option<Authenticated>` to accept it as `None`);
/// 3. a [`Verifier`] registered with `App::app_data` (as `Verifier` or `web::Data<Verifier>`):
///    the request is verified here, with no required scope;
/// 4. none of these: 500, since the route has no way to authenticate.
///
/// `Option<Authenticated>` is `None` whenever the extraction fails.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Principal);

impl Authenticated {
    /// The caller.
    pub fn into_inner(self) -> Principal {
        self.0
    }
}

impl Deref for Authenticated {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl FromRequest for Authenticated {
    type Error = AuthenticationError;
    type Future = AuthenticatedFuture;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = {
            let extensions = req.extensions();
            if let Some(principal) = extensions.get::<Principal>() {
                Some(Ok(Authenticated(principal.clone())))
            } else {
                extensions.get::<Unauthenticated>().map(|unauthenticated| {
                    Err(AuthenticationError::rejected(
                        unauthenticated.rejection.clone(),
                        unauthenticated.responder.clone(),
                    ))
                })
            }
        };
        if let Some(result) = found {
            return AuthenticatedFuture::ready(result);
        }
        let verifier = req
            .app_data::<Verifier>()
            .or_else(|| {
                req.app_data::<web::Data<Verifier>>()
                    .map(web::Data::get_ref)
            })
            .cloned();
        let Some(verifier) = verifier else {
            return AuthenticatedFuture::ready(Err(AuthenticationError::not_configured()));
        };
        if let Some(outcome) = verifier.verify_cached(&ActixHeaders(req.headers()), &[]) {
            return AuthenticatedFuture::ready(
                outcome
                    .map(Authenticated)
                    .map_err(AuthenticationError::from),
            );
        }
        let req = req.clone();
        AuthenticatedFuture(State::Verifying(Box::pin(async move {
            verifier
                .verify(&ActixHeaders(req.headers()), &[])
                .await
                .map(Authenticated)
                .map_err(AuthenticationError::from)
        })))
    }
}

type Verifying = Pin<Box<dyn Future<Output = Result<Authenticated, AuthenticationError>>>>;

enum State {
    Ready(Option<Result<Authenticated, AuthenticationError>>),
    Verifying(Verifying),
}

/// The future of the [`Authenticated`] extractor: ready at once when a middleware already
/// verified the request.
pub struct AuthenticatedFuture(State);

impl AuthenticatedFuture {
    fn ready(result: Result<Authenticated, AuthenticationError>) -> Self {
        Self(State::Ready(Some(result)))
    }
}

impl fmt::Debug for AuthenticatedFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.0 {
            State::Ready(_) => "Ready",
            State::Verifying(_) => "Verifying",
        };
        f.debug_tuple("AuthenticatedFuture").field(&state).finish()
    }
}

impl Future for AuthenticatedFuture {
    type Output = Result<Authenticated, AuthenticationError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            State::Ready(result) => match result.take() {
                Some(result) => Poll::Ready(result),
                None => Poll::Pending,
            },
            State::Verifying(future) => future.as_mut().poll(cx),
        }
    }
}
