//! The credential headers of an actix request, read by the core in place.
//!
//! actix-web 4 holds its headers in `http` 0.2 types; [`ActixRequest`] hands the raw bytes of
//! `X-API-KEY` and `Authorization` (every value, so that a repeated header is still detected)
//! to the core's rules through [`CredentialHeaders`], without copying them, and shows the core's
//! [`Admission`](m2m_core::Admission) the rest of what it reads of a request: the method, the
//! preflight headers, and a caller an outer middleware admitted.

use actix_web::HttpMessage;
use actix_web::dev::ServiceRequest;
use actix_web::http::Method;
use actix_web::http::header as actix_header;
use m2m_core::{CredentialHeaders, Placement, Principal, RequestHead};

/// `X-API-KEY` as actix names it.
static ACTIX_X_API_KEY: actix_header::HeaderName =
    actix_header::HeaderName::from_static("x-api-key");

/// The actix name of the header `placement` uses.
pub(crate) fn header_name(placement: Placement) -> &'static actix_header::HeaderName {
    match placement {
        Placement::ApiKey => &ACTIX_X_API_KEY,
        Placement::Bearer => &actix_header::AUTHORIZATION,
    }
}

/// An actix request as the core's admission reads it.
pub(crate) struct ActixRequest<'a>(pub(crate) &'a ServiceRequest);

impl CredentialHeaders for ActixRequest<'_> {
    fn values(&self, placement: Placement) -> impl Iterator<Item = &[u8]> {
        self.0
            .headers()
            .get_all(header_name(placement))
            .map(actix_header::HeaderValue::as_bytes)
    }
}

impl RequestHead for ActixRequest<'_> {
    fn is_options(&self) -> bool {
        self.0.method() == Method::OPTIONS
    }

    fn has_header(&self, name: &str) -> bool {
        self.0.headers().contains_key(name)
    }

    fn admitted(&self) -> Option<Principal> {
        self.0.extensions().get::<Principal>().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use m2m_core::{CredentialError, DEFAULT_MAX_HEADER_LEN, extract};

    #[test]
    fn every_value_of_both_headers_is_read() {
        let request = TestRequest::default()
            .append_header(("x-api-key", "a"))
            .append_header(("X-Api-Key", "b"))
            .append_header(("authorization", "Bearer c"))
            .append_header(("accept", "*/*"))
            .to_srv_request();
        let headers = ActixRequest(&request);
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
        let value = actix_header::HeaderValue::from_bytes(b"Bearer m2m_cc_\xc3\xa9abc").unwrap();
        let request = TestRequest::default()
            .insert_header((actix_header::AUTHORIZATION, value))
            .to_srv_request();
        assert_eq!(
            extract(&ActixRequest(&request), DEFAULT_MAX_HEADER_LEN).unwrap_err(),
            CredentialError::InvalidCharacters(Placement::Bearer)
        );
        let value = actix_header::HeaderValue::from_bytes(b"Basic \xffabc").unwrap();
        let request = TestRequest::default()
            .insert_header((actix_header::AUTHORIZATION, value))
            .to_srv_request();
        assert_eq!(
            extract(&ActixRequest(&request), DEFAULT_MAX_HEADER_LEN).unwrap_err(),
            CredentialError::Missing
        );
    }

    #[test]
    fn method_preflight_headers_and_admitted_caller_are_read() {
        let request = TestRequest::default()
            .method(Method::OPTIONS)
            .insert_header(("Origin", "https://app.example"))
            .to_srv_request();
        let head = ActixRequest(&request);
        assert!(head.is_options());
        assert!(head.has_header("origin"));
        assert!(!head.has_header("access-control-request-method"));
        assert!(head.admitted().is_none());
    }
}
