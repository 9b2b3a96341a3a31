//! [`M2mAuthLayer`]: the options, and the [`Layer`] that wraps a service in [`M2mAuth`].

use std::fmt;
use std::sync::Arc;

use http::Response;
use m2m_core::{Admission, Rejection, Verifier};
use tower_layer::Layer;

use crate::grpc::GrpcOnRejection;
use crate::service::M2mAuth;

/// Renders a [`Rejection`] as the response a client sees.
///
/// Implemented by [`DefaultOnRejection`] (the core rejection, byte for byte), by
/// [`GrpcOnRejection`] (the rejection as a gRPC status) and by every
/// `Fn(Rejection) -> http::Response<B>`.
pub trait OnRejection<B> {
    /// The response for `rejection`.
    fn on_rejection(&self, rejection: Rejection) -> Response<B>;
}

/// The contract response: the rejection's status, every header of [`Rejection::headers`] and
/// its problem+json [`Rejection::body`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultOnRejection;

impl<B: From<String>> OnRejection<B> for DefaultOnRejection {
    fn on_rejection(&self, rejection: Rejection) -> Response<B> {
        rejection.into_response()
    }
}

impl<B, F> OnRejection<B> for F
where
    F: Fn(Rejection) -> Response<B>,
{
    fn on_rejection(&self, rejection: Rejection) -> Response<B> {
        self(rejection)
    }
}

/// What a layer and its services share; one reference count per request.
pub(crate) struct Settings<R> {
    pub(crate) admission: Admission,
    pub(crate) on_rejection: R,
}

impl<R> fmt::Debug for Settings<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("admission", &self.admission)
            .finish_non_exhaustive()
    }
}

/// Authenticates every request of the services it wraps.
///
/// The options are those of the core's [`Admission`], which makes every decision: the layer
/// only translates it. On success the caller's [`Principal`](m2m_core::Principal) goes into the
/// request extensions, where the [`Authenticated`](crate::Authenticated) extractor reads it; on
/// failure the client receives the [`Rejection`], rendered by the [`OnRejection`] responder.
///
/// Use it with axum's `Router::layer` for a whole router, or with `Router::route_layer` and
/// [`require_scopes`](Self::require_scopes) for the scopes of some routes. A layer inside
/// another one does not verify the token again: it checks its own scopes on the caller the
/// outer layer admitted.
///
/// | option | default |
/// |---|---|
/// | [`require_scopes`](Self::require_scopes) | none (each call adds scopes) |
/// | [`optional`](Self::optional) | `false` |
/// | [`cors_preflight`](Self::cors_preflight) | `false` |
/// | [`strip_credentials`](Self::strip_credentials) | `false` |
/// | [`on_rejection`](Self::on_rejection) or [`grpc`](Self::grpc) | [`DefaultOnRejection`] |
#[must_use]
pub struct M2mAuthLayer<R = DefaultOnRejection> {
    admission: Admission,
    on_rejection: R,
}

impl M2mAuthLayer {
    /// A layer that authenticates with `verifier` and requires no scope.
    pub fn new(verifier: Verifier) -> Self {
        Self::from_admission(Admission::new(verifier))
    }

    /// A layer that decides with `admission`.
    pub fn from_admission(admission: Admission) -> Self {
        Self {
            admission,
            on_rejection: DefaultOnRejection,
        }
    }
}

impl<R> M2mAuthLayer<R> {
    fn admission_mut(&mut self) -> &mut Admission {
        &mut self.admission
    }

    m2m_core::admission_options!(admission_mut);

    /// Renders rejections with `responder` instead of [`DefaultOnRejection`].
    ///
    /// With axum, `responder` returns `axum::response::Response`
    /// (`|rejection| (StatusCode::UNAUTHORIZED, "…").into_response()`).
    pub fn on_rejection<T>(self, responder: T) -> M2mAuthLayer<T> {
        M2mAuthLayer {
            admission: self.admission,
            on_rejection: responder,
        }
    }

    /// Renders rejections as gRPC statuses ([`GrpcOnRejection`]), for a gRPC server such as
    /// tonic's: `UNAUTHENTICATED`, `PERMISSION_DENIED`, `INVALID_ARGUMENT`, `UNAVAILABLE` or
    /// `RESOURCE_EXHAUSTED`, with the reason in `grpc-message`.
    ///
    /// ```
    /// use http::{Request, Response};
    /// use m2m_core::{MemoryStore, RejectionKind, Verifier};
    /// use m2m_tower::M2mAuthLayer;
    /// use std::convert::Infallible;
    /// use tower::{ServiceBuilder, ServiceExt as _, service_fn};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let verifier = Verifier::builder(MemoryStore::new()).build();
    /// // With tonic: `Server::builder().layer(M2mAuthLayer::new(verifier).grpc())`.
    /// let layer = M2mAuthLayer::new(verifier).require_scopes(["reports:read"]).grpc();
    /// let service = ServiceBuilder::new()
    ///     .layer(layer)
    ///     .service(service_fn(|_: Request<String>| async {
    ///         Ok::<_, Infallible>(Response::new(String::new()))
    ///     }));
    ///
    /// let request = Request::post("/reports.v1.Reports/ListReports")
    ///     .header("x-api-key", "m2m_at_notatoken")
    ///     .body(String::new())
    ///     .unwrap();
    /// let response = service.oneshot(request).await.unwrap();
    /// assert_eq!(response.headers()["grpc-status"], "16");
    /// assert_eq!(response.headers()["grpc-message"], RejectionKind::InvalidToken.detail());
    /// # });
    /// ```
    pub fn grpc(self) -> M2mAuthLayer<GrpcOnRejection> {
        self.on_rejection(GrpcOnRejection)
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        self.admission.verifier()
    }

    /// The options and the decision they lead to.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The scopes required on every request.
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.admission.scopes()
    }
}

impl<R: Clone> Clone for M2mAuthLayer<R> {
    fn clone(&self) -> Self {
        Self {
            admission: self.admission.clone(),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

impl<R> fmt::Debug for M2mAuthLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("M2mAuthLayer")
            .field("admission", &self.admission)
            .finish_non_exhaustive()
    }
}

impl<S, R: Clone> Layer<S> for M2mAuthLayer<R> {
    type Service = M2mAuth<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        M2mAuth::from_settings(
            inner,
            Arc::new(Settings {
                admission: self.admission.clone(),
                on_rejection: self.on_rejection.clone(),
            }),
        )
    }
}
