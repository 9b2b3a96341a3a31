//! `GET`/`PUT /v1/settings/portal`: what the environment lets its tenants' users see and
//! grant — the catalogue of grantable scopes (name and description) and two switches, the
//! tenant's API tokens and the users' personal tokens. Environment admins only.
//!
//! The catalogue holds at most [`MAX_GRANTABLE_SCOPES`] scopes, each a valid scope with a
//! description of at most [`MAX_DESCRIPTION_CHARS`](crate::MAX_DESCRIPTION_CHARS) characters;
//! the environment's own scopes are never grantable (422).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use m2m_core::PortalSettings;

use crate::audit::{Source, record_call};
use crate::caller::Caller;
use crate::issue::{MAX_DESCRIPTION_CHARS, check_scopes};
use crate::openapi::schema::PortalSettingsSchema;
use crate::problem::Problem;
use crate::rights::{ENVIRONMENT_SCOPES, require_environment_admin};
use crate::state::AppState;

/// The most scopes in the catalogue.
pub const MAX_GRANTABLE_SCOPES: usize = 200;

/// `GET /v1/settings/portal`.
#[utoipa::path(
    get,
    path = "/v1/settings/portal",
    operation_id = "get_portal_settings",
    tag = "settings",
    summary = "What tenant users may grant, and which token sections they see",
    security(("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"])),
    responses((status = 200, description = "The portal settings", body = PortalSettingsSchema)),
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PortalSettings>, Problem> {
    require_environment_admin(&caller)?;
    Ok(Json(state.store().load_portal_settings().await?))
}

/// `PUT /v1/settings/portal`: replaces the settings; absent switches are on.
#[utoipa::path(
    put,
    path = "/v1/settings/portal",
    operation_id = "put_portal_settings",
    tag = "settings",
    summary = "Replace the portal settings; absent switches are on",
    security(("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"])),
    request_body = PortalSettingsSchema,
    responses(
        (status = 200, description = "The portal settings now", body = PortalSettingsSchema),
        (status = 415, description = "Not `application/json`"),
        (status = 422, description = "Too many scopes, a scope listed twice, an environment scope, or a description too long"),
    ),
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    caller: Caller,
    source: Source,
    body: Result<Json<PortalSettings>, JsonRejection>,
) -> Result<Json<PortalSettings>, Problem> {
    require_environment_admin(&caller)?;
    let Json(settings) = body?;
    check(&settings).map_err(Problem::invalid)?;
    state.store().save_portal_settings(&settings).await?;
    record_call(
        &state,
        &caller,
        source,
        "portal_settings.update",
        None,
        None,
    )
    .await;
    Ok(Json(settings))
}

/// The catalogue's bounds and names.
pub(crate) fn check(settings: &PortalSettings) -> Result<(), String> {
    let scopes = &settings.grantable_scopes;
    if scopes.len() > MAX_GRANTABLE_SCOPES {
        return Err(format!(
            "{} grantable scopes given, at most {MAX_GRANTABLE_SCOPES} are allowed",
            scopes.len()
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(scopes.len());
    for scope in scopes {
        check_scopes(vec![scope.name.clone()])?;
        if !seen.insert(scope.name.as_str()) {
            return Err(format!("the scope {} is listed twice", scope.name));
        }
        if ENVIRONMENT_SCOPES.contains(&scope.name.as_str()) {
            return Err(format!(
                "the scope {} is the environment's and cannot be granted by tenant users",
                scope.name
            ));
        }
        let chars = scope.description.chars().count();
        if chars > MAX_DESCRIPTION_CHARS || scope.description.chars().any(char::is_control) {
            return Err(format!(
                "the description of {} has {chars} characters or control characters: at most \
                 {MAX_DESCRIPTION_CHARS} printable characters are allowed",
                scope.name
            ));
        }
    }
    Ok(())
}
