//! The two credential headers, copied from Rocket's header map into the `http::HeaderMap` the
//! core reads.
//!
//! Rocket 0.5 keeps header values as UTF-8 text, while `http::HeaderValue` refuses control
//! characters. Dropping such a value would turn a malformed credential into "no credentials" (a
//! bare 401, or a pass-through on an optional route), so each byte `HeaderValue` cannot hold is
//! replaced by `0x80`, a byte it can hold and the core refuses in a token: the request keeps its
//! shape and ends as the core's 400 `invalid_request`. Every value of a repeated header is
//! copied, so the core still sees the repetition.

use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use m2m_core::X_API_KEY;
use rocket::Request;

/// The credential headers of one request, captured once and kept in request-local state.
pub(crate) struct Credentials(HeaderMap);

/// The credential headers of `request`, captured on first use.
///
/// The fairing captures them before it blanks them (`strip_credentials`), so guards always see
/// what the client sent.
pub(crate) fn credentials<'a>(request: &'a Request<'_>) -> &'a HeaderMap {
    &request.local_cache(|| Credentials(capture(request))).0
}

fn capture(request: &Request<'_>) -> HeaderMap {
    let mut map = HeaderMap::new();
    let headers = request.headers();
    for name in [X_API_KEY, AUTHORIZATION] {
        for value in headers.get(name.as_str()) {
            map.append(name.clone(), header_value(&name, value));
        }
    }
    map
}

/// `value` as an `http` header value; never fails.
fn header_value(name: &HeaderName, value: &str) -> HeaderValue {
    if let Ok(value) = HeaderValue::from_str(value) {
        return value;
    }
    let bytes: Vec<u8> = value
        .bytes()
        .map(|b| {
            if (b < 0x20 && b != b'\t') || b == 0x7f {
                0x80
            } else {
                b
            }
        })
        .collect();
    HeaderValue::from_bytes(&bytes).unwrap_or_else(|_| unusable(name))
}

/// A value the core refuses as malformed for `name`'s placement. Not reached: the bytes left
/// after the replacement above are all valid in a header value.
fn unusable(name: &HeaderName) -> HeaderValue {
    if name == AUTHORIZATION {
        HeaderValue::from_static("Bearer \t")
    } else {
        HeaderValue::from_static("\t")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_bytes_the_core_refuses() {
        let value = header_value(&X_API_KEY, "m2m_at_\u{1}abc\r");
        assert_eq!(value.as_bytes(), b"m2m_at_\x80abc\x80");
        let value = header_value(&AUTHORIZATION, "Bearer a\u{7f}");
        assert_eq!(value.as_bytes(), b"Bearer a\x80");
    }

    #[test]
    fn visible_and_non_ascii_text_is_kept() {
        assert_eq!(header_value(&X_API_KEY, "m2m_at_x").as_bytes(), b"m2m_at_x");
        assert_eq!(header_value(&X_API_KEY, "é").as_bytes(), "é".as_bytes());
    }
}
