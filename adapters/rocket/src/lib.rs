//! m2m token authentication for Rocket 0.5: a fairing, request guards and catchers.
//!
//! Rocket has no middleware that can answer a request, and its guards fail with a status only.
//! So the [`M2mAuth`] fairing asks the core's [`Admission`](m2m_core::Admission) for its one
//! decision about each request before routing and sends a refused one to a
//! route of its own, the [`Authenticated`] and [`Scoped`] guards hand the caller's
//! [`Principal`](m2m_core::Principal) to handlers, and the fairing's catchers render the core's
//! [`Rejection`](m2m_core::Rejection) exactly: status, `WWW-Authenticate`, `Retry-After`,
//! `Cache-Control: no-store` and the problem+json body.
//!
//! # Example
//!
//! ```
//! use m2m_core::{Expiry, MemoryStore, NewToken, TokenKind, TokenStore, Verifier};
//! use m2m_rocket::{Authenticated, M2mAuth, Scoped};
//! use rocket::http::{Header, Status};
//! use rocket::local::asynchronous::Client;
//! use std::sync::Arc;
//!
//! m2m_rocket::scopes!(ReportsRead => "reports:read");
//!
//! #[rocket::get("/health")]
//! fn health() -> &'static str { "ok" }
//!
//! #[rocket::get("/v1/whoami")]
//! fn whoami(caller: Authenticated) -> String { caller.tenant().to_owned() }
//!
//! #[rocket::get("/v1/reports")]
//! fn reports(_caller: Scoped<ReportsRead>) -> &'static str { "[]" }
//!
//! # rocket::async_test(async {
//! let store = Arc::new(MemoryStore::new());
//! let verifier = Verifier::builder(store.clone()).build();
//! let issued = store
//!     .issue(verifier.format(), NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays), verifier.now())
//!     .await
//!     .unwrap();
//!
//! let rocket = rocket::build()
//!     .attach(M2mAuth::new(verifier).optional(true))
//!     .mount("/", rocket::routes![health, whoami, reports]);
//! let client = Client::tracked(rocket).await.unwrap();
//! let key = || Header::new("X-API-KEY", issued.token.expose_secret().to_owned());
//!
//! assert_eq!(client.get("/health").dispatch().await.status(), Status::Ok);
//! let response = client.get("/v1/whoami").header(key()).dispatch().await;
//! assert_eq!(response.status(), Status::Ok);
//! assert_eq!(response.into_string().await.unwrap(), "acme");
//!
//! let response = client.get("/v1/whoami").dispatch().await;
//! assert_eq!(response.status(), Status::Unauthorized);
//! assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
//! assert!(response.headers().get_one("WWW-Authenticate").is_some());
//!
//! let response = client.get("/v1/reports").header(key()).dispatch().await;
//! assert_eq!(response.status(), Status::Forbidden);
//! # });
//! ```
//!
//! # What Rocket allows, and how it maps
//!
//! - Optional routes take `Option<Authenticated>`. Rocket turns any failure of the inner guard
//!   into `None`, so the guard alone cannot refuse a bad credential there; the fairing does,
//!   before routing. With [`M2mAuth::optional`] off (the default) the fairing also refuses
//!   requests without credentials, on every route, like the middleware of the other adapters.
//! - [`M2mAuth::strip_credentials`] blanks the credential headers: Rocket 0.5 cannot remove a
//!   request header.
//! - Rocket drops a header value that is not UTF-8 before any fairing sees it, so such a value
//!   counts as absent. Values Rocket keeps with control characters in them are refused with 400
//!   `invalid_request`, as in the other adapters.
//! - Guards never verify by themselves: they read the fairing's decision. Without the fairing
//!   they fail with 500, rendered as the same problem+json body as in the other adapters when
//!   the [`catchers`] are registered.

mod catcher;
mod credentials;
mod fairing;
mod guard;

pub use catcher::catchers;
pub use fairing::M2mAuth;
pub use guard::{Authenticated, GuardError, ScopeSet, Scoped};
