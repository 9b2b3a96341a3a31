//! `GET`/`PUT /v1/settings` and `GET`/`PUT /v1/tenants/{tenant}/settings`: which token type
//! users may generate, for the environment and per tenant.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use m2m_core::{BearerFormat, TokenType, TypeSettings};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tenant_from;
use crate::audit::{Source, record_call};
use crate::caller::Caller;
use crate::openapi::schema::{BearerFormatSchema, TokenTypeSchema};
use crate::problem::Problem;
use crate::rights::{require_environment_admin, require_tenant_admin};
use crate::state::AppState;

/// The body of a tenant's `PUT`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenTypeSetting {
    #[schema(value_type = TokenTypeSchema)]
    token_type: TokenType,
}

/// The body of the environment's `PUT`: either field, or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvironmentSetting {
    #[schema(value_type = Option<TokenTypeSchema>)]
    token_type: Option<TokenType>,
    #[schema(value_type = Option<BearerFormatSchema>)]
    bearer_format: Option<BearerFormat>,
}

/// The environment setting.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EnvironmentSettings {
    /// The type users may generate; `None` when never set (both are then allowed).
    #[schema(value_type = Option<TokenTypeSchema>)]
    token_type: Option<TokenType>,
    /// The types users may generate.
    #[schema(value_type = Vec<TokenTypeSchema>)]
    enabled: Vec<TokenType>,
    /// What the client-credentials grant hands out now.
    #[schema(value_type = BearerFormatSchema)]
    bearer_format: BearerFormat,
}

/// A tenant's effective setting.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantSettings {
    tenant: String,
    /// The type users of the tenant may generate; `None` when nothing is set.
    #[schema(value_type = Option<TokenTypeSchema>)]
    token_type: Option<TokenType>,
    /// `false` when the tenant has its own override, `true` when it follows the environment.
    inherited: bool,
    /// The types users of the tenant may generate.
    #[schema(value_type = Vec<TokenTypeSchema>)]
    enabled: Vec<TokenType>,
}

fn enabled(token_type: Option<TokenType>) -> Vec<TokenType> {
    token_type.map_or_else(|| TokenType::ALL.to_vec(), |t| vec![t])
}

fn environment(state: &AppState, settings: &TypeSettings) -> EnvironmentSettings {
    EnvironmentSettings {
        token_type: settings.default,
        enabled: enabled(settings.default),
        bearer_format: settings
            .bearer_format
            .unwrap_or(state.options().bearer_format),
    }
}

fn tenant_view(settings: &TypeSettings, tenant: String) -> TenantSettings {
    let own = settings.tenants.iter().any(|(t, _)| *t == tenant);
    let token_type = settings.token_type_for(&tenant);
    TenantSettings {
        tenant,
        token_type,
        inherited: !own,
        enabled: enabled(token_type),
    }
}

/// `GET /v1/settings`.
#[utoipa::path(
    get,
    path = "/v1/settings",
    operation_id = "get_environment_settings",
    tag = "settings",
    summary = "The environment's token type and bearer format",
    security(("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"])),
    responses((status = 200, description = "The environment's settings", body = EnvironmentSettings)),
)]
pub(crate) async fn get_environment(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<EnvironmentSettings>, Problem> {
    require_environment_admin(&caller)?;
    let settings = state.reload_settings().await?;
    Ok(Json(environment(&state, &settings)))
}

/// `PUT /v1/settings`: `{"token_type": …}`, `{"bearer_format": "opaque" | "jwt"}`, or both.
#[utoipa::path(
    put,
    path = "/v1/settings",
    operation_id = "put_environment_settings",
    tag = "settings",
    summary = "Set the environment's token type, bearer format, or both",
    security(("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"])),
    request_body = EnvironmentSetting,
    responses(
        (status = 200, description = "The environment's settings now", body = EnvironmentSettings),
        (status = 415, description = "Not `application/json`"),
        (status = 422, description = "Nothing to change, or an unknown value"),
    ),
)]
pub(crate) async fn put_environment(
    State(state): State<AppState>,
    caller: Caller,
    source: Source,
    body: Result<Json<EnvironmentSetting>, JsonRejection>,
) -> Result<Json<EnvironmentSettings>, Problem> {
    require_environment_admin(&caller)?;
    let Json(body) = body?;
    if body.token_type.is_none() && body.bearer_format.is_none() {
        return Err(Problem::invalid(
            "nothing to change: give token_type, bearer_format or both",
        ));
    }
    if let Some(token_type) = body.token_type {
        state.store().save_token_type(None, token_type).await?;
        let target = Some(token_type.name());
        record_call(&state, &caller, source, "settings.update", None, target).await;
    }
    if let Some(format) = body.bearer_format {
        state.store().save_bearer_format(format).await?;
        let target = Some(format.name());
        record_call(
            &state,
            &caller,
            source,
            "settings.bearer_format",
            None,
            target,
        )
        .await;
    }
    let settings = state.reload_settings().await?;
    Ok(Json(environment(&state, &settings)))
}

/// `GET /v1/tenants/{tenant}/settings`.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/settings",
    operation_id = "get_tenant_settings",
    tag = "settings",
    summary = "A tenant's token type: its own, or the environment's it follows",
    params(("tenant" = String, Path, description = "The tenant")),
    security(
        ("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"]),
        ("api_key" = ["m2m:tenant-admin"]), ("client_credentials" = ["m2m:tenant-admin"]),
        ("portal_session" = []),
    ),
    responses((status = 200, description = "The tenant's settings", body = TenantSettings)),
)]
pub(crate) async fn get_tenant(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<TenantSettings>, Problem> {
    let tenant = tenant_from(path)?;
    require_tenant_admin(&caller, &tenant)?;
    let settings = state.reload_settings().await?;
    Ok(Json(tenant_view(&settings, tenant)))
}

/// `PUT /v1/tenants/{tenant}/settings`.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}/settings",
    operation_id = "put_tenant_settings",
    tag = "settings",
    summary = "Give a tenant its own token type",
    params(("tenant" = String, Path, description = "The tenant")),
    security(("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"])),
    request_body = TokenTypeSetting,
    responses(
        (status = 200, description = "The tenant's settings now", body = TenantSettings),
        (status = 415, description = "Not `application/json`"),
        (status = 422, description = "An unknown token type"),
    ),
)]
pub(crate) async fn put_tenant(
    State(state): State<AppState>,
    caller: Caller,
    source: Source,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<TokenTypeSetting>, JsonRejection>,
) -> Result<Json<TenantSettings>, Problem> {
    require_environment_admin(&caller)?;
    let tenant = tenant_from(path)?;
    let Json(body) = body?;
    state
        .store()
        .save_token_type(Some(&tenant), body.token_type)
        .await?;
    let target = body.token_type.name();
    let action = "tenant_settings.update";
    record_call(&state, &caller, source, action, Some(&tenant), Some(target)).await;
    let settings = state.reload_settings().await?;
    Ok(Json(tenant_view(&settings, tenant)))
}

/// `DELETE /v1/tenants/{tenant}/settings`: the tenant follows the environment again; 404 when it
/// had no token type of its own.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/settings",
    operation_id = "delete_tenant_settings",
    tag = "settings",
    summary = "Make a tenant follow the environment's token type again",
    params(("tenant" = String, Path, description = "The tenant")),
    security(("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"])),
    responses(
        (status = 204, description = "The tenant follows the environment"),
        (status = 404, description = "The tenant had no token type of its own"),
    ),
)]
pub(crate) async fn delete_tenant(
    State(state): State<AppState>,
    caller: Caller,
    source: Source,
    path: Result<Path<String>, PathRejection>,
) -> Result<axum::http::StatusCode, Problem> {
    require_environment_admin(&caller)?;
    let tenant = tenant_from(path)?;
    let removed = state.store().clear_token_type(&tenant).await?;
    state.reload_settings().await?;
    if removed {
        let action = "tenant_settings.clear";
        record_call(&state, &caller, source, action, Some(&tenant), None).await;
        Ok(axum::http::StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!(
            "tenant {tenant} has no token type of its own"
        )))
    }
}
