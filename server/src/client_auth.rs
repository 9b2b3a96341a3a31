//! Client authentication at the token service: the one HTTP Basic parser, and how a resource
//! server proves it may introspect and follow revocations.
//!
//! HTTP Basic (RFC 7617) carries `base64(client_id ":" client_secret)`, each part
//! `application/x-www-form-urlencoded` first (RFC 6749 §2.3.1), so `+` is a space and `%XX` a
//! byte. The header is bounded ([`MAX_AUTHORIZATION_LEN`]) and every step is linear in it.
//! The secret itself is checked by the core ([`Verifier::check_client`]): cached by its
//! digest, then the client id compared in constant time.

use std::fmt;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use m2m_core::{DEFAULT_MAX_HEADER_LEN, Principal, TokenCheckError, TokenId, Verifier, X_API_KEY};

use crate::problem::Problem;

/// The scope a resource server's credential needs to introspect and to follow revocations.
pub const INTROSPECT_SCOPE: &str = "m2m:introspect";

/// The longest `Authorization` header read, in bytes, as for the credential headers.
pub(crate) const MAX_AUTHORIZATION_LEN: usize = DEFAULT_MAX_HEADER_LEN;

/// A client id and secret from HTTP Basic. `Debug` shows the id only.
pub(crate) struct ClientCredentials {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Why an `Authorization` header could not be read as HTTP Basic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BasicError {
    /// More than one `Authorization` header.
    Repeated,
    /// Basic, but too long, not base64, not UTF-8, without `:` or badly form-encoded.
    Malformed,
}

/// The client credentials of an `Authorization: Basic` header: `Ok(None)` when the request
/// has no `Authorization` header or one with another scheme.
///
/// # Errors
///
/// [`BasicError::Repeated`] for more than one `Authorization` header, whatever their schemes;
/// [`BasicError::Malformed`] for a Basic header that cannot be read.
pub(crate) fn basic_credentials(
    headers: &HeaderMap,
) -> Result<Option<ClientCredentials>, BasicError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BasicError::Repeated);
    }
    let bytes = value.as_bytes();
    let scheme_end = bytes.iter().position(|&b| b == b' ').unwrap_or(bytes.len());
    if !bytes[..scheme_end].eq_ignore_ascii_case(b"basic") {
        return Ok(None);
    }
    if bytes.len() > MAX_AUTHORIZATION_LEN {
        return Err(BasicError::Malformed);
    }
    let encoded = bytes[scheme_end..].trim_ascii();
    let decoded = STANDARD
        .decode(encoded)
        .map_err(|_| BasicError::Malformed)?;
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(BasicError::Malformed)?;
    Ok(Some(ClientCredentials {
        client_id: form_decode(&decoded[..colon])?,
        client_secret: form_decode(&decoded[colon + 1..])?,
    }))
}

/// One `application/x-www-form-urlencoded` value: `+` is a space, `%XX` a byte; UTF-8.
fn form_decode(part: &[u8]) -> Result<String, BasicError> {
    let spaced: Vec<u8> = part
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| BasicError::Malformed)
}

/// The 401 of a client that failed to authenticate, with a Basic challenge.
pub(crate) fn refused_client() -> Response {
    let mut response =
        Problem::new(StatusCode::UNAUTHORIZED, "client authentication failed").into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"m2m\""),
    );
    response
}

/// The token id of the caller's credential, when it proves a resource server: an access or
/// bearer token through `verifier` (the service's admin verifier: both types enabled, cached),
/// or a client id and secret by HTTP Basic, checked by the same verifier; either way the
/// credential must carry [`INTROSPECT_SCOPE`] and belong to the environment's own tenant.
///
/// Refusals: 401 for a missing, unknown, revoked or expired credential, 403 without the
/// scope, 400 for a repeated `Authorization` header, 503 when the store cannot answer; each
/// logged at debug level with its reason.
pub(crate) async fn authenticate_resource_server(
    verifier: &Verifier,
    headers: &HeaderMap,
) -> Result<TokenId, Response> {
    let basic = match basic_credentials(headers) {
        Ok(basic) => basic,
        Err(BasicError::Repeated) => {
            tracing::debug!(reason = "repeated_authorization", "resource server refused");
            return Err(
                Problem::bad_request("the Authorization header is repeated").into_response()
            );
        }
        Err(BasicError::Malformed) => {
            tracing::debug!(reason = "malformed_basic", "resource server refused");
            return Err(refused_client());
        }
    };
    let credential = match basic {
        None => match verifier.verify(headers, &[INTROSPECT_SCOPE]).await {
            Ok(principal) => principal,
            Err(rejection) => {
                tracing::debug!(
                    reason = ?rejection.kind(),
                    status = rejection.status().as_u16(),
                    "resource server refused"
                );
                return Err(rejection.into_response::<Body>());
            }
        },
        Some(client) => authenticate_client(verifier, headers, &client).await?,
    };
    // The scope counts only in the environment's own tenant.
    if !crate::rights::holds_environment_scope(&credential, INTROSPECT_SCOPE) {
        tracing::debug!(
            reason = "not_an_environment_resource_server",
            token_id = %credential.token_id(),
            "resource server refused"
        );
        return Err(Problem::forbidden(
            "the credential lacks the scope m2m:introspect of the environment",
        )
        .into_response());
    }
    Ok(credential.token_id().clone())
}

/// A client id and secret by HTTP Basic, checked by `verifier`.
async fn authenticate_client(
    verifier: &Verifier,
    headers: &HeaderMap,
    client: &ClientCredentials,
) -> Result<Principal, Response> {
    if headers.contains_key(X_API_KEY) {
        tracing::debug!(reason = "two_credentials", "resource server refused");
        return Err(refused_client());
    }
    match verifier
        .check_client(&client.client_id, &client.client_secret)
        .await
    {
        Ok(credential) => Ok(credential),
        Err(TokenCheckError::Inactive(reason)) => {
            tracing::debug!(
                reason = reason.as_str(),
                client_id = %client.client_id,
                "resource server refused"
            );
            Err(refused_client())
        }
        Err(TokenCheckError::StoreUnavailable { retry_after }) => {
            Err(Problem::store_unavailable(retry_after).into_response())
        }
        Err(other) => {
            tracing::debug!(error = %other, "resource server refused");
            Err(refused_client())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn pair(values: &[&str]) -> Result<Option<(String, String)>, BasicError> {
        basic_credentials(&with(values)).map(|found| found.map(|c| (c.client_id, c.client_secret)))
    }

    #[test]
    fn basic_header_shapes() {
        let some = |id: &str, secret: &str| Ok(Some((id.to_owned(), secret.to_owned())));
        assert_eq!(pair(&[]), Ok(None));
        assert_eq!(pair(&["Bearer abc"]), Ok(None));
        assert_eq!(pair(&["Basicx abc"]), Ok(None));
        // base64("id:s%3Acret")
        assert_eq!(pair(&["basic aWQ6cyUzQWNyZXQ="]), some("id", "s:cret"));
        assert_eq!(pair(&["BASIC   aWQ6cyUzQWNyZXQ=  "]), some("id", "s:cret"));
        // base64("a+b:c:d") — `+` is a space, only the first colon splits
        assert_eq!(pair(&["Basic YStiOmM6ZA=="]), some("a b", "c:d"));
        // base64("id:") — an empty secret is the verifier's to refuse
        assert_eq!(pair(&["Basic aWQ6"]), some("id", ""));
        assert_eq!(pair(&["Basic !!!"]), Err(BasicError::Malformed));
        assert_eq!(pair(&["Basic"]), Err(BasicError::Malformed));
        // base64("no colon")
        assert_eq!(pair(&["Basic bm8gY29sb24="]), Err(BasicError::Malformed));
        // base64("id:%FF") — not UTF-8 once decoded
        assert_eq!(pair(&["Basic aWQ6JUZG"]), Err(BasicError::Malformed));
        assert_eq!(
            pair(&["Basic aWQ6cyUzQWNyZXQ=", "Bearer x"]),
            Err(BasicError::Repeated)
        );
        let long = format!("Basic {}", "A".repeat(MAX_AUTHORIZATION_LEN));
        assert_eq!(pair(&[&long]), Err(BasicError::Malformed));
    }

    #[test]
    fn debug_shows_no_secret() {
        let credentials = ClientCredentials {
            client_id: "m2m_ci_public".into(),
            client_secret: "m2m_cs_private".into(),
        };
        let shown = format!("{credentials:?}");
        assert!(shown.contains("m2m_ci_public") && !shown.contains("private"));
    }

    proptest::proptest! {
        /// Any bytes in any number of Authorization headers: an answer, never a panic.
        #[test]
        fn any_authorization_headers_are_answered(
            values in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), 0..4)
        ) {
            let mut headers = HeaderMap::new();
            for value in &values {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    headers.append(AUTHORIZATION, value);
                }
            }
            let _ = basic_credentials(&headers);
        }
    }
}
