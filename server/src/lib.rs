//! The m2m token service: where tokens are issued, listed and revoked, and where client
//! credentials are exchanged for bearer tokens.
//!
//! - [`app`] builds the axum [`Router`]: the REST admin API under `/v1` (behind the project's
//!   own [`M2mAuthLayer`]; each route checks the caller's [`rights`]), the OAuth 2.0 token
//!   endpoint `POST /oauth/token` ([`oauth`] has the rules) and `GET /health`. Every error of the admin API is
//!   `application/problem+json`; the token endpoint answers errors as RFC 6749 §5.2 JSON.
//! - [`introspect`] answers resource servers: RFC 7662 introspection, which forged tokens cannot turn against its caller, and
//!   [`revocations`] streams every revocation to them as server-sent events.
//! - [`serve`] runs it on a [`SqlStore`](m2m_sql::SqlStore): bootstrap admin token on a fresh
//!   database, graceful shutdown. The admin verifier records `last_used_at` by itself, in the
//!   background; resource servers report the uses they see to `POST /v1/usage`.
//! - [`cli`] is the `m2m` command line (`serve`, `token create|list|revoke`,
//!   `settings set-type|show`).
//!
//! | route | does |
//! |---|---|
//! | `GET`/`PUT /v1/settings` | the environment's token type |
//! | `GET`/`PUT /v1/tenants/{tenant}/settings` | a tenant's token type (override or inherited) |
//! | `GET`/`PUT /v1/settings/portal` | grantable scopes and the API-token / personal-token switches |
//! | `DELETE /v1/tenants/{tenant}/settings` | the tenant follows the environment again |
//! | `POST /v1/tenants/{tenant}/tokens` | issue a token; 201 shows the secret once |
//! | `GET /v1/tenants/{tenant}/tokens?limit=&offset=&after=` | list, no secrets; `after=` a page's `next_after` cursor reads the next page without reading the skipped ones (not with a non-zero `offset`) |
//! | `DELETE /v1/tenants/{tenant}/tokens/{id}` | revoke (a credential's bearer tokens too) |
//! | `DELETE /v1/tenants/{tenant}/users/{user}` | the user leaves the tenant: all of the user's tokens there are revoked, and the user's portal sessions end |
//! | `POST /v1/portal/sessions` | a portal session for a tenant user; 201 with a single-use link (environment admin) |
//! | `DELETE /v1/portal/sessions/{id}` | end a portal session (environment admin) |
//! | `GET /v1/portal/me` | the portal session's user, rights and CSRF token (portal session) |
//! | `GET /portal/enter?code=` | opens a session's link: sets the session cookie, 303 to `/portal` (public) |
//! | `GET /portal` | the tenant portal page (public; the data needs the session) |
//! | `POST /portal/logout` | ends the portal session (portal session) |
//! | `POST /oauth/token` | client-credentials grant (public) |
//! | `POST /oauth/introspect` | RFC 7662 introspection for resource servers (scope `m2m:introspect`) |
//! | `GET /v1/revocations` | revocation events, server-sent (scope `m2m:introspect`) |
//! | `POST /v1/usage` | resource servers report token uses for `last_used_at` (scope `m2m:introspect`) |
//! | `GET /v1/audit?tenant=&limit=&offset=` | the audit log, newest first (environment admin; a tenant admin, its own tenant's) |
//! | `GET /v1/stats` | introspection, token endpoint and event-stream counters (admin) |
//! | `GET /metrics` | every metric of the process, Prometheus text format ([`METRICS_SCOPE`] or admin) |
//! | `GET /health` | 200, or 503 when the store does not answer (public) |
//! | `GET /openapi.json` | the OpenAPI 3.1 document of every route here ([`openapi`]; public) |
//!
//! # Example
//!
//! ```
//! use axum::body::Body;
//! use http::{Request, StatusCode};
//! use m2m_core::{MemoryStore, TokenStore};
//! use m2m_server::{AppState, ServiceOptions, app};
//! use std::sync::Arc;
//! use tower::ServiceExt as _;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
//! let state = AppState::new(store, ServiceOptions::default()).await.unwrap();
//! let admin_token = m2m_server::bootstrap_admin(&state).await.unwrap().unwrap();
//! let router = app(state.clone());
//!
//! let health = Request::get("/health").body(Body::empty()).unwrap();
//! assert_eq!(router.clone().oneshot(health).await.unwrap().status(), StatusCode::OK);
//!
//! // The admin API wants the admin token.
//! let anonymous = Request::get("/v1/settings").body(Body::empty()).unwrap();
//! assert_eq!(router.clone().oneshot(anonymous).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! let admin = Request::get("/v1/settings")
//!     .header("x-api-key", admin_token.token.expose_secret())
//!     .body(Body::empty())
//!     .unwrap();
//! assert_eq!(router.oneshot(admin).await.unwrap().status(), StatusCode::OK);
//!
//! // Only once: the admin tenant is no longer empty.
//! assert!(m2m_server::bootstrap_admin(&state).await.unwrap().is_none());
//! # });
//! ```

pub mod admin_page;
mod api;
mod audit;
mod caller;
pub mod cli;
pub mod client_address;
mod client_auth;
pub mod config;
pub mod introspect;
mod issue;
mod jwt;
mod limits;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod portal_page;
mod problem;
pub mod revocations;
pub mod rights;
mod serve;
mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use m2m_core::{Expiry, IssuedToken, NewToken, StoreError, TokenKind};
use m2m_tower::M2mAuthLayer;

pub use api::ADMIN_SCOPE;
pub use api::portal::MAX_GRANTABLE_SCOPES;
pub use api::sessions::{DEFAULT_SESSION_MINUTES, MAX_SESSION_MINUTES, PORTAL_LINK_MINUTES};
pub use api::tokens::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
pub use api::usage::{MAX_USAGE_BATCH, MAX_USAGE_BODY_BYTES};
pub use caller::{CSRF_HEADER, SESSION_COOKIE};
pub use client_address::TrustedProxies;
pub use introspect::INTROSPECT_SCOPE;
pub use issue::{
    IssueError, MAX_DESCRIPTION_CHARS, MAX_SCOPE_CHARS, MAX_SCOPES, MAX_TENANT_CHARS,
    MAX_USER_CHARS, TokenRequest, check_environment_scopes, check_scopes, check_tenant, check_user,
    expiry_from,
};
pub use jwt::{BearerFormat, JWKS_MAX_AGE, KEY_RELOAD, SIGNING_ALGORITHM};
pub use limits::{
    CLIENT_FAILURE_BURST, CLIENT_FAILURE_PERIOD, SOURCE_FAILURE_BURST, SOURCE_FAILURE_PERIOD,
};
pub use oauth::MAX_OAUTH_BODY_BYTES;
pub use problem::Problem;
pub use revocations::{BUFFERED_EVENTS, KEEP_ALIVE};
pub use rights::{ENVIRONMENT_SCOPES, METRICS_SCOPE, TENANT_ADMIN_SCOPE};
pub use serve::{DEFAULT_DATABASE_URL, DEFAULT_LISTEN, ServeConfig, ServeError, serve};
pub use state::{AppState, DEFAULT_BEARER_LIFETIME_MINUTES, DEFAULT_ISSUER, ServiceOptions};

/// The largest body of a request to the admin JSON API under `/v1`; a larger one is 413.
pub const MAX_ADMIN_BODY_BYTES: usize = 128 * 1024;

/// The tenant of the bootstrap admin token.
pub const ADMIN_TENANT: &str = "m2m";

/// The description of the bootstrap admin token.
pub const BOOTSTRAP_DESCRIPTION: &str = "bootstrap admin token";

/// The token service's routes over `state`.
pub fn app(state: AppState) -> Router {
    let admin = Router::new()
        .route(
            "/v1/settings",
            get(api::settings::get_environment).put(api::settings::put_environment),
        )
        .route(
            "/v1/settings/portal",
            get(api::portal::get).put(api::portal::put),
        )
        .route(
            "/v1/tenants/{tenant}/settings",
            get(api::settings::get_tenant)
                .put(api::settings::put_tenant)
                .delete(api::settings::delete_tenant),
        )
        .route(
            "/v1/tenants/{tenant}/tokens",
            post(api::tokens::create).get(api::tokens::list),
        )
        .route(
            "/v1/tenants/{tenant}/tokens/{id}",
            delete(api::tokens::revoke),
        )
        .route(
            "/v1/tenants/{tenant}/users/{user}",
            delete(api::users::remove),
        )
        .route("/v1/portal/sessions", post(api::sessions::create))
        .route("/v1/portal/sessions/{id}", delete(api::sessions::revoke))
        .route("/v1/portal/me", get(api::sessions::me))
        .route("/v1/audit", get(audit::list))
        .route("/v1/keys", get(jwt::list))
        .route("/v1/keys/rotate", post(jwt::rotate_route))
        .route("/portal/logout", post(api::sessions::logout))
        // Every route checks the caller's rights itself (see `rights`). Requests without a
        // credential header pass the layer, so that a portal session's cookie can count;
        // every handler still refuses them unless the cookie names a live session.
        .route_layer(M2mAuthLayer::new(state.admin_verifier().clone()).optional(true))
        .layer(DefaultBodyLimit::max(MAX_ADMIN_BODY_BYTES));
    Router::new()
        .merge(admin)
        .merge(introspect::routes(&state))
        .route(
            "/v1/usage",
            post(api::usage::record).layer(DefaultBodyLimit::max(api::usage::MAX_USAGE_BODY_BYTES)),
        )
        .route(
            "/oauth/token",
            post(oauth::token).layer(DefaultBodyLimit::max(oauth::MAX_OAUTH_BODY_BYTES)),
        )
        .route("/health", get(api::health))
        .route("/openapi.json", get(openapi::serve))
        .route("/.well-known/jwks.json", get(jwt::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(jwt::metadata),
        )
        .merge(admin_page::routes())
        .merge(portal_page::routes())
        .fallback(problem::route_not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .with_state(state)
}

/// The id of the bootstrap admin token: fixed, so that of two instances starting at once on
/// one empty database only one can store it (the other's insert conflicts, and it prints
/// nothing).
pub const BOOTSTRAP_TOKEN_ID: &str = "tok_bootstrap_admin";

/// Issues the bootstrap admin token (tenant [`ADMIN_TENANT`], scope [`ADMIN_SCOPE`], never
/// expires, id [`BOOTSTRAP_TOKEN_ID`]) when the admin tenant holds no token at all, revoked ones
/// included: on a fresh database, and never again after. Returns the token, whose secret the
/// caller shows once.
///
/// # Errors
///
/// [`StoreError`] when the store fails.
pub async fn bootstrap_admin(state: &AppState) -> Result<Option<IssuedToken>, StoreError> {
    if !state
        .store()
        .list_page(ADMIN_TENANT, 0, 1)
        .await?
        .is_empty()
    {
        return Ok(None);
    }
    let request = NewToken::new(TokenKind::AccessToken, ADMIN_TENANT, Expiry::Never)
        .scope(ADMIN_SCOPE)
        .description(BOOTSTRAP_DESCRIPTION);
    let mut issued = request.generate(state.format(), state.now());
    issued.record.id = m2m_core::TokenId::new(BOOTSTRAP_TOKEN_ID);
    match state.store().insert(issued.record.clone()).await {
        Ok(()) => Ok(Some(issued)),
        // Another instance bootstrapped the same database a moment ago.
        Err(StoreError::Conflict) => Ok(None),
        Err(error) => Err(error),
    }
}
