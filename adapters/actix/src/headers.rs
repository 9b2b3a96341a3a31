//! The credential headers of an actix request, as the `http` 1.x [`HeaderMap`] the core reads.
//!
//! actix-web 4 holds its headers in `http` 0.2 types, so the two credential headers are copied
//! over by name and bytes, every repeated value included, so that the core still sees a repeated
//! header. Nothing else is copied: the core reads only these two.

use actix_web::http::header::{self as actix_header, HeaderMap as ActixHeaderMap};
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use m2m_core::X_API_KEY;

/// `X-API-KEY` as actix names it.
const ACTIX_X_API_KEY: actix_header::HeaderName =
    actix_header::HeaderName::from_static("x-api-key");

/// Copies `X-API-KEY` and `Authorization`, all their values, into an `http` 1.x map.
pub(crate) fn credential_headers(headers: &ActixHeaderMap) -> HeaderMap {
    let mut map = HeaderMap::new();
    copy(headers, &ACTIX_X_API_KEY, &X_API_KEY, &mut map);
    copy(
        headers,
        &actix_header::AUTHORIZATION,
        &AUTHORIZATION,
        &mut map,
    );
    map
}

fn copy(
    from: &ActixHeaderMap,
    actix_name: &actix_header::HeaderName,
    name: &HeaderName,
    to: &mut HeaderMap,
) {
    for value in from.get_all(actix_name) {
        to.append(name.clone(), header_value(value.as_bytes()));
    }
}

/// The same bytes as an `http` 1.x value.
///
/// actix's HTTP/1 parser already refuses control characters, but a request built another way may
/// still hold bytes `http` 1.x refuses. Each such byte is replaced with `0xFF`, which the core classifies exactly as it would the original: not
/// whitespace, not visible ASCII, not a letter of `Bearer`. The length is unchanged, so the
/// length bound applies alike. The core therefore answers what it would have answered for the
/// original bytes: 400 `invalid_request` for a token with such a byte, or no credentials when
/// the byte falls in another scheme.
fn header_value(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).unwrap_or_else(|_| {
        let replaced: Vec<u8> = bytes
            .iter()
            .map(|&b| if is_field_byte(b) { b } else { 0xFF })
            .collect();
        HeaderValue::from_bytes(&replaced).unwrap_or_else(|_| HeaderValue::from_static(""))
    })
}

/// A byte `http` 1.x allows in a header value.
const fn is_field_byte(b: u8) -> bool {
    (b >= 0x20 && b != 0x7F) || b == b'\t'
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue as ActixHeaderValue;

    #[test]
    fn every_value_of_both_headers_is_copied() {
        let mut headers = ActixHeaderMap::new();
        headers.append(ACTIX_X_API_KEY, ActixHeaderValue::from_static("a"));
        headers.append(ACTIX_X_API_KEY, ActixHeaderValue::from_static("b"));
        headers.append(
            actix_header::AUTHORIZATION,
            ActixHeaderValue::from_static("Bearer c"),
        );
        headers.append(actix_header::ACCEPT, ActixHeaderValue::from_static("*/*"));
        let map = credential_headers(&headers);
        let api_keys: Vec<_> = map.get_all(&X_API_KEY).iter().collect();
        assert_eq!(api_keys, ["a", "b"]);
        assert_eq!(map[AUTHORIZATION], "Bearer c");
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn valid_bytes_are_kept_as_they_are() {
        let bytes = b"Bearer \tm2m_cc_abc\xc3\xa9 ";
        assert_eq!(header_value(bytes).as_bytes(), bytes);
    }

    #[test]
    fn refused_bytes_keep_the_core_verdict() {
        let cases: [(&[u8], &[u8]); 4] = [
            (b"Bearer to\x01k", b"Bearer to\xffk"),
            (b"Bearer\x7ftok", b"Bearer\xfftok"),
            (b"\x00", b"\xff"),
            (b"tok\r\n", b"tok\xff\xff"),
        ];
        for (raw, expected) in cases {
            assert_eq!(header_value(raw).as_bytes(), expected);
        }
    }

    #[test]
    fn a_control_byte_in_a_bearer_token_is_an_invalid_request() {
        let mut map = HeaderMap::new();
        map.insert(AUTHORIZATION, header_value(b"Bearer m2m_cc_\x01abc"));
        assert_eq!(
            m2m_core::extract(&map, m2m_core::DEFAULT_MAX_HEADER_LEN).unwrap_err(),
            m2m_core::CredentialError::InvalidCharacters(m2m_core::Placement::Bearer)
        );
        let mut other_scheme = HeaderMap::new();
        other_scheme.insert(AUTHORIZATION, header_value(b"Basic \x01abc"));
        assert_eq!(
            m2m_core::extract(&other_scheme, m2m_core::DEFAULT_MAX_HEADER_LEN).unwrap_err(),
            m2m_core::CredentialError::Missing
        );
    }
}
