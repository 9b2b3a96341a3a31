//! [`JwksKeys`]: an issuer's public keys fetched from its JWKS URL, for offline JWT
//! verification (feature `jwt`).

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use m2m_core::StoreError;
use m2m_core::jwt::{JwtKey, JwtKeys, KeySource};
use reqwest::{Client, Url};

use crate::RemoteError;

/// How long fetched keys are used before they are fetched again, unless the answer's
/// `Cache-Control: max-age` says otherwise.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// The shortest time between two fetches: an unknown `kid` makes the keys be fetched again at
/// most this often, so that made-up `kid`s cannot flood the issuer.
pub const DEFAULT_JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);
/// The longest JWKS answer read.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The longest `max-age` honoured.
const MAX_AGE_CAP: Duration = Duration::from_secs(24 * 3600);

/// The keys of one JWT issuer, fetched from its JWKS URL (such as the token service's
/// `/.well-known/jwks.json`) and kept for the answer's `max-age`.
///
/// A token naming a `kid` the keys lack makes them be fetched again, at most once per
/// [`DEFAULT_JWKS_MIN_REFRESH`]; a key rotated in at the issuer is found that way. When a fetch
/// fails, the keys fetched before stay in use; when there are none yet, the verifier answers
/// 503. Cheap to clone.
///
/// ```
/// use m2m_core::jwt::JwtIssuer;
/// use m2m_core::{MemoryStore, Verifier};
/// use m2m_remote::JwksKeys;
///
/// let keys = JwksKeys::builder("https://tokens.example/.well-known/jwks.json").build().unwrap();
/// let verifier = Verifier::builder(MemoryStore::new())
///     .jwt_issuer(JwtIssuer::new("https://tokens.example", keys).audience("https://api.example"))
///     .build();
/// # let _ = verifier;
/// ```
#[derive(Clone)]
pub struct JwksKeys {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    url: Url,
    min_refresh: Duration,
    request_timeout: Duration,
    cached: RwLock<Cached>,
    /// One fetch at a time; those who waited read its result.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Cached {
    keys: Option<JwtKeys>,
    fresh_until: Option<Instant>,
    last_fetch: Option<Instant>,
}

impl fmt::Debug for JwksKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksKeys")
            .field("url", &self.inner.url.as_str())
            .finish_non_exhaustive()
    }
}

/// Builds [`JwksKeys`].
#[derive(Debug)]
#[must_use]
pub struct JwksKeysBuilder {
    url: String,
    allow_plain_http: bool,
    min_refresh: Duration,
    request_timeout: Duration,
}

impl JwksKeysBuilder {
    /// Lets the keys be fetched over plain `http://` from another machine (default: no; a
    /// loopback address is always allowed). Anyone on the path could then swap the keys.
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// The shortest time between two fetches (default [`DEFAULT_JWKS_MIN_REFRESH`]).
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh = interval;
        self
    }

    /// How long one fetch may take (default 5 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The key source. Makes no network call.
    ///
    /// # Errors
    ///
    /// [`RemoteError::InvalidBaseUrl`] for a URL that does not parse, is not `https` (or
    /// `http` to this machine, or anywhere with [`allow_plain_http`](Self::allow_plain_http));
    /// [`RemoteError::Client`] when the HTTP client cannot be set up.
    pub fn build(self) -> Result<JwksKeys, RemoteError> {
        let url = Url::parse(&self.url).map_err(|e| RemoteError::InvalidBaseUrl(e.to_string()))?;
        let plain = url.scheme() == "http";
        if !(url.scheme() == "https" || plain) {
            return Err(RemoteError::InvalidBaseUrl(
                "the JWKS URL is https (or http to this machine)".into(),
            ));
        }
        if plain && !self.allow_plain_http && !crate::store::is_loopback(&url) {
            return Err(RemoteError::InvalidBaseUrl(
                "plain http lets anyone on the path swap the keys: use https, or \
                 allow_plain_http(true)"
                    .into(),
            ));
        }
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RemoteError::Client(e.to_string()))?;
        Ok(JwksKeys {
            inner: Arc::new(Inner {
                client,
                url,
                min_refresh: self.min_refresh,
                request_timeout: self.request_timeout,
                cached: RwLock::default(),
                fetching: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

impl JwksKeys {
    /// Keys fetched from `url`.
    pub fn builder(url: impl Into<String>) -> JwksKeysBuilder {
        JwksKeysBuilder {
            url: url.into(),
            allow_plain_http: false,
            min_refresh: DEFAULT_JWKS_MIN_REFRESH,
            request_timeout: Duration::from_secs(5),
        }
    }

    /// The JWKS URL.
    pub fn url(&self) -> &Url {
        &self.inner.url
    }

    /// The key named `kid` among those held, and whether they are still fresh.
    fn held(&self, kid: Option<&str>) -> (Option<Arc<JwtKey>>, bool, bool) {
        let cached = self
            .inner
            .cached
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let fresh = cached
            .fresh_until
            .is_some_and(|until| Instant::now() < until);
        let key = cached.keys.as_ref().and_then(|keys| keys.find(kid));
        (key, fresh, cached.keys.is_some())
    }

    fn may_fetch(&self) -> bool {
        let cached = self
            .inner
            .cached
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        cached
            .last_fetch
            .is_none_or(|at| at.elapsed() >= self.inner.min_refresh)
    }

    /// Fetches the keys now; keeps the old ones when that fails.
    async fn fetch(&self) -> Result<(), StoreError> {
        let inner = &*self.inner;
        {
            let mut cached = inner.cached.write().unwrap_or_else(PoisonError::into_inner);
            cached.last_fetch = Some(Instant::now());
        }
        let fetched = self.fetch_once().await;
        match fetched {
            Ok((keys, max_age)) => {
                tracing::debug!(target: "m2m::jwks", url = %inner.url, "keys fetched");
                let mut cached = inner.cached.write().unwrap_or_else(PoisonError::into_inner);
                cached.keys = Some(keys);
                cached.fresh_until = Some(Instant::now() + max_age);
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(target: "m2m::jwks", url = %inner.url, %reason, "keys not fetched");
                Err(StoreError::Unavailable(format!(
                    "the JWT keys could not be fetched: {reason}"
                )))
            }
        }
    }

    async fn fetch_once(&self) -> Result<(JwtKeys, Duration), String> {
        let inner = &*self.inner;
        let mut response = inner
            .client
            .get(inner.url.clone())
            .timeout(inner.request_timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let max_age = max_age(response.headers()).unwrap_or(DEFAULT_JWKS_MAX_AGE);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading failed: {e}"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("the answer is over {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let text = std::str::from_utf8(&body).map_err(|_| "the answer is not UTF-8".to_owned())?;
        let keys = JwtKeys::from_jwks(text).map_err(|e| e.to_string())?;
        Ok((keys, max_age.clamp(self.inner.min_refresh, MAX_AGE_CAP)))
    }
}

/// The `max-age` of a `Cache-Control` header; `no-store`/`no-cache` count as zero.
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache")
        {
            return Some(Duration::ZERO);
        }
        if let Some((name, seconds)) = directive.split_once('=')
            && name.trim().eq_ignore_ascii_case("max-age")
        {
            age = seconds
                .trim()
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age
}

#[async_trait]
impl KeySource for JwksKeys {
    async fn key(&self, kid: Option<&str>) -> Result<Option<Arc<JwtKey>>, StoreError> {
        let (key, fresh, any) = self.held(kid);
        if key.is_some() && fresh {
            return Ok(key);
        }
        let _fetching = self.inner.fetching.lock().await;
        // Someone else may have fetched while this request waited.
        let (key, fresh, any_now) = self.held(kid);
        if key.is_some() && fresh {
            return Ok(key);
        }
        if !self.may_fetch() {
            // Stale keys are still the issuer's keys; an unknown kid waits for the next fetch.
            return Ok(key);
        }
        match self.fetch().await {
            Ok(()) => Ok(self.held(kid).0),
            // Keep verifying with what was fetched before; with nothing, the request is a 503.
            Err(_) if any || any_now => Ok(key),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        let headers = |value: &str| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::CACHE_CONTROL, value.parse().unwrap());
            headers
        };
        assert_eq!(
            max_age(&headers("public, max-age=300")),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            max_age(&headers("max-age=\"60\"")),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age(&headers("no-store")), Some(Duration::ZERO));
        assert_eq!(max_age(&headers("public")), None);
        assert_eq!(max_age(&headers("max-age=x")), None);
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        assert!(JwksKeys::builder("http://127.0.0.1:9/jwks").build().is_ok());
        assert!(
            JwksKeys::builder("http://keys.example/jwks")
                .build()
                .is_err()
        );
        assert!(
            JwksKeys::builder("http://keys.example/jwks")
                .allow_plain_http(true)
                .build()
                .is_ok()
        );
        assert!(
            JwksKeys::builder("ftp://keys.example/jwks")
                .build()
                .is_err()
        );
    }
}
