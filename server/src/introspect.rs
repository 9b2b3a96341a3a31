//! `POST /oauth/introspect`: token introspection (RFC 7662) for resource servers, the way
//! `m2m-remote` asks it, and `GET /v1/stats`, the admin's view of how it is used.
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
//!   401, a credential without the scope 403, both `application/problem+json`.
//! - **Request**: `application/x-www-form-urlencoded`, `token` (required) and
//!   `token_type_hint` (optional, ignored: the token's own type code decides).
//! - **Answer**: 200 JSON with `Cache-Control: no-store`. An active access token or bearer
//!   token gets `active, jti, token_type ("access_token" | "bearer"), tenant_id, sub,
//!   client_id, scope, exp, iat` (`sub`, `client_id` and `exp` only when the token has them);
//!   an unknown, revoked, expired or malformed token, a client id or secret, or a token whose
//!   type is disabled for its tenant gets only `{"active": false}`.
//! - **Throttling**: a caller that receives more than [`MAX_INACTIVE_PER_MINUTE`] inactive
//!   answers within one minute is answered 429 with `Retry-After` until that minute is over,
//!   whatever it asks, so the endpoint cannot be used to test guessed or stolen tokens at
//!   volume. The count is per caller credential (its token id), in this process.
//! - A store that cannot answer is 503 with `Retry-After`, which the remote store treats as a
//!   store failure, never as an inactive token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Form;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{AUTHORIZATION, CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use m2m_core::{StoreError, TokenDigest, TokenId, TokenKind, TokenRecord};
use m2m_tower::M2mAuthLayer;
use serde::Serialize;
use time::OffsetDateTime;

use crate::problem::Problem;
use crate::revocations::RevocationFeed;
use crate::state::AppState;

/// The scope a resource server's credential needs to introspect and to follow revocations.
pub const INTROSPECT_SCOPE: &str = "m2m:introspect";

/// Inactive answers one caller may receive per minute before it is answered 429.
pub const MAX_INACTIVE_PER_MINUTE: u32 = 30;

/// The throttling window.
const WINDOW: Duration = Duration::from_secs(60);

/// Callers remembered before windows that are over are dropped.
const MAX_REMEMBERED_CALLERS: usize = 10_000;

/// The state of the introspection routes: the service's state, the throttle, the counters and
/// the revocation feed. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Introspection {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    app: AppState,
    throttle: Throttle,
    counts: Counts,
    feed: RevocationFeed,
}

impl Introspection {
    fn new(app: AppState) -> Self {
        let feed = RevocationFeed::new(app.store().as_ref());
        Self {
            inner: Arc::new(Inner {
                app,
                throttle: Throttle::default(),
                counts: Counts::default(),
                feed,
            }),
        }
    }

    pub(crate) fn app(&self) -> &AppState {
        &self.inner.app
    }

    pub(crate) fn feed(&self) -> &RevocationFeed {
        &self.inner.feed
    }
}

/// What `GET /v1/stats` reports.
#[derive(Debug, Default)]
struct Counts {
    introspections: AtomicU64,
    active: AtomicU64,
    inactive: AtomicU64,
    throttled: AtomicU64,
    refused_callers: AtomicU64,
}

/// Inactive answers per caller in the current window.
#[derive(Debug, Default)]
struct Throttle {
    callers: Mutex<HashMap<TokenId, Window>>,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    inactive: u32,
}

impl Throttle {
    /// How long `caller` must wait, if it is over the limit.
    fn wait(&self, caller: &TokenId, now: Instant) -> Option<Duration> {
        let callers = self.callers.lock().unwrap_or_else(PoisonError::into_inner);
        let window = callers.get(caller)?;
        let left = WINDOW.checked_sub(now.duration_since(window.started))?;
        (window.inactive >= MAX_INACTIVE_PER_MINUTE && !left.is_zero()).then_some(left)
    }

    /// Notes one inactive answer to `caller`.
    fn note_inactive(&self, caller: &TokenId, now: Instant) {
        let mut callers = self.callers.lock().unwrap_or_else(PoisonError::into_inner);
        if callers.len() >= MAX_REMEMBERED_CALLERS {
            callers.retain(|_, window| now.duration_since(window.started) < WINDOW);
        }
        let window = callers.entry(caller.clone()).or_insert(Window {
            started: now,
            inactive: 0,
        });
        if now.duration_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                inactive: 0,
            };
        }
        window.inactive = window.inactive.saturating_add(1);
    }
}

/// The introspection routes and `GET /v1/stats` (admin only) over `app`; subscribes to the
/// store's revocations for `GET /v1/revocations`.
pub(crate) fn routes<S>(app: &AppState) -> Router<S> {
    let state = Introspection::new(app.clone());
    let stats = Router::new().route("/v1/stats", get(stats)).route_layer(
        M2mAuthLayer::new(app.admin_verifier().clone()).require_scopes([crate::ADMIN_SCOPE]),
    );
    Router::new()
        .route("/oauth/introspect", post(introspect))
        .route("/v1/revocations", get(crate::revocations::stream))
        .merge(stats)
        .with_state(state)
}

/// `GET /v1/stats`: counters of this process since it started.
async fn stats(State(state): State<Introspection>) -> Response {
    let counts = &state.inner.counts;
    let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let mut response = Json(serde_json::json!({
        "introspections": read(&counts.introspections),
        "active": read(&counts.active),
        "inactive": read(&counts.inactive),
        "throttled": read(&counts.throttled),
        "refused_callers": read(&counts.refused_callers),
        "event_streams": state.feed().open_streams(),
        "revocation_events": state.feed().events_sent(),
    }))
    .into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The introspection answer (RFC 7662 §2.2).
#[derive(Debug, Serialize)]
struct Answer {
    active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    token: Option<ActiveToken>,
}

/// What is said about an active token.
#[derive(Debug, Serialize)]
struct ActiveToken {
    jti: String,
    token_type: &'static str,
    tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    iat: i64,
}

impl ActiveToken {
    fn new(record: TokenRecord) -> Self {
        Self {
            jti: record.id.to_string(),
            token_type: match record.kind {
                TokenKind::BearerToken => "bearer",
                _ => "access_token",
            },
            tenant_id: record.tenant,
            sub: record.user,
            client_id: record.client_id,
            scope: record.scopes.join(" "),
            exp: record.expires_at.map(OffsetDateTime::unix_timestamp),
            iat: record.created_at.unix_timestamp(),
        }
    }
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /oauth/introspect`.
async fn introspect(
    State(state): State<Introspection>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let counts = &state.inner.counts;
    counts.introspections.fetch_add(1, Ordering::Relaxed);
    let caller = match authenticate(state.app(), &headers).await {
        Ok(caller) => caller,
        Err(response) => {
            counts.refused_callers.fetch_add(1, Ordering::Relaxed);
            return response;
        }
    };
    if let Some(wait) = state.inner.throttle.wait(&caller, Instant::now()) {
        counts.throttled.fetch_add(1, Ordering::Relaxed);
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many inactive tokens introspected; wait before asking again",
        )
        .into_response();
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        return response;
    }
    let Form(pairs) = match form {
        Ok(form) => form,
        Err(rejection) => return Problem::from(rejection).into_response(),
    };
    let mut tokens = pairs.iter().filter(|(name, _)| name == "token");
    let (Some((_, token)), None) = (tokens.next(), tokens.next()) else {
        return Problem::bad_request("expected exactly one `token` form field").into_response();
    };
    let found = match active_record(state.app(), token).await {
        Ok(found) => found,
        Err(error) => return Problem::from(error).into_response(),
    };
    let answer = match found {
        Some(record) => {
            counts.active.fetch_add(1, Ordering::Relaxed);
            Answer {
                active: true,
                token: Some(ActiveToken::new(record)),
            }
        }
        None => {
            counts.inactive.fetch_add(1, Ordering::Relaxed);
            state.inner.throttle.note_inactive(&caller, Instant::now());
            Answer {
                active: false,
                token: None,
            }
        }
    };
    no_store(Json(answer).into_response())
}

/// The record of `token` when it is an access or bearer token that may be used now.
async fn active_record(app: &AppState, token: &str) -> Result<Option<TokenRecord>, StoreError> {
    let Ok(parsed) = app.format().parse(token) else {
        return Ok(None);
    };
    if !matches!(
        parsed.kind(),
        TokenKind::AccessToken | TokenKind::BearerToken
    ) {
        return Ok(None);
    }
    let Some(record) = app.store().find(&parsed.digest()).await? else {
        return Ok(None);
    };
    let usable = record.kind == parsed.kind()
        && record.is_active(app.now())
        && app
            .tenant_policy()
            .is_enabled(&record.tenant, record.token_type());
    Ok(usable.then_some(record))
}

/// The token id of the caller's credential, when it proves a resource server: an access or
/// bearer token through the admin verifier (both types enabled, cached), or a client id and
/// secret by HTTP Basic; the credential must carry [`INTROSPECT_SCOPE`].
pub(crate) async fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<TokenId, Response> {
    if let Some(basic) = basic_credentials(headers) {
        let Some((client_id, secret)) = basic else {
            return Err(refused_client());
        };
        return authenticate_client(app, &client_id, &secret).await;
    }
    match app
        .admin_verifier()
        .verify(headers, &[INTROSPECT_SCOPE])
        .await
    {
        Ok(principal) => Ok(principal.token_id().clone()),
        Err(rejection) => Err(rejection.into_response::<Body>()),
    }
}

async fn authenticate_client(
    app: &AppState,
    client_id: &str,
    secret: &str,
) -> Result<TokenId, Response> {
    let credential = app
        .store()
        .find_client(client_id)
        .await
        .map_err(|error| Problem::from(error).into_response())?
        .filter(|record| {
            record.kind == TokenKind::ClientSecret
                && record.digest == TokenDigest::of(secret)
                && record.is_active(app.now())
        })
        .ok_or_else(refused_client)?;
    if !credential.scopes.iter().any(|s| s == INTROSPECT_SCOPE) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "the client credential lacks the scope m2m:introspect",
        )
        .into_response());
    }
    Ok(credential.id)
}

fn refused_client() -> Response {
    let mut response =
        Problem::new(StatusCode::UNAUTHORIZED, "client authentication failed").into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"m2m\""),
    );
    response
}

/// `None` when the request does not use HTTP Basic; `Some(None)` when it does but the header
/// cannot be read; otherwise the client id and secret, each form-decoded.
fn basic_credentials(headers: &HeaderMap) -> Option<Option<(String, String)>> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    let text = value.to_str().ok();
    let (scheme, encoded) = text.map_or(("", ""), |t| t.split_once(' ').unwrap_or((t, "")));
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    if values.next().is_some() || headers.contains_key("x-api-key") {
        return Some(None);
    }
    let pair = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|decoded| String::from_utf8(decoded).ok());
    Some(pair.and_then(|pair| {
        let (id, secret) = pair.split_once(':')?;
        Some((
            crate::oauth::form_decode(id)?,
            crate::oauth::form_decode(secret)?,
        ))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_counts_per_caller_and_forgets_after_the_window() {
        let throttle = Throttle::default();
        let (a, b) = (TokenId::new("tok_a"), TokenId::new("tok_b"));
        let start = Instant::now();
        for _ in 0..MAX_INACTIVE_PER_MINUTE {
            assert_eq!(throttle.wait(&a, start), None);
            throttle.note_inactive(&a, start);
        }
        let wait = throttle.wait(&a, start + Duration::from_secs(10)).unwrap();
        assert_eq!(wait, Duration::from_secs(50));
        assert_eq!(throttle.wait(&b, start), None);
        assert_eq!(throttle.wait(&a, start + WINDOW), None);
        throttle.note_inactive(&a, start + WINDOW);
        assert_eq!(throttle.wait(&a, start + WINDOW), None);
    }

    #[test]
    fn basic_header_shapes() {
        let headers = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            headers
        };
        assert_eq!(basic_credentials(&HeaderMap::new()), None);
        assert_eq!(basic_credentials(&headers("Bearer abc")), None);
        // base64("id:s%3Acret")
        assert_eq!(
            basic_credentials(&headers("basic aWQ6cyUzQWNyZXQ=")),
            Some(Some(("id".to_owned(), "s:cret".to_owned())))
        );
        assert_eq!(basic_credentials(&headers("Basic !!!")), Some(None));
    }
}
