//! [`Caller`]: who is calling the admin API — a token the auth layer admitted, or a tenant user
//! signed in to the portal with a session cookie.
//!
//! A request with a credential header is judged by [`M2mAuthLayer`](m2m_tower::M2mAuthLayer)
//! alone; the cookie counts only when no credential header came. A portal session is looked up
//! by the SHA-256 digest of its cookie, and a state-changing request made with it must carry
//! the session's CSRF token in [`CSRF_HEADER`] (and, when the browser sends an `Origin`, come
//! from the service's own origin): a page of another site can neither read the token nor set
//! the header.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, header};
use m2m_core::{PortalRole, PortalSecret, PortalSession, Principal, TokenDigest};
use m2m_tower::Authenticated;

use crate::problem::Problem;
use crate::rights::{TENANT_ADMIN_SCOPE, is_environment_admin};
use crate::state::AppState;

/// The name of the portal's session cookie.
pub const SESSION_COOKIE: &str = "m2m_portal";

/// The header that carries a portal session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The longest cookie value looked up; session secrets are 40 characters.
const MAX_SECRET_CHARS: usize = 64;

/// Who calls: a token, or a portal session.
#[derive(Clone, Debug)]
pub(crate) enum Caller {
    /// A token admitted by the auth layer.
    Token(Principal),
    /// A tenant user signed in to the portal.
    Session(Box<PortalSession>),
}

impl Caller {
    /// The caller's tenant.
    pub(crate) fn tenant(&self) -> &str {
        match self {
            Caller::Token(principal) => principal.tenant(),
            Caller::Session(session) => &session.tenant,
        }
    }

    /// The token id or session id, for logs.
    pub(crate) fn id(&self) -> &str {
        match self {
            Caller::Token(principal) => principal.token_id().as_str(),
            Caller::Session(session) => &session.id,
        }
    }

    /// Whether the caller is an environment admin (only a token can be).
    pub(crate) fn is_environment_admin(&self) -> bool {
        matches!(self, Caller::Token(principal) if is_environment_admin(principal))
    }

    /// Whether the caller manages `tenant`'s API tokens: an environment admin, a token of the
    /// tenant with [`TENANT_ADMIN_SCOPE`], or an admin session of the tenant.
    pub(crate) fn is_tenant_admin_of(&self, tenant: &str) -> bool {
        if self.is_environment_admin() {
            return true;
        }
        self.tenant() == tenant
            && match self {
                Caller::Token(principal) => principal.has_scope(TENANT_ADMIN_SCOPE),
                Caller::Session(session) => session.role == PortalRole::Admin,
            }
    }

    /// The portal session, when the caller is one.
    pub(crate) fn session(&self) -> Option<&PortalSession> {
        match self {
            Caller::Token(_) => None,
            Caller::Session(session) => Some(session),
        }
    }

    /// Whether the caller holds `scope`, and so may grant it: a token carries it; a session
    /// has it among its permissions, and an admin session holds [`TENANT_ADMIN_SCOPE`].
    pub(crate) fn holds(&self, scope: &str) -> bool {
        match self {
            Caller::Token(principal) => principal.has_scope(scope),
            Caller::Session(session) => {
                session.permissions.iter().any(|p| p == scope)
                    || (scope == TENANT_ADMIN_SCOPE && session.role == PortalRole::Admin)
            }
        }
    }

    /// Who acted, for the audit log: `token tok_…` or `session ps_… (display name)`.
    pub(crate) fn actor(&self) -> String {
        match self {
            Caller::Token(principal) => format!("token {}", principal.token_id()),
            Caller::Session(session) => {
                format!("session {} ({})", session.id, session.display_name)
            }
        }
    }

    /// Who created a token, as listings show it: the session's display name, or the token.
    pub(crate) fn creator_name(&self) -> String {
        match self {
            Caller::Token(principal) => format!("token {}", principal.token_id()),
            Caller::Session(session) => session.display_name.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let admitted =
            <Authenticated as OptionalFromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .map_err(IntoResponse::into_response)?;
        if let Some(Authenticated(principal)) = admitted {
            return Ok(Caller::Token(principal));
        }
        let Some(secret) = session_cookie(&parts.headers).map_err(IntoResponse::into_response)?
        else {
            // Neither a credential nor a session: the layer's 401.
            let refused =
                <Authenticated as FromRequestParts<AppState>>::from_request_parts(parts, state)
                    .await
                    .err()
                    .map(IntoResponse::into_response);
            return Err(refused.unwrap_or_else(|| session_ended().into_response()));
        };
        let session = state
            .store()
            .find_portal_session(&secret.digest())
            .await
            .map_err(|error| Problem::from(error).into_response())?;
        let Some(session) = session.filter(|s| s.is_active(state.now())) else {
            tracing::debug!(reason = "session_ended", "portal request refused");
            return Err(session_ended().into_response());
        };
        if !is_safe(&parts.method) {
            check_cross_site(&parts.headers, &secret)
                .inspect_err(|_| {
                    tracing::debug!(
                        session_id = %session.id,
                        tenant = %session.tenant,
                        reason = "csrf",
                        "portal request refused"
                    );
                })
                .map_err(IntoResponse::into_response)?;
        }
        Ok(Caller::Session(Box::new(session)))
    }
}

/// The 401 of a request whose portal session is unknown, expired or revoked.
fn session_ended() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "the portal session has ended or was revoked: open a new portal link",
    )
}

/// Whether a request with `method` changes nothing.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The CSRF token of the session whose secret is `secret`: derived from it, so nothing more
/// is stored, and useless without the cookie.
pub(crate) fn csrf_token(secret: &PortalSecret) -> String {
    TokenDigest::of(&format!("m2m portal csrf {}", secret.expose_secret())).to_hex()
}

/// 403 unless the request carries the session's CSRF token and, when it names an `Origin`,
/// comes from this service's own.
fn check_cross_site(headers: &HeaderMap, secret: &PortalSecret) -> Result<(), Problem> {
    let expected = csrf_token(secret);
    let presented = headers
        .get(CSRF_HEADER)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if !constant_time_eq(presented, expected.as_bytes()) {
        return Err(Problem::forbidden(
            "a portal request that changes something needs the session's X-CSRF-Token header",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).map(|h| h.as_bytes());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, host)| host.as_bytes());
        if origin_host.is_none() || origin_host != host {
            return Err(Problem::forbidden(
                "a portal request must come from the portal's own origin",
            ));
        }
    }
    Ok(())
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session secret from the `Cookie` headers: `None` without the cookie; 400 when it comes
/// twice. A value that cannot be a secret is looked up as nothing (it matches no session).
fn session_cookie(headers: &HeaderMap) -> Result<Option<PortalSecret>, Problem> {
    let mut found: Option<&str> = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        for pair in text.split(';') {
            let Some((name, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if name != SESSION_COOKIE {
                continue;
            }
            if found.is_some() {
                return Err(Problem::bad_request(
                    "the portal session cookie appears more than once",
                ));
            }
            found = Some(value);
        }
    }
    Ok(found.map(|value| {
        let plausible =
            value.len() <= MAX_SECRET_CHARS && value.bytes().all(|b| b.is_ascii_alphanumeric());
        PortalSecret::from_presented(if plausible { value } else { "" })
    }))
}

/// The session secret of a request that [`Caller`] admitted as a session.
pub(crate) fn presented_secret(headers: &HeaderMap) -> Result<PortalSecret, Problem> {
    session_cookie(headers)?.ok_or_else(session_ended)
}

/// The `Set-Cookie` value that holds `secret` for `max_age_seconds`; `Secure` when the service
/// is reached over https.
pub(crate) fn session_cookie_header(
    secret: &PortalSecret,
    max_age_seconds: i64,
    secure: bool,
) -> String {
    let mut cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict",
        secret.expose_secret(),
        max_age_seconds.max(0)
    );
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn cleared_cookie_header(secure: bool) -> String {
    session_cookie_header(&PortalSecret::from_presented(""), 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_cookie_is_found_among_others_and_refused_twice() {
        let found = session_cookie(&headers(&[("cookie", "a=1; m2m_portal=abc; b=2")])).unwrap();
        assert_eq!(found.unwrap().expose_secret(), "abc");
        assert!(
            session_cookie(&headers(&[("cookie", "a=1")]))
                .unwrap()
                .is_none()
        );
        let twice = headers(&[("cookie", "m2m_portal=a"), ("cookie", "m2m_portal=b")]);
        assert_eq!(
            session_cookie(&twice).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        let odd = session_cookie(&headers(&[("cookie", "m2m_portal=a%20b")])).unwrap();
        assert_eq!(odd.unwrap().expose_secret(), "");
    }

    #[test]
    fn a_change_needs_the_csrf_token_and_the_own_origin() {
        let secret = PortalSecret::generate();
        let token = csrf_token(&secret);
        assert!(check_cross_site(&headers(&[]), &secret).is_err());
        assert!(check_cross_site(&headers(&[(CSRF_HEADER, "00")]), &secret).is_err());
        assert!(check_cross_site(&headers(&[(CSRF_HEADER, &token)]), &secret).is_ok());
        let same = headers(&[
            (CSRF_HEADER, &token),
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(check_cross_site(&same, &secret).is_ok());
        let other = headers(&[
            (CSRF_HEADER, &token),
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ]);
        assert!(check_cross_site(&other, &secret).is_err());
        assert_ne!(token, csrf_token(&PortalSecret::generate()));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_https() {
        let secret = PortalSecret::from_presented("abc");
        assert_eq!(
            session_cookie_header(&secret, 60, false),
            "m2m_portal=abc; Path=/; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        assert!(session_cookie_header(&secret, 60, true).ends_with("; Secure"));
        assert!(cleared_cookie_header(false).starts_with("m2m_portal=; Path=/; Max-Age=0"));
    }
}
