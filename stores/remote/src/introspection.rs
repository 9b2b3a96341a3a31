//! The RFC 7662 introspection answer ([`IntrospectionAnswer`], shared with the token service)
//! and the [`TokenRecord`] built from it.

use m2m_core::wire::IntrospectionAnswer;
use m2m_core::{CHECKSUM_LEN, SECRET_LEN, TokenDigest, TokenKind, TokenRecord};
use time::OffsetDateTime;

/// Why a response body could not be used. The messages name fields, never values.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BadResponse {
    /// Not JSON, or not the expected object.
    NotJson,
    /// An active token without this required field.
    Missing(&'static str),
    /// A field with a value outside the protocol.
    Invalid(&'static str),
}

impl BadResponse {
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::NotJson => "the introspection response is not the expected JSON object".into(),
            Self::Missing(field) => {
                format!("the introspection response of an active token lacks `{field}`")
            }
            Self::Invalid(field) => {
                format!("the introspection response has an invalid `{field}`")
            }
        }
    }
}

/// The record described by an introspection response body: `None` for `{"active": false}`.
pub(crate) fn parse(
    body: &[u8],
    token: &str,
    digest: &TokenDigest,
) -> Result<Option<TokenRecord>, BadResponse> {
    let response: IntrospectionAnswer =
        serde_json::from_slice(body).map_err(|_| BadResponse::NotJson)?;
    if !response.active {
        return Ok(None);
    }
    let id = response.jti.ok_or(BadResponse::Missing("jti"))?;
    if id.as_str().is_empty() {
        return Err(BadResponse::Invalid("jti"));
    }
    let kind = match response.kind.ok_or(BadResponse::Missing("kind"))? {
        kind @ (TokenKind::AccessToken | TokenKind::BearerToken) => kind,
        _ => return Err(BadResponse::Invalid("kind")),
    };
    let tenant = response
        .tenant_id
        .ok_or(BadResponse::Missing("tenant_id"))?;
    let created_at = unix_seconds(response.iat.ok_or(BadResponse::Missing("iat"))?)
        .ok_or(BadResponse::Invalid("iat"))?;
    let expires_at = response
        .exp
        .map(|exp| unix_seconds(exp).ok_or(BadResponse::Invalid("exp")))
        .transpose()?;
    let scopes = response
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Some(TokenRecord {
        id,
        digest: *digest,
        stub: stub(token),
        kind,
        tenant,
        user: response.sub,
        description: String::new(),
        scopes,
        created_at,
        expires_at,
        revoked_at: None,
        last_used_at: None,
        client_id: response.client_id,
        credential_id: response.credential_id,
        created_by: None,
        rate_limit: response.rate_limit,
    }))
}

fn unix_seconds(seconds: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds).ok()
}

/// The display stub as the core writes it (prefix, type and four secret characters, then `…`),
/// or `""` when the text is not shaped like a token.
fn stub(token: &str) -> String {
    const SHOWN: usize = 4;
    token
        .len()
        .checked_sub(SECRET_LEN + CHECKSUM_LEN)
        .filter(|&start| start > 0)
        .and_then(|start| token.get(..start + SHOWN))
        .map_or_else(String::new, |shown| format!("{shown}…"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use m2m_core::{Expiry, NewToken, TokenFormat, TokenId};

    fn issued(kind: TokenKind) -> m2m_core::IssuedToken {
        NewToken::new(kind, "acme", Expiry::Never)
            .generate(&TokenFormat::default(), OffsetDateTime::now_utc())
    }

    #[test]
    fn inactive_is_none() {
        let token = issued(TokenKind::AccessToken).token;
        let digest = token.digest();
        let found = parse(br#"{"active": false}"#, token.expose_secret(), &digest);
        assert_eq!(found, Ok(None));
    }

    #[test]
    fn active_access_token_becomes_a_record() {
        let issued = issued(TokenKind::AccessToken);
        let token = issued.token.expose_secret();
        let body = br#"{"active": true, "jti": "tok_1", "kind": "access_token",
            "tenant_id": "acme", "sub": "alice", "scope": "reports:read  reports:write",
            "exp": 2000000000, "iat": 1700000000, "unknown": [1, 2]}"#;
        let record = parse(body, token, &issued.token.digest()).unwrap().unwrap();
        assert_eq!(record.id, TokenId::new("tok_1"));
        assert_eq!(record.digest, issued.token.digest());
        assert_eq!(record.stub, issued.record.stub);
        assert_eq!(record.kind, TokenKind::AccessToken);
        assert_eq!(record.tenant, "acme");
        assert_eq!(record.user.as_deref(), Some("alice"));
        assert_eq!(record.scopes, ["reports:read", "reports:write"]);
        assert_eq!(record.created_at.unix_timestamp(), 1_700_000_000);
        assert_eq!(record.expires_at.unwrap().unix_timestamp(), 2_000_000_000);
        assert_eq!(record.client_id, None);
        assert!(record.revoked_at.is_none());
    }

    #[test]
    fn active_bearer_token_without_expiry_or_scope() {
        let issued = issued(TokenKind::BearerToken);
        let body = br#"{"active": true, "jti": "tok_2", "kind": "bearer_token",
            "tenant_id": "acme", "client_id": "m2m_ci_x", "iat": 1700000000}"#;
        let record = parse(body, issued.token.expose_secret(), &issued.token.digest())
            .unwrap()
            .unwrap();
        assert_eq!(record.kind, TokenKind::BearerToken);
        assert_eq!(record.client_id.as_deref(), Some("m2m_ci_x"));
        assert!(record.scopes.is_empty());
        assert_eq!(record.expires_at, None);
        assert_eq!(record.user, None);
    }

    #[test]
    fn broken_bodies_are_refused_without_echoing_values() {
        let token = "m2m_at_short";
        let digest = TokenDigest::of(token);
        let cases: [(&[u8], BadResponse); 10] = [
            (b"<html>oops</html>", BadResponse::NotJson),
            (b"{\"active\": \"yes\"}", BadResponse::NotJson),
            (b"[]", BadResponse::NotJson),
            (
                br#"{"active": true, "kind": "bearer_token", "tenant_id": "a", "iat": 1}"#,
                BadResponse::Missing("jti"),
            ),
            (
                br#"{"active": true, "jti": "", "kind": "bearer_token", "tenant_id": "a", "iat": 1}"#,
                BadResponse::Invalid("jti"),
            ),
            (
                br#"{"active": true, "jti": "t", "kind": "bearer_token", "iat": 1}"#,
                BadResponse::Missing("tenant_id"),
            ),
            (
                br#"{"active": true, "jti": "t", "token_type": "bearer", "tenant_id": "a", "iat": 1}"#,
                BadResponse::Missing("kind"),
            ),
            (
                br#"{"active": true, "jti": "t", "kind": "mac", "tenant_id": "a", "iat": 1}"#,
                BadResponse::NotJson,
            ),
            (
                br#"{"active": true, "jti": "t", "kind": "client_secret", "tenant_id": "a", "iat": 1}"#,
                BadResponse::Invalid("kind"),
            ),
            (
                br#"{"active": true, "jti": "t", "kind": "bearer_token", "tenant_id": "a"}"#,
                BadResponse::Missing("iat"),
            ),
        ];
        for (body, expected) in cases {
            let error = parse(body, token, &digest).unwrap_err();
            assert!(!error.describe().contains(token));
            assert_eq!(error, expected);
        }
    }

    #[test]
    fn stub_of_odd_text_is_empty() {
        assert_eq!(stub("m2m_at_short"), "");
        assert_eq!(stub(""), "");
    }

    proptest::proptest! {
        /// Any answer body: a record, `None` or a described refusal, never a panic.
        #[test]
        fn any_answer_body_is_read_without_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let issued = issued(TokenKind::AccessToken);
            let _ = parse(&body, issued.token.expose_secret(), &issued.token.digest());
        }

        /// Any JSON object with the answer's field names: never a panic.
        #[test]
        fn any_answer_shaped_json_is_read_without_panic(
            active in proptest::prelude::any::<bool>(),
            exp in proptest::prelude::any::<i64>(),
            iat in proptest::prelude::any::<i64>(),
            text in ".{0,40}",
        ) {
            let issued = issued(TokenKind::AccessToken);
            let body = serde_json::json!({
                "active": active, "jti": text, "kind": text, "tenant_id": text,
                "sub": text, "client_id": text, "scope": text, "exp": exp, "iat": iat,
            });
            let _ = parse(body.to_string().as_bytes(), issued.token.expose_secret(), &issued.token.digest());
        }
    }
}
