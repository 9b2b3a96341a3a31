//! `DELETE /v1/tenants/{tenant}/users/{user}`: a user leaves a tenant, and every token of the
//! user there goes with them: personal tokens, and the bearer tokens of the user's client
//! credentials. Each revocation reaches every verifier through the revocation events, as a
//! single revocation does. The user's portal sessions end too.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Serialize;

use crate::audit::{Source, record_call};
use crate::caller::Caller;
use crate::issue::{check_tenant, check_user};
use crate::problem::Problem;
use crate::rights::require_tenant_admin;
use crate::state::AppState;

/// The answer: who left, and how many tokens were revoked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UserRemoved {
    tenant: String,
    user_id: String,
    revoked_tokens: usize,
    revoked_sessions: usize,
}

/// `DELETE /v1/tenants/{tenant}/users/{user}` (environment admin, or tenant admin of the
/// tenant): 200 with the number of tokens revoked; removing a user without tokens is not an
/// error.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/users/{user}",
    operation_id = "remove_user",
    tag = "tokens",
    summary = "A user leaves the tenant: their tokens are revoked, their portal sessions end",
    params(
        ("tenant" = String, Path, description = "The tenant"),
        ("user" = String, Path, description = "The user (`user_id`)"),
    ),
    security(
        ("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"]),
        ("api_key" = ["m2m:tenant-admin"]), ("client_credentials" = ["m2m:tenant-admin"]),
        ("portal_session" = []),
    ),
    responses((status = 200, description = "What was revoked", body = UserRemoved)),
)]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    source: Source,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<UserRemoved>, Problem> {
    let Path((tenant, user)) = path?;
    check_tenant(&tenant).map_err(Problem::bad_request)?;
    require_tenant_admin(&caller, &tenant)?;
    check_user(&user).map_err(Problem::bad_request)?;
    // Sessions first: a session that outlived the removal could create new tokens.
    let revoked_sessions = state
        .store()
        .revoke_user_portal_sessions(&tenant, &user, state.now())
        .await?;
    let revoked_tokens = state
        .store()
        .revoke_user(&tenant, &user, state.now())
        .await?;
    record_call(
        &state,
        &caller,
        source,
        "user.remove",
        Some(&tenant),
        Some(&user),
    )
    .await;
    tracing::info!(
        tenant = %tenant,
        by = caller.id(),
        revoked_tokens,
        revoked_sessions,
        "user removed from the tenant"
    );
    Ok(Json(UserRemoved {
        tenant,
        user_id: user,
        revoked_tokens,
        revoked_sessions,
    }))
}
