//! The credential headers of an actix request, read by the core in place.
//!
//! actix-web 4 holds its headers in `http` 0.2 types; [`ActixHeaders`] hands the raw bytes of
//! `X-API-KEY` and `Authorization` (every value, so that a repeated header is still detected)
//! to the core's rules through [`CredentialHeaders`], without copying them.

use actix_web::http::header::{self as actix_header, HeaderMap as ActixHeaderMap};
use m2m_core::{CredentialHeaders, Placement};

/// `X-API-KEY` as actix names it.
const ACTIX_X_API_KEY: actix_header::HeaderName =
    actix_header::HeaderName::from_static("x-api-key");

/// An actix header map as the core reads it.
pub(crate) struct ActixHeaders<'a>(pub(crate) &'a ActixHeaderMap);

impl CredentialHeaders for ActixHeaders<'_> {
    fn values(&self, placement: Placement) -> impl Iterator<Item = &[u8]> {
        let name = match placement {
            Placement::ApiKey => &ACTIX_X_API_KEY,
            Placement::Bearer => &actix_header::AUTHORIZATION,
        };
        self.0
            .get_all(name)
            .map(actix_header::HeaderValue::as_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue as ActixHeaderValue;
    use m2m_core::{CredentialError, DEFAULT_MAX_HEADER_LEN, extract};

    #[test]
    fn every_value_of_both_headers_is_read() {
        let mut headers = ActixHeaderMap::new();
        headers.append(ACTIX_X_API_KEY, ActixHeaderValue::from_static("a"));
        headers.append(ACTIX_X_API_KEY, ActixHeaderValue::from_static("b"));
        headers.append(
            actix_header::AUTHORIZATION,
            ActixHeaderValue::from_static("Bearer c"),
        );
        headers.append(actix_header::ACCEPT, ActixHeaderValue::from_static("*/*"));
        let headers = ActixHeaders(&headers);
        let api_keys: Vec<&[u8]> = headers.values(Placement::ApiKey).collect();
        assert_eq!(api_keys, [b"a".as_slice(), b"b"]);
        let authorization: Vec<&[u8]> = headers.values(Placement::Bearer).collect();
        assert_eq!(authorization, [b"Bearer c".as_slice()]);
        assert_eq!(
            extract(&headers, DEFAULT_MAX_HEADER_LEN).unwrap_err(),
            CredentialError::Repeated(Placement::ApiKey)
        );
    }

    #[test]
    fn bytes_outside_visible_ascii_are_an_invalid_request() {
        let mut map = ActixHeaderMap::new();
        map.insert(
            actix_header::AUTHORIZATION,
            ActixHeaderValue::from_bytes(b"Bearer m2m_cc_\xc3\xa9abc").unwrap(),
        );
        assert_eq!(
            extract(&ActixHeaders(&map), DEFAULT_MAX_HEADER_LEN).unwrap_err(),
            CredentialError::InvalidCharacters(Placement::Bearer)
        );
        map.insert(
            actix_header::AUTHORIZATION,
            ActixHeaderValue::from_bytes(b"Basic \xffabc").unwrap(),
        );
        assert_eq!(
            extract(&ActixHeaders(&map), DEFAULT_MAX_HEADER_LEN).unwrap_err(),
            CredentialError::Missing
        );
    }
}
