//! Who may do what in the token service, checked on every route.
//!
//! Rights travel as scopes of the caller's token:
//!
//! | right | held by | may |
//! |---|---|---|
//! | environment admin | a token of the reserved tenant [`ADMIN_TENANT`] with [`ADMIN_SCOPE`] | everything: settings, every tenant, statistics |
//! | introspection | a token of the reserved tenant with [`INTROSPECT_SCOPE`] | introspect, follow revocations, report usage |
//! | metrics | a token of the reserved tenant with [`METRICS_SCOPE`] | read `GET /metrics`, nothing else |
//! | tenant admin | a token with [`TENANT_ADMIN_SCOPE`], or a portal session with the role `admin` | read and manage its own tenant's tokens and read its settings, nothing of another tenant |
//! | tenant member | a portal session with the role `member` | read its tenant's API tokens (never a secret), create and revoke its own personal tokens |
//!
//! A portal session (see [`portal_page`](crate::portal_page)) holds the scopes of its
//! `permissions`, and an admin session holds [`TENANT_ADMIN_SCOPE`]; it creates personal tokens
//! for its own user only. A member asking for another member's personal token gets the same 403
//! whether or not the token exists.
//!
//! The environment scopes ([`ENVIRONMENT_SCOPES`]) count only in the reserved tenant, and the
//! service refuses to issue them into any other (422). Nobody grants what they do not hold: a
//! caller other than an environment admin issues only scopes it carries itself, and of those
//! only [`TENANT_ADMIN_SCOPE`] and the scopes the environment declared grantable
//! ([`PortalSettings`]), and only the tokens the environment shows its tenants' users (the
//! tenant's API tokens, personal tokens): 403 otherwise. A refusal about another tenant is the
//! same 403 whether or not the thing asked for exists there.

use m2m_core::{PortalSettings, Principal};

use crate::ADMIN_TENANT;
use crate::api::ADMIN_SCOPE;
use crate::caller::Caller;
use crate::client_auth::INTROSPECT_SCOPE;
use crate::problem::Problem;

/// The scope of a tenant admin: manages its own tenant's tokens.
pub const TENANT_ADMIN_SCOPE: &str = "m2m:tenant-admin";

/// The scope of a metrics scraper: reads `GET /metrics` and nothing else. An environment scope:
/// only an environment admin grants it, and only in the reserved tenant.
pub const METRICS_SCOPE: &str = "m2m:metrics";

/// Scopes that only tokens of the reserved tenant may carry.
pub const ENVIRONMENT_SCOPES: [&str; 3] = [ADMIN_SCOPE, INTROSPECT_SCOPE, METRICS_SCOPE];

/// Whether `principal` holds the environment scope `scope`: it carries it and belongs to the
/// reserved tenant.
pub(crate) fn holds_environment_scope(principal: &Principal, scope: &str) -> bool {
    principal.tenant() == ADMIN_TENANT && principal.has_scope(scope)
}

/// Whether `principal` is an environment admin.
pub(crate) fn is_environment_admin(principal: &Principal) -> bool {
    holds_environment_scope(principal, ADMIN_SCOPE)
}

/// The 403 for `caller`, logged with `reason` (never a token).
pub(crate) fn refuse(caller: &Caller, reason: &'static str, detail: impl Into<String>) -> Problem {
    tracing::debug!(
        caller = caller.id(),
        tenant = caller.tenant(),
        reason,
        "request refused"
    );
    Problem::forbidden(detail)
}

/// 403 unless `caller` is an environment admin.
pub(crate) fn require_environment_admin(caller: &Caller) -> Result<(), Problem> {
    if caller.is_environment_admin() {
        return Ok(());
    }
    Err(refuse(
        caller,
        "not_environment_admin",
        "this needs an environment admin credential (scope m2m:admin of the environment)",
    ))
}

/// 403 unless `caller` may read the metrics: an environment admin, or a token of the reserved
/// tenant with [`METRICS_SCOPE`].
pub(crate) fn require_metrics_reader(caller: &Caller) -> Result<(), Problem> {
    let scraper = matches!(caller, Caller::Token(principal)
        if holds_environment_scope(principal, METRICS_SCOPE));
    if scraper || caller.is_environment_admin() {
        return Ok(());
    }
    Err(refuse(
        caller,
        "not_metrics_reader",
        "this needs a metrics credential (scope m2m:metrics of the environment) or an \
         environment admin credential",
    ))
}

/// 403 unless `caller` may manage `tenant`: an environment admin, or a tenant admin (token or
/// portal session) of that very tenant. The answer is the same whether or not the tenant, or
/// what is asked of it, exists.
pub(crate) fn require_tenant_admin(caller: &Caller, tenant: &str) -> Result<(), Problem> {
    if caller.is_tenant_admin_of(tenant) {
        return Ok(());
    }
    Err(refuse(
        caller,
        "not_tenant_admin",
        "this credential may not manage this tenant",
    ))
}

/// 403 unless `caller` is a tenant admin of `tenant` or a portal session of that tenant (a
/// member): what both may read.
pub(crate) fn require_tenant_user(caller: &Caller, tenant: &str) -> Result<(), Problem> {
    if caller.is_tenant_admin_of(tenant) || caller.session().is_some_and(|s| s.tenant == tenant) {
        return Ok(());
    }
    Err(refuse(
        caller,
        "not_tenant_user",
        "this credential may not see this tenant",
    ))
}

/// 403 unless the environment shows its tenants' users the section (the tenant's API tokens,
/// or personal tokens) `caller` wants; environment admins see every section.
pub(crate) fn require_section(
    caller: &Caller,
    personal: bool,
    portal: &PortalSettings,
) -> Result<(), Problem> {
    let (visible, section) = if personal {
        (portal.personal_tokens_visible, "personal tokens")
    } else {
        (portal.api_tokens_visible, "API tokens")
    };
    if visible || caller.is_environment_admin() {
        return Ok(());
    }
    Err(refuse(
        caller,
        "section_hidden",
        format!("the environment does not show tenant users {section}"),
    ))
}

/// Checks what `caller` wants to issue into `tenant`: environment scopes only into the
/// reserved tenant (422); and, but for an environment admin, only scopes the caller holds
/// itself that are [`TENANT_ADMIN_SCOPE`] or in the environment's catalogue of grantable
/// scopes, and only the kind of token (the tenant's API tokens, or personal tokens with a
/// `user_id`) the environment shows its tenants' users (403).
pub(crate) fn check_grant(
    caller: &Caller,
    tenant: &str,
    scopes: &[String],
    personal: bool,
    portal: &PortalSettings,
) -> Result<(), Problem> {
    crate::issue::check_environment_scopes(tenant, scopes).map_err(Problem::invalid)?;
    if caller.is_environment_admin() {
        return Ok(());
    }
    require_section(caller, personal, portal)?;
    if let Some(scope) = scopes.iter().find(|s| !caller.holds(s)) {
        return Err(refuse(
            caller,
            "grant_not_held",
            format!("a credential grants only scopes it holds itself, and this one lacks {scope}"),
        ));
    }
    if let Some(scope) = scopes
        .iter()
        .find(|s| *s != TENANT_ADMIN_SCOPE && !portal.is_grantable(s))
    {
        return Err(refuse(
            caller,
            "not_grantable",
            format!("the environment has not declared the scope {scope} grantable"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use m2m_core::{Expiry, NewToken, TokenFormat, TokenKind};

    fn principal(tenant: &str, scopes: &[&str]) -> Caller {
        Caller::Token(token(tenant, scopes))
    }

    fn token(tenant: &str, scopes: &[&str]) -> Principal {
        let mut request = NewToken::new(TokenKind::AccessToken, tenant, Expiry::Never);
        for scope in scopes {
            request = request.scope(*scope);
        }
        request
            .generate(&TokenFormat::default(), time::OffsetDateTime::now_utc())
            .record
            .principal()
    }

    #[test]
    fn the_environment_scopes_count_only_in_the_reserved_tenant() {
        let admin = principal(ADMIN_TENANT, &[ADMIN_SCOPE]);
        let impostor = principal("acme", &[ADMIN_SCOPE]);
        assert!(admin.is_environment_admin());
        assert!(!impostor.is_environment_admin());
        assert!(require_environment_admin(&impostor).is_err());
        assert!(require_tenant_admin(&impostor, "globex").is_err());
        assert!(require_tenant_admin(&impostor, "acme").is_err());
        assert!(require_tenant_admin(&admin, "globex").is_ok());
    }

    #[test]
    fn metrics_are_read_by_a_scraper_of_the_environment_or_its_admin() {
        assert!(require_metrics_reader(&principal(ADMIN_TENANT, &[METRICS_SCOPE])).is_ok());
        assert!(require_metrics_reader(&principal(ADMIN_TENANT, &[ADMIN_SCOPE])).is_ok());
        for refused in [
            principal("acme", &[METRICS_SCOPE]),
            principal(ADMIN_TENANT, &[INTROSPECT_SCOPE]),
            principal("acme", &[TENANT_ADMIN_SCOPE]),
        ] {
            let problem = require_metrics_reader(&refused).unwrap_err();
            assert_eq!(problem.status(), http::StatusCode::FORBIDDEN);
        }
        let scraper = principal(ADMIN_TENANT, &[METRICS_SCOPE]);
        assert!(require_environment_admin(&scraper).is_err());
        assert!(require_tenant_admin(&scraper, ADMIN_TENANT).is_err());
    }

    #[test]
    fn a_tenant_admin_manages_only_its_own_tenant() {
        let acme = principal("acme", &[TENANT_ADMIN_SCOPE]);
        assert!(require_tenant_admin(&acme, "acme").is_ok());
        let refused = require_tenant_admin(&acme, "globex").unwrap_err();
        assert_eq!(refused.status(), http::StatusCode::FORBIDDEN);
        assert!(require_tenant_admin(&principal("acme", &["reports:read"]), "acme").is_err());
    }

    #[test]
    fn nobody_grants_what_they_do_not_hold() {
        let scopes = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let portal = PortalSettings {
            grantable_scopes: vec![m2m_core::GrantableScope::new("reports:read", "")],
            ..PortalSettings::default()
        };
        let grant = |p: &Caller, tenant: &str, s: &[&str]| {
            check_grant(p, tenant, &scopes(s), false, &portal)
        };
        let acme = principal("acme", &[TENANT_ADMIN_SCOPE, "reports:read", "billing"]);
        assert!(grant(&acme, "acme", &["reports:read"]).is_ok());
        assert!(grant(&acme, "acme", &[TENANT_ADMIN_SCOPE]).is_ok());
        let held = grant(&acme, "acme", &["reports:write"]).unwrap_err();
        assert_eq!(held.status(), http::StatusCode::FORBIDDEN);
        let undeclared = grant(&acme, "acme", &["billing"]).unwrap_err();
        assert_eq!(undeclared.status(), http::StatusCode::FORBIDDEN);
        let environment = grant(&acme, "acme", &[ADMIN_SCOPE]).unwrap_err();
        assert_eq!(environment.status(), http::StatusCode::UNPROCESSABLE_ENTITY);

        let admin = principal(ADMIN_TENANT, &[ADMIN_SCOPE]);
        assert!(grant(&admin, "acme", &["anything"]).is_ok());
        let outside = grant(&admin, "acme", &[INTROSPECT_SCOPE]).unwrap_err();
        assert_eq!(outside.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(grant(&admin, ADMIN_TENANT, &[INTROSPECT_SCOPE]).is_ok());
        let scraper = grant(&admin, "acme", &[METRICS_SCOPE]).unwrap_err();
        assert_eq!(scraper.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(grant(&admin, ADMIN_TENANT, &[METRICS_SCOPE]).is_ok());
        // A scraper grants nothing: it is no admin of anything.
        let scraper = principal(ADMIN_TENANT, &[METRICS_SCOPE]);
        let held = check_grant(
            &scraper,
            ADMIN_TENANT,
            &scopes(&[METRICS_SCOPE]),
            false,
            &portal,
        );
        assert_eq!(held.unwrap_err().status(), http::StatusCode::FORBIDDEN);

        let hidden = PortalSettings {
            api_tokens_visible: false,
            ..portal.clone()
        };
        let api = check_grant(&acme, "acme", &[], false, &hidden).unwrap_err();
        assert_eq!(api.status(), http::StatusCode::FORBIDDEN);
        assert!(check_grant(&acme, "acme", &[], true, &hidden).is_ok());
        assert!(check_grant(&admin, "acme", &[], false, &hidden).is_ok());
    }
}
