//! The [`Verifier`]: request headers in, [`Principal`] or [`Rejection`] out.
//!
//! Order of work, cheapest first: the placement rules, the token's format and checksum (a
//! malformed token never reaches the cache or the store), the type-versus-header check, then the
//! cache, and the store only on a miss, with one store call per digest however many requests
//! miss at once. Expiry, the type policy, the token's rate limit and the required scopes are
//! checked on every request, cached or not.
//!
//! # Example
//!
//! ```
//! use http::{HeaderMap, HeaderValue, StatusCode};
//! use m2m_core::{Expiry, MemoryStore, NewToken, TokenKind, TokenStore, Verifier};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = Arc::new(MemoryStore::new());
//! let verifier = Verifier::builder(store.clone()).build();
//! let issued = store
//!     .issue(
//!         verifier.format(),
//!         NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays).scope("reports:read"),
//!         time::OffsetDateTime::now_utc(),
//!     )
//!     .await
//!     .unwrap();
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("x-api-key", HeaderValue::from_str(issued.token.expose_secret()).unwrap());
//! let principal = verifier.verify(&headers, &["reports:read"]).await.unwrap();
//! assert_eq!(principal.tenant(), "acme");
//!
//! let rejection = verifier.verify(&headers, &["reports:write"]).await.unwrap_err();
//! assert_eq!(rejection.status(), StatusCode::FORBIDDEN);
//! # });
//! ```

mod check;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::cache::{Cache, CacheKey, CacheSettings, Hit, Lookup};
use crate::expiry::{Clock, SystemClock};
use crate::metrics::{Event, FindOutcome, MetricsSnapshot, StoreCall, VerifierMetrics};
use crate::placement::{CredentialHeaders, DEFAULT_MAX_HEADER_LEN, Placement, extract_bytes};
use crate::policy::Policy;
use crate::rate_limit::Budgets;
use crate::record::Principal;
use crate::rejection::{InvalidRequest, Realm, Rejection, RejectionKind};
use crate::store::{RevocationListener, StoreError, TokenLookup};
use crate::token::{DigestHasher, ParsedToken, TokenDigest, TokenFormat, TokenId, TokenKind};
use crate::usage::{DEFAULT_USAGE_INTERVAL, UsageTask};

pub use self::check::{InactiveReason, TokenCheckError};

/// The realm named in challenges when none is configured.
pub const DEFAULT_REALM: &str = "m2m";
/// Seconds sent in `Retry-After` when the store is unavailable, unless configured.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A token whose shape (length, prefix, type code) holds, as it arrived.
struct Presented<'h> {
    /// The token as sent: visible ASCII.
    secret: &'h [u8],
    kind: TokenKind,
    /// The token's cache key; its SHA-256 digest is computed only when the store is asked.
    key: CacheKey,
    placement: Placement,
    /// A signed JWT, verified offline instead of looked up.
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    jwt: bool,
}

impl<'h> Presented<'h> {
    fn opaque(token: &ParsedToken<'h>, placement: Placement, cache: &Cache) -> Self {
        let secret = token.expose_secret().as_bytes();
        Self {
            secret,
            kind: token.kind(),
            key: cache.key(secret),
            placement,
            jwt: false,
        }
    }

    /// The token as text, for the store or the signature check.
    fn text(&self) -> &'h str {
        // Visible ASCII, checked by the placement rules, is always UTF-8.
        std::str::from_utf8(self.secret).unwrap_or_default()
    }
}

/// The store could not answer.
#[derive(Clone, Copy, Debug)]
struct StoreDown;

type InFlight = Arc<OnceCell<Result<Lookup, StoreDown>>>;

/// One request waiting on a shared lookup. When the last waiter goes, whether the lookup
/// finished or its request was dropped half-way, the lookup's entry goes too: an abandoned
/// lookup never stays in the table.
struct Waiting<'a> {
    in_flight: &'a DashMap<CacheKey, InFlight, DigestHasher>,
    key: CacheKey,
    cell: Option<InFlight>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Some(cell) = self.cell.take() else {
            return;
        };
        let shared = Arc::as_ptr(&cell);
        drop(cell);
        // Only the table's own reference left: nobody waits any more. Whoever drops last sees
        // it, whatever the order.
        self.in_flight.remove_if(&self.key, |_, current| {
            Arc::as_ptr(current) == shared && Arc::strong_count(current) == 1
        });
    }
}

struct Inner {
    store: Arc<dyn TokenLookup>,
    policy: Policy,
    format: TokenFormat,
    cache: Arc<Cache>,
    in_flight: DashMap<CacheKey, InFlight, DigestHasher>,
    clock: Arc<dyn Clock>,
    realm: Realm,
    max_header_len: usize,
    retry_after: u32,
    /// The issuers whose JWTs are verified offline.
    #[cfg(feature = "jwt")]
    issuers: crate::jwt::Issuers,
    /// The budgets of rate-limited tokens.
    budgets: Budgets,
    /// What the verifier counted, per thread.
    metrics: Arc<VerifierMetrics>,
    /// Records the noted uses in the background; `None` outside a Tokio runtime.
    _usage: Option<UsageTask>,
}

/// Verifies the credentials of requests. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("store", &self.inner.store)
            .field("realm", &self.inner.realm.as_str())
            .field("prefix", &self.inner.format.prefix())
            .field("cached_entries", &self.inner.cache.len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Verifier`]; every setting has a default.
#[must_use]
pub struct VerifierBuilder {
    store: Arc<dyn TokenLookup>,
    policy: Policy,
    format: TokenFormat,
    cache: CacheSettings,
    clock: Arc<dyn Clock>,
    realm: String,
    max_header_len: usize,
    retry_after: Duration,
    usage_interval: Duration,
    #[cfg(feature = "jwt")]
    issuers: crate::jwt::Issuers,
    #[cfg(feature = "jwt")]
    jwt_revocation_memory: Duration,
}

/// How long the ids of revocation events are remembered for JWTs, unless configured.
#[cfg(feature = "jwt")]
pub const DEFAULT_JWT_REVOCATION_MEMORY: Duration = Duration::from_secs(24 * 3600);

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("store", &self.store)
            .field("realm", &self.realm)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// Which token types are enabled (default: both, everywhere).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The token format, i.e. the prefix (default `m2m`).
    pub fn format(mut self, format: TokenFormat) -> Self {
        self.format = format;
        self
    }

    /// Cache bounds and lifetimes.
    pub fn cache(mut self, settings: CacheSettings) -> Self {
        self.cache = settings;
        self
    }

    /// Where "now" comes from (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The realm named in `WWW-Authenticate` challenges (default `m2m`). Control characters
    /// are dropped.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into().chars().filter(|c| !c.is_control()).collect();
        self
    }

    /// The longest credential header accepted, in bytes (default 4096).
    pub fn max_header_len(mut self, bytes: usize) -> Self {
        self.max_header_len = bytes;
        self
    }

    /// The `Retry-After` sent when the store is unavailable (default 5 s, whole seconds).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// How often the uses the verifier noted are recorded through
    /// [`TokenLookup::record_usage`], in one batch (default 5 s), and its counts handed to the
    /// installed `metrics` recorder ([`metrics`](crate::metrics)). The recording runs in a task
    /// spawned when the verifier is built inside a Tokio runtime; it ends with the last clone of
    /// the verifier, recording what remains. Outside a runtime nothing is spawned and
    /// [`Verifier::drain_usage`] hands the uses out instead.
    ///
    /// ```
    /// use m2m_core::{MemoryStore, Verifier};
    /// use std::time::Duration;
    ///
    /// let verifier = Verifier::builder(MemoryStore::new())
    ///     .usage_interval(Duration::from_secs(30))
    ///     .build();
    /// assert!(verifier.drain_usage().is_empty());
    /// ```
    pub fn usage_interval(mut self, interval: Duration) -> Self {
        self.usage_interval = interval;
        self
    }

    /// Trusts the signed JWTs of `issuer`, verified offline (feature `jwt`); any number of
    /// issuers, told apart by `iss`. See [`jwt`](crate::jwt).
    #[cfg(feature = "jwt")]
    pub fn jwt_issuer(mut self, issuer: crate::jwt::JwtIssuer) -> Self {
        self.issuers.add(issuer);
        self
    }

    /// How long the id named by a revocation event is remembered, so that a JWT naming it (as
    /// its `jti` or its credential id) is refused (default one day): at least the longest
    /// lifetime of the JWTs trusted.
    #[cfg(feature = "jwt")]
    pub fn jwt_revocation_memory(mut self, memory: Duration) -> Self {
        self.jwt_revocation_memory = memory;
        self
    }

    /// The verifier; subscribes its cache to the store's revocation events and, inside a Tokio
    /// runtime, starts recording uses in the background.
    pub fn build(self) -> Verifier {
        #[cfg_attr(not(feature = "jwt"), allow(unused_mut))]
        let mut cache = Cache::new(self.cache, Arc::clone(&self.clock));
        #[cfg(feature = "jwt")]
        if !self.issuers.is_empty() {
            cache.remember_revoked_ids(self.jwt_revocation_memory);
        }
        let cache = Arc::new(cache);
        self.store
            .subscribe(Arc::clone(&cache) as Arc<dyn RevocationListener>);
        let realm = if self.realm.is_ascii() {
            self.realm
        } else {
            self.realm.chars().filter(char::is_ascii).collect()
        };
        let metrics = VerifierMetrics::new(Arc::clone(&cache));
        let usage = UsageTask::spawn(&cache, &self.store, &metrics, self.usage_interval);
        let budgets = Budgets::new(Arc::clone(&self.clock));
        Verifier {
            inner: Arc::new(Inner {
                store: self.store,
                policy: self.policy,
                format: self.format,
                cache,
                in_flight: DashMap::with_hasher(DigestHasher),
                clock: self.clock,
                realm: Realm::new(realm),
                max_header_len: self.max_header_len,
                retry_after: u32::try_from(self.retry_after.as_secs().max(1)).unwrap_or(u32::MAX),
                #[cfg(feature = "jwt")]
                issuers: self.issuers,
                budgets,
                metrics,
                _usage: usage,
            }),
        }
    }
}

impl Verifier {
    /// A builder over `store`: any [`TokenLookup`], such as a
    /// [`MemoryStore`](crate::MemoryStore), an `Arc<dyn TokenStore>` or a remote store.
    pub fn builder(store: impl TokenLookup) -> VerifierBuilder {
        VerifierBuilder {
            store: Arc::new(store),
            policy: Policy::default(),
            format: TokenFormat::default(),
            cache: CacheSettings::default(),
            clock: Arc::new(SystemClock),
            realm: DEFAULT_REALM.to_owned(),
            max_header_len: DEFAULT_MAX_HEADER_LEN,
            retry_after: DEFAULT_RETRY_AFTER,
            usage_interval: DEFAULT_USAGE_INTERVAL,
            #[cfg(feature = "jwt")]
            issuers: crate::jwt::Issuers::default(),
            #[cfg(feature = "jwt")]
            jwt_revocation_memory: DEFAULT_JWT_REVOCATION_MEMORY,
        }
    }

    /// The policy; changes made through it apply to the next request.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The token format.
    pub fn format(&self) -> &TokenFormat {
        &self.inner.format
    }

    /// The store behind the cache.
    pub fn store(&self) -> &Arc<dyn TokenLookup> {
        &self.inner.store
    }

    /// The current time by the verifier's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// Drops every cached entry of the token with this id.
    pub fn invalidate(&self, id: &TokenId) {
        self.inner.cache.invalidate(id);
    }

    /// The last use of each cached token since the previous call, for a store's `last_used_at`.
    ///
    /// Verification only notes uses in memory; the verifier's background task hands them to the
    /// store in batches with [`TokenLookup::record_usage`], keeping the store off the hot path
    /// (see [`VerifierBuilder::usage_interval`]). Uses drained here are not recorded by it.
    pub fn drain_usage(&self) -> Vec<(TokenId, OffsetDateTime)> {
        crate::usage::drain(&self.inner.cache)
    }

    /// Records the uses noted since the last batch now, without waiting for the background
    /// task (before a graceful shutdown, say); returns how many tokens were recorded.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer; the uses are then dropped.
    pub async fn record_usage(&self) -> Result<usize, StoreError> {
        crate::usage::record(&*self.inner.store, self.drain_usage()).await
    }

    /// Number of cached entries, negative ones included.
    pub fn cached_entries(&self) -> usize {
        self.inner.cache.len()
    }

    /// Store lookups running right now (each shared by every request that missed the same
    /// token meanwhile); zero when the verifier is idle, even after requests were dropped
    /// half-way.
    ///
    /// ```
    /// let verifier = m2m_core::Verifier::builder(std::sync::Arc::new(m2m_core::MemoryStore::new())).build();
    /// assert_eq!(verifier.lookups_in_flight(), 0);
    /// ```
    pub fn lookups_in_flight(&self) -> usize {
        self.inner.in_flight.len()
    }

    /// What this verifier counted since it was built (see [`metrics`](crate::metrics)), added
    /// up over every thread; the installed recorder is not involved.
    ///
    /// ```
    /// let verifier = m2m_core::Verifier::builder(m2m_core::MemoryStore::new()).build();
    /// let refused = verifier.verify_cached(&http::HeaderMap::new(), &[]);
    /// assert!(refused.unwrap().is_err());
    /// let kind = m2m_core::RejectionKind::MissingCredentials;
    /// assert_eq!(verifier.metrics().refused(kind), 1);
    /// ```
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// Hands what this verifier counted since the last time to the installed `metrics`
    /// recorder. [`metrics::publish`](crate::metrics::publish) does so for every verifier of
    /// the process; the verifier's background task does it every
    /// [`usage_interval`](VerifierBuilder::usage_interval).
    pub fn publish_metrics(&self) {
        self.inner.metrics.publish();
    }

    /// Counts `event` in this thread's cell.
    #[inline]
    pub(crate) fn count(&self, event: Event) {
        self.inner.metrics.count(event);
    }

    /// Counts the decision `event`, and a cache hit with it when `hit`.
    #[inline]
    pub(crate) fn count_decision_event(&self, event: Event, hit: bool) {
        self.inner.metrics.count_decision(event, hit);
    }

    /// Counts the decision `outcome`, and a cache hit with it when `hit`.
    #[inline]
    pub(crate) fn count_decision(&self, outcome: &Result<Principal, Rejection>, hit: bool) {
        let event = match outcome {
            Ok(principal) => Event::admitted(principal.kind()),
            Err(rejection) => Event::refused(rejection.kind()),
        };
        self.inner.metrics.count_decision(event, hit);
    }

    /// Checks that `principal` carries every scope in `required_scopes`: the 403
    /// `insufficient_scope` naming them all otherwise.
    ///
    /// [`Admission`](crate::Admission) uses it for scopes a route adds to those its middleware
    /// checked, so that a route never verifies the token a second time.
    ///
    /// # Errors
    ///
    /// The [`RejectionKind::InsufficientScope`] rejection.
    pub fn check_scopes(
        &self,
        principal: &Principal,
        required_scopes: &[&str],
    ) -> Result<(), Rejection> {
        if required_scopes.iter().all(|s| principal.has_scope(s)) {
            return Ok(());
        }
        Err(self
            .reject(
                RejectionKind::InsufficientScope,
                principal.token_type().placement(),
            )
            .with_required_scopes(required_scopes)
            .with_principal(principal))
    }

    fn reject(&self, kind: RejectionKind, scheme: Placement) -> Rejection {
        Rejection::new(kind, scheme, &self.inner.realm)
    }

    /// Verifies the credentials in `headers` and that the token carries every scope in
    /// `required_scopes`.
    ///
    /// # Errors
    ///
    /// A [`Rejection`] carrying the status, challenge and body of the contract row that applies.
    pub async fn verify<H: CredentialHeaders + ?Sized>(
        &self,
        headers: &H,
        required_scopes: &[&str],
    ) -> Result<Principal, Rejection> {
        let (outcome, hit) = self.outcome(headers, required_scopes).await;
        self.count_decision(&outcome, hit);
        outcome
    }

    /// [`verify`](Self::verify), uncounted: an [`Admission`](crate::Admission) counts the
    /// decision it makes of the outcome. With it, whether a fresh cache entry answered.
    pub(crate) async fn outcome<H: CredentialHeaders + ?Sized>(
        &self,
        headers: &H,
        required_scopes: &[&str],
    ) -> (Result<Principal, Rejection>, bool) {
        let presented = match self.presented(headers) {
            Ok(presented) => presented,
            Err(rejection) => return (Err(rejection), false),
        };
        let now = self.inner.clock.unix_nanos();
        let (lookup, hit) = match self.cached(&presented, now) {
            Ok(Some(Hit::Fresh(lookup))) => (lookup, true),
            // Boxed: the store's wait is paid for by misses alone, and a hit's future stays a
            // few words.
            Ok(cached) => match Box::pin(self.lookup(&presented, now, cached)).await {
                Ok(lookup) => (lookup, false),
                Err(StoreDown) => {
                    return (Err(self.store_unavailable(presented.placement)), false);
                }
            },
            Err(rejection) => return (Err(rejection), false),
        };
        (self.decide(lookup, &presented, now, required_scopes), hit)
    }

    /// Verifies from the headers and the cache alone, without waiting: `None` when the answer
    /// needs the store (nothing fresh is cached for the token), and then [`verify`](Self::verify)
    /// gives it.
    ///
    /// Middleware calls this first so that the common case, a cached token, costs no future and
    /// no allocation; so does a malformed token, refused here.
    ///
    /// ```
    /// use http::HeaderMap;
    /// use m2m_core::{MemoryStore, RejectionKind, Verifier};
    ///
    /// let verifier = Verifier::builder(MemoryStore::new()).build();
    /// let outcome = verifier.verify_cached(&HeaderMap::new(), &[]);
    /// assert_eq!(outcome.unwrap().unwrap_err().kind(), RejectionKind::MissingCredentials);
    /// ```
    pub fn verify_cached<H: CredentialHeaders + ?Sized>(
        &self,
        headers: &H,
        required_scopes: &[&str],
    ) -> Option<Result<Principal, Rejection>> {
        let (outcome, hit) = self.outcome_cached(headers, required_scopes)?;
        self.count_decision(&outcome, hit);
        Some(outcome)
    }

    /// [`verify_cached`](Self::verify_cached), uncounted: an [`Admission`](crate::Admission)
    /// counts the decision it makes of the outcome. With it, whether a fresh cache entry
    /// answered, a hit to count with the decision.
    #[inline]
    pub(crate) fn outcome_cached<H: CredentialHeaders + ?Sized>(
        &self,
        headers: &H,
        required_scopes: &[&str],
    ) -> Option<(Result<Principal, Rejection>, bool)> {
        let presented = match self.presented(headers) {
            Ok(presented) => presented,
            Err(rejection) => return Some((Err(rejection), false)),
        };
        let now = self.inner.clock.unix_nanos();
        match self.cached(&presented, now) {
            Ok(Some(Hit::Fresh(lookup))) => {
                Some((self.decide(lookup, &presented, now, required_scopes), true))
            }
            Ok(_) => None,
            Err(rejection) => Some((Err(rejection), false)),
        }
    }

    /// The placement rules and the cheap part of the token's shape (length, prefix, type
    /// code): enough to find the token in the cache. [`cached`](Self::cached) does the rest.
    fn presented<'h, H: CredentialHeaders + ?Sized>(
        &self,
        headers: &'h H,
    ) -> Result<Presented<'h>, Rejection> {
        let inner = &*self.inner;
        let (placement, secret) =
            extract_bytes(headers, inner.max_header_len).map_err(|error| {
                let enabled = match error {
                    crate::CredentialError::Missing => inner.policy.default_types(),
                    _ => crate::TokenTypes::all(),
                };
                Rejection::from_credential_error(error, &inner.realm, enabled)
            })?;
        #[cfg(feature = "jwt")]
        if !inner.issuers.is_empty() && crate::jwt::looks_like_jwt(secret) {
            if placement != Placement::Bearer {
                return Err(self.reject(
                    RejectionKind::InvalidRequest(InvalidRequest::WrongPlacement {
                        expected: Placement::Bearer,
                    }),
                    Placement::Bearer,
                ));
            }
            return Ok(Presented {
                secret,
                kind: TokenKind::BearerToken,
                key: inner.cache.key(secret),
                placement,
                jwt: true,
            });
        }
        let kind = match inner.format.kind_of(secret) {
            Ok(kind @ (TokenKind::AccessToken | TokenKind::BearerToken)) => kind,
            _ => return Err(self.reject(RejectionKind::InvalidToken, placement)),
        };
        Ok(Presented {
            secret,
            kind,
            key: inner.cache.key(secret),
            placement,
            jwt: false,
        })
    }

    /// What the cache holds for a presented token, once the rest of its shape holds: its
    /// base62 characters and checksum (unless a fresh entry's key matched: the text is then
    /// that of a token that passed them), then the type-versus-header check.
    fn cached(&self, presented: &Presented<'_>, now: i64) -> Result<Option<Hit>, Rejection> {
        let cached = self.inner.cache.get(&presented.key, now);
        if presented.jwt {
            return Ok(cached);
        }
        let checked_before = matches!(cached, Some(Hit::Fresh(_)));
        if !checked_before && self.inner.format.check(presented.secret).is_err() {
            return Err(self.reject(RejectionKind::InvalidToken, presented.placement));
        }
        let expected = presented.kind.token_type().placement();
        if expected != presented.placement {
            return Err(self.reject(
                RejectionKind::InvalidRequest(InvalidRequest::WrongPlacement { expected }),
                expected,
            ));
        }
        Ok(cached)
    }

    fn store_unavailable(&self, placement: Placement) -> Rejection {
        self.reject(RejectionKind::StoreUnavailable, placement)
            .with_retry_after(self.inner.retry_after)
    }

    /// What a lookup means for a token of `kind` at `now`: its kind as stored, expiry and the
    /// type policy. The one decision behind [`verify`](Self::verify),
    /// [`check_token`](Self::check_token) and [`check_client`](Self::check_client); a refusal
    /// carries the principal when the store knows the token.
    fn judge(
        &self,
        lookup: Lookup,
        kind: TokenKind,
        now: i64,
    ) -> Result<Principal, (InactiveReason, Option<Principal>)> {
        let principal = match lookup {
            Lookup::Active(principal) => principal,
            Lookup::Expired => return Err((InactiveReason::Expired, None)),
            Lookup::Revoked => return Err((InactiveReason::Revoked, None)),
            Lookup::Unknown => return Err((InactiveReason::Unknown, None)),
        };
        // The digest covers the type code, so only an inconsistent store can disagree.
        if principal.kind() != kind {
            return Err((InactiveReason::Unknown, None));
        }
        if principal.is_expired_at(now) {
            return Err((InactiveReason::Expired, Some(principal)));
        }
        // A revocation event named the token or its credential since the entry was cached (a
        // JWT is never revoked in a store: only events name it).
        if self.inner.cache.is_revoked(&principal, now) {
            return Err((InactiveReason::Revoked, None));
        }
        if !self
            .inner
            .policy
            .is_enabled(principal.tenant(), principal.token_type())
        {
            return Err((InactiveReason::TypeDisabled, Some(principal)));
        }
        Ok(principal)
    }

    /// What a lookup means for a request: [`judge`](Self::judge), the token's rate limit, then
    /// the required scopes.
    fn decide(
        &self,
        lookup: Lookup,
        presented: &Presented<'_>,
        now: i64,
        required_scopes: &[&str],
    ) -> Result<Principal, Rejection> {
        let principal =
            self.judge(lookup, presented.kind, now)
                .map_err(|(reason, principal)| {
                    let kind = match reason {
                        InactiveReason::Expired => RejectionKind::ExpiredToken,
                        InactiveReason::TypeDisabled => RejectionKind::TokenTypeDisabled,
                        _ => RejectionKind::InvalidToken,
                    };
                    let rejection = self.reject(kind, presented.placement);
                    match &principal {
                        Some(principal) => rejection.with_principal(principal),
                        None => rejection,
                    }
                })?;
        if let Some(limit) = principal.rate_limit() {
            self.inner
                .budgets
                .check(principal.budget_key(), limit, now)
                .map_err(|state| {
                    self.reject(RejectionKind::RateLimited, presented.placement)
                        .with_rate_limit(state)
                        .with_principal(&principal)
                })?;
        }
        self.check_scopes(&principal, required_scopes)?;
        principal.note_use(now);
        Ok(principal)
    }

    /// The answer for a token the cache held nothing fresh for (`cached`: what it held): one
    /// store call shared by every request that misses the same token meanwhile; a stale entry
    /// within its grace when the store fails.
    async fn lookup(
        &self,
        presented: &Presented<'_>,
        now: i64,
        cached: Option<Hit>,
    ) -> Result<Lookup, StoreDown> {
        let inner = &*self.inner;
        let key = presented.key;
        let stale = match cached {
            Some(Hit::Fresh(lookup)) => {
                self.count(Event::CacheHit);
                return Ok(lookup);
            }
            Some(Hit::Stale { lookup, keep_until }) => Some((lookup, keep_until)),
            None => None,
        };
        self.count(Event::CacheMiss);
        let waiting = Waiting {
            in_flight: &inner.in_flight,
            key,
            cell: Some(inner.in_flight.entry(key).or_default().clone()),
        };
        let cell = waiting.cell.as_ref().map(Arc::clone).unwrap_or_default();
        let mut loaded = false;
        let outcome = cell
            .get_or_init(|| {
                loaded = true;
                self.load(presented)
            })
            .await
            .clone();
        if !loaded {
            // Another request's store call answered this one.
            self.count(Event::Coalesced);
        }
        drop(cell);
        drop(waiting);
        match (outcome, stale) {
            (Ok(lookup), _) => Ok(lookup),
            (
                Err(StoreDown),
                Some((lookup @ (Lookup::Active(_) | Lookup::Revoked), keep_until)),
            ) if now < keep_until => Ok(lookup),
            (Err(StoreDown), _) => Err(StoreDown),
        }
    }

    /// One store call (or, for a JWT, one signature check) for the presented token, run by the
    /// first of the requests that miss together.
    async fn load(&self, presented: &Presented<'_>) -> Result<Lookup, StoreDown> {
        let inner = &*self.inner;
        let (token, key) = (presented.text(), presented.key);
        let now_nanos = inner.clock.unix_nanos();
        // A request that finished loading the same token may have filled the cache meanwhile.
        if let Some(Hit::Fresh(lookup)) = inner.cache.get(&key, now_nanos) {
            return Ok(lookup);
        }
        let epoch = inner.cache.revocation_epoch();
        let digest = TokenDigest::of(token);
        #[cfg(feature = "jwt")]
        if presented.jwt {
            return self.load_jwt(token, key, digest, now_nanos, epoch).await;
        }
        let started = std::time::Instant::now();
        let found = inner.store.find_token(token, &digest).await;
        crate::metrics::store_call(
            StoreCall::FindToken(match &found {
                Ok(Some(_)) => FindOutcome::Record,
                Ok(None) => FindOutcome::NoRecord,
                Err(_) => FindOutcome::Failed,
            }),
            started.elapsed(),
        );
        let record = found.map_err(|error| {
            // The cause, once per store call (not per waiting request); never the token.
            tracing::warn!(target: "m2m::verifier", %error, "token lookup failed");
            StoreDown
        })?;
        let lookup = match record {
            None => Lookup::Unknown,
            Some(record) if record.revoked_at.is_some() => Lookup::Revoked,
            Some(record) => {
                let principal = record.principal();
                if principal.is_expired_at(now_nanos) {
                    Lookup::Expired
                } else {
                    Lookup::Active(inner.cache.share_grant(principal))
                }
            }
        };
        inner.cache.insert(key, &lookup, now_nanos, epoch);
        Ok(lookup)
    }

    /// Verifies a JWT offline and caches the outcome: an active one until it expires.
    #[cfg(feature = "jwt")]
    async fn load_jwt(
        &self,
        jwt: &str,
        key: CacheKey,
        digest: TokenDigest,
        now_nanos: i64,
        epoch: u64,
    ) -> Result<Lookup, StoreDown> {
        use crate::jwt::JwtRefusal;
        let inner = &*self.inner;
        let now_seconds = now_nanos.div_euclid(1_000_000_000);
        let lookup = match inner.issuers.verify(jwt, &digest, now_seconds).await {
            Ok((record, issuer)) => {
                Lookup::Active(inner.cache.share_grant(record.principal_of(Some(issuer))))
            }
            Err(JwtRefusal::Expired) => Lookup::Expired,
            Err(JwtRefusal::Invalid(reason)) => {
                tracing::debug!(target: "m2m::verifier", reason, "JWT refused");
                Lookup::Unknown
            }
            Err(JwtRefusal::KeysUnavailable(error)) => {
                tracing::warn!(target: "m2m::verifier", %error, "JWT keys unavailable");
                return Err(StoreDown);
            }
        };
        inner.cache.insert_verified(key, &lookup, now_nanos, epoch);
        Ok(lookup)
    }
}
