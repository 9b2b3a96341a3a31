//! Placement rules: which header a token arrives in, and what makes a header unusable.
//!
//! [`extract`] reads the two credential headers from an [`http::HeaderMap`] and yields the
//! presented token with its [`Placement`], or the reason the request is refused, for every row of
//! the HTTP contract: no credentials, another scheme, both headers, a repeated header, an empty
//! value, bytes other than visible ASCII, or a value over the length bound. It allocates nothing
//! and never panics, whatever bytes arrive. Whether the token's *type* matches its header is
//! checked after parsing, by the [`Verifier`](crate::Verifier).
//!
//! # Example
//!
//! ```
//! use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
//! use m2m_core::{CredentialError, Placement, extract};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer  m2m_cc_abc"));
//! let credential = extract(&headers, 4096).unwrap();
//! assert_eq!(credential.placement(), Placement::Bearer);
//! assert_eq!(credential.expose_secret(), "m2m_cc_abc");
//!
//! headers.insert("x-api-key", HeaderValue::from_static("m2m_at_abc"));
//! assert_eq!(extract(&headers, 4096).unwrap_err(), CredentialError::BothHeaders);
//! ```

use std::fmt;

use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

/// The header name access tokens travel in.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The longest header value accepted by default, in bytes.
pub const DEFAULT_MAX_HEADER_LEN: usize = 4096;

/// Where a token was presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// The `X-API-KEY` header (access tokens).
    ApiKey,
    /// `Authorization: Bearer` (client-credentials bearer tokens).
    Bearer,
}

impl Placement {
    /// How the placement reads in messages: `X-API-KEY` or `Authorization: Bearer`.
    pub const fn describe(self) -> &'static str {
        match self {
            Placement::ApiKey => "X-API-KEY",
            Placement::Bearer => "Authorization: Bearer",
        }
    }

    /// The header the placement uses.
    pub const fn header_name(self) -> HeaderName {
        match self {
            Placement::ApiKey => X_API_KEY,
            Placement::Bearer => AUTHORIZATION,
        }
    }
}

/// A token as presented in a request, with the header it came in. `Debug` hides the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Credential<'a> {
    placement: Placement,
    token: &'a str,
}

impl<'a> Credential<'a> {
    /// The header the token came in.
    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// The presented token text.
    pub fn expose_secret(&self) -> &'a str {
        self.token
    }
}

impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("placement", &self.placement)
            .finish_non_exhaustive()
    }
}

/// Why no token could be taken from the headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// Neither `X-API-KEY` nor `Authorization: Bearer` is present (another scheme counts as
    /// absent). Answered with 401 and a challenge per enabled type.
    #[error("the request has no credentials")]
    Missing,
    /// Both `X-API-KEY` and `Authorization: Bearer` are present.
    #[error("send either X-API-KEY or Authorization: Bearer, not both")]
    BothHeaders,
    /// The header appears more than once.
    #[error("the credential header appears more than once")]
    Repeated(Placement),
    /// The header, or the bearer token after the scheme, is empty.
    #[error("the credential is empty")]
    Empty(Placement),
    /// The value holds bytes other than visible ASCII (or whitespace inside the token).
    #[error("the credential holds characters other than visible ASCII")]
    InvalidCharacters(Placement),
    /// The value is longer than the configured bound.
    #[error("the credential header is too long")]
    TooLong(Placement),
}

impl CredentialError {
    /// The placement the error is about, if it concerns one header.
    pub fn placement(&self) -> Option<Placement> {
        match *self {
            CredentialError::Missing => None,
            CredentialError::BothHeaders => Some(Placement::Bearer),
            CredentialError::Repeated(p)
            | CredentialError::Empty(p)
            | CredentialError::InvalidCharacters(p)
            | CredentialError::TooLong(p) => Some(p),
        }
    }
}

const fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if !is_ows(*first) {
            break;
        }
        bytes = rest;
    }
    while let [rest @ .., last] = bytes {
        if !is_ows(*last) {
            break;
        }
        bytes = rest;
    }
    bytes
}

/// Where the credential headers of a request are read from.
///
/// Implemented for [`http::HeaderMap`]; an adapter whose framework keeps headers in another type
/// implements it for a thin wrapper, so that the raw bytes reach the rules without a copy.
/// Each method yields every value of its header, in order (header names match
/// case-insensitively), so that a repeated header is detected.
///
/// ```
/// use m2m_core::{CredentialHeaders, Placement, extract};
///
/// /// Headers as a list of name and value pairs.
/// struct Pairs<'a>(&'a [(&'a str, &'a [u8])]);
///
/// impl CredentialHeaders for Pairs<'_> {
///     fn values(&self, placement: Placement) -> impl Iterator<Item = &[u8]> {
///         let name = placement.header_name();
///         self.0
///             .iter()
///             .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_str()))
///             .map(|(_, v)| *v)
///     }
/// }
///
/// let headers = Pairs(&[("X-Api-Key", b"m2m_at_abc")]);
/// assert_eq!(extract(&headers, 4096).unwrap().placement(), Placement::ApiKey);
/// ```
pub trait CredentialHeaders {
    /// Every value of the header `placement` uses: `X-API-KEY` or `Authorization`.
    fn values(&self, placement: Placement) -> impl Iterator<Item = &[u8]>;
}

impl CredentialHeaders for HeaderMap {
    fn values(&self, placement: Placement) -> impl Iterator<Item = &[u8]> {
        let values = match placement {
            Placement::ApiKey => self.get_all(&X_API_KEY),
            Placement::Bearer => self.get_all(AUTHORIZATION),
        };
        values.into_iter().map(HeaderValue::as_bytes)
    }
}

impl<H: CredentialHeaders + ?Sized> CredentialHeaders for &H {
    fn values(&self, placement: Placement) -> impl Iterator<Item = &[u8]> {
        (**self).values(placement)
    }
}

fn single<H: CredentialHeaders + ?Sized>(
    headers: &H,
    placement: Placement,
) -> Result<Option<&[u8]>, CredentialError> {
    let mut values = headers.values(placement);
    let first = values.next();
    if values.next().is_some() {
        return Err(CredentialError::Repeated(placement));
    }
    Ok(first)
}

fn token_bytes(token: &[u8], placement: Placement) -> Result<&[u8], CredentialError> {
    if token.is_empty() {
        return Err(CredentialError::Empty(placement));
    }
    // Branch-free over the whole token: visible ASCII is 0x21..=0x7E.
    let outside = token
        .iter()
        .fold(false, |outside, &b| outside | !(0x21..=0x7E).contains(&b));
    if outside {
        return Err(CredentialError::InvalidCharacters(placement));
    }
    Ok(token)
}

fn api_key(bytes: &[u8], max_len: usize) -> Result<&[u8], CredentialError> {
    if bytes.len() > max_len {
        return Err(CredentialError::TooLong(Placement::ApiKey));
    }
    token_bytes(trim_ows(bytes), Placement::ApiKey)
}

/// The bearer token in an `Authorization` value, `None` for another scheme.
fn bearer(bytes: &[u8], max_len: usize) -> Result<Option<&[u8]>, CredentialError> {
    if bytes.len() > max_len {
        return Err(CredentialError::TooLong(Placement::Bearer));
    }
    let bytes = trim_ows(bytes);
    let scheme_end = bytes.iter().position(|&b| is_ows(b)).unwrap_or(bytes.len());
    if !bytes[..scheme_end].eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    token_bytes(trim_ows(&bytes[scheme_end..]), Placement::Bearer).map(Some)
}

/// Takes the presented token from the request headers.
///
/// Header names are matched case-insensitively (as [`HeaderMap`] does), the `Bearer` scheme too,
/// with one or more spaces or tabs after it; whitespace around a value is ignored. A value longer
/// than `max_len` bytes is refused before it is examined.
///
/// # Errors
///
/// A [`CredentialError`] naming the contract row the headers fall under.
pub fn extract<H: CredentialHeaders + ?Sized>(
    headers: &H,
    max_len: usize,
) -> Result<Credential<'_>, CredentialError> {
    let (placement, token) = extract_bytes(headers, max_len)?;
    // Visible ASCII is valid UTF-8.
    let token =
        std::str::from_utf8(token).map_err(|_| CredentialError::InvalidCharacters(placement))?;
    Ok(Credential { placement, token })
}

/// As [`extract`], with the token as the bytes that arrived (visible ASCII): the verifier
/// turns them into text only when the store must be asked.
pub(crate) fn extract_bytes<H: CredentialHeaders + ?Sized>(
    headers: &H,
    max_len: usize,
) -> Result<(Placement, &[u8]), CredentialError> {
    let api_key_value = single(headers, Placement::ApiKey)?;
    let authorization = single(headers, Placement::Bearer)?;

    let api_key = api_key_value.map(|v| api_key(v, max_len)).transpose()?;
    let bearer = match authorization {
        Some(value) => bearer(value, max_len)?,
        None => None,
    };

    match (api_key, bearer) {
        (Some(_), Some(_)) => Err(CredentialError::BothHeaders),
        (Some(token), None) => Ok((Placement::ApiKey, token)),
        (None, Some(token)) => Ok((Placement::Bearer, token)),
        (None, None) => Err(CredentialError::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    fn ok(pairs: &[(&str, &[u8])]) -> (Placement, String) {
        let map = headers(pairs);
        let credential = extract(&map, DEFAULT_MAX_HEADER_LEN).expect("a credential");
        (
            credential.placement(),
            credential.expose_secret().to_owned(),
        )
    }

    fn err(pairs: &[(&str, &[u8])]) -> CredentialError {
        extract(&headers(pairs), DEFAULT_MAX_HEADER_LEN).expect_err("a refusal")
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_with_flexible_spacing() {
        for value in [
            "Bearer tok",
            "bearer tok",
            "BEARER tok",
            "BeArEr    tok",
            "Bearer \ttok",
            "Bearer tok  ",
            "  Bearer tok",
        ] {
            assert_eq!(
                ok(&[("Authorization", value.as_bytes())]),
                (Placement::Bearer, "tok".to_owned()),
                "{value:?}"
            );
        }
    }

    #[test]
    fn api_key_header_name_is_case_insensitive() {
        assert_eq!(
            ok(&[("X-Api-Key", b"tok")]),
            (Placement::ApiKey, "tok".to_owned())
        );
    }

    #[test]
    fn contract_rows() {
        let long = vec![b'a'; DEFAULT_MAX_HEADER_LEN + 1];
        let long_bearer = [b"Bearer ".as_slice(), &long].concat();
        type Row<'a> = (&'a str, Vec<(&'a str, &'a [u8])>, CredentialError);
        let cases: Vec<Row<'_>> = vec![
            ("no credentials", vec![], CredentialError::Missing),
            (
                "other scheme",
                vec![("authorization", b"Basic dXNlcjpwYXNz")],
                CredentialError::Missing,
            ),
            (
                "scheme that merely starts with bearer",
                vec![("authorization", b"Bearerx tok")],
                CredentialError::Missing,
            ),
            (
                "both headers",
                vec![("x-api-key", b"a"), ("authorization", b"Bearer b")],
                CredentialError::BothHeaders,
            ),
            (
                "repeated x-api-key",
                vec![("x-api-key", b"a"), ("x-api-key", b"a")],
                CredentialError::Repeated(Placement::ApiKey),
            ),
            (
                "repeated authorization",
                vec![
                    ("authorization", b"Bearer a"),
                    ("authorization", b"Basic b"),
                ],
                CredentialError::Repeated(Placement::Bearer),
            ),
            (
                "empty x-api-key",
                vec![("x-api-key", b"")],
                CredentialError::Empty(Placement::ApiKey),
            ),
            (
                "blank x-api-key",
                vec![("x-api-key", b"   ")],
                CredentialError::Empty(Placement::ApiKey),
            ),
            (
                "bearer with nothing after",
                vec![("authorization", b"Bearer ")],
                CredentialError::Empty(Placement::Bearer),
            ),
            (
                "bare scheme",
                vec![("authorization", b"Bearer")],
                CredentialError::Empty(Placement::Bearer),
            ),
            (
                "non-ascii api key",
                vec![("x-api-key", b"m2m_\xc3\xa9")],
                CredentialError::InvalidCharacters(Placement::ApiKey),
            ),
            (
                "space inside bearer token",
                vec![("authorization", b"Bearer a b")],
                CredentialError::InvalidCharacters(Placement::Bearer),
            ),
            (
                "over the length bound",
                vec![("x-api-key", &long)],
                CredentialError::TooLong(Placement::ApiKey),
            ),
            (
                "bearer over the length bound",
                vec![("authorization", &long_bearer)],
                CredentialError::TooLong(Placement::Bearer),
            ),
        ];
        for (name, pairs, expected) in cases {
            assert_eq!(err(&pairs), expected, "{name}");
        }
    }

    #[test]
    fn api_key_with_basic_auth_uses_the_api_key() {
        assert_eq!(
            ok(&[("x-api-key", b"tok"), ("authorization", b"Basic abc")]),
            (Placement::ApiKey, "tok".to_owned())
        );
    }

    #[test]
    fn debug_hides_the_token() {
        let map = headers(&[("x-api-key", b"secret-value")]);
        let credential = extract(&map, 100).unwrap();
        assert!(!format!("{credential:?}").contains("secret"));
    }

    proptest! {
        #[test]
        fn extract_never_panics(
            pairs in prop::collection::vec(
                (
                    prop::sample::select(vec!["x-api-key", "authorization", "X-API-KEY", "Authorization", "x-other"]),
                    prop::collection::vec(any::<u8>(), 0..64),
                ),
                0..4,
            ),
            max_len in 0usize..80,
        ) {
            let mut map = HeaderMap::new();
            for (name, value) in &pairs {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
                }
            }
            if let Ok(credential) = extract(&map, max_len) {
                let token = credential.expose_secret();
                prop_assert!(!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()));
            }
        }

        #[test]
        fn arbitrary_header_names_never_panic(name in "[!-~]{1,20}", value in prop::collection::vec(any::<u8>(), 0..32)) {
            let mut map = HeaderMap::new();
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(&value)) {
                map.append(name, value);
            }
            let _ = extract(&map, DEFAULT_MAX_HEADER_LEN);
        }
    }
}
