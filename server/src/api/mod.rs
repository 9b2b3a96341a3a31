//! The REST admin API: settings and tokens per tenant, behind `M2mAuthLayer`, each route
//! checking the caller's rights ([`rights`](crate::rights)), and `GET /health`.

pub(crate) mod portal;
pub(crate) mod sessions;
pub(crate) mod settings;
pub(crate) mod tokens;
pub(crate) mod usage;
pub(crate) mod users;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use m2m_core::{RateLimit, TokenKind, TokenRecord, TokenType};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::issue::check_tenant;
use crate::openapi::schema::{RateLimitSchema, TokenKindSchema, TokenTypeSchema};
use crate::problem::Problem;
use crate::state::AppState;

/// The scope of an environment admin (counts only in the reserved tenant).
pub const ADMIN_SCOPE: &str = "m2m:admin";

/// The answer of `GET /health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// `GET /health`: 200 when the store answers, 503 otherwise.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "service",
    summary = "Liveness and store reachability",
    responses(
        (status = 200, description = "The service and its store answer", body = Health),
        (status = 503, description = "The token store does not answer"),
    ),
)]
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    match state.store().load_settings().await {
        Ok(_) => Json(Health { status: "ok" }).into_response(),
        Err(error) => {
            tracing::warn!(%error, "health check: the token store does not answer");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the token store is unavailable",
            )
            .into_response()
        }
    }
}

/// The tenant of a path, checked.
pub(crate) fn tenant_from(path: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    let Path(tenant) = path?;
    check_tenant(&tenant).map_err(Problem::bad_request)?;
    Ok(tenant)
}

/// A time as RFC 3339 text.
pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// What a token record is, for listings: the token kind's one name (`access_token`,
/// `bearer_token`, `client_secret`), as in every JSON answer of the service.
pub(crate) fn kind_name(kind: TokenKind) -> &'static str {
    kind.name()
}

/// A token as listings show it: no secret, no digest.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TokenView {
    /// The public token id (`tok_…`).
    id: String,
    /// The token type it belongs to.
    #[serde(rename = "type")]
    #[schema(value_type = TokenTypeSchema)]
    token_type: TokenType,
    /// Its format.
    #[schema(value_type = TokenKindSchema)]
    kind: &'static str,
    /// The prefix and first characters, to recognise it.
    stub: String,
    description: String,
    scopes: Vec<String>,
    /// The user of a personal token.
    user_id: Option<String>,
    /// A client credential's client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// A bearer token's credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_id: Option<String>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    created_at: String,
    /// RFC 3339; `null`: never.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// Seconds left; `null`: never expires.
    expires_in: Option<i64>,
    /// "in 7 days", "Never", "Expired".
    expires_in_text: String,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
    /// Who issued it.
    created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<RateLimitSchema>)]
    rate_limit: Option<RateLimit>,
}

impl TokenView {
    pub(crate) fn new(record: TokenRecord, now: OffsetDateTime) -> Self {
        let expires_in = record.expires_in(now);
        Self {
            id: record.id.to_string(),
            token_type: record.token_type(),
            kind: kind_name(record.kind),
            stub: record.stub,
            description: record.description,
            scopes: record.scopes,
            user_id: record.user,
            client_id: record.client_id,
            credential_id: record.credential_id.map(|id| id.to_string()),
            created_at: rfc3339(record.created_at),
            expires_at: record.expires_at.map(rfc3339),
            expires_in: expires_in.seconds(),
            expires_in_text: expires_in.to_string(),
            revoked_at: record.revoked_at.map(rfc3339),
            last_used_at: record.last_used_at.map(rfc3339),
            created_by: record.created_by,
            rate_limit: record.rate_limit,
        }
    }
}
