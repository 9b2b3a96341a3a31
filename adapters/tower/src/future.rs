//! [`ResponseFuture`]: verification, then the inner service's future.
//!
//! A token the verifier's cache decides is settled in `call`, with no future of its own: the
//! response future is then the inner service's, polled in place, or the rejection, ready. Only a
//! request whose token the store must look up takes the boxed step: [`Verifier::verify`](m2m_core::Verifier::verify)
//! is an `async fn` borrowing the request headers, and its future has no nameable type.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

/// The verification step: resolves to the inner service's future, or to the rejection response.
pub(crate) type Verification<F> =
    Pin<Box<dyn Future<Output = Result<F, <F as Future>::Output>> + Send>>;

pin_project! {
    /// Response future of [`M2mAuth`](crate::M2mAuth).
    pub struct ResponseFuture<F>
    where
        F: Future,
    {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F>
    where
        F: Future,
    {
        Verifying {
            verification: Verification<F>,
        },
        Inner {
            #[pin]
            future: F,
        },
        Rejected {
            response: Option<F::Output>,
        },
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn verifying(verification: Verification<F>) -> Self {
        Self {
            kind: Kind::Verifying { verification },
        }
    }

    pub(crate) fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn rejected<T, E>(response: T) -> Self
    where
        F: Future<Output = Result<T, E>>,
    {
        Self {
            kind: Kind::Rejected {
                response: Some(Ok(response)),
            },
        }
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project().kind.project() {
                KindProj::Verifying { verification } => {
                    match ready!(verification.as_mut().poll(cx)) {
                        Ok(future) => self.as_mut().project().kind.set(Kind::Inner { future }),
                        Err(rejected) => return Poll::Ready(rejected),
                    }
                }
                KindProj::Inner { future } => return future.poll(cx),
                KindProj::Rejected { response } => {
                    return Poll::Ready(
                        response
                            .take()
                            .expect("ResponseFuture polled after it completed"),
                    );
                }
            }
        }
    }
}

impl<F: Future> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.kind {
            Kind::Verifying { .. } => "verifying",
            Kind::Inner { .. } => "inner",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
