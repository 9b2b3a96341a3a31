//! [`RemoteStore`] and its builder.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use m2m_core::wire::UsageReport;
use m2m_core::{RevocationListener, StoreError, TokenDigest, TokenId, TokenLookup, TokenRecord};
use reqwest::header::ACCEPT;
use reqwest::{Client, StatusCode, Url};
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use crate::credential::{Authorization, IntrospectionCredential};
use crate::error::RemoteError;
use crate::events::{Follower, Subscribers};
use crate::introspection;

/// How long connecting to the token service may take, unless configured.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one introspection request may take, connecting included, unless configured.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a failed introspection is retried, unless configured.
pub const DEFAULT_RETRIES: u32 = 2;
/// How long the event stream may stay silent (not even a keepalive comment) before it is
/// considered dead and reopened, unless configured.
pub const DEFAULT_EVENT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The wait before the first retry; it doubles for each further one.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
/// The path of the introspection endpoint, under the base URL.
pub const INTROSPECTION_PATH: &str = "oauth/introspect";
/// The path of the revocation event stream, under the base URL.
pub const REVOCATIONS_PATH: &str = "v1/revocations";
/// The path uses are reported to, under the base URL.
pub const USAGE_PATH: &str = "v1/usage";
/// The path of the token service's JWT keys, under the base URL.
pub const JWKS_PATH: &str = ".well-known/jwks.json";
/// The most uses sent in one usage report; a longer batch is sent in several requests.
pub const MAX_USAGE_BATCH: usize = 1000;

/// A [`TokenLookup`] that asks a token service: RFC 7662 introspection for lookups, a
/// server-sent event stream for revocations, and usage reports for `last_used_at`.
///
/// Cheap to clone; clones share one connection pool and one event-stream task, which stops
/// when the last clone is dropped. It only verifies: issuing, listing and revoking are done at
/// the token service, so it does not implement [`TokenStore`](m2m_core::TokenStore).
#[derive(Clone)]
pub struct RemoteStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    base_url: Url,
    introspection_url: Url,
    revocations_url: Url,
    usage_url: Url,
    authorization: Authorization,
    credential: IntrospectionCredential,
    connect_timeout: Duration,
    request_timeout: Duration,
    idle_timeout: Duration,
    retries: u32,
    subscribers: Arc<Subscribers>,
    follower: Mutex<Option<JoinHandle<()>>>,
    /// Until when the token service asked not to be asked (429 with `Retry-After`).
    back_off_until: Mutex<Option<Instant>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self
            .follower
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("RemoteStore")
            .field("base_url", &inner.base_url.as_str())
            .field("credential", &inner.credential)
            .field("connect_timeout", &inner.connect_timeout)
            .field("request_timeout", &inner.request_timeout)
            .field("retries", &inner.retries)
            .field("subscribers", &inner.subscribers.count())
            .field("event_stream_connected", &inner.subscribers.is_connected())
            .finish()
    }
}

/// Builds a [`RemoteStore`]; every setting but the base URL and credential has a default.
#[must_use]
pub struct RemoteStoreBuilder {
    base_url: String,
    credential: IntrospectionCredential,
    connect_timeout: Duration,
    request_timeout: Duration,
    idle_timeout: Duration,
    retries: u32,
    allow_plain_http: bool,
}

impl fmt::Debug for RemoteStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteStoreBuilder")
            .field("base_url", &self.base_url)
            .field("credential", &self.credential)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("event_stream_idle_timeout", &self.idle_timeout)
            .field("retries", &self.retries)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

impl RemoteStoreBuilder {
    /// Lets the store talk plain `http://` to a host other than this machine (default: no).
    /// Tokens and the resource server's credential then cross the network in clear: only for
    /// a network that is private by other means. `http://` to a loopback address
    /// (`127.0.0.0/8`, `::1`, `localhost`) is always allowed.
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// How long connecting may take (default [`DEFAULT_CONNECT_TIMEOUT`], 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one introspection request may take from connecting to the end of the body
    /// (default [`DEFAULT_REQUEST_TIMEOUT`], 5 s). Each retry gets the full time again.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How many times an introspection is retried after a connection failure, a timeout or a
    /// 502, 503 or 504 (default [`DEFAULT_RETRIES`], 2), with a short doubling pause from
    /// 50 ms. Introspection is a read, so retrying is safe. Other answers are not retried.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// How long the revocation event stream may stay silent before it is reopened (default
    /// [`DEFAULT_EVENT_STREAM_IDLE_TIMEOUT`], 60 s). The token service should send a keepalive
    /// comment more often than this.
    pub fn event_stream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The store, with its HTTP client. Makes no network call.
    ///
    /// # Errors
    ///
    /// [`RemoteError::InvalidBaseUrl`] for a URL that does not parse, is not `http`/`https`,
    /// or is plain `http` to another machine without [`allow_plain_http`](Self::allow_plain_http),
    /// [`RemoteError::InvalidCredential`] for a credential that cannot be sent in a header,
    /// [`RemoteError::Client`] when the HTTP client cannot be set up.
    pub fn build(self) -> Result<RemoteStore, RemoteError> {
        let mut base_url =
            Url::parse(&self.base_url).map_err(|e| RemoteError::InvalidBaseUrl(e.to_string()))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(RemoteError::InvalidBaseUrl(
                "the scheme must be http or https".into(),
            ));
        }
        if base_url.scheme() == "http" && !self.allow_plain_http && !is_loopback(&base_url) {
            return Err(RemoteError::InvalidBaseUrl(
                "plain http sends tokens in clear: use https, or allow_plain_http(true) for a \
                 network that is private by other means (loopback needs neither)"
                    .into(),
            ));
        }
        if !base_url.username().is_empty() || base_url.password().is_some() {
            return Err(RemoteError::InvalidBaseUrl(
                "credentials belong in the introspection credential, not in the URL".into(),
            ));
        }
        if base_url.query().is_some() || base_url.fragment().is_some() {
            return Err(RemoteError::InvalidBaseUrl(
                "the base URL takes no query or fragment".into(),
            ));
        }
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        let join = |path: &str| {
            base_url
                .join(path)
                .map_err(|e| RemoteError::InvalidBaseUrl(e.to_string()))
        };
        let introspection_url = join(INTROSPECTION_PATH)?;
        let revocations_url = join(REVOCATIONS_PATH)?;
        let usage_url = join(USAGE_PATH)?;
        let authorization = Authorization::new(&self.credential)?;
        let client = Client::builder()
            .connect_timeout(self.connect_timeout)
            // A redirect could carry the presented token to another endpoint: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .build()
            .map_err(|e| RemoteError::Client(e.to_string()))?;
        Ok(RemoteStore {
            inner: Arc::new(Inner {
                client,
                base_url,
                introspection_url,
                revocations_url,
                usage_url,
                authorization,
                credential: self.credential,
                connect_timeout: self.connect_timeout,
                request_timeout: self.request_timeout,
                idle_timeout: self.idle_timeout,
                retries: self.retries,
                subscribers: Arc::default(),
                follower: Mutex::new(None),
                back_off_until: Mutex::new(None),
            }),
        })
    }
}

/// Whether `url` names this machine: `localhost`, or a loopback address.
pub(crate) fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Why one introspection attempt failed.
enum Failure {
    /// Worth another attempt: connection refused or reset, timeout, 502, 503, 504.
    Transient(String),
    /// Another attempt would get the same answer.
    Final(String),
    /// The service asked for a pause (429, with `Retry-After`): no attempt until then.
    BackOff(Duration),
}

/// The longest pause a `Retry-After` may impose: past it the store asks again anyway.
pub const MAX_BACK_OFF: Duration = Duration::from_secs(60);

/// The pause a `Retry-After` header (seconds) asks for, bounded by [`MAX_BACK_OFF`].
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_BACK_OFF))
}

impl RemoteStore {
    /// A builder for a store asking the token service at `base_url` (for example
    /// `https://tokens.example.com`, or with a path prefix `https://example.com/auth/`), which
    /// authenticates this resource server by `credential`.
    pub fn builder(
        base_url: impl Into<String>,
        credential: IntrospectionCredential,
    ) -> RemoteStoreBuilder {
        RemoteStoreBuilder {
            base_url: base_url.into(),
            credential,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            idle_timeout: DEFAULT_EVENT_STREAM_IDLE_TIMEOUT,
            retries: DEFAULT_RETRIES,
            allow_plain_http: false,
        }
    }

    /// The token service's JWT keys, `{base}/.well-known/jwks.json`, for a
    /// [`JwtIssuer`](m2m_core::jwt::JwtIssuer) whose JWTs the verifier checks offline (feature
    /// `jwt`).
    ///
    /// # Errors
    ///
    /// [`RemoteError::Client`] when the HTTP client cannot be set up.
    #[cfg(feature = "jwt")]
    pub fn jwks_keys(&self) -> Result<crate::JwksKeys, RemoteError> {
        let url = self
            .inner
            .base_url
            .join(JWKS_PATH)
            .map_err(|e| RemoteError::InvalidBaseUrl(e.to_string()))?;
        // The base URL passed the plain-http rule already.
        crate::JwksKeys::builder(url.as_str())
            .allow_plain_http(true)
            .build()
    }

    /// The introspection endpoint: `{base}/oauth/introspect`.
    pub fn introspection_url(&self) -> &Url {
        &self.inner.introspection_url
    }

    /// The revocation event stream: `{base}/v1/revocations`.
    pub fn revocations_url(&self) -> &Url {
        &self.inner.revocations_url
    }

    /// Where uses are reported: `{base}/v1/usage`.
    pub fn usage_url(&self) -> &Url {
        &self.inner.usage_url
    }

    /// Whether the revocation event stream is open right now. While it is not, a revoked token
    /// may still pass until its cache entry expires (the verifier's cache TTL, 10 s by
    /// default): a health check can report this.
    pub fn event_stream_connected(&self) -> bool {
        self.inner.subscribers.is_connected()
    }

    /// Asks the token service about `token`, retrying transient failures.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the service cannot be reached, times out, fails, refuses
    /// this resource server's credential or answers something that is not an introspection
    /// response. The message never contains the token.
    pub async fn introspect(
        &self,
        token: &str,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let inner = &*self.inner;
        if let Some(left) = self.backing_off() {
            return Err(StoreError::Unavailable(format!(
                "the token service asked for a pause; {} ms left",
                left.as_millis()
            )));
        }
        let mut delay = FIRST_RETRY_DELAY;
        let mut attempt = 0;
        loop {
            let message = match self.introspect_once(token, digest).await {
                Ok(found) => return Ok(found),
                Err(Failure::Final(message)) => return Err(StoreError::Unavailable(message)),
                Err(Failure::BackOff(pause)) => {
                    self.back_off(pause);
                    return Err(StoreError::Unavailable(format!(
                        "the token service asked for a pause of {} s",
                        pause.as_secs()
                    )));
                }
                Err(Failure::Transient(message)) => message,
            };
            if attempt >= inner.retries {
                return Err(StoreError::Unavailable(format!(
                    "{message} (after {} attempts)",
                    attempt + 1
                )));
            }
            attempt += 1;
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }

    /// How long the pause the service asked for still lasts, if it does.
    fn backing_off(&self) -> Option<Duration> {
        let until = *self
            .inner
            .back_off_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        until.and_then(|until| until.checked_duration_since(Instant::now()))
    }

    /// Starts a pause: until it ends, introspections fail at once (cached tokens are still
    /// served by the verifier) and the service is not asked.
    fn back_off(&self, pause: Duration) {
        let mut until = self
            .inner
            .back_off_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let new_until = Instant::now() + pause;
        if until.is_none_or(|current| current < new_until) {
            tracing::warn!(
                pause_seconds = pause.as_secs(),
                "the token service asked for a pause: introspections fail at once until it \
                 ends, cached tokens are still served"
            );
            *until = Some(new_until);
        }
    }

    async fn introspect_once(
        &self,
        token: &str,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, Failure> {
        let inner = &*self.inner;
        let request = inner
            .client
            .post(inner.introspection_url.clone())
            .timeout(inner.request_timeout)
            .header(ACCEPT, "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")]);
        let response = inner
            .authorization
            .apply(request)
            .send()
            .await
            .map_err(|e| transport_failure(&e))?;
        let status = response.status();
        let pause = retry_after(response.headers());
        match status {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => {
                return Err(Failure::BackOff(pause.unwrap_or(Duration::from_secs(1))));
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(Failure::Final(format!(
                    "the token service refused this resource server's introspection credential \
                     ({status}); check that it is valid and carries the scope m2m:introspect"
                )));
            }
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => {
                return Err(Failure::Transient(format!(
                    "the token service answered {status}"
                )));
            }
            _ => {
                return Err(Failure::Final(format!(
                    "the token service answered {status} to introspection"
                )));
            }
        }
        let body = response.bytes().await.map_err(|e| transport_failure(&e))?;
        introspection::parse(&body, token, digest).map_err(|bad| Failure::Final(bad.describe()))
    }
}

/// Describes a transport error by kind only: no URL, no body.
fn transport_failure(error: &reqwest::Error) -> Failure {
    if error.is_timeout() {
        Failure::Transient("the token service did not answer in time".into())
    } else if error.is_connect() {
        Failure::Transient("the token service could not be reached".into())
    } else if error.is_request() || error.is_body() {
        Failure::Transient("the connection to the token service failed".into())
    } else {
        Failure::Final("the introspection request failed".into())
    }
}

impl RemoteStore {
    /// Sends one batch of at most [`MAX_USAGE_BATCH`] uses.
    async fn report_usage(&self, uses: &[(TokenId, OffsetDateTime)]) -> Result<(), String> {
        let inner = &*self.inner;
        let report = UsageReport::new(uses);
        let request = inner
            .client
            .post(inner.usage_url.clone())
            .timeout(inner.request_timeout)
            .header(ACCEPT, "application/json")
            .json(&report);
        let response =
            inner.authorization.apply(request).send().await.map_err(
                |error| match transport_failure(&error) {
                    Failure::Transient(message) | Failure::Final(message) => message,
                    Failure::BackOff(pause) => {
                        format!(
                            "the token service asked for a pause of {} s",
                            pause.as_secs()
                        )
                    }
                },
            )?;
        let status = response.status();
        match status {
            status if status.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(format!(
                "the token service refused this resource server's credential for usage reports \
                 ({status}); check that it is valid and carries the scope m2m:introspect"
            )),
            _ => Err(format!(
                "the token service answered {status} to a usage report"
            )),
        }
    }
}

#[async_trait]
impl TokenLookup for RemoteStore {
    /// Introspects `token` at the token service (see [`RemoteStore::introspect`]).
    async fn find_token(
        &self,
        token: &str,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.introspect(token, digest).await
    }

    /// Reports the uses to the token service, `POST {base}/v1/usage`, in batches of at most
    /// [`MAX_USAGE_BATCH`], authenticated by the introspection credential. Each batch is sent
    /// once; a failed one is logged at warn and ends the call (the verifier drops it).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the service cannot be reached, times out, refuses the
    /// credential or does not answer 2xx.
    async fn record_usage(&self, uses: &[(TokenId, OffsetDateTime)]) -> Result<(), StoreError> {
        for batch in uses.chunks(MAX_USAGE_BATCH) {
            if let Err(message) = self.report_usage(batch).await {
                tracing::warn!(
                    url = %self.inner.usage_url,
                    uses = batch.len(),
                    cause = %message,
                    "reporting token usage to the token service failed"
                );
                return Err(StoreError::Unavailable(message));
            }
        }
        Ok(())
    }

    /// Registers `listener` (weakly: a dropped cache is forgotten) and, on the first
    /// subscription made inside a Tokio runtime, starts the task that follows the event stream.
    /// Returns whether that task runs: always `true` inside a Tokio runtime. Outside one, the
    /// listener is kept and the task starts with the next subscription made inside a runtime.
    fn subscribe(&self, listener: Arc<dyn RevocationListener>) -> bool {
        let inner = &*self.inner;
        inner.subscribers.add(&listener);
        let mut follower = inner
            .follower
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if follower.is_none() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let task = Follower {
                    client: inner.client.clone(),
                    url: inner.revocations_url.clone(),
                    authorization: inner.authorization.clone(),
                    request_timeout: inner.request_timeout,
                    idle_timeout: inner.idle_timeout,
                    subscribers: Arc::clone(&inner.subscribers),
                };
                *follower = Some(runtime.spawn(task.run()));
            }
        }
        follower.is_some()
    }
}
