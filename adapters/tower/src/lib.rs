//! m2m token authentication for tower and axum: a [`Layer`](tower_layer::Layer) that verifies
//! each request with an [`m2m_core::Verifier`], and extractors that hand the caller's
//! [`Principal`](m2m_core::Principal) to handlers.
//!
//! The layer holds no rules of its own: the core's [`Admission`](m2m_core::Admission) decides
//! with its options, and a refused request receives the core [`Rejection`](m2m_core::Rejection)
//! unchanged (status, `WWW-Authenticate` or
//! `Retry-After`, `Cache-Control: no-store`, problem+json body). Responses keep the inner
//! service's body type, which needs only `From<String>` for the default responder, so the same
//! layer serves an axum `Router` (`axum::body::Body`) and a bare tower or hyper service.
//!
//! - [`M2mAuthLayer`] / [`M2mAuth`] / [`ResponseFuture`]: the middleware, with the options
//!   [`require_scopes`](M2mAuthLayer::require_scopes), [`optional`](M2mAuthLayer::optional),
//!   [`cors_preflight`](M2mAuthLayer::cors_preflight),
//!   [`strip_credentials`](M2mAuthLayer::strip_credentials) and
//!   [`on_rejection`](M2mAuthLayer::on_rejection);
//! - [`GrpcOnRejection`] ([`M2mAuthLayer::grpc`]): refusals as gRPC statuses, for tonic and
//!   other gRPC servers (see the [`grpc`] module);
//! - [`Authenticated`] and `Option<Authenticated>`: the axum extractors.
//!
//! Scopes per route: `Router::route_layer` with a layer that requires them.
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use m2m_core::{Expiry, MemoryStore, NewToken, TokenKind, TokenStore, Verifier};
//! use m2m_tower::{Authenticated, M2mAuthLayer};
//! use std::sync::Arc;
//! use tower::ServiceExt as _;
//!
//! async fn whoami(Authenticated(caller): Authenticated) -> String {
//!     caller.tenant().to_owned()
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = Arc::new(MemoryStore::new());
//! let verifier = Verifier::builder(store.clone()).build();
//! let issued = store
//!     .issue(
//!         verifier.format(),
//!         NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays),
//!         verifier.now(),
//!     )
//!     .await
//!     .unwrap();
//!
//! let app = Router::new()
//!     .route("/v1/reports", get(whoami))
//!     .route_layer(M2mAuthLayer::new(verifier.clone()).require_scopes(["reports:read"]))
//!     .route("/v1/whoami", get(whoami))
//!     .layer(M2mAuthLayer::new(verifier));
//!
//! let get = |path: &str, token: Option<&str>| {
//!     let mut request = Request::get(path);
//!     if let Some(token) = token {
//!         request = request.header("x-api-key", token);
//!     }
//!     request.body(Body::empty()).unwrap()
//! };
//! let token = issued.token.expose_secret();
//!
//! let response = app.clone().oneshot(get("/v1/whoami", Some(token))).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let response = app.clone().oneshot(get("/v1/whoami", None)).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//!
//! // The token lacks `reports:read`.
//! let response = app.oneshot(get("/v1/reports", Some(token))).await.unwrap();
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! # });
//! ```
//!
//! # A bare tower service
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use m2m_core::{MemoryStore, Principal, Verifier};
//! use m2m_tower::M2mAuthLayer;
//! use std::convert::Infallible;
//! use tower::{ServiceBuilder, ServiceExt as _, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let verifier = Verifier::builder(MemoryStore::new()).build();
//! let service = ServiceBuilder::new()
//!     .layer(M2mAuthLayer::new(verifier))
//!     .service(service_fn(|request: Request<String>| async move {
//!         let tenant = request.extensions().get::<Principal>().map(|p| p.tenant().to_owned());
//!         Ok::<_, Infallible>(Response::new(tenant.unwrap_or_default()))
//!     }));
//!
//! let response = service.oneshot(Request::new(String::new())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert!(response.body().contains("\"status\":401"));
//! # });
//! ```

mod extract;
mod future;
pub mod grpc;
mod layer;
mod service;

pub use extract::{Authenticated, AuthenticatedRejection};
pub use future::ResponseFuture;
pub use grpc::GrpcOnRejection;
pub use layer::{DefaultOnRejection, M2mAuthLayer, OnRejection};
pub use service::M2mAuth;
