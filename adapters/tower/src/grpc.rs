//! [`GrpcOnRejection`]: refusals as gRPC statuses, for services such as tonic's.
//!
//! A gRPC client reads the outcome of a call from `grpc-status`, not from the HTTP status, so a
//! refusal rendered as the HTTP contract's 401 reaches it as a transport failure rather than as
//! `UNAUTHENTICATED`. This responder renders the same core [`Rejection`] as a gRPC
//! *trailers-only* response instead: HTTP 200, `content-type: application/grpc`, an empty body,
//! and the status in the headers, which close the stream.
//!
//! | rejection | HTTP contract | `grpc-status` |
//! |---|---|---|
//! | no credentials, bad, expired or disabled token | 401 | 16 `UNAUTHENTICATED` |
//! | a required scope is missing | 403 | 7 `PERMISSION_DENIED` |
//! | malformed credentials (both headers, wrong header…) | 400 | 3 `INVALID_ARGUMENT` |
//! | the store cannot answer | 503 | 14 `UNAVAILABLE`, with `grpc-retry-pushback-ms` |
//! | the token's rate limit is used up | 429 | 8 `RESOURCE_EXHAUSTED`, with `grpc-retry-pushback-ms` |
//! | the caller read without the middleware | 500 | 13 `INTERNAL` |
//!
//! `grpc-message` is the reason the HTTP rejection gives in its `detail`, percent-encoded as the
//! gRPC protocol requires. The contract's other headers (`WWW-Authenticate`, `Retry-After`,
//! `RateLimit-Policy`, `RateLimit`, `Cache-Control: no-store`) are kept, for proxies that read
//! HTTP; a gRPC client sees them as response metadata.

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use m2m_core::Rejection;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::layer::OnRejection;

/// The header holding the gRPC status code.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// The header holding the status message, percent-encoded.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// The header telling a gRPC client how many milliseconds to wait before it retries (gRPC's
/// retry pushback).
pub const GRPC_RETRY_PUSHBACK_MS: HeaderName = HeaderName::from_static("grpc-retry-pushback-ms");

/// What the gRPC protocol percent-encodes in `grpc-message`: every byte outside visible ASCII
/// and space, and `%` itself.
const GRPC_MESSAGE_ENCODED: &AsciiSet = &CONTROLS.add(b'%');

/// Renders a [`Rejection`] as a gRPC trailers-only response, with the status the table of the
/// [module docs](self) gives.
///
/// The response body is the inner service's body type, built with [`Default`]: an empty body,
/// as tonic's `tonic::body::Body::default()` is. [`M2mAuthLayer::grpc`](crate::M2mAuthLayer::grpc)
/// installs it.
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use m2m_core::{MemoryStore, RejectionKind, Verifier};
/// use m2m_tower::{GrpcOnRejection, M2mAuthLayer};
/// use std::convert::Infallible;
/// use tower::{ServiceBuilder, ServiceExt as _, service_fn};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let verifier = Verifier::builder(MemoryStore::new()).build();
/// let service = ServiceBuilder::new()
///     .layer(M2mAuthLayer::new(verifier).on_rejection(GrpcOnRejection))
///     .service(service_fn(|_: Request<String>| async {
///         Ok::<_, Infallible>(Response::new(String::new()))
///     }));
///
/// let request = Request::post("/reports.v1.Reports/ListReports").body(String::new()).unwrap();
/// let response = service.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), StatusCode::OK);
/// assert_eq!(response.headers()["content-type"], "application/grpc");
/// assert_eq!(response.headers()["grpc-status"], "16");
/// assert_eq!(
///     response.headers()["grpc-message"],
///     RejectionKind::MissingCredentials.detail(),
/// );
/// assert!(response.body().is_empty());
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcOnRejection;

impl GrpcOnRejection {
    /// The gRPC status code for `rejection`: 16 `UNAUTHENTICATED`, 7 `PERMISSION_DENIED`,
    /// 3 `INVALID_ARGUMENT`, 14 `UNAVAILABLE`, 8 `RESOURCE_EXHAUSTED`, or 13 `INTERNAL`.
    ///
    /// ```
    /// use m2m_core::Rejection;
    /// use m2m_tower::GrpcOnRejection;
    ///
    /// assert_eq!(GrpcOnRejection::code(&Rejection::middleware_missing()), 13);
    /// ```
    pub fn code(rejection: &Rejection) -> u8 {
        match rejection.status() {
            StatusCode::UNAUTHORIZED => 16,
            StatusCode::FORBIDDEN => 7,
            StatusCode::BAD_REQUEST => 3,
            StatusCode::SERVICE_UNAVAILABLE => 14,
            StatusCode::TOO_MANY_REQUESTS => 8,
            _ => 13,
        }
    }
}

impl<B: Default> OnRejection<B> for GrpcOnRejection {
    fn on_rejection(&self, rejection: Rejection) -> Response<B> {
        let mut response = Response::new(B::default());
        let headers = response.headers_mut();
        for (name, value) in rejection.headers() {
            if name != CONTENT_TYPE {
                headers.append(name, value);
            }
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(
            GRPC_STATUS,
            HeaderValue::from(u16::from(Self::code(&rejection))),
        );
        headers.insert(GRPC_MESSAGE, grpc_message(rejection.detail()));
        if let Some(seconds) = rejection.retry_after() {
            headers.insert(
                GRPC_RETRY_PUSHBACK_MS,
                HeaderValue::from(u64::from(seconds) * 1000),
            );
        }
        response
    }
}

/// `text` percent-encoded for `grpc-message`.
fn grpc_message(text: &str) -> HeaderValue {
    let encoded = utf8_percent_encode(text, GRPC_MESSAGE_ENCODED).to_string();
    // Percent-encoded text is visible ASCII and spaces, always a valid header value.
    HeaderValue::try_from(encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::grpc_message;

    #[test]
    fn the_message_is_percent_encoded_as_grpc_requires() {
        assert_eq!(
            grpc_message("the token is not valid; retry: later"),
            "the token is not valid; retry: later"
        );
        assert_eq!(grpc_message("100% caf\u{e9}\n"), "100%25 caf%C3%A9%0A");
    }
}
