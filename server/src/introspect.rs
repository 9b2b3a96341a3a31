//! `POST /oauth/introspect`: token introspection (RFC 7662) for resource servers, the way
//! `m2m-remote` asks it; `GET /v1/stats`, the admin's view of how it is used; and
//! `GET /metrics` ([`metrics`](crate::metrics)), the same numbers and the verifiers' for a
//! Prometheus scraper.
//!
//! A resource server does not hold tokens: on a cache miss it sends the presented token here
//! and learns whether it is active and whose it is. The endpoint therefore answers only
//! callers that prove to be resource servers, and never more than `{"active": false}` about a
//! token that cannot be used.
//!
//! - **Caller authentication**: the resource server's own credential, carrying the scope
//!   [`INTROSPECT_SCOPE`]: an access token in `X-API-KEY`, a client-credentials bearer token in
//!   `Authorization: Bearer`, or HTTP Basic with a client id and secret (each part
//!   form-urlencoded, RFC 6749 §2.3.1). A missing, unknown, revoked or expired credential is
//!   401, a credential without the scope 403, a repeated `Authorization` header 400, all
//!   `application/problem+json`. HTTP Basic is read by one parser and the client secret checked
//!   by the core's [`Verifier::check_client`], as at the token endpoint.
//! - **Request**: `application/x-www-form-urlencoded`, `token` (required) and
//!   `token_type_hint` (optional, ignored: the token's own type code decides).
//! - **Decision**: the core's [`Verifier::check_token`] on a verifier that follows the tenant
//!   policy: format and checksum first, then the cache, the store only on a miss and once per
//!   token however many introspections miss together, then expiry and the token-type policy.
//!   The verifier is subscribed to the store's revocations like any other, so a revoked
//!   token's cached entry is evicted at once.
//! - **Answer**: 200 JSON with `Cache-Control: no-store`, an
//!   [`IntrospectionAnswer`]. An active access token or
//!   bearer token gets `active, jti, kind ("access_token" | "bearer_token"), tenant_id, sub,
//!   client_id, scope, exp, iat` (`sub`, `client_id` and `exp` only when the token has them);
//!   RFC 7662's optional `token_type` is not sent (`kind` names the token's format; see
//!   [`m2m_core::wire`]). An unknown, revoked, expired or malformed token, a client id or
//!   secret, or a token whose type is disabled for its tenant gets only `{"active": false}`.
//! - **Logs**: every inactive answer and every refused caller is one debug event with its
//!   reason and the caller's token id (or client id); never a token.
//! - **No throttling per caller**: a resource server introspects what its own clients present,
//!   so forged or unknown tokens (anyone can make one that passes the format check) are
//!   answered `{"active": false}` and never make the endpoint refuse the caller's valid tokens.
//!   What keeps them cheap is the verifier: a forged token costs one lookup by digest on an
//!   index, its inactive answer is cached, and concurrent misses of one token make one lookup.
//! - A store that cannot answer is 503 with `Retry-After`, which the remote store treats as a
//!   store failure, never as an inactive token.

use std::sync::Arc;

use axum::Form;
use axum::Json;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderValue};
use m2m_core::wire::IntrospectionAnswer;
use m2m_core::{Clock, TokenCheckError, Verifier};
use m2m_tower::{Authenticated, M2mAuthLayer};
use time::OffsetDateTime;

pub use crate::client_auth::INTROSPECT_SCOPE;
use crate::client_auth::authenticate_resource_server;
use crate::metrics::{FeedPublished, Introspected};
use crate::problem::Problem;
use crate::revocations::RevocationFeed;
use crate::state::AppState;

/// The state of the introspection routes: the service's state, the verifier that decides
/// introspected tokens and the revocation feed. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Introspection {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    app: AppState,
    /// Follows the tenant policy, unlike the admin verifier that authenticates callers.
    verifier: Verifier,
    feed: RevocationFeed,
    /// What of the feed's numbers `GET /metrics` handed over.
    feed_published: FeedPublished,
}

/// The service's clock, for the introspection verifier.
#[derive(Debug)]
struct ServiceClock(AppState);

impl Clock for ServiceClock {
    fn now(&self) -> OffsetDateTime {
        self.0.now()
    }
}

impl Introspection {
    fn new(app: AppState) -> Self {
        let feed = RevocationFeed::new(app.store().as_ref());
        let verifier = Verifier::builder(Arc::clone(app.store()))
            .policy(app.tenant_policy().clone())
            .format(app.format().clone())
            .clock(ServiceClock(app.clone()))
            .build();
        Self {
            inner: Arc::new(Inner {
                app,
                verifier,
                feed,
                feed_published: FeedPublished::default(),
            }),
        }
    }

    pub(crate) fn app(&self) -> &AppState {
        &self.inner.app
    }

    pub(crate) fn feed(&self) -> &RevocationFeed {
        &self.inner.feed
    }

    /// Hands the service's counters and the feed's numbers to the `metrics` recorder.
    pub(crate) fn publish_metrics(&self) {
        self.app().service_metrics().publish();
        let feed = self.feed();
        self.inner
            .feed_published
            .publish(feed.open_streams(), feed.events_sent());
    }
}

/// The introspection routes, `GET /v1/stats` (admin only) and `GET /metrics` (admin or
/// scraper) over `app`; subscribes to the store's revocations for `GET /v1/revocations`, and
/// installs the process's Prometheus recorder.
pub(crate) fn routes<S>(app: &AppState) -> Router<S> {
    crate::metrics::prometheus();
    let state = Introspection::new(app.clone());
    let stats = Router::new()
        .route("/v1/stats", get(stats))
        .route("/metrics", get(crate::metrics::scrape))
        .route_layer(M2mAuthLayer::new(app.admin_verifier().clone()));
    Router::new()
        .route(
            "/oauth/introspect",
            post(introspect).layer(DefaultBodyLimit::max(crate::oauth::MAX_OAUTH_BODY_BYTES)),
        )
        .route("/v1/revocations", get(crate::revocations::stream))
        .merge(stats)
        .with_state(state)
}

/// `GET /v1/stats`: counters of this service since it started, the numbers `GET /metrics`
/// publishes.
#[utoipa::path(
    get,
    path = "/v1/stats",
    operation_id = "stats",
    tag = "resource servers",
    summary = "Introspection and event-stream counters of this process",
    security(("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"])),
    responses((status = 200, description = "The counters", body = crate::openapi::schema::StatsSchema)),
)]
async fn stats(
    State(state): State<Introspection>,
    Authenticated(caller): Authenticated,
) -> Response {
    if let Err(refused) =
        crate::rights::require_environment_admin(&crate::caller::Caller::Token(caller))
    {
        return refused.into_response();
    }
    let counts = state.app().service_metrics();
    let (token_grants, token_refusals) = counts.token_requests();
    let response = Json(serde_json::json!({
        "introspections": counts.introspections(),
        "active": counts.introspections_with(Introspected::Active),
        "inactive": counts.introspections_with(Introspected::Inactive),
        "refused_callers": counts.introspections_with(Introspected::RefusedCaller),
        "token_grants": token_grants,
        "token_refusals": token_refusals,
        "event_streams": state.feed().open_streams(),
        "revocation_events": state.feed().events_sent(),
    }))
    .into_response();
    no_store(response)
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /oauth/introspect`.
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    operation_id = "introspect",
    tag = "resource servers",
    summary = "RFC 7662 introspection: whether a token is active, and whose it is",
    security(
        ("api_key" = ["m2m:introspect"]), ("client_credentials" = ["m2m:introspect"]),
        ("basic" = []),
    ),
    request_body(content = crate::openapi::schema::IntrospectionRequestSchema,
                 content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The answer; `{\"active\": false}` alone for a token that \
                                      cannot be used",
         body = crate::openapi::schema::IntrospectionAnswerSchema),
        (status = 400, description = "Not exactly one `token` field, or malformed credentials \
                                      (`invalid_request`)"),
        (status = 413, description = "Larger than 8 KiB"),
    ),
)]
async fn introspect(
    State(state): State<Introspection>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let counts = state.app().service_metrics();
    let caller = match authenticate_resource_server(state.app().admin_verifier(), &headers).await {
        Ok(caller) => caller,
        Err(response) => {
            counts.introspected(Introspected::RefusedCaller);
            return response;
        }
    };
    let Form(pairs) = match form {
        Ok(form) => form,
        Err(rejection) => {
            counts.introspected(Introspected::InvalidRequest);
            return Problem::from(rejection).into_response();
        }
    };
    let mut tokens = pairs.iter().filter(|(name, _)| name == "token");
    let (Some((_, token)), None) = (tokens.next(), tokens.next()) else {
        counts.introspected(Introspected::InvalidRequest);
        return Problem::bad_request("expected exactly one `token` form field").into_response();
    };
    let answer = match state.inner.verifier.check_token(token).await {
        Ok(principal) => {
            counts.introspected(Introspected::Active);
            IntrospectionAnswer::active(&principal)
        }
        Err(TokenCheckError::StoreUnavailable { retry_after }) => {
            counts.introspected(Introspected::StoreUnavailable);
            tracing::warn!(caller = %caller, "introspection: the token store is unavailable");
            return Problem::store_unavailable(retry_after).into_response();
        }
        Err(refused) => {
            let reason = match refused {
                TokenCheckError::Inactive(reason) => reason.as_str(),
                _ => "inactive",
            };
            tracing::debug!(caller = %caller, reason, "introspection: token inactive");
            counts.introspected(Introspected::Inactive);
            IntrospectionAnswer::inactive()
        }
    };
    no_store(Json(answer).into_response())
}
