//! The two credential headers of a request, captured once and read by the core's rules.
//!
//! Rocket 0.5 keeps header values as UTF-8 text; the values of `X-API-KEY` and `Authorization`
//! (every one, so that a repeated header is still detected) are kept as they arrived and handed
//! to the core through [`CredentialHeaders`], which refuses control characters and other
//! non-visible bytes with its 400 `invalid_request`.

use m2m_core::{CredentialHeaders, Placement};
use rocket::Request;

/// The credential headers of one request, kept in request-local state.
pub(crate) struct Credentials {
    api_keys: Vec<String>,
    authorizations: Vec<String>,
}

impl CredentialHeaders for Credentials {
    fn values(&self, placement: Placement) -> impl Iterator<Item = &[u8]> {
        let values = match placement {
            Placement::ApiKey => &self.api_keys,
            Placement::Bearer => &self.authorizations,
        };
        values.iter().map(String::as_bytes)
    }
}

/// The credential headers of `request`, captured on first use.
///
/// The fairing captures them before it blanks them (`strip_credentials`), so guards always see
/// what the client sent.
pub(crate) fn credentials<'a>(request: &'a Request<'_>) -> &'a Credentials {
    request.local_cache(|| {
        let values = |placement: Placement| {
            request
                .headers()
                .get(placement.header_name().as_str())
                .map(str::to_owned)
                .collect()
        };
        Credentials {
            api_keys: values(Placement::ApiKey),
            authorizations: values(Placement::Bearer),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use m2m_core::{CredentialError, DEFAULT_MAX_HEADER_LEN, extract};

    fn credentials(api_keys: &[&str], authorizations: &[&str]) -> Credentials {
        Credentials {
            api_keys: api_keys.iter().map(|v| (*v).to_owned()).collect(),
            authorizations: authorizations.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn control_characters_reach_the_core_and_are_refused() {
        let headers = credentials(&["m2m_at_\u{1}abc\r"], &[]);
        assert_eq!(
            extract(&headers, DEFAULT_MAX_HEADER_LEN).unwrap_err(),
            CredentialError::InvalidCharacters(Placement::ApiKey)
        );
        let headers = credentials(&[], &["Bearer a\u{7f}"]);
        assert_eq!(
            extract(&headers, DEFAULT_MAX_HEADER_LEN).unwrap_err(),
            CredentialError::InvalidCharacters(Placement::Bearer)
        );
    }

    #[test]
    fn every_value_is_kept() {
        let headers = credentials(&["a", "b"], &["Bearer c"]);
        assert_eq!(
            extract(&headers, DEFAULT_MAX_HEADER_LEN).unwrap_err(),
            CredentialError::Repeated(Placement::ApiKey)
        );
        let headers = credentials(&["m2m_at_x"], &[]);
        assert_eq!(
            extract(&headers, DEFAULT_MAX_HEADER_LEN)
                .unwrap()
                .expose_secret(),
            "m2m_at_x"
        );
    }
}
