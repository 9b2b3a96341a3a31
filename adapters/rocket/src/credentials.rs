//! A Rocket request as the core's [`Admission`](m2m_core::Admission) reads it.
//!
//! Rocket 0.5 keeps header values as UTF-8 text; the values of `X-API-KEY` and `Authorization`
//! (every one, so that a repeated header is still detected) are handed to the core through
//! [`CredentialHeaders`], which refuses control characters and other non-visible bytes with its
//! 400 `invalid_request`.

use m2m_core::{CredentialHeaders, Placement, RequestHead};
use rocket::Request;
use rocket::http::Method;

/// The name of the header `placement` uses.
pub(crate) fn header_name(placement: Placement) -> &'static str {
    match placement {
        Placement::ApiKey => "X-API-KEY",
        Placement::Bearer => "Authorization",
    }
}

/// A request, read in place.
pub(crate) struct RocketRequest<'a, 'r>(pub(crate) &'a Request<'r>);

impl CredentialHeaders for RocketRequest<'_, '_> {
    fn values(&self, placement: Placement) -> impl Iterator<Item = &[u8]> {
        self.0
            .headers()
            .get(header_name(placement))
            .map(str::as_bytes)
    }
}

impl RequestHead for RocketRequest<'_, '_> {
    fn is_options(&self) -> bool {
        self.0.method() == Method::Options
    }

    fn has_header(&self, name: &str) -> bool {
        self.0.headers().contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use m2m_core::{CredentialError, DEFAULT_MAX_HEADER_LEN, extract};
    use rocket::http::Header;
    use rocket::local::blocking::Client;

    fn client() -> Client {
        Client::untracked(rocket::build()).unwrap()
    }

    #[test]
    fn control_characters_reach_the_core_and_are_refused() {
        let client = client();
        let request = client
            .get("/")
            .header(Header::new("X-API-KEY", "m2m_at_\u{1}abc"));
        assert_eq!(
            extract(&RocketRequest(request.inner()), DEFAULT_MAX_HEADER_LEN).unwrap_err(),
            CredentialError::InvalidCharacters(Placement::ApiKey)
        );
        let request = client
            .get("/")
            .header(Header::new("authorization", "Bearer a\u{7f}"));
        assert_eq!(
            extract(&RocketRequest(request.inner()), DEFAULT_MAX_HEADER_LEN).unwrap_err(),
            CredentialError::InvalidCharacters(Placement::Bearer)
        );
    }

    #[test]
    fn every_value_is_read() {
        let client = client();
        let request = client
            .get("/")
            .header(Header::new("X-API-KEY", "a"))
            .header(Header::new("x-api-key", "b"));
        assert_eq!(
            extract(&RocketRequest(request.inner()), DEFAULT_MAX_HEADER_LEN).unwrap_err(),
            CredentialError::Repeated(Placement::ApiKey)
        );
        let request = client
            .options("/")
            .header(Header::new("x-api-key", "m2m_at_x"))
            .header(Header::new("Origin", "https://app.example"));
        let head = RocketRequest(request.inner());
        assert_eq!(
            extract(&head, DEFAULT_MAX_HEADER_LEN)
                .unwrap()
                .expose_secret(),
            "m2m_at_x"
        );
        assert!(head.is_options());
        assert!(head.has_header("origin"));
    }
}
