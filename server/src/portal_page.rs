//! The tenant portal: `GET /portal` and its script, and `GET /portal/enter`, where a session's
//! single-use link is opened.
//!
//! Opening the link spends its one-time code, sets the session cookie (`HttpOnly`,
//! `SameSite=Strict`, `Secure` when the service's public URL is https, lasting as long as the
//! session) and redirects to `/portal`, so the code leaves the address bar at once. A link
//! opened a second time, too late, or after its session was revoked is refused with 401.
//! The page holds no data of its own: it reads and changes everything through the REST API
//! with the cookie, and sends the session's CSRF token with every change.
//!
//! | route | content |
//! |---|---|
//! | `GET /portal/enter?code=…` | 303 to `/portal` with the session cookie, or 401 |
//! | `GET /portal` | the page (`text/html`) |
//! | `GET /portal/assets/portal.js` | its script (the style sheet is the admin page's) |

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{CACHE_CONTROL, LOCATION, REFERRER_POLICY, SET_COOKIE};
use http::{HeaderValue, StatusCode};
use m2m_core::PortalSecret;
use serde::Deserialize;

use crate::admin_page::asset;
use crate::caller::session_cookie_header;
use crate::problem::Problem;
use crate::state::AppState;

/// The page's HTML.
const PORTAL_HTML: &str = include_str!("../assets/portal.html");
/// The page's script.
const PORTAL_JS: &str = include_str!("../assets/portal.js");

/// The longest one-time code looked up; codes are 40 characters.
const MAX_CODE_CHARS: usize = 64;

/// The portal's public routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal", get(page))
        .route("/portal/assets/portal.js", get(script))
        .route("/portal/enter", get(enter))
}

#[utoipa::path(
    get,
    path = "/portal",
    operation_id = "portal_page",
    tag = "portal",
    summary = "The tenant portal page",
    responses((status = 200, description = "The tenant portal page", content_type = "text/html; charset=utf-8", body = String)),
)]
async fn page() -> Response {
    asset("text/html; charset=utf-8", PORTAL_HTML)
}

#[utoipa::path(
    get,
    path = "/portal/assets/portal.js",
    operation_id = "portal_script",
    tag = "portal",
    summary = "The portal's script",
    responses((status = 200, description = "The portal's script", content_type = "text/javascript; charset=utf-8", body = String)),
)]
async fn script() -> Response {
    asset("text/javascript; charset=utf-8", PORTAL_JS)
}

/// The query of `GET /portal/enter`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Enter {
    /// The one-time code of the session's link.
    code: String,
}

/// `GET /portal/enter?code=…`: spends the code and starts the session.
#[utoipa::path(
    get,
    path = "/portal/enter",
    operation_id = "portal_enter",
    tag = "portal",
    summary = "Open a portal session's single-use link",
    params(Enter),
    responses(
        (status = 303, description = "The session started: to `/portal`, with the cookie",
         headers(("Location" = String, description = "`/portal`"),
                 ("Set-Cookie" = String, description = "The session cookie: `HttpOnly`, \
                                                        `SameSite=Strict`, `Secure` over https"))),
        (status = 400, description = "No `code`"),
        (status = 401, description = "The link was used already, has expired or was revoked"),
        (status = 503, description = "The token store cannot answer",
         headers(("Retry-After" = String, description = "Seconds to wait"))),
    ),
)]
async fn enter(
    State(state): State<AppState>,
    query: Result<Query<Enter>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(Enter { code }) = query?;
    let refused = || {
        tracing::debug!(reason = "portal_link_refused", "portal link refused");
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "this portal link was used already, has expired or was revoked: ask for a new one",
        )
    };
    if code.len() > MAX_CODE_CHARS || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(refused());
    }
    let code = PortalSecret::from_presented(code);
    let secret = PortalSecret::generate();
    let now = state.now();
    let session = state
        .store()
        .redeem_portal_code(&code.digest(), &secret.digest(), now)
        .await?
        .ok_or_else(refused)?;
    tracing::info!(
        session_id = %session.id,
        tenant = %session.tenant,
        "portal link opened"
    );
    let max_age = (session.expires_at - now).whole_seconds();
    let cookie = session_cookie_header(&secret, max_age, state.is_https());
    let cookie = HeaderValue::from_str(&cookie)
        .map_err(|_| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the session cookie"))?;
    let headers = [
        (LOCATION, HeaderValue::from_static("/portal")),
        (SET_COOKIE, cookie),
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ];
    Ok((StatusCode::SEE_OTHER, headers).into_response())
}
