//! The audit log: every change made through the service is recorded with who made it, the
//! tenant, what it was done to, when and from which address; `GET /v1/audit` reads it.
//!
//! | action | recorded by |
//! |---|---|
//! | `token.create`, `token.revoke` | `POST`/`DELETE /v1/tenants/{tenant}/tokens…` |
//! | `settings.update`, `tenant_settings.update`, `tenant_settings.clear`, `portal_settings.update` | the settings routes |
//! | `user.remove` | `DELETE /v1/tenants/{tenant}/users/{user}` |
//! | `portal_session.create`, `portal_session.revoke` | the portal session routes and sign-out |
//!
//! The CLI records the same actions with the actor `cli`. Recording happens after the change;
//! when the store cannot take the entry, the change stands and the entry is logged at error
//! level instead, with every field, so that it is never lost silently.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use http::request::Parts;
use m2m_core::{AuditEntry, TokenStore};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::api::rfc3339;
use crate::api::tokens::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
use crate::caller::Caller;
use crate::issue::check_tenant;
use crate::problem::Problem;
use crate::rights::require_tenant_admin;
use crate::state::AppState;

/// The address a request came from, when the server knows it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Source(pub(crate) Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(address)| *address),
        ))
    }
}

/// Records one change; never fails the request it belongs to.
pub(crate) async fn record(
    store: &dyn TokenStore,
    at: OffsetDateTime,
    actor: String,
    source: Option<SocketAddr>,
    action: &'static str,
    tenant: Option<&str>,
    target: Option<&str>,
) {
    let mut entry = AuditEntry::new(at, actor, action);
    entry.tenant = tenant.map(str::to_owned);
    entry.target = target.map(str::to_owned);
    entry.source = source.map(|address| address.ip().to_string());
    if let Err(error) = store.record_audit(&entry).await {
        tracing::error!(
            %error,
            actor = %entry.actor,
            action = %entry.action,
            tenant = entry.tenant.as_deref(),
            target = entry.target.as_deref(),
            source = entry.source.as_deref(),
            at = %rfc3339(entry.at),
            "the audit log did not take this entry"
        );
    }
}

/// Records a change made through the API by `caller`.
pub(crate) async fn record_call(
    state: &AppState,
    caller: &Caller,
    source: Source,
    action: &'static str,
    tenant: Option<&str>,
    target: Option<&str>,
) {
    record(
        state.store().as_ref(),
        state.now(),
        caller.actor(),
        source.0,
        action,
        tenant,
        target,
    )
    .await;
}

/// The query of `GET /v1/audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Only this tenant's entries (a tenant admin reads only its own).
    tenant: Option<String>,
    /// Page size: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// Where the page starts (default 0).
    offset: Option<u64>,
}

/// An entry as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AuditView {
    /// RFC 3339.
    #[schema(format = DateTime)]
    at: String,
    actor: String,
    action: String,
    tenant: Option<String>,
    target: Option<String>,
    source: Option<String>,
}

/// One page of the audit log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AuditPage {
    items: Vec<AuditView>,
    next_offset: Option<u64>,
}

/// `GET /v1/audit?tenant=&limit=&offset=`, newest first: every entry for an environment
/// admin (or one tenant's with `tenant`); a tenant admin reads its own tenant's only.
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "list_audit",
    tag = "audit",
    summary = "The audit log, newest first",
    params(AuditQuery),
    security(
        ("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"]),
        ("api_key" = ["m2m:tenant-admin"]), ("client_credentials" = ["m2m:tenant-admin"]),
        ("portal_session" = []),
    ),
    responses(
        (status = 200, description = "One page", body = AuditPage),
        (status = 422, description = "A bad limit"),
    ),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, Problem> {
    let Query(query) = query?;
    let tenant = match query.tenant {
        Some(tenant) => {
            check_tenant(&tenant).map_err(Problem::bad_request)?;
            require_tenant_admin(&caller, &tenant)?;
            Some(tenant)
        }
        None if caller.is_environment_admin() => None,
        None => {
            let own = caller.tenant().to_owned();
            require_tenant_admin(&caller, &own)?;
            Some(own)
        }
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
        return Err(Problem::invalid(format!(
            "invalid limit {limit}: expected 1 to {MAX_PAGE_LIMIT}"
        )));
    }
    let offset = query.offset.unwrap_or(0);
    let mut entries = state
        .store()
        .list_audit(tenant.as_deref(), offset, limit + 1)
        .await?;
    let next_offset = (entries.len() as u64 > limit).then(|| offset + limit);
    entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(Json(AuditPage {
        items: entries
            .into_iter()
            .map(|entry| AuditView {
                at: rfc3339(entry.at),
                actor: entry.actor,
                action: entry.action,
                tenant: entry.tenant,
                target: entry.target,
                source: entry.source,
            })
            .collect(),
        next_offset,
    }))
}
