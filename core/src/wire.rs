//! The shapes the token service and `m2m-remote` exchange, defined once for both sides
//! (feature `wire`).
//!
//! - [`IntrospectionAnswer`]: the JSON body of `POST /oauth/introspect` (RFC 7662 §2.2).
//! - [`RevokedEventData`]: the `data` of a [`REVOKED_EVENT`] in the server-sent event stream
//!   `GET /v1/revocations`; a [`RESET_EVENT`] there says that revocations may have been missed.
//! - [`UsageReport`]: the JSON body of `POST /v1/usage`, the uses a resource server saw.
//!
//! # Names
//!
//! One name per concept, as in the code: an active answer says which of the token formats it
//! describes under `kind`, with [`TokenKind`]'s serde names (`"access_token"` for an access
//! token sent in `X-API-KEY`, `"bearer_token"` for a client-credentials bearer token sent as
//! `Authorization: Bearer`). RFC 7662's optional `token_type` is not sent: in RFC 6749 it names
//! the OAuth token type (`"Bearer"`), which an access token sent in `X-API-KEY` does not have,
//! and `kind` already tells the two apart.
//!
//! # Example
//!
//! ```
//! use m2m_core::wire::IntrospectionAnswer;
//! use m2m_core::{Expiry, NewToken, TokenFormat, TokenKind};
//!
//! let now = time::macros::datetime!(2026-01-02 03:04:05 UTC);
//! let issued = NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never)
//!     .scope("reports:read")
//!     .generate(&TokenFormat::default(), now);
//! let answer = IntrospectionAnswer::active(&issued.record.principal());
//! let json = serde_json::to_value(&answer).unwrap();
//! assert_eq!(json["active"], true);
//! assert_eq!(json["kind"], "access_token");
//! assert_eq!(json["scope"], "reports:read");
//! assert_eq!(json["iat"], now.unix_timestamp());
//! assert!(json.get("exp").is_none() && json.get("token_type").is_none());
//!
//! let inactive = serde_json::to_string(&IntrospectionAnswer::inactive()).unwrap();
//! assert_eq!(inactive, r#"{"active":false}"#);
//! ```

use serde::{Deserialize, Serialize};

use crate::rate_limit::RateLimit;
use crate::record::Principal;
use crate::store::RevocationEvent;
use crate::token::{TokenDigest, TokenId, TokenKind};

/// The body of `POST /v1/usage`: when tokens were last used at a resource server, for the
/// service's `last_used_at`.
///
/// ```
/// use m2m_core::TokenId;
/// use m2m_core::wire::UsageReport;
///
/// let at = time::macros::datetime!(2026-01-02 03:04:05 UTC);
/// let report = UsageReport::new(&[(TokenId::new("tok_a"), at)]);
/// let json = serde_json::to_string(&report).unwrap();
/// assert_eq!(json, format!(r#"{{"uses":[{{"token_id":"tok_a","used_at":{}}}]}}"#, at.unix_timestamp()));
/// assert_eq!(serde_json::from_str::<UsageReport>(&json).unwrap(), report);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    /// One entry per token.
    pub uses: Vec<ReportedUse>,
}

/// One use in a [`UsageReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedUse {
    /// The token's public id.
    pub token_id: TokenId,
    /// When it was last used, Unix seconds.
    pub used_at: i64,
}

impl UsageReport {
    /// The report of `uses`, as the verifier hands them to
    /// [`TokenLookup::record_usage`](crate::TokenLookup::record_usage).
    pub fn new(uses: &[(TokenId, time::OffsetDateTime)]) -> Self {
        Self {
            uses: uses
                .iter()
                .map(|(token_id, at)| ReportedUse {
                    token_id: token_id.clone(),
                    used_at: at.unix_timestamp(),
                })
                .collect(),
        }
    }
}

/// The server-sent event type of a revocation.
pub const REVOKED_EVENT: &str = "revoked";

/// The server-sent event type that tells a follower it may have missed revocations (it
/// connected without a `Last-Event-ID`, or with one the service can no longer replay from, or
/// it fell behind): it drops everything cached. Its `id` is where the follower resumes from.
pub const RESET_EVENT: &str = "reset";

/// An RFC 7662 introspection answer.
///
/// Only `active` is required on the wire; an inactive answer carries nothing else. An active
/// one carries `jti`, `kind`, `tenant_id`, `scope` and `iat`, and `sub`, `client_id`,
/// `credential_id`, `exp` and `rate_limit` when the token has them. Unknown fields are ignored when reading. It holds no secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrospectionAnswer {
    /// Whether the token may be used now.
    pub active: bool,
    /// The token's public id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<TokenId>,
    /// The token's kind: `access_token` or `bearer_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TokenKind>,
    /// The tenant the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The user the token was created for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// For a bearer token, the client id of the credential it was issued from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The granted scopes, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Expiry, Unix seconds; absent for a token that never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// When the token was issued, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// For a bearer token, the id of the client credential it was issued from: its requests
    /// count against that credential's rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<TokenId>,
    /// The token's rate limit, `{"limit": N, "window_seconds": S}`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

impl IntrospectionAnswer {
    /// `{"active": false}`: unknown, revoked, expired, malformed, disabled or not a token that
    /// is presented on its own.
    pub fn inactive() -> Self {
        Self::default()
    }

    /// The answer for the active token `principal` authenticates.
    pub fn active(principal: &Principal) -> Self {
        Self {
            active: true,
            jti: Some(principal.token_id().clone()),
            kind: Some(principal.kind()),
            tenant_id: Some(principal.tenant().to_owned()),
            sub: principal.user().map(str::to_owned),
            client_id: principal.client_id().map(str::to_owned),
            scope: Some(principal.scopes().collect::<Vec<_>>().join(" ")),
            exp: principal
                .expires_at()
                .map(time::OffsetDateTime::unix_timestamp),
            iat: Some(principal.issued_at().unix_timestamp()),
            credential_id: principal.credential_id().cloned(),
            rate_limit: principal.rate_limit(),
        }
    }
}

/// The `data` of a [`REVOKED_EVENT`]: `{"token_id": "tok_…", "digest": "<64 hex>"}`, the
/// digest optional.
///
/// ```
/// use m2m_core::wire::RevokedEventData;
/// use m2m_core::{RevocationEvent, TokenDigest, TokenId};
///
/// let event = RevocationEvent {
///     token_id: TokenId::new("tok_1"),
///     digest: Some(TokenDigest::of("m2m_at_x")),
/// };
/// let json = serde_json::to_string(&RevokedEventData::from(&event)).unwrap();
/// let read: RevokedEventData = serde_json::from_str(&json).unwrap();
/// assert_eq!(read.to_event(), Some(event));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedEventData {
    /// The revoked token's public id.
    pub token_id: TokenId,
    /// The SHA-256 digest of the token, lowercase hex, when the service knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl From<&RevocationEvent> for RevokedEventData {
    fn from(event: &RevocationEvent) -> Self {
        Self {
            token_id: event.token_id.clone(),
            digest: event.digest.map(|digest| digest.to_hex()),
        }
    }
}

impl RevokedEventData {
    /// The revocation this data describes; `None` without a token id. A digest that is not
    /// 64 hex characters is dropped (caches then evict by id).
    pub fn to_event(&self) -> Option<RevocationEvent> {
        if self.token_id.as_str().is_empty() {
            return None;
        }
        Some(RevocationEvent {
            token_id: self.token_id.clone(),
            digest: self.digest.as_deref().and_then(TokenDigest::from_hex),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Expiry, NewToken, TokenFormat};
    use time::macros::datetime;

    #[test]
    fn introspection_answers_round_trip() {
        let now = datetime!(2026-01-02 03:04:05 UTC);
        let mut request = NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60))
            .scope("a")
            .scope("b")
            .user("alice")
            .rate_limit(crate::RateLimit::new(10, 60).unwrap());
        request.credential = Some((TokenId::new("tok_cred"), "m2m_ci_x".to_owned()));
        let issued = request.generate(&TokenFormat::default(), now);
        let answer = IntrospectionAnswer::active(&issued.record.principal());
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "active": true, "jti": issued.record.id.as_str(), "kind": "bearer_token",
                "tenant_id": "acme", "sub": "alice", "client_id": "m2m_ci_x", "scope": "a b",
                "exp": now.unix_timestamp() + 3600, "iat": now.unix_timestamp(),
                "credential_id": "tok_cred", "rate_limit": {"limit": 10, "window_seconds": 60},
            })
        );
        let read: IntrospectionAnswer = serde_json::from_value(json).unwrap();
        assert_eq!(read, answer);

        let inactive: IntrospectionAnswer =
            serde_json::from_str(r#"{"active": false, "extra": [1]}"#).unwrap();
        assert_eq!(inactive, IntrospectionAnswer::inactive());
        assert!(serde_json::from_str::<IntrospectionAnswer>(r#"{"kind": "x"}"#).is_err());
    }

    #[test]
    fn every_kind_has_its_wire_name() {
        for (kind, name) in [
            (TokenKind::AccessToken, "access_token"),
            (TokenKind::BearerToken, "bearer_token"),
            (TokenKind::ClientId, "client_id"),
            (TokenKind::ClientSecret, "client_secret"),
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
            assert_eq!(
                serde_json::from_value::<TokenKind>(name.into()).unwrap(),
                kind
            );
        }
    }

    #[test]
    fn revoked_event_data_round_trips() {
        let digest = TokenDigest::of("m2m_at_x");
        let event = RevocationEvent {
            token_id: TokenId::new("tok_1"),
            digest: Some(digest),
        };
        let json = serde_json::to_value(RevokedEventData::from(&event)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"token_id": "tok_1", "digest": digest.to_hex()})
        );
        let read: RevokedEventData = serde_json::from_value(json).unwrap();
        assert_eq!(read.to_event(), Some(event));

        let without: RevokedEventData = serde_json::from_str(r#"{"token_id": "tok_2"}"#).unwrap();
        assert_eq!(without.to_event().unwrap().digest, None);
        let bad: RevokedEventData =
            serde_json::from_str(r#"{"token_id": "tok_3", "digest": "nothex"}"#).unwrap();
        assert_eq!(bad.to_event().unwrap().digest, None);
        let empty: RevokedEventData = serde_json::from_str(r#"{"token_id": ""}"#).unwrap();
        assert_eq!(empty.to_event(), None);
    }
}
