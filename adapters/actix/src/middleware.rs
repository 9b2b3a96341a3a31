//! The [`M2mAuth`] middleware: verifies every request it wraps before the handler runs.
//!
//! The middleware only translates: it hands the request to the core's [`Admission`], stores the
//! admitted [`Principal`] in the request extensions, and turns a refusal into an early response
//! (the right side of an [`EitherBody`]) without calling the wrapped service.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage, HttpResponse};
use futures_util::future::LocalBoxFuture;
use m2m_core::{Admission, Decision, Principal, Rejection, Verifier};
use pin_project_lite::pin_project;

use crate::error::{Responder, rejection_response};
use crate::headers::{ActixRequest, header_name};

/// Authenticates every request of the service it wraps (an `App`, a `web::scope` or a
/// `web::resource`), with the same options as the other m2m adapters.
///
/// The options are those of the core's [`Admission`], which makes every decision; the
/// middleware only translates it. On success the caller's [`Principal`] is in the request
/// extensions, where the [`Authenticated`](crate::Authenticated) extractor finds it. On failure
/// the client receives the core [`Rejection`] exactly (status, `WWW-Authenticate` or
/// `Retry-After`, `Cache-Control: no-store`, problem+json body), or what
/// [`on_rejection`](Self::on_rejection) returns.
///
/// Scopes required on an inner scope or resource are checked by a second `M2mAuth` there; it
/// does not verify the token again, it checks its own scopes on the caller the outer one
/// admitted.
#[derive(Clone)]
#[must_use]
pub struct M2mAuth {
    admission: Admission,
    responder: Option<Responder>,
}

impl M2mAuth {
    /// A middleware that verifies with `verifier`: no required scope, credentials required,
    /// preflights verified like any request, credential headers left in place.
    pub fn new(verifier: Verifier) -> Self {
        Self::from_admission(Admission::new(verifier))
    }

    /// A middleware that decides with `admission`.
    pub fn from_admission(admission: Admission) -> Self {
        Self {
            admission,
            responder: None,
        }
    }

    fn admission_mut(&mut self) -> &mut Admission {
        &mut self.admission
    }

    m2m_core::admission_options!(admission_mut);

    /// Answers rejections with `responder` instead of the core's response.
    pub fn on_rejection<F>(mut self, responder: F) -> Self
    where
        F: Fn(Rejection) -> HttpResponse + Send + Sync + 'static,
    {
        self.responder = Some(Arc::new(responder));
        self
    }

    /// The options and the decision they lead to.
    pub fn admission(&self) -> &Admission {
        &self.admission
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
            .field("admission", &self.admission)
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
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
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

impl M2mAuth {
    /// Translates the core's decision: the principal into the extensions and the headers to
    /// strip out, the pass of a request without credentials or of a preflight, or the
    /// rejection response.
    fn apply(&self, req: &mut ServiceRequest, decision: Decision) -> Result<(), HttpResponse> {
        match decision {
            Decision::Admit(admitted) => {
                for placement in admitted.headers_to_strip() {
                    req.headers_mut().remove(header_name(*placement));
                }
                req.extensions_mut()
                    .insert::<Principal>(admitted.into_principal());
                Ok(())
            }
            Decision::Anonymous(rejection) => {
                req.extensions_mut().insert(Unauthenticated {
                    rejection,
                    responder: self.responder.clone(),
                });
                Ok(())
            }
            Decision::Preflight => Ok(()),
            Decision::Refuse(rejection) => Err(self.respond(rejection)),
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
        // A cached token (or a request needing no token) is decided here, without a boxed
        // future.
        if let Some(decision) = self.auth.admission.decide_cached(&ActixRequest(&req)) {
            let kind = match self.auth.apply(&mut req, decision) {
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
            let decision = auth.admission.decide(&ActixRequest(&req)).await;
            if let Err(response) = auth.apply(&mut req, decision) {
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
