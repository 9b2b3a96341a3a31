//! Machine-to-machine token authentication: the rules, with no web framework.
//!
//! Two token types, each with its own header:
//!
//! | type | sent as | expiry |
//! |---|---|---|
//! | access token (`m2m_at_…`) | `X-API-KEY: <token>` | never, or after 1, 7, 30, 90 or 365 days |
//! | client-credentials bearer token (`m2m_cc_…`) | `Authorization: Bearer <token>` | short-lived, issued for a client id + secret |
//!
//! A [`Verifier`] turns request headers into the caller's [`Principal`] or a [`Rejection`] that
//! carries the exact status, `WWW-Authenticate` challenge and problem+json body of the HTTP
//! contract. An [`Admission`] holds a middleware's options (required scopes, optional mode,
//! CORS preflight, credential stripping) and makes the one [`Decision`] per request that
//! framework adapters only translate into their own types.
//!
//! Data flows one way: [`extract`] (placement rules) → [`TokenFormat::parse`] (format and
//! checksum) → cache → [`TokenLookup`] on a miss, single-flight → the [`Admission`]'s
//! decision; uses are recorded through the lookup in the background, in batches. Decisions,
//! the cache and store calls are counted through the `metrics` facade ([`metrics`]), per thread
//! and off the request path.
//!
//! # Example
//!
//! ```
//! use http::{HeaderMap, HeaderValue, StatusCode};
//! use m2m_core::{Expiry, MemoryStore, NewToken, TokenKind, TokenStore, Verifier};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = Arc::new(MemoryStore::new());
//! let verifier = Verifier::builder(store.clone()).build();
//! let now = verifier.now();
//! let bearer = store
//!     .issue(verifier.format(), NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60)), now)
//!     .await
//!     .unwrap();
//!
//! // The right header: accepted.
//! let mut headers = HeaderMap::new();
//! let value = format!("Bearer {}", bearer.token.expose_secret());
//! headers.insert("authorization", HeaderValue::from_str(&value).unwrap());
//! assert_eq!(verifier.verify(&headers, &[]).await.unwrap().tenant(), "acme");
//!
//! // A bearer token in X-API-KEY: 400, and the description names the right header.
//! let mut wrong = HeaderMap::new();
//! wrong.insert("x-api-key", HeaderValue::from_str(bearer.token.expose_secret()).unwrap());
//! let rejection = verifier.verify(&wrong, &[]).await.unwrap_err();
//! assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
//! assert!(rejection.detail().contains("Authorization"));
//! # });
//! ```

mod admission;
mod audit;
mod cache;
mod expiry;
#[cfg(feature = "jwt")]
pub mod jwt;
mod macros;
pub mod metrics;
#[cfg(feature = "openapi")]
pub mod openapi;
mod page;
mod placement;
mod policy;
mod portal;
mod rate_limit;
mod record;
mod rejection;
mod signing_key;
mod store;
mod token;
mod usage;
mod verifier;
#[cfg(feature = "wire")]
pub mod wire;

pub use admission::{Admission, Admitted, Decision, RequestHead, log_refusal};
pub use audit::AuditEntry;
pub use cache::CacheSettings;
pub use expiry::{
    Clock, ExpiresIn, Expiry, InvalidExpiry, MAX_EXPIRY_MINUTES, ManualClock, SystemClock,
};
pub use metrics::MetricsSnapshot;
pub use page::{InvalidPageCursor, MAX_PAGE_CURSOR_LEN, PageCursor};
pub use placement::{
    Credential, CredentialError, CredentialHeaders, DEFAULT_MAX_HEADER_LEN, Placement, X_API_KEY,
    extract,
};
pub use policy::{InvalidTokenType, Policy, RequiredScopes, TokenType, TokenTypes};
pub use portal::{PortalRole, PortalSecret, PortalSession};
pub use rate_limit::{
    InvalidRateLimit, MAX_RATE_LIMIT, MAX_RATE_WINDOW_SECONDS, RateLimit, RateLimitState,
};
pub use record::{IssuedToken, NewToken, Principal, TokenRecord};
pub use rejection::{
    InvalidRequest, PROBLEM_JSON, RATELIMIT, RATELIMIT_POLICY, Rejection, RejectionKind,
};
pub use signing_key::SigningKey;
pub use store::{
    BearerFormat, GrantableScope, MemoryStore, PortalSettings, RevocationEvent, RevocationListener,
    StoreError, TokenLookup, TokenStore, TypeSettings,
};
pub use token::{
    CHECKSUM_LEN, DEFAULT_PREFIX, DigestHash, DigestHasher, InvalidPrefix, MAX_PREFIX_LEN,
    MalformedToken, ParsedToken, SECRET_LEN, Token, TokenDigest, TokenFormat, TokenId, TokenKind,
};
pub use usage::DEFAULT_USAGE_INTERVAL;
#[cfg(feature = "jwt")]
pub use verifier::DEFAULT_JWT_REVOCATION_MEMORY;
pub use verifier::{DEFAULT_REALM, DEFAULT_RETRY_AFTER, Verifier, VerifierBuilder};
pub use verifier::{InactiveReason, TokenCheckError};
