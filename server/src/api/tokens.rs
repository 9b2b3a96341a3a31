//! `POST`/`GET /v1/tenants/{tenant}/tokens` and `DELETE /v1/tenants/{tenant}/tokens/{id}`:
//! issue, list and revoke a tenant's tokens.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use m2m_core::{PageCursor, RateLimit, TokenId, TokenKind, TokenType};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{TokenView, tenant_from};
use crate::audit::{Source, record_call};
use crate::caller::Caller;
use crate::issue::{IssueError, TokenRequest, check_tenant, check_user, expiry_from};
use crate::openapi::schema::{RateLimitSchema, TokenTypeSchema};
use crate::problem::Problem;
use crate::rights::{
    check_grant, refuse, require_section, require_tenant_admin, require_tenant_user,
};
use crate::state::AppState;

/// Page size when `limit` is absent.
pub const DEFAULT_PAGE_LIMIT: u64 = 50;
/// Largest page.
pub const MAX_PAGE_LIMIT: u64 = 200;

/// The body of `POST /v1/tenants/{tenant}/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    /// For people; at most 256 characters.
    #[serde(default)]
    description: String,
    /// `never`, `1d`, `7d`, `30d`, `90d` or `365d`; or give `expires_in_minutes`.
    #[schema(example = "30d")]
    expires: Option<String>,
    /// The lifetime in minutes, instead of `expires`.
    #[schema(minimum = 1)]
    expires_in_minutes: Option<i64>,
    /// The scopes the token carries; the caller grants only what it may.
    #[serde(default)]
    scopes: Vec<String>,
    /// Makes it a personal token of this user.
    user_id: Option<String>,
    /// The token's rate limit; none when absent.
    #[schema(value_type = Option<RateLimitSchema>)]
    rate_limit: Option<RateLimit>,
    /// The type to issue; the tenant's enabled type when absent.
    #[serde(rename = "type")]
    #[schema(value_type = Option<TokenTypeSchema>)]
    token_type: Option<String>,
}

/// A token just issued: the listing's view and its secret, shown this once.
// It holds the secret, so it has no `Debug`.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedToken {
    #[serde(flatten)]
    view: TokenView,
    /// The access token or bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    /// A client credential's secret (the id is `client_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

impl From<IssueError> for Problem {
    fn from(error: IssueError) -> Self {
        match error {
            IssueError::Invalid(detail) => Problem::invalid(detail),
            not_enabled @ IssueError::TypeNotEnabled { .. } => {
                Problem::conflict(not_enabled.to_string())
            }
            IssueError::Store(error) => error.into(),
        }
    }
}

/// `POST /v1/tenants/{tenant}/tokens`: 201 with the secret, shown this once.
///
/// A tenant admin issues the tenant's API tokens and personal tokens; a portal session issues
/// personal tokens for its own user only.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/tokens",
    operation_id = "create_token",
    tag = "tokens",
    summary = "Issue a token; the answer shows its secret once",
    params(("tenant" = String, Path, description = "The tenant")),
    security(
        ("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"]),
        ("api_key" = ["m2m:tenant-admin"]), ("client_credentials" = ["m2m:tenant-admin"]),
        ("portal_session" = []),
    ),
    request_body = CreateToken,
    responses(
        (status = 201, description = "The token and its secret (`token`, or `client_id` and \
                                      `client_secret` for a client credential)",
         body = CreatedToken, headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 409, description = "The token type is not enabled for the tenant"),
        (status = 415, description = "Not `application/json`"),
        (status = 422, description = "A value is not acceptable: expiry, scopes, description, user"),
    ),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    source: Source,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<CreateToken>, JsonRejection>,
) -> Result<Response, Problem> {
    let tenant = tenant_from(path)?;
    require_tenant_user(&caller, &tenant)?;
    let Json(body) = body?;
    match (caller.session(), &body.user_id) {
        (Some(session), Some(user)) if *user != session.user => {
            return Err(refuse(
                &caller,
                "personal_token_of_another",
                "a portal user creates personal tokens for itself only",
            ));
        }
        (Some(_), Some(_)) => {}
        _ => require_tenant_admin(&caller, &tenant)?,
    }
    let portal = state.store().load_portal_settings().await?;
    check_grant(
        &caller,
        &tenant,
        &body.scopes,
        body.user_id.is_some(),
        &portal,
    )?;
    let expiry =
        expiry_from(body.expires.as_deref(), body.expires_in_minutes).map_err(Problem::invalid)?;
    let token_type = body
        .token_type
        .as_deref()
        .map(|name| match name {
            "access" => Ok(TokenType::AccessToken),
            "client_credentials" => Ok(TokenType::ClientCredentials),
            other => Err(Problem::invalid(format!(
                "unknown type {other:?}: expected access or client_credentials"
            ))),
        })
        .transpose()?;
    let request = TokenRequest {
        tenant,
        token_type,
        description: body.description,
        scopes: body.scopes,
        user: body.user_id,
        created_by: Some(caller.creator_name()),
        rate_limit: body.rate_limit,
    };
    let settings = state.reload_settings().await?;
    let (_, request) = request.check(expiry, &settings)?;
    let now = state.now();
    let issued = state.store().issue(state.format(), request, now).await?;
    let (tenant, id) = (&issued.record.tenant, issued.record.id.as_str());
    record_call(
        &state,
        &caller,
        source,
        "token.create",
        Some(tenant),
        Some(id),
    )
    .await;

    let secret = Some(issued.token.expose_secret().to_owned());
    let (token, client_secret) = if issued.record.kind == TokenKind::ClientSecret {
        (None, secret)
    } else {
        (secret, None)
    };
    let body = CreatedToken {
        view: TokenView::new(issued.record, now),
        token,
        client_secret,
    };
    // The secret is in this answer only: no cache may keep it.
    let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    Ok((StatusCode::CREATED, no_store, Json(body)).into_response())
}

/// The query of `GET /v1/tenants/{tenant}/tokens`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    /// Page size: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// Where the page starts (default 0).
    offset: Option<u64>,
    /// The page after this cursor (a page's `next_after`): sought, where an offset reads
    /// every record it skips. Not with a non-zero `offset`.
    after: Option<String>,
    /// Only this user's (personal) tokens.
    user_id: Option<String>,
    /// `tenant`: only the tenant's API tokens (no user, no minted bearer tokens).
    owner: Option<String>,
}

/// One page of a tenant's tokens.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenPage {
    items: Vec<TokenView>,
    /// The offset of the next page; `None` on the last one, and on a page read with `after`.
    next_offset: Option<u64>,
    /// The cursor of the next page, for `after=`; `None` on the last one.
    next_after: Option<String>,
}

/// `GET /v1/tenants/{tenant}/tokens?limit=&offset=&after=&user_id=&owner=`, oldest first:
/// every token of the tenant; with `user_id`, only that user's personal tokens; with
/// `owner=tenant`, only the tenant's API tokens. A page starts at `offset`, or after the cursor
/// `after` (the previous page's `next_after`), which stays as fast on the last page as on the
/// first.
///
/// A tenant admin reads them all. A member (a portal session) reads the tenant's API tokens
/// (what it gets without a filter) and its own personal tokens.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    summary = "A page of the tenant's tokens, oldest first, without secrets",
    params(("tenant" = String, Path, description = "The tenant"), Page),
    security(
        ("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"]),
        ("api_key" = ["m2m:tenant-admin"]), ("client_credentials" = ["m2m:tenant-admin"]),
        ("portal_session" = []),
    ),
    responses(
        (status = 200, description = "One page", body = TokenPage),
        (status = 422, description = "A bad limit, owner or cursor, or both offset and after"),
    ),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Page>, QueryRejection>,
) -> Result<Json<TokenPage>, Problem> {
    let tenant = tenant_from(path)?;
    require_tenant_user(&caller, &tenant)?;
    let Query(page) = query?;
    let limit = page.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
        return Err(Problem::invalid(format!(
            "invalid limit {limit}: expected 1 to {MAX_PAGE_LIMIT}"
        )));
    }
    let api_only = match page.owner.as_deref() {
        None => false,
        Some("tenant") => true,
        Some(other) => {
            return Err(Problem::invalid(format!(
                "unknown owner {other:?}: expected tenant"
            )));
        }
    };
    if api_only && page.user_id.is_some() {
        return Err(Problem::invalid("give either owner or user_id, not both"));
    }
    let after = page
        .after
        .as_deref()
        .map(|text| text.parse::<PageCursor>())
        .transpose()
        .map_err(|error| Problem::invalid(error.to_string()))?;
    if after.is_some() && page.offset.is_some_and(|offset| offset != 0) {
        return Err(Problem::invalid("give either offset or after, not both"));
    }
    let admin = caller.is_tenant_admin_of(&tenant);
    if let (Some(user), Some(session)) = (&page.user_id, caller.session())
        && !admin
        && *user != session.user
    {
        return Err(refuse(
            &caller,
            "personal_tokens_of_another",
            "a member reads only its own personal tokens",
        ));
    }
    if caller.session().is_some() {
        let portal = state.store().load_portal_settings().await?;
        require_section(&caller, page.user_id.is_some(), &portal)?;
    }
    let offset = page.offset.unwrap_or(0);
    let store = state.store();
    // One more than the page, to tell whether another follows.
    let mut records = match (&page.user_id, &after) {
        (Some(user), after) => {
            check_user(user).map_err(Problem::bad_request)?;
            match after {
                Some(after) => {
                    store
                        .list_user_page_after(&tenant, user, after, limit + 1)
                        .await?
                }
                None => {
                    store
                        .list_user_page(&tenant, user, offset, limit + 1)
                        .await?
                }
            }
        }
        (None, Some(after)) if api_only || !admin => {
            store.list_api_page_after(&tenant, after, limit + 1).await?
        }
        (None, None) if api_only || !admin => {
            store.list_api_page(&tenant, offset, limit + 1).await?
        }
        (None, Some(after)) => store.list_page_after(&tenant, after, limit + 1).await?,
        (None, None) => store.list_page(&tenant, offset, limit + 1).await?,
    };
    let more = records.len() as u64 > limit;
    records.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_offset = (more && after.is_none()).then(|| offset + limit);
    let next_after = more
        .then(|| records.last().map(|last| PageCursor::of(last).to_string()))
        .flatten();
    let now = state.now();
    Ok(Json(TokenPage {
        items: records
            .into_iter()
            .map(|record| TokenView::new(record, now))
            .collect(),
        next_offset,
        next_after,
    }))
}

/// `DELETE /v1/tenants/{tenant}/tokens/{id}`: 204; a client credential takes its bearer
/// tokens with it. A tenant admin revokes any token of the tenant; a member only its own
/// personal tokens (403 for any other id, whether or not it exists).
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/tokens/{id}",
    operation_id = "revoke_token",
    tag = "tokens",
    summary = "Revoke a token (a client credential's bearer tokens too)",
    params(
        ("tenant" = String, Path, description = "The tenant"),
        ("id" = String, Path, description = "The token id (`tok_…`)"),
    ),
    security(
        ("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"]),
        ("api_key" = ["m2m:tenant-admin"]), ("client_credentials" = ["m2m:tenant-admin"]),
        ("portal_session" = []),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "The tenant has no token with this id"),
    ),
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    source: Source,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let Path((tenant, id)) = path?;
    check_tenant(&tenant).map_err(Problem::bad_request)?;
    require_tenant_user(&caller, &tenant)?;
    let id = TokenId::new(id);
    let record = state.store().get(&id).await?;
    let record = match caller.session() {
        Some(session) if !caller.is_tenant_admin_of(&tenant) => record
            .filter(|r| r.tenant == tenant && r.user.as_deref() == Some(session.user.as_str()))
            .filter(|r| r.kind != TokenKind::ClientId)
            .ok_or_else(|| {
                refuse(
                    &caller,
                    "not_own_token",
                    "a member revokes only its own personal tokens",
                )
            })?,
        _ => record
            .filter(|r| r.tenant == tenant && r.kind != TokenKind::ClientId)
            .ok_or_else(|| {
                Problem::not_found(format!("tenant {tenant} has no token with id {id}"))
            })?,
    };
    // The store announces the revocation, and its cascade, to every verifier it serves (the
    // service's own included) before it returns.
    state.store().revoke(&record.id, state.now()).await?;
    let target = record.id.as_str();
    record_call(
        &state,
        &caller,
        source,
        "token.revoke",
        Some(&tenant),
        Some(target),
    )
    .await;
    tracing::info!(
        tenant = %tenant,
        token_id = %record.id,
        by = caller.id(),
        "token revoked"
    );
    Ok(StatusCode::NO_CONTENT)
}
