//! How the resource server proves to the token service that it may introspect.

use std::fmt;

use reqwest::RequestBuilder;
use reqwest::header::HeaderValue;

use crate::error::RemoteError;

/// The header in which an access token is sent.
const X_API_KEY: &str = "x-api-key";

/// The resource server's own credential, carrying the scope `m2m:introspect`, sent with every
/// introspection request and with the revocation event stream.
///
/// `Debug` redacts every secret; only a client id, which is public, is shown.
///
/// ```
/// use m2m_remote::IntrospectionCredential;
///
/// let credential = IntrospectionCredential::Basic {
///     client_id: "m2m_ci_example".into(),
///     client_secret: "m2m_cs_do-not-print".into(),
/// };
/// let shown = format!("{credential:?}");
/// assert!(shown.contains("m2m_ci_example"));
/// assert!(!shown.contains("do-not-print"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IntrospectionCredential {
    /// An access token, sent as `X-API-KEY: <token>`.
    ApiKey(String),
    /// A client-credentials bearer token, sent as `Authorization: Bearer <token>`.
    Bearer(String),
    /// A client id and secret, sent as HTTP Basic (RFC 6749 §2.3.1: each part form-encoded).
    Basic {
        /// The public client id (`m2m_ci_…`).
        client_id: String,
        /// The client secret (`m2m_cs_…`).
        client_secret: String,
    },
}

impl fmt::Debug for IntrospectionCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Self::Basic { client_id, .. } => f
                .debug_struct("Basic")
                .field("client_id", client_id)
                .field("client_secret", &format_args!("<redacted>"))
                .finish(),
        }
    }
}

/// A credential checked once, ready to be put on requests.
#[derive(Clone)]
pub(crate) struct Authorization {
    header: &'static str,
    value: HeaderValue,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl Authorization {
    /// Builds the header once; a value that is not a valid header is refused.
    pub(crate) fn new(credential: &IntrospectionCredential) -> Result<Self, RemoteError> {
        let (header, text) = match credential {
            IntrospectionCredential::ApiKey(token) => (X_API_KEY, token.clone()),
            IntrospectionCredential::Bearer(token) => ("authorization", format!("Bearer {token}")),
            IntrospectionCredential::Basic {
                client_id,
                client_secret,
            } => {
                let pair = format!("{}:{}", form_encode(client_id), form_encode(client_secret));
                (
                    "authorization",
                    format!("Basic {}", base64(pair.as_bytes())),
                )
            }
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| RemoteError::InvalidCredential)?;
        if text.is_empty() || text.ends_with(' ') {
            return Err(RemoteError::InvalidCredential);
        }
        value.set_sensitive(true);
        Ok(Self { header, value })
    }

    /// `request` with the credential header.
    pub(crate) fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        request.header(self.header, self.value.clone())
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (RFC 6749 Appendix B).
fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected, "{input}");
        }
    }

    #[test]
    fn form_encoding_keeps_token_characters_and_escapes_the_rest() {
        assert_eq!(form_encode("m2m_ci_Ab09"), "m2m_ci_Ab09");
        assert_eq!(form_encode("a:b c/é"), "a%3Ab+c%2F%C3%A9");
    }

    #[test]
    fn every_variant_redacts_its_secret() {
        for credential in [
            IntrospectionCredential::ApiKey("m2m_at_secret".into()),
            IntrospectionCredential::Bearer("m2m_cc_secret".into()),
            IntrospectionCredential::Basic {
                client_id: "m2m_ci_public".into(),
                client_secret: "m2m_cs_secret".into(),
            },
        ] {
            let shown = format!("{credential:?}");
            assert!(!shown.contains("secret\""), "{shown}");
            assert!(!shown.contains("m2m_at_secret") && !shown.contains("m2m_cc_secret"));
            assert!(!shown.contains("m2m_cs_secret"));
            let authorization = Authorization::new(&credential).unwrap();
            assert!(authorization.value.is_sensitive());
            assert!(!format!("{authorization:?}").contains("secret"));
        }
    }

    #[test]
    fn basic_credentials_are_encoded_as_rfc_6749_says() {
        let authorization = Authorization::new(&IntrospectionCredential::Basic {
            client_id: "id".into(),
            client_secret: "s:cret".into(),
        })
        .unwrap();
        assert_eq!(authorization.header, "authorization");
        // base64("id:s%3Acret")
        assert_eq!(authorization.value, "Basic aWQ6cyUzQWNyZXQ=");
    }

    #[test]
    fn header_breaking_credentials_are_refused() {
        for bad in ["", "line\nbreak"] {
            assert!(matches!(
                Authorization::new(&IntrospectionCredential::ApiKey(bad.into())),
                Err(RemoteError::InvalidCredential)
            ));
        }
    }
}
