//! Framework-neutral rejections: the status, challenge, headers and problem+json body that the
//! HTTP contract prescribes for each way a request can fail authentication.
//!
//! A [`Rejection`] is cheap to build (no allocation on the paths a client can trigger in bulk)
//! and renders its headers and body only when an adapter asks for them, so each adapter merely
//! copies them into its framework's response.
//!
//! # Example
//!
//! ```
//! use http::{HeaderMap, StatusCode};
//! use m2m_core::{MemoryStore, Verifier};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let verifier = Verifier::builder(MemoryStore::new()).build();
//! let rejection = verifier.verify(&HeaderMap::new(), &[]).await.unwrap_err();
//! let response: http::Response<String> = rejection.into_response();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["cache-control"], "no-store");
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("ApiKey realm="));
//! # });
//! ```

use std::fmt;
use std::sync::Arc;

use http::StatusCode;
use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};

use crate::placement::{CredentialError, Placement};
use crate::policy::TokenTypes;
use crate::rate_limit::RateLimitState;
use crate::record::Principal;
use crate::token::TokenId;

/// The field naming a rate limit's quota and window (IETF HTTP rate-limit draft).
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
/// The field telling what is left of a rate limit and when it resets.
pub const RATELIMIT: &str = "ratelimit";

/// The media type of every rejection body (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Why a request is malformed (400 `invalid_request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// Both `X-API-KEY` and `Authorization: Bearer` were sent.
    BothHeaders,
    /// A credential header was repeated.
    Repeated(Placement),
    /// A credential header was empty.
    Empty(Placement),
    /// A credential header held bytes other than visible ASCII.
    InvalidCharacters(Placement),
    /// A credential header was over the length bound.
    TooLong(Placement),
    /// A token arrived in the other type's header; `expected` is where it belongs.
    WrongPlacement {
        /// The header the token must be sent in.
        expected: Placement,
    },
}

impl InvalidRequest {
    fn detail(self) -> &'static str {
        use InvalidRequest::*;
        use Placement::*;
        match self {
            BothHeaders => "send either X-API-KEY or Authorization: Bearer, not both",
            Repeated(ApiKey) => "the X-API-KEY header appears more than once",
            Repeated(Bearer) => "the Authorization header appears more than once",
            Empty(ApiKey) => "the X-API-KEY header is empty",
            Empty(Bearer) => "the bearer token is empty",
            InvalidCharacters(ApiKey) => {
                "the X-API-KEY header holds characters other than visible ASCII"
            }
            InvalidCharacters(Bearer) => {
                "the bearer token holds characters other than visible ASCII"
            }
            TooLong(ApiKey) => "the X-API-KEY header is longer than allowed",
            TooLong(Bearer) => "the Authorization header is longer than allowed",
            WrongPlacement { expected: ApiKey } => {
                "access tokens are sent in the X-API-KEY header, not as a bearer token"
            }
            WrongPlacement { expected: Bearer } => {
                "client-credentials tokens are sent in the Authorization header as Bearer, not in X-API-KEY"
            }
        }
    }

    fn placement(self) -> Placement {
        match self {
            InvalidRequest::BothHeaders => Placement::Bearer,
            InvalidRequest::Repeated(p)
            | InvalidRequest::Empty(p)
            | InvalidRequest::InvalidCharacters(p)
            | InvalidRequest::TooLong(p) => p,
            InvalidRequest::WrongPlacement { expected } => expected,
        }
    }
}

/// Each way authentication can fail, one per row of the HTTP contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No credentials (or only another scheme): 401, a challenge per enabled type, no error.
    MissingCredentials,
    /// Malformed credentials: 400 `invalid_request`.
    InvalidRequest(InvalidRequest),
    /// Bad checksum, unknown or revoked token: 401 `invalid_token`, one text for all three.
    InvalidToken,
    /// The token expired: 401 `invalid_token`.
    ExpiredToken,
    /// The token's type is not enabled for its tenant: 401 `invalid_token`.
    TokenTypeDisabled,
    /// A required scope is missing: 403 `insufficient_scope`.
    InsufficientScope,
    /// The store cannot answer and nothing usable is cached: 503 with `Retry-After`.
    StoreUnavailable,
    /// The token's rate limit is used up: 429 with `Retry-After`, `RateLimit-Policy` and
    /// `RateLimit`.
    RateLimited,
    /// A handler or guard asked for the caller, but no m2m middleware ran for the request: a
    /// mistake in the application's wiring, 500 with no challenge.
    MiddlewareMissing,
}

impl RejectionKind {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            RejectionKind::MissingCredentials
            | RejectionKind::InvalidToken
            | RejectionKind::ExpiredToken
            | RejectionKind::TokenTypeDisabled => StatusCode::UNAUTHORIZED,
            RejectionKind::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            RejectionKind::InsufficientScope => StatusCode::FORBIDDEN,
            RejectionKind::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            RejectionKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            RejectionKind::MiddlewareMissing => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 6750 error code, if the row has one.
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            RejectionKind::MissingCredentials
            | RejectionKind::StoreUnavailable
            | RejectionKind::RateLimited
            | RejectionKind::MiddlewareMissing => None,
            RejectionKind::InvalidRequest(_) => Some("invalid_request"),
            RejectionKind::InvalidToken
            | RejectionKind::ExpiredToken
            | RejectionKind::TokenTypeDisabled => Some("invalid_token"),
            RejectionKind::InsufficientScope => Some("insufficient_scope"),
        }
    }

    /// The human explanation, in the body's `detail` and the challenge's `error_description`.
    pub fn detail(self) -> &'static str {
        match self {
            RejectionKind::MissingCredentials => "the request carries no credentials",
            RejectionKind::InvalidRequest(reason) => reason.detail(),
            RejectionKind::InvalidToken => "the token is not valid",
            RejectionKind::ExpiredToken => "the token expired",
            RejectionKind::TokenTypeDisabled => "this type of token is not enabled",
            RejectionKind::InsufficientScope => "the token lacks a scope this resource requires",
            RejectionKind::StoreUnavailable => {
                "the token store cannot be reached; retry after the time given"
            }
            RejectionKind::RateLimited => {
                "the token's rate limit is used up; retry after the time given"
            }
            RejectionKind::MiddlewareMissing => {
                "the handler reads the authenticated caller, but no m2m authentication \
                 middleware ran for this request"
            }
        }
    }

    /// A short name for logs and metrics: `missing_credentials`, `invalid_request`,
    /// `invalid_token`, `expired_token`, `token_type_disabled`, `insufficient_scope`,
    /// `store_unavailable`, `rate_limited` or `middleware_missing`.
    ///
    /// ```
    /// use m2m_core::RejectionKind;
    /// assert_eq!(RejectionKind::ExpiredToken.reason(), "expired_token");
    /// ```
    pub fn reason(self) -> &'static str {
        match self {
            RejectionKind::MissingCredentials => "missing_credentials",
            RejectionKind::InvalidRequest(_) => "invalid_request",
            RejectionKind::InvalidToken => "invalid_token",
            RejectionKind::ExpiredToken => "expired_token",
            RejectionKind::TokenTypeDisabled => "token_type_disabled",
            RejectionKind::InsufficientScope => "insufficient_scope",
            RejectionKind::StoreUnavailable => "store_unavailable",
            RejectionKind::RateLimited => "rate_limited",
            RejectionKind::MiddlewareMissing => "middleware_missing",
        }
    }
}

/// The realm named in challenges: the default one costs no reference count per rejection,
/// which keeps a flood of malformed requests cheap.
#[derive(Clone, Debug)]
pub(crate) enum Realm {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Realm {
    pub(crate) fn new(realm: String) -> Self {
        if realm == crate::verifier::DEFAULT_REALM {
            Realm::Static(crate::verifier::DEFAULT_REALM)
        } else {
            Realm::Shared(realm.into())
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Realm::Static(realm) => realm,
            Realm::Shared(realm) => realm,
        }
    }
}

/// A refused request, ready to be rendered by any framework.
#[derive(Clone)]
pub struct Rejection {
    kind: RejectionKind,
    scheme: Placement,
    realm: Realm,
    enabled: TokenTypes,
    required_scopes: Option<Box<str>>,
    retry_after: u32,
    /// Where the token stands against its rate limit, on a 429.
    rate_limit: Option<RateLimitState>,
    /// The token's owner, when the token was found (expired, disabled, under-scoped): for logs.
    principal: Option<Principal>,
}

impl Rejection {
    pub(crate) fn new(kind: RejectionKind, scheme: Placement, realm: &Realm) -> Self {
        Self {
            kind,
            scheme,
            realm: realm.clone(),
            enabled: TokenTypes::all(),
            required_scopes: None,
            retry_after: 0,
            rate_limit: None,
            principal: None,
        }
    }

    /// The refusal of a handler or guard that reads the caller when no m2m middleware ran
    /// ([`RejectionKind::MiddlewareMissing`]): 500, problem+json, the same in every adapter.
    ///
    /// ```
    /// use m2m_core::Rejection;
    /// let rejection = Rejection::middleware_missing();
    /// assert_eq!(rejection.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    /// assert_eq!(rejection.www_authenticate(), None);
    /// assert!(rejection.body().contains("\"status\":500"));
    /// ```
    pub fn middleware_missing() -> Self {
        Self::new(
            RejectionKind::MiddlewareMissing,
            Placement::Bearer,
            &Realm::Static(crate::verifier::DEFAULT_REALM),
        )
    }

    pub(crate) fn with_principal(mut self, principal: &Principal) -> Self {
        self.principal = Some(principal.clone());
        self
    }

    /// The id of the refused token, when the store knows it (an expired token, one of a
    /// disabled type, one lacking a scope); never the token itself.
    pub fn token_id(&self) -> Option<&TokenId> {
        self.principal.as_ref().map(Principal::token_id)
    }

    /// The tenant of the refused token, when the store knows it.
    pub fn tenant(&self) -> Option<&str> {
        self.principal.as_ref().map(Principal::tenant)
    }

    /// The kind of the refused token, when the store knows it.
    pub fn token_kind(&self) -> Option<crate::TokenKind> {
        self.principal.as_ref().map(Principal::kind)
    }

    pub(crate) fn from_credential_error(
        error: CredentialError,
        realm: &Realm,
        enabled: TokenTypes,
    ) -> Self {
        let kind = match error {
            CredentialError::Missing => RejectionKind::MissingCredentials,
            CredentialError::BothHeaders => {
                RejectionKind::InvalidRequest(InvalidRequest::BothHeaders)
            }
            CredentialError::Repeated(p) => {
                RejectionKind::InvalidRequest(InvalidRequest::Repeated(p))
            }
            CredentialError::Empty(p) => RejectionKind::InvalidRequest(InvalidRequest::Empty(p)),
            CredentialError::InvalidCharacters(p) => {
                RejectionKind::InvalidRequest(InvalidRequest::InvalidCharacters(p))
            }
            CredentialError::TooLong(p) => {
                RejectionKind::InvalidRequest(InvalidRequest::TooLong(p))
            }
        };
        let scheme = match kind {
            RejectionKind::InvalidRequest(reason) => reason.placement(),
            _ => Placement::Bearer,
        };
        let mut rejection = Self::new(kind, scheme, realm);
        rejection.enabled = enabled;
        rejection
    }

    pub(crate) fn with_required_scopes(mut self, scopes: &[&str]) -> Self {
        self.required_scopes = Some(scopes.join(" ").into());
        self
    }

    pub(crate) fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = seconds;
        self
    }

    pub(crate) fn with_rate_limit(mut self, state: RateLimitState) -> Self {
        self.retry_after = state.reset_seconds;
        self.rate_limit = Some(state);
        self
    }

    /// Where the token stands against its rate limit, on a 429
    /// ([`RejectionKind::RateLimited`]).
    pub fn rate_limit(&self) -> Option<&RateLimitState> {
        self.rate_limit.as_ref()
    }

    /// Which contract row this is.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The RFC 6750 error code, if any.
    pub fn error_code(&self) -> Option<&'static str> {
        self.kind.error_code()
    }

    /// The human explanation; never contains the token.
    pub fn detail(&self) -> &'static str {
        self.kind.detail()
    }

    /// Seconds for `Retry-After`, on a 503 or a 429.
    pub fn retry_after(&self) -> Option<u32> {
        matches!(
            self.kind,
            RejectionKind::StoreUnavailable | RejectionKind::RateLimited
        )
        .then_some(self.retry_after)
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3), on a 401, 400 or 403.
    pub fn www_authenticate(&self) -> Option<String> {
        let realm = quote(self.realm.as_str());
        let challenge = |scheme: Placement| match scheme {
            Placement::Bearer => format!("Bearer realm={realm}"),
            Placement::ApiKey => format!("ApiKey realm={realm}, header=\"X-API-KEY\""),
        };
        match self.kind {
            RejectionKind::StoreUnavailable
            | RejectionKind::RateLimited
            | RejectionKind::MiddlewareMissing => None,
            RejectionKind::MissingCredentials => {
                let mut enabled: Vec<Placement> =
                    self.enabled.iter().map(|t| t.placement()).collect();
                if enabled.is_empty() {
                    enabled = vec![Placement::ApiKey, Placement::Bearer];
                }
                Some(
                    enabled
                        .into_iter()
                        .map(challenge)
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            }
            kind => {
                let mut value = challenge(self.scheme);
                if let Some(code) = kind.error_code() {
                    value.push_str(&format!(", error=\"{code}\""));
                }
                value.push_str(&format!(", error_description={}", quote(kind.detail())));
                if let Some(scopes) = &self.required_scopes {
                    value.push_str(&format!(", scope={}", quote(scopes)));
                }
                Some(value)
            }
        }
    }

    /// The problem+json body (RFC 9457): `type`, `title`, `status`, `detail`, and `error`
    /// where the row has an RFC 6750 code.
    pub fn body(&self) -> String {
        let status = self.status();
        let mut body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.detail(),
        });
        if let Some(code) = self.error_code() {
            body["error"] = code.into();
        }
        if let Some(scopes) = &self.required_scopes {
            body["scope"] = scopes.as_ref().into();
        }
        body.to_string()
    }

    /// Every response header: `Content-Type`, `Cache-Control: no-store`, and
    /// `WWW-Authenticate`, `Retry-After`, `RateLimit-Policy` and `RateLimit` as the row
    /// demands.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = vec![
            (CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ];
        if let Some(value) = self
            .www_authenticate()
            .and_then(|v| HeaderValue::try_from(v).ok())
        {
            headers.push((WWW_AUTHENTICATE, value));
        }
        if let Some(seconds) = self.retry_after() {
            headers.push((RETRY_AFTER, HeaderValue::from(seconds)));
        }
        if let Some(state) = &self.rate_limit {
            for (name, value) in [
                (RATELIMIT_POLICY, state.policy_field()),
                (RATELIMIT, state.field()),
            ] {
                if let Ok(value) = HeaderValue::try_from(value) {
                    headers.push((HeaderName::from_static(name), value));
                }
            }
        }
        headers
    }

    /// The whole response, for frameworks built on the `http` crate.
    pub fn into_response<B: From<String>>(self) -> http::Response<B> {
        let mut response = http::Response::new(B::from(self.body()));
        *response.status_mut() = self.status();
        response.headers_mut().extend(self.headers());
        response
    }
}

/// An RFC 9110 quoted-string.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("kind", &self.kind)
            .field("status", &self.status().as_u16())
            .field("token_id", &self.token_id())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail())
    }
}

impl std::error::Error for Rejection {}
