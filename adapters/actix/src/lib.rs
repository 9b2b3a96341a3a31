//! m2m token authentication for actix-web: a middleware that verifies each request and an
//! extractor that hands the caller's [`Principal`] to the handler.
//!
//! The adapter holds no rules of its own. [`M2mAuth`] hands the request to the core's
//! [`Admission`](m2m_core::Admission) (the [`Verifier`] and the options) and either stores the
//! admitted [`Principal`] in the request extensions or answers with the core [`Rejection`] byte
//! for byte: status, `WWW-Authenticate` or `Retry-After`,
//! `Cache-Control: no-store` and the problem+json body. Handlers take [`Authenticated`] (or
//! `Option<Authenticated>` on optional routes); per-scope requirements are a second `M2mAuth`
//! with [`require_scopes`](M2mAuth::require_scopes) on a `web::scope` or `web::resource`.
//!
//! # Example
//!
//! ```
//! use actix_web::{App, HttpResponse, http::StatusCode, test, web};
//! use m2m_actix::{Authenticated, M2mAuth};
//! use m2m_core::{Expiry, MemoryStore, NewToken, TokenKind, TokenStore, Verifier};
//! use std::sync::Arc;
//!
//! async fn whoami(caller: Authenticated) -> HttpResponse {
//!     HttpResponse::Ok().body(caller.tenant().to_owned())
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let store = Arc::new(MemoryStore::new());
//! let verifier = Verifier::builder(store.clone()).build();
//! let issued = store
//!     .issue(
//!         verifier.format(),
//!         NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays).scope("reports:read"),
//!         verifier.now(),
//!     )
//!     .await
//!     .unwrap();
//!
//! let app = test::init_service(
//!     App::new().service(
//!         web::scope("/v1")
//!             .wrap(M2mAuth::new(verifier.clone()))
//!             .route("/whoami", web::get().to(whoami))
//!             .service(
//!                 web::resource("/reports")
//!                     .wrap(M2mAuth::new(verifier).require_scopes(["reports:write"]))
//!                     .to(HttpResponse::Ok),
//!             ),
//!     ),
//! )
//! .await;
//!
//! let token = issued.token.expose_secret();
//! let request = test::TestRequest::get().uri("/v1/whoami").insert_header(("X-API-KEY", token));
//! let response = test::call_service(&app, request.to_request()).await;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(test::read_body(response).await, "acme");
//!
//! let anonymous = test::TestRequest::get().uri("/v1/whoami").to_request();
//! let response = test::call_service(&app, anonymous).await;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
//!
//! let request = test::TestRequest::get().uri("/v1/reports").insert_header(("X-API-KEY", token));
//! let response = test::call_service(&app, request.to_request()).await;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! # });
//! ```

mod error;
mod extract;
mod headers;
mod middleware;

pub use error::{AuthenticationError, rejection_response};
pub use extract::Authenticated;
pub use m2m_core::{Principal, Rejection, Verifier};
pub use middleware::{M2mAuth, M2mAuthMiddleware, ResponseFuture};
