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
use crate::problem::Problem;
use crate::state::AppState;

/// The scope of an environment admin (counts only in the reserved tenant).
pub const ADMIN_SCOPE: &str = "m2m:admin";

/// `GET /health`: 200 when the store answers, 503 otherwise.
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    match state.store().load_settings().await {
        Ok(_) => Json(serde_json::json!({ "status": "ok" })).into_response(),
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
#[derive(Debug, Serialize)]
pub(crate) struct TokenView {
    id: String,
    #[serde(rename = "type")]
    token_type: TokenType,
    kind: &'static str,
    stub: String,
    description: String,
    scopes: Vec<String>,
    user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_id: Option<String>,
    created_at: String,
    expires_at: Option<String>,
    expires_in: Option<i64>,
    expires_in_text: String,
    revoked_at: Option<String>,
    last_used_at: Option<String>,
    created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
