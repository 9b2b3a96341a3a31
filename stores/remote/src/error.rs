//! What can go wrong when building a [`RemoteStore`](crate::RemoteStore).

/// A [`RemoteStore`](crate::RemoteStore) could not be built.
///
/// Failures of the token service at run time are not reported here: they are
/// [`StoreError::Unavailable`](m2m_core::StoreError::Unavailable), which the verifier turns
/// into 503 + `Retry-After`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The base URL does not parse, or is not an `http` or `https` URL that can have a path.
    #[error("invalid token service URL: {0}")]
    InvalidBaseUrl(String),
    /// The introspection credential is empty or cannot be sent in an HTTP header.
    #[error("the introspection credential is empty or not a valid header value")]
    InvalidCredential,
    /// The HTTP client could not be set up (TLS back end, resolver…).
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}
