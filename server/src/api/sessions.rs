//! Portal sessions: `POST /v1/portal/sessions` and `DELETE /v1/portal/sessions/{id}` for the
//! vendor's backend (environment admins), `GET /v1/portal/me` and `POST /portal/logout` for the
//! portal page.
//!
//! Creating a session answers a single-use link that expires after
//! [`PORTAL_LINK_MINUTES`]; opening it ([`crate::portal_page`]) trades its one-time code for the
//! session cookie. The session lasts `lifetime_minutes` (default
//! [`DEFAULT_SESSION_MINUTES`], at most [`MAX_SESSION_MINUTES`]) unless revoked first, and
//! never sees another tenant than its own.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use m2m_core::{GrantableScope, PortalRole, PortalSecret, PortalSession, TokenStore, TokenType};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::rfc3339;
use crate::audit::{Source, record_call};
use crate::caller::{Caller, cleared_cookie_header, csrf_token};
use crate::issue::{
    MAX_USER_CHARS, check_environment_scopes, check_scopes, check_tenant, check_user,
};
use crate::openapi::schema::{GrantableScopeSchema, PortalRoleSchema, TokenTypeSchema};
use crate::problem::Problem;
use crate::rights::{TENANT_ADMIN_SCOPE, refuse, require_environment_admin};
use crate::state::AppState;

/// How long a session's link can be opened, in minutes.
pub const PORTAL_LINK_MINUTES: i64 = 5;
/// A session's lifetime when the request names none, in minutes.
pub const DEFAULT_SESSION_MINUTES: i64 = 60;
/// The longest session, in minutes.
pub const MAX_SESSION_MINUTES: i64 = 12 * 60;

/// The body of `POST /v1/portal/sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSession {
    /// The user's tenant (not the reserved one).
    pub(crate) tenant: String,
    /// The user, as the application knows it.
    pub(crate) user_id: String,
    /// The name the portal shows.
    pub(crate) display_name: String,
    #[schema(value_type = PortalRoleSchema)]
    pub(crate) role: PortalRole,
    /// Scopes the user holds and may grant, of those the environment declared grantable.
    #[serde(default)]
    pub(crate) permissions: Vec<String>,
    /// Default 60, at most 720.
    #[schema(minimum = 1, maximum = 720)]
    pub(crate) lifetime_minutes: Option<i64>,
}

/// A session as the API shows it: never a secret but the link, once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionView {
    /// The session id (`ps_…`).
    pub(crate) id: String,
    pub(crate) tenant: String,
    user_id: String,
    display_name: String,
    #[schema(value_type = PortalRoleSchema)]
    pub(crate) role: PortalRole,
    permissions: Vec<String>,
    created_at: String,
    expires_at: String,
}

impl From<&PortalSession> for SessionView {
    fn from(session: &PortalSession) -> Self {
        Self {
            id: session.id.clone(),
            tenant: session.tenant.clone(),
            user_id: session.user.clone(),
            display_name: session.display_name.clone(),
            role: session.role,
            permissions: session.permissions.clone(),
            created_at: rfc3339(session.created_at),
            expires_at: rfc3339(session.expires_at),
        }
    }
}

/// The answer to `POST /v1/portal/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedSession {
    #[serde(flatten)]
    pub(crate) session: SessionView,
    /// The single-use link to hand to the user.
    pub(crate) url: String,
    /// Until when the link can be opened.
    pub(crate) url_expires_at: String,
}

/// `POST /v1/portal/sessions` (environment admin): 201 with the single-use link.
#[utoipa::path(
    post,
    path = "/v1/portal/sessions",
    operation_id = "create_session",
    tag = "portal",
    summary = "A portal session for a tenant user, with its single-use link",
    security(("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"])),
    request_body = CreateSession,
    responses(
        (status = 201, description = "The session and its link (`url`), to hand to the user",
         body = CreatedSession, headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 415, description = "Not `application/json`"),
        (status = 422, description = "A value is not acceptable"),
    ),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    source: Source,
    headers: HeaderMap,
    body: Result<Json<CreateSession>, JsonRejection>,
) -> Result<Response, Problem> {
    require_environment_admin(&caller)?;
    let Json(body) = body?;
    let base = public_base(&state, &headers)?;
    let created = start(state.store().as_ref(), state.now(), body, &base).await?;
    let (tenant, id) = (&created.session.tenant, &created.session.id);
    let action = "portal_session.create";
    record_call(&state, &caller, source, action, Some(tenant), Some(id)).await;
    tracing::info!(
        session_id = %created.session.id,
        tenant = %created.session.tenant,
        role = created.session.role.name(),
        by = caller.id(),
        "portal session created"
    );
    let mut response = (StatusCode::CREATED, Json(created)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Checks a request for a session, stores the session and returns it with its single-use
/// link under `base`; shared by the REST API and the CLI.
pub(crate) async fn start(
    store: &dyn TokenStore,
    now: OffsetDateTime,
    body: CreateSession,
    base: &str,
) -> Result<CreatedSession, Problem> {
    check_tenant(&body.tenant).map_err(Problem::invalid)?;
    if body.tenant == crate::ADMIN_TENANT {
        return Err(Problem::invalid(format!(
            "the tenant {} is the environment's own: its tokens are managed with admin tokens, \
             not portal sessions",
            crate::ADMIN_TENANT
        )));
    }
    check_user(&body.user_id).map_err(Problem::invalid)?;
    let name_chars = body.display_name.chars().count();
    if name_chars == 0
        || name_chars > MAX_USER_CHARS
        || body.display_name.chars().any(char::is_control)
    {
        return Err(Problem::invalid(format!(
            "invalid display_name: use 1 to {MAX_USER_CHARS} characters without control \
             characters"
        )));
    }
    let permissions = check_scopes(body.permissions).map_err(Problem::invalid)?;
    check_environment_scopes(&body.tenant, &permissions).map_err(Problem::invalid)?;
    if permissions.iter().any(|p| p == TENANT_ADMIN_SCOPE) {
        return Err(Problem::invalid(format!(
            "{TENANT_ADMIN_SCOPE} is given by the role admin, not as a permission"
        )));
    }
    let minutes = body.lifetime_minutes.unwrap_or(DEFAULT_SESSION_MINUTES);
    if !(1..=MAX_SESSION_MINUTES).contains(&minutes) {
        return Err(Problem::invalid(format!(
            "invalid lifetime_minutes {minutes}: expected 1 to {MAX_SESSION_MINUTES}"
        )));
    }
    let mut session = PortalSession::new(
        body.tenant,
        body.user_id,
        body.display_name,
        body.role,
        now,
        time::Duration::minutes(minutes),
    );
    session.permissions = permissions;
    let code = PortalSecret::generate();
    let link_expires_at = now + time::Duration::minutes(PORTAL_LINK_MINUTES.min(minutes));
    store
        .insert_portal_session(&session, &code.digest(), link_expires_at)
        .await?;
    Ok(CreatedSession {
        session: SessionView::from(&session),
        url: format!("{base}/portal/enter?code={}", code.expose_secret()),
        url_expires_at: rfc3339(link_expires_at),
    })
}

/// Where users reach the service: the configured public URL, else `http://` and the `Host` of
/// the request.
fn public_base(state: &AppState, headers: &HeaderMap) -> Result<String, Problem> {
    if let Some(url) = &state.options().public_url {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        })
        .ok_or_else(|| {
            Problem::bad_request(
                "the request has no usable Host header to build the portal link from: start \
                 the service with --public-url",
            )
        })?;
    Ok(format!("http://{host}"))
}

/// `DELETE /v1/portal/sessions/{id}` (environment admin): 204, or 404 when no live session has
/// the id.
#[utoipa::path(
    delete,
    path = "/v1/portal/sessions/{id}",
    operation_id = "revoke_session",
    tag = "portal",
    summary = "End a portal session at once",
    params(("id" = String, Path, description = "The session id (`ps_…`)")),
    security(("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"])),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "No live session has this id"),
    ),
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    source: Source,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, Problem> {
    require_environment_admin(&caller)?;
    let Path(id) = path?;
    if !state
        .store()
        .revoke_portal_session(&id, state.now())
        .await?
    {
        return Err(Problem::not_found(format!(
            "no live portal session has the id {id}"
        )));
    }
    record_call(
        &state,
        &caller,
        source,
        "portal_session.revoke",
        None,
        Some(&id),
    )
    .await;
    tracing::info!(session_id = %id, by = caller.id(), "portal session revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// What the portal page needs to know about its user.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Me {
    #[serde(flatten)]
    session: SessionView,
    /// Sent back in `X-CSRF-Token` on every request that changes something.
    csrf_token: String,
    /// The token type the tenant's users generate; `None` when both are allowed.
    #[schema(value_type = Option<TokenTypeSchema>)]
    token_type: Option<TokenType>,
    api_tokens_visible: bool,
    personal_tokens_visible: bool,
    /// The scopes this user may put on a token.
    #[schema(value_type = Vec<GrantableScopeSchema>)]
    grantable: Vec<GrantableScope>,
    /// Whether the user creates and revokes the tenant's API tokens.
    may_manage_api_tokens: bool,
}

/// `GET /v1/portal/me` (portal sessions only).
#[utoipa::path(
    get,
    path = "/v1/portal/me",
    operation_id = "portal_me",
    tag = "portal",
    summary = "The portal session's user, rights, sections and CSRF token",
    security(("portal_session" = [])),
    responses((status = 200, description = "The session's profile", body = Me,
               headers(("Cache-Control" = String, description = "`no-store`")))),
)]
pub(crate) async fn me(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let Some(session) = caller.session() else {
        return Err(refuse(
            &caller,
            "not_a_portal_session",
            "only a portal session has a portal profile",
        ));
    };
    let secret = crate::caller::presented_secret(&headers)?;
    let portal = state.store().load_portal_settings().await?;
    let settings = state.reload_settings().await?;
    let admin = session.role == PortalRole::Admin;
    let mut grantable: Vec<GrantableScope> = Vec::new();
    if admin {
        grantable.push(GrantableScope::new(
            TENANT_ADMIN_SCOPE,
            "Manage this tenant's API tokens",
        ));
    }
    grantable.extend(
        portal
            .grantable_scopes
            .iter()
            .filter(|scope| caller.holds(&scope.name))
            .cloned(),
    );
    let me = Me {
        session: SessionView::from(session),
        csrf_token: csrf_token(&secret),
        token_type: settings.token_type_for(&session.tenant),
        api_tokens_visible: portal.api_tokens_visible,
        personal_tokens_visible: portal.personal_tokens_visible,
        grantable,
        may_manage_api_tokens: admin && portal.api_tokens_visible,
    };
    let mut response = Json(me).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /portal/logout` (portal sessions, with the CSRF token): ends the session and removes
/// the cookie; 204.
#[utoipa::path(
    post,
    path = "/portal/logout",
    operation_id = "portal_logout",
    tag = "portal",
    summary = "Sign out of the portal: ends the session",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    security(("portal_session" = [])),
    responses((status = 204, description = "Ended; the cookie is removed",
               headers(("Set-Cookie" = String, description = "The session cookie, expired")))),
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    source: Source,
) -> Result<Response, Problem> {
    let Some(session) = caller.session() else {
        return Err(refuse(
            &caller,
            "not_a_portal_session",
            "only a portal session can sign out",
        ));
    };
    state
        .store()
        .revoke_portal_session(&session.id, state.now())
        .await?;
    let (tenant, id) = (&session.tenant, &session.id);
    let action = "portal_session.revoke";
    record_call(&state, &caller, source, action, Some(tenant), Some(id)).await;
    tracing::info!(session_id = %session.id, tenant = %session.tenant, "portal session ended by its user");
    let cookie = cleared_cookie_header(state.is_https());
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}
