//! A [`TokenLookup`](m2m_core::TokenLookup) that asks the m2m token service over HTTP: RFC 7662
//! introspection on a cache miss, a server-sent event stream of revocations that evicts
//! revoked tokens from every subscribed verifier cache, and usage reports that keep each
//! token's `last_used_at` at the service.
//!
//! Applications run as many instances; none of them holds tokens. Each puts a
//! [`Verifier`](m2m_core::Verifier) over a [`RemoteStore`]: the verifier's cache answers most
//! requests, concurrent misses for one token become one introspection call (single-flight), and
//! the event stream reaches every instance when a token is revoked. The verifier also reports
//! which tokens were used, in batches, in the background, so the service's listing shows
//! `last_used_at` for tokens used only at resource servers.
//!
//! It only verifies: tokens are issued, listed and revoked at the token service, so
//! [`RemoteStore`] implements the lookup part of a store and not the admin part
//! ([`TokenStore`](m2m_core::TokenStore)).
//!
//! # Revocation delay
//!
//! **While the event stream is up**, a revoked token is evicted as soon as the event arrives
//! (milliseconds). **While it is down** (token service restarting, network cut, a proxy that
//! buffers the stream), events are missed and a revoked token that is already cached keeps
//! passing **until its cache entry expires: at most the verifier's cache TTL, 10 s by
//! default** ([`CacheSettings::ttl`](m2m_core::CacheSettings)). Lower the TTL where that window
//! is too long; each miss costs one introspection call. The store reopens the stream by itself
//! (100 ms, doubling up to 5 s between attempts, and sends `Last-Event-ID` when the service
//! gave event ids), and [`RemoteStore::event_stream_connected`] tells a health check whether
//! it is open.
//!
//! # Failures
//!
//! A connection error, a timeout, a 5xx, a body that is not an introspection response, or a
//! 401/403 to this resource server's own credential (a misconfiguration, not the caller's
//! fault) is [`StoreError::Unavailable`](m2m_core::StoreError::Unavailable): the verifier
//! answers 503 with `Retry-After` (or serves a cached entry within its grace period), never
//! 401. Connection failures, timeouts and 502/503/504 are retried first
//! ([`RemoteStoreBuilder::retries`], 2 by default, with a 50 ms pause doubling): introspection
//! is a read, so retrying is safe. Redirects are not followed (they would carry the presented
//! token elsewhere): a 3xx is a failure too. Error messages never contain the token.
//!
//! # Protocol
//!
//! The endpoints live under the token service's base URL and authenticate the resource server
//! by its own [`IntrospectionCredential`], which must carry the scope `m2m:introspect` and belong
//! to the environment's own tenant (`m2m`): an
//! access token in `X-API-KEY`, a client-credentials bearer token in `Authorization: Bearer`,
//! or HTTP Basic with a client id and secret.
//!
//! **Introspection** (RFC 7662): `POST {base}/oauth/introspect` with
//! `Content-Type: application/x-www-form-urlencoded` and the body
//! `token=<token>&token_type_hint=access_token`. The service answers 200 with JSON:
//!
//! - `{"active": false}` for an unknown, revoked, expired or malformed token (the store returns
//!   `Ok(None)`, the verifier 401 `invalid_token`);
//! - `{"active": true, "jti": "tok_…", "kind": "access_token" | "bearer_token",
//!   "tenant_id": "…", "sub": "<user, optional>", "client_id": "<m2m_ci_…, bearer tokens>",
//!   "scope": "a b c", "exp": <unix seconds, absent for never>, "iat": <unix seconds>}`.
//!   `jti`, `kind`, `tenant_id` and `iat` are required; unknown fields are ignored.
//!
//! `kind` names the token's format with the core's [`TokenKind`](m2m_core::TokenKind) names
//! (an access token is sent in `X-API-KEY`, a bearer token as `Authorization: Bearer`). RFC
//! 7662's optional `token_type` is not used: in RFC 6749 it means the OAuth token type
//! (`"Bearer"`), which an access token does not have. Both bodies are defined once in
//! [`m2m_core::wire`] ([`IntrospectionAnswer`](m2m_core::wire::IntrospectionAnswer) and
//! [`RevokedEventData`](m2m_core::wire::RevokedEventData)), for the service and this store.
//!
//! **Revocation events**: `GET {base}/v1/revocations` with `Accept: text/event-stream`. Each
//! revocation is one event:
//!
//! ```text
//! event: revoked
//! data: {"token_id": "tok_…", "digest": "<64 hex characters of SHA-256, optional>"}
//!
//! ```
//!
//! Comment lines (`: keepalive`) may come at any time and should come at least every 60 s
//! ([`RemoteStoreBuilder::event_stream_idle_timeout`]); other event types are ignored.
//!
//! **Usage reports**: `POST {base}/v1/usage` with `Content-Type: application/json` and the body
//!
//! ```text
//! {"uses": [{"token_id": "tok_…", "used_at": <unix seconds>}, …]}
//! ```
//!
//! at most [`MAX_USAGE_BATCH`] uses per request (a longer batch is split). The service answers
//! 2xx (204) once it has recorded them, keeping the latest time per token. Anything else, or no
//! answer within the request timeout, is logged at warn and returned as
//! [`StoreError::Unavailable`](m2m_core::StoreError::Unavailable); the report is not retried
//! (the next one carries the later uses).
//!
//! # Example
//!
//! ```
//! use http::{HeaderMap, HeaderValue, StatusCode};
//! use m2m_core::{CacheSettings, Verifier};
//! use m2m_remote::{IntrospectionCredential, RemoteStore};
//! use std::time::Duration;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let credential = IntrospectionCredential::ApiKey("m2m_at_resource-server-token".into());
//! let store = RemoteStore::builder("http://127.0.0.1:9/auth", credential)
//!     .request_timeout(Duration::from_secs(2))
//!     .retries(1)
//!     .build()
//!     .unwrap();
//! assert_eq!(store.introspection_url().as_str(), "http://127.0.0.1:9/auth/oauth/introspect");
//! assert_eq!(store.revocations_url().as_str(), "http://127.0.0.1:9/auth/v1/revocations");
//! assert_eq!(store.usage_url().as_str(), "http://127.0.0.1:9/auth/v1/usage");
//!
//! // Revoked tokens may pass for at most this long while the event stream is down.
//! let cache = CacheSettings { ttl: Duration::from_secs(10), ..CacheSettings::default() };
//! let verifier = Verifier::builder(store).cache(cache).build();
//!
//! // A token with a bad checksum is refused before any network call.
//! let mut headers = HeaderMap::new();
//! headers.insert("x-api-key", HeaderValue::from_static("m2m_at_not-a-real-token"));
//! let rejection = verifier.verify(&headers, &[]).await.unwrap_err();
//! assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
//!
//! // A base URL that is not http(s) is refused when building.
//! let credential = IntrospectionCredential::Bearer("m2m_cc_resource-server-token".into());
//! assert!(RemoteStore::builder("ftp://tokens.example.com", credential).build().is_err());
//! # });
//! ```

mod credential;
mod error;
mod events;
mod introspection;
#[cfg(feature = "jwt")]
mod jwks;
pub mod metrics;
mod store;

pub use credential::IntrospectionCredential;
pub use error::RemoteError;
#[cfg(feature = "jwt")]
pub use jwks::{
    DEFAULT_JWKS_MAX_AGE, DEFAULT_JWKS_MIN_REFRESH, JwksKeys, JwksKeysBuilder, MAX_JWKS_BYTES,
};
pub use store::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_EVENT_STREAM_IDLE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_RETRIES, INTROSPECTION_PATH, JWKS_PATH, MAX_BACK_OFF, MAX_USAGE_BATCH,
    REVOCATIONS_PATH, RemoteStore, RemoteStoreBuilder, USAGE_PATH,
};
