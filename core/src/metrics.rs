//! What verifiers count, through the [`metrics`](https://docs.rs/metrics) facade: decisions,
//! the cache, shared lookups and store calls.
//!
//! A cached verification costs about a hundred nanoseconds and must scale across threads, so a
//! request touches neither the metrics registry nor any counter another thread writes: each
//! verifier counts in memory of its own per thread (one cache-line-padded cell per thread, one
//! writer each), and hands the totals to the installed recorder later, off the request path:
//!
//! - from its background task, every [`usage_interval`](crate::VerifierBuilder::usage_interval)
//!   (inside a Tokio runtime);
//! - on [`publish`], which every live verifier of the process answers (an exporter calls it
//!   before rendering, so that a scrape is exact), or
//!   [`Verifier::publish_metrics`](crate::Verifier::publish_metrics) for one;
//! - when the verifier is dropped (its cache's entries leave the gauge then).
//!
//! Without an installed recorder all of this costs nothing beyond the per-thread counts. Store
//! calls are timed where they happen (they are misses, never on the cached path), and so are
//! the rare events of `m2m-remote`'s revocation stream.
//!
//! Label values are bounded and never name a token, a token id, a tenant or a user.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `m2m_decisions_total` | counter | `outcome` (`admitted`, `anonymous`, `preflight`, `refused`); `kind` (`access_token`, `bearer_token`) when admitted; `reason` when refused | one per decision of an [`Admission`](crate::Admission), or of [`Verifier::verify`](crate::Verifier::verify) / [`Verifier::verify_cached`](crate::Verifier::verify_cached) called directly |
//! | `m2m_token_checks_total` | counter | `check` (`token`, `client`); `outcome` (`active`, `inactive`, `store_unavailable`); `reason` when inactive ([`InactiveReason::as_str`](crate::InactiveReason::as_str)) | one per [`Verifier::check_token`](crate::Verifier::check_token) (introspection) and [`Verifier::check_client`](crate::Verifier::check_client) (token endpoint, client authentication) |
//! | `m2m_cache_hits_total` | counter | | decisions answered from a fresh cache entry |
//! | `m2m_cache_misses_total` | counter | | decisions that needed the store (or, for a JWT, the signature check) |
//! | `m2m_cache_evictions_total` | counter | | entries dropped to keep the cache within its bounds |
//! | `m2m_cache_flushes_total` | counter | | times the whole cache was dropped because revocation events may have been missed |
//! | `m2m_cache_entries` | gauge | `room` (`known`, `unknown`) | entries cached now: tokens the store knows, and unknown tokens |
//! | `m2m_store_lookups_coalesced_total` | counter | | misses answered by another request's store call for the same token (single-flight) |
//! | `m2m_store_call_duration_seconds` | histogram | `operation` (`find_token`, `record_usage`); `outcome` (`found`, `not_found`, `ok`, `error`) | every call a verifier makes to its store, whatever the store |
//!
//! Refusals for a spent rate limit are `m2m_decisions_total{outcome="refused",
//! reason="rate_limited"}`; the reasons are
//! [`RejectionKind::reason`](crate::RejectionKind::reason).
//! A request that meets two admissions (nested middleware, or a route's own scopes through
//! [`Admission::authorize`](crate::Admission::authorize)) counts at each.
//! `m2m-remote` adds `m2m_remote_revocation_stream_reconnects_total`,
//! `m2m_remote_revocation_stream_gaps_total`, `m2m_remote_revocation_events_total` and the
//! gauge `m2m_remote_revocation_stream_connected`; the token service adds
//! `m2m_service_introspections_total`, `m2m_service_token_requests_total`,
//! `m2m_service_revocation_events_total` and the gauge `m2m_service_revocation_streams`.
//!
//! # Example
//!
//! An application installs a recorder (here the `metrics` crate's debugging one would do as
//! well as a Prometheus exporter), verifies, then publishes before it reads:
//!
//! ```
//! use http::{HeaderMap, HeaderValue};
//! use m2m_core::{Expiry, MemoryStore, NewToken, TokenKind, TokenStore, Verifier};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = Arc::new(MemoryStore::new());
//! let verifier = Verifier::builder(store.clone()).build();
//! let issued = store
//!     .issue(
//!         verifier.format(),
//!         NewToken::new(TokenKind::AccessToken, "acme", Expiry::OneDay),
//!         verifier.now(),
//!     )
//!     .await
//!     .unwrap();
//! let mut headers = HeaderMap::new();
//! headers.insert("x-api-key", HeaderValue::from_str(issued.token.expose_secret()).unwrap());
//! verifier.verify(&headers, &[]).await.unwrap();
//! verifier.verify(&headers, &[]).await.unwrap();
//!
//! let totals = verifier.metrics();
//! assert_eq!(totals.admitted(), 2);
//! assert_eq!((totals.cache_hits(), totals.cache_misses()), (1, 1));
//!
//! // Before an exporter renders: every live verifier hands its counts to the recorder.
//! m2m_core::metrics::publish();
//! # });
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use thread_local::ThreadLocal;

use crate::cache::Cache;
use crate::rejection::RejectionKind;
use crate::token::TokenKind;
use crate::verifier::{InactiveReason, TokenCheckError};

/// Decisions by outcome, admitted token kind and refusal reason (counter).
pub const DECISIONS: &str = "m2m_decisions_total";
/// Checks of bare tokens and client credentials by check, outcome and reason (counter).
pub const TOKEN_CHECKS: &str = "m2m_token_checks_total";
/// Decisions answered from a fresh cache entry (counter).
pub const CACHE_HITS: &str = "m2m_cache_hits_total";
/// Decisions that needed the store or a signature check (counter).
pub const CACHE_MISSES: &str = "m2m_cache_misses_total";
/// Cache entries dropped to stay within the bounds (counter).
pub const CACHE_EVICTIONS: &str = "m2m_cache_evictions_total";
/// Whole-cache drops after revocation events may have been missed (counter).
pub const CACHE_FLUSHES: &str = "m2m_cache_flushes_total";
/// Cached entries now, by room (gauge).
pub const CACHE_ENTRIES: &str = "m2m_cache_entries";
/// Misses answered by another request's store call (counter).
pub const COALESCED_LOOKUPS: &str = "m2m_store_lookups_coalesced_total";
/// Store calls by operation and outcome, in seconds (histogram).
pub const STORE_CALL_DURATION: &str = "m2m_store_call_duration_seconds";

/// Bucket bounds, in seconds, that suit [`STORE_CALL_DURATION`]: from a memory store's
/// microseconds to a remote store's timeouts. Prometheus exporters render histograms with the
/// buckets they are given (`metrics-exporter-prometheus`: `set_buckets_for_metric`).
pub const STORE_CALL_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// One counted series: a metric name and its labels.
struct Series {
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
}

/// Declares what a verifier counts per thread: [`Event`], one variant per series, and
/// [`SERIES`] in the same order.
macro_rules! events {
    ($($event:ident => $name:ident { $($key:literal = $value:literal),* }),* $(,)?) => {
        /// Something a verifier counts.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Event {
            $($event),*
        }

        /// The series of each [`Event`], by its index.
        const SERIES: &[Series] = &[
            $(Series { name: $name, labels: &[$(($key, $value)),*] }),*
        ];
    };
}

events! {
    AdmittedAccessToken => DECISIONS { "outcome" = "admitted", "kind" = "access_token" },
    AdmittedBearerToken => DECISIONS { "outcome" = "admitted", "kind" = "bearer_token" },
    Anonymous => DECISIONS { "outcome" = "anonymous" },
    Preflight => DECISIONS { "outcome" = "preflight" },
    RefusedMissingCredentials => DECISIONS { "outcome" = "refused", "reason" = "missing_credentials" },
    RefusedInvalidRequest => DECISIONS { "outcome" = "refused", "reason" = "invalid_request" },
    RefusedInvalidToken => DECISIONS { "outcome" = "refused", "reason" = "invalid_token" },
    RefusedExpiredToken => DECISIONS { "outcome" = "refused", "reason" = "expired_token" },
    RefusedTokenTypeDisabled => DECISIONS { "outcome" = "refused", "reason" = "token_type_disabled" },
    RefusedInsufficientScope => DECISIONS { "outcome" = "refused", "reason" = "insufficient_scope" },
    RefusedStoreUnavailable => DECISIONS { "outcome" = "refused", "reason" = "store_unavailable" },
    RefusedRateLimited => DECISIONS { "outcome" = "refused", "reason" = "rate_limited" },
    RefusedMiddlewareMissing => DECISIONS { "outcome" = "refused", "reason" = "middleware_missing" },
    CacheHit => CACHE_HITS {},
    CacheMiss => CACHE_MISSES {},
    Coalesced => COALESCED_LOOKUPS {},
    TokenActive => TOKEN_CHECKS { "check" = "token", "outcome" = "active" },
    TokenMalformed => TOKEN_CHECKS { "check" = "token", "outcome" = "inactive", "reason" = "malformed" },
    TokenWrongKind => TOKEN_CHECKS { "check" = "token", "outcome" = "inactive", "reason" = "wrong_kind" },
    TokenUnknown => TOKEN_CHECKS { "check" = "token", "outcome" = "inactive", "reason" = "unknown" },
    TokenRevoked => TOKEN_CHECKS { "check" = "token", "outcome" = "inactive", "reason" = "revoked" },
    TokenExpired => TOKEN_CHECKS { "check" = "token", "outcome" = "inactive", "reason" = "expired" },
    TokenTypeDisabled => TOKEN_CHECKS { "check" = "token", "outcome" = "inactive", "reason" = "type_disabled" },
    TokenStoreUnavailable => TOKEN_CHECKS { "check" = "token", "outcome" = "store_unavailable" },
    ClientActive => TOKEN_CHECKS { "check" = "client", "outcome" = "active" },
    ClientMalformed => TOKEN_CHECKS { "check" = "client", "outcome" = "inactive", "reason" = "malformed" },
    ClientWrongKind => TOKEN_CHECKS { "check" = "client", "outcome" = "inactive", "reason" = "wrong_kind" },
    ClientUnknown => TOKEN_CHECKS { "check" = "client", "outcome" = "inactive", "reason" = "unknown" },
    ClientRevoked => TOKEN_CHECKS { "check" = "client", "outcome" = "inactive", "reason" = "revoked" },
    ClientExpired => TOKEN_CHECKS { "check" = "client", "outcome" = "inactive", "reason" = "expired" },
    ClientTypeDisabled => TOKEN_CHECKS { "check" = "client", "outcome" = "inactive", "reason" = "type_disabled" },
    ClientMismatch => TOKEN_CHECKS { "check" = "client", "outcome" = "inactive", "reason" = "client_mismatch" },
    ClientStoreUnavailable => TOKEN_CHECKS { "check" = "client", "outcome" = "store_unavailable" },
}

/// How many events a verifier counts.
const EVENTS: usize = SERIES.len();

/// Which check of [`Verifier`](crate::Verifier) an outcome comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// [`check_token`](crate::Verifier::check_token).
    Token,
    /// [`check_client`](crate::Verifier::check_client).
    Client,
}

impl Event {
    /// An admission of a token of `kind` (only access and bearer tokens are admitted).
    pub(crate) fn admitted(kind: TokenKind) -> Self {
        match kind {
            TokenKind::AccessToken => Event::AdmittedAccessToken,
            _ => Event::AdmittedBearerToken,
        }
    }

    /// A refusal of `kind`.
    pub(crate) fn refused(kind: RejectionKind) -> Self {
        match kind {
            RejectionKind::MissingCredentials => Event::RefusedMissingCredentials,
            RejectionKind::InvalidRequest(_) => Event::RefusedInvalidRequest,
            RejectionKind::InvalidToken => Event::RefusedInvalidToken,
            RejectionKind::ExpiredToken => Event::RefusedExpiredToken,
            RejectionKind::TokenTypeDisabled => Event::RefusedTokenTypeDisabled,
            RejectionKind::InsufficientScope => Event::RefusedInsufficientScope,
            RejectionKind::StoreUnavailable => Event::RefusedStoreUnavailable,
            RejectionKind::RateLimited => Event::RefusedRateLimited,
            RejectionKind::MiddlewareMissing => Event::RefusedMiddlewareMissing,
        }
    }

    /// The outcome of a check.
    pub(crate) fn checked<T>(check: Check, outcome: &Result<T, TokenCheckError>) -> Self {
        use InactiveReason as R;
        let inactive = match outcome {
            Ok(_) if check == Check::Token => return Event::TokenActive,
            Ok(_) => return Event::ClientActive,
            Err(TokenCheckError::StoreUnavailable { .. }) if check == Check::Token => {
                return Event::TokenStoreUnavailable;
            }
            Err(TokenCheckError::StoreUnavailable { .. }) => return Event::ClientStoreUnavailable,
            Err(TokenCheckError::Inactive(reason)) => *reason,
        };
        match (check, inactive) {
            (Check::Token, R::Malformed) => Event::TokenMalformed,
            (Check::Token, R::WrongKind) => Event::TokenWrongKind,
            (Check::Token, R::Unknown | R::ClientMismatch) => Event::TokenUnknown,
            (Check::Token, R::Revoked) => Event::TokenRevoked,
            (Check::Token, R::Expired) => Event::TokenExpired,
            (Check::Token, R::TypeDisabled) => Event::TokenTypeDisabled,
            (Check::Client, R::Malformed) => Event::ClientMalformed,
            (Check::Client, R::WrongKind) => Event::ClientWrongKind,
            (Check::Client, R::Unknown) => Event::ClientUnknown,
            (Check::Client, R::Revoked) => Event::ClientRevoked,
            (Check::Client, R::Expired) => Event::ClientExpired,
            (Check::Client, R::TypeDisabled) => Event::ClientTypeDisabled,
            (Check::Client, R::ClientMismatch) => Event::ClientMismatch,
        }
    }
}

/// One thread's counts, on cache lines of their own.
type Cell = CachePadded<[AtomicU64; EVENTS]>;

/// What a verifier has counted: the per-thread cells, the cache it reports on, and what it
/// has already handed to the recorder.
pub(crate) struct VerifierMetrics {
    cells: ThreadLocal<Cell>,
    cache: Arc<Cache>,
    published: Mutex<Published>,
}

impl std::fmt::Debug for VerifierMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierMetrics").finish_non_exhaustive()
    }
}

/// The totals last handed to the recorder.
struct Published {
    counts: [u64; EVENTS],
    evictions: u64,
    flushes: u64,
    known: u64,
    unknown: u64,
}

/// Every live verifier's counts, for [`publish`].
static VERIFIERS: Mutex<Vec<Weak<VerifierMetrics>>> = Mutex::new(Vec::new());

impl VerifierMetrics {
    /// The counts of a verifier over `cache`, known to [`publish`] while they live.
    pub(crate) fn new(cache: Arc<Cache>) -> Arc<Self> {
        let metrics = Arc::new(Self {
            cells: ThreadLocal::new(),
            cache,
            published: Mutex::new(Published {
                counts: [0; EVENTS],
                evictions: 0,
                flushes: 0,
                known: 0,
                unknown: 0,
            }),
        });
        let mut verifiers = VERIFIERS.lock().unwrap_or_else(PoisonError::into_inner);
        verifiers.retain(|verifier| verifier.strong_count() > 0);
        verifiers.push(Arc::downgrade(&metrics));
        metrics
    }

    /// Counts `event` in this thread's cell: a load and a store that no other thread makes
    /// (a thread's cell passes to another thread only after the first one ended).
    #[inline]
    pub(crate) fn count(&self, event: Event) {
        bump(&self.cells.get_or(new_cell)[event as usize]);
    }

    /// Counts a decision `event`, and a cache hit with it when `hit`: one look-up of this
    /// thread's cell for both, on the cached path.
    #[inline]
    pub(crate) fn count_decision(&self, event: Event, hit: bool) {
        let cell = self.cells.get_or(new_cell);
        bump(&cell[event as usize]);
        if hit {
            bump(&cell[Event::CacheHit as usize]);
        }
    }

    /// Every thread's counts added up.
    fn totals(&self) -> [u64; EVENTS] {
        let mut totals = [0u64; EVENTS];
        for cell in self.cells.iter() {
            for (total, counter) in totals.iter_mut().zip(cell.iter()) {
                *total = total.wrapping_add(counter.load(Ordering::Relaxed));
            }
        }
        totals
    }

    /// The totals so far.
    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            counts: self.totals(),
        }
    }

    /// Hands what was counted since the last call to the installed recorder.
    pub(crate) fn publish(&self) {
        describe();
        let totals = self.totals();
        let (known, unknown) = self.cache.room_sizes();
        let (known, unknown) = (known as u64, unknown as u64);
        let evictions = self.cache.evictions();
        let flushes = self.cache.flushes();
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for ((series, total), last) in SERIES.iter().zip(totals).zip(&mut published.counts) {
            // Registered even when nothing happened, so that a series exists from the start.
            ::metrics::counter!(series.name, series.labels).increment(total.wrapping_sub(*last));
            *last = total;
        }
        ::metrics::counter!(CACHE_EVICTIONS).increment(evictions - published.evictions);
        ::metrics::counter!(CACHE_FLUSHES).increment(flushes - published.flushes);
        move_gauge("known", published.known, known);
        move_gauge("unknown", published.unknown, unknown);
        published.evictions = evictions;
        published.flushes = flushes;
        published.known = known;
        published.unknown = unknown;
    }
}

impl Drop for VerifierMetrics {
    fn drop(&mut self) {
        // The last counts, and the cache's entries leave the gauge with it.
        self.publish();
        let published = self
            .published
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        move_gauge("known", published.known, 0);
        move_gauge("unknown", published.unknown, 0);
    }
}

/// Adds one to a counter only this thread writes.
#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

fn new_cell() -> Cell {
    CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0)))
}

/// Moves the cache-entries gauge of `room` by this verifier's change from `from` to `to`: the
/// gauge is the sum over the process's verifiers.
fn move_gauge(room: &'static str, from: u64, to: u64) {
    let gauge = ::metrics::gauge!(CACHE_ENTRIES, "room" => room);
    if to >= from {
        gauge.increment((to - from) as f64);
    } else {
        gauge.decrement((from - to) as f64);
    }
}

/// A verifier's totals since it was built, read from its per-thread counts
/// ([`Verifier::metrics`](crate::Verifier::metrics)): for tests and diagnostics, without a
/// recorder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSnapshot {
    counts: [u64; EVENTS],
}

impl MetricsSnapshot {
    fn count(&self, event: Event) -> u64 {
        self.counts[event as usize]
    }

    /// Requests admitted, of either token kind.
    pub fn admitted(&self) -> u64 {
        self.count(Event::AdmittedAccessToken) + self.count(Event::AdmittedBearerToken)
    }

    /// Requests refused with `kind`'s reason.
    pub fn refused(&self, kind: RejectionKind) -> u64 {
        self.count(Event::refused(kind))
    }

    /// Requests let through without a caller on an optional route.
    pub fn anonymous(&self) -> u64 {
        self.count(Event::Anonymous)
    }

    /// CORS preflights let through unverified.
    pub fn preflights(&self) -> u64 {
        self.count(Event::Preflight)
    }

    /// Decisions answered from a fresh cache entry.
    pub fn cache_hits(&self) -> u64 {
        self.count(Event::CacheHit)
    }

    /// Decisions that needed the store or a signature check.
    pub fn cache_misses(&self) -> u64 {
        self.count(Event::CacheMiss)
    }

    /// Misses answered by another request's store call for the same token.
    pub fn coalesced_lookups(&self) -> u64 {
        self.count(Event::Coalesced)
    }

    /// [`check_token`](crate::Verifier::check_token) calls that found an active token.
    pub fn active_tokens(&self) -> u64 {
        self.count(Event::TokenActive)
    }

    /// [`check_client`](crate::Verifier::check_client) calls that found an active credential.
    pub fn active_clients(&self) -> u64 {
        self.count(Event::ClientActive)
    }
}

/// Hands the counts of every live verifier of the process to the installed recorder, and
/// describes every metric to it. Exporters call this right before they render, so that what
/// they show is exact.
pub fn publish() {
    let live: Vec<Arc<VerifierMetrics>> = {
        let mut verifiers = VERIFIERS.lock().unwrap_or_else(PoisonError::into_inner);
        verifiers.retain(|verifier| verifier.strong_count() > 0);
        verifiers.iter().filter_map(Weak::upgrade).collect()
    };
    describe();
    for verifier in &live {
        verifier.publish();
    }
}

/// Describes the metrics of this module to the installed recorder: unit and help text.
/// [`publish`] calls it; a recorder keeps the first description of each metric.
pub fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        DECISIONS,
        Unit::Count,
        "Requests decided by an m2m verifier: outcome admitted (with the token kind), \
         anonymous, preflight or refused (with the reason)"
    );
    describe_counter!(
        TOKEN_CHECKS,
        Unit::Count,
        "Bare tokens (introspection) and client credentials (token endpoint) checked, by \
         outcome and the reason a token is inactive"
    );
    describe_counter!(
        CACHE_HITS,
        Unit::Count,
        "Decisions answered from a fresh entry of the verifier's cache"
    );
    describe_counter!(
        CACHE_MISSES,
        Unit::Count,
        "Decisions that needed the token store or a JWT signature check"
    );
    describe_counter!(
        CACHE_EVICTIONS,
        Unit::Count,
        "Cache entries dropped to keep the cache within its bounds"
    );
    describe_counter!(
        CACHE_FLUSHES,
        Unit::Count,
        "Times the whole cache was dropped because revocation events may have been missed"
    );
    describe_gauge!(
        CACHE_ENTRIES,
        Unit::Count,
        "Entries in the verifiers' caches: tokens the store knows, and unknown tokens"
    );
    describe_counter!(
        COALESCED_LOOKUPS,
        Unit::Count,
        "Cache misses answered by another request's store call for the same token"
    );
    describe_histogram!(
        STORE_CALL_DURATION,
        Unit::Seconds,
        "Calls a verifier made to its token store, by operation and outcome"
    );
}

/// A call a verifier makes to its store, for [`STORE_CALL_DURATION`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum StoreCall {
    /// `find_token`, by its outcome.
    FindToken(FindOutcome),
    /// `record_usage`; whether it succeeded.
    RecordUsage(bool),
}

/// What `find_token` answered.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FindOutcome {
    /// The store holds the token.
    Record,
    /// The store does not know the token.
    NoRecord,
    /// The store could not answer.
    Failed,
}

/// Records one store call that took `elapsed`.
pub(crate) fn store_call(call: StoreCall, elapsed: Duration) {
    let (operation, outcome) = match call {
        StoreCall::FindToken(FindOutcome::Record) => ("find_token", "found"),
        StoreCall::FindToken(FindOutcome::NoRecord) => ("find_token", "not_found"),
        StoreCall::FindToken(FindOutcome::Failed) => ("find_token", "error"),
        StoreCall::RecordUsage(true) => ("record_usage", "ok"),
        StoreCall::RecordUsage(false) => ("record_usage", "error"),
    };
    ::metrics::histogram!(STORE_CALL_DURATION, "operation" => operation, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_its_series_and_refusals_name_their_reason() {
        assert_eq!(SERIES.len(), Event::ClientStoreUnavailable as usize + 1);
        for kind in [
            RejectionKind::MissingCredentials,
            RejectionKind::InvalidToken,
            RejectionKind::ExpiredToken,
            RejectionKind::TokenTypeDisabled,
            RejectionKind::InsufficientScope,
            RejectionKind::StoreUnavailable,
            RejectionKind::RateLimited,
            RejectionKind::MiddlewareMissing,
        ] {
            let series = &SERIES[Event::refused(kind) as usize];
            assert_eq!(series.name, DECISIONS);
            assert_eq!(
                series.labels,
                [("outcome", "refused"), ("reason", kind.reason())]
            );
        }
        for reason in [
            InactiveReason::Malformed,
            InactiveReason::WrongKind,
            InactiveReason::Unknown,
            InactiveReason::Revoked,
            InactiveReason::Expired,
            InactiveReason::TypeDisabled,
            InactiveReason::ClientMismatch,
        ] {
            let event = Event::checked::<()>(Check::Client, &Err(reason.into()));
            let series = &SERIES[event as usize];
            assert_eq!(series.labels[2], ("reason", reason.as_str()));
        }
    }

    /// A memory store whose lookups wait at a gate until the test opens it.
    #[derive(Debug)]
    struct GatedStore {
        store: crate::MemoryStore,
        gate: tokio::sync::Semaphore,
        finds: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl crate::TokenLookup for GatedStore {
        async fn find_token(
            &self,
            token: &str,
            digest: &crate::TokenDigest,
        ) -> Result<Option<crate::TokenRecord>, crate::StoreError> {
            self.finds.fetch_add(1, Ordering::SeqCst);
            let _open = self.gate.acquire().await;
            self.store.find_token(token, digest).await
        }
        fn subscribe(&self, listener: Arc<dyn crate::RevocationListener>) -> bool {
            self.store.subscribe(listener)
        }
        async fn record_usage(
            &self,
            uses: &[(crate::TokenId, time::OffsetDateTime)],
        ) -> Result<(), crate::StoreError> {
            self.store.record_usage(uses).await
        }
    }

    impl Default for GatedStore {
        fn default() -> Self {
            Self {
                store: crate::MemoryStore::new(),
                gate: tokio::sync::Semaphore::new(0),
                finds: std::sync::atomic::AtomicUsize::new(0),
            }
        }
    }

    async fn issue(
        store: &crate::MemoryStore,
        verifier: &crate::Verifier,
        kind: TokenKind,
    ) -> String {
        use crate::TokenStore as _;
        let request = crate::NewToken::new(kind, "acme", crate::Expiry::OneDay).scope("a");
        let issued = store
            .issue(verifier.format(), request, verifier.now())
            .await
            .unwrap();
        issued.token.expose_secret().to_owned()
    }

    fn request(header: Option<(&str, String)>) -> http::Request<()> {
        let mut request = http::Request::get("/");
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        request.body(()).unwrap()
    }

    #[tokio::test]
    async fn each_decision_is_counted_once_by_outcome_and_reason() {
        use crate::{Admission, Decision};
        let store = Arc::new(crate::MemoryStore::new());
        let verifier = crate::Verifier::builder(store.clone()).build();
        let access = issue(&store, &verifier, TokenKind::AccessToken).await;
        let bearer = issue(&store, &verifier, TokenKind::BearerToken).await;
        let admission = Admission::new(verifier.clone()).optional(true);

        // As middleware does: the cache first, then the store. One decision, one count.
        let first = request(Some(("x-api-key", access.clone())));
        assert!(admission.decide_cached(&first).is_none());
        assert!(matches!(admission.decide(&first).await, Decision::Admit(_)));
        let Some(Decision::Admit(_)) = admission.decide_cached(&first) else {
            panic!("cached now")
        };
        let with_bearer = request(Some(("authorization", format!("Bearer {bearer}"))));
        assert!(matches!(
            admission.decide(&with_bearer).await,
            Decision::Admit(_)
        ));
        assert!(matches!(
            admission.decide(&request(None)).await,
            Decision::Anonymous(_)
        ));
        let scoped = admission.clone().require_scopes(["b"]);
        assert!(matches!(scoped.decide(&first).await, Decision::Refuse(_)));
        let misplaced = request(Some(("x-api-key", bearer.clone())));
        assert!(matches!(
            admission.decide(&misplaced).await,
            Decision::Refuse(_)
        ));
        let preflight = http::Request::options("/")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET")
            .body(())
            .unwrap();
        let passing = admission.clone().cors_preflight(true);
        assert!(matches!(
            passing.decide(&preflight).await,
            Decision::Preflight
        ));
        // Called directly, the verifier counts its own decisions.
        let unknown = crate::TokenFormat::default().generate(TokenKind::AccessToken);
        let mut headers = http::HeaderMap::new();
        headers.insert("x-api-key", unknown.expose_secret().parse().unwrap());
        assert!(verifier.verify(&headers, &[]).await.is_err());

        let counted = verifier.metrics();
        assert_eq!(counted.count(Event::AdmittedAccessToken), 2);
        assert_eq!(counted.count(Event::AdmittedBearerToken), 1);
        assert_eq!(counted.admitted(), 3);
        assert_eq!(counted.anonymous(), 1);
        assert_eq!(counted.preflights(), 1);
        assert_eq!(counted.refused(RejectionKind::InsufficientScope), 1);
        assert_eq!(
            counted.refused(RejectionKind::InvalidRequest(
                crate::InvalidRequest::BothHeaders
            )),
            1,
            "the misplaced token: invalid_request"
        );
        assert_eq!(counted.refused(RejectionKind::InvalidToken), 1);
        assert_eq!(counted.refused(RejectionKind::MissingCredentials), 0);
        // Misses: the access token's first decision, the bearer token's, the unknown token's.
        assert_eq!(counted.cache_misses(), 3);
        assert_eq!(
            counted.cache_hits(),
            2,
            "the cached admission and the scoped refusal"
        );
        let decisions: u64 = SERIES
            .iter()
            .zip(counted.counts)
            .filter(|(series, _)| series.name == DECISIONS)
            .map(|(_, count)| count)
            .sum();
        assert_eq!(decisions, 8, "one per decision");
    }

    #[tokio::test]
    async fn a_route_s_own_scopes_refused_count_as_a_refusal() {
        use crate::{Admission, Decision};
        let store = Arc::new(crate::MemoryStore::new());
        let verifier = crate::Verifier::builder(store.clone()).build();
        let access = issue(&store, &verifier, TokenKind::AccessToken).await;
        let admission = Admission::new(verifier.clone());
        let Decision::Admit(admitted) = admission
            .decide(&request(Some(("x-api-key", access))))
            .await
        else {
            panic!("admitted")
        };
        admission.authorize(admitted.principal(), &["a"]).unwrap();
        admission
            .authorize(admitted.principal(), &["b"])
            .unwrap_err();
        let counted = verifier.metrics();
        assert_eq!(counted.admitted(), 1);
        assert_eq!(counted.refused(RejectionKind::InsufficientScope), 1);
    }

    #[tokio::test]
    async fn checks_are_counted_by_check_outcome_and_reason() {
        let store = Arc::new(crate::MemoryStore::new());
        let verifier = crate::Verifier::builder(store.clone()).build();
        let access = issue(&store, &verifier, TokenKind::AccessToken).await;
        verifier.check_token(&access).await.unwrap();
        verifier.check_token("m2m_at_forged").await.unwrap_err();
        verifier
            .check_client("m2m_ci_x", &access)
            .await
            .unwrap_err();
        let counted = verifier.metrics();
        assert_eq!(counted.active_tokens(), 1);
        assert_eq!(counted.count(Event::TokenMalformed), 1);
        assert_eq!(counted.count(Event::ClientWrongKind), 1);
        assert_eq!(counted.active_clients(), 0);
        assert_eq!(counted.admitted(), 0, "checks are not request decisions");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn misses_of_one_token_at_once_make_one_store_call_and_the_rest_coalesce() {
        const REQUESTS: usize = 50;
        let store = Arc::new(GatedStore::default());
        let verifier = crate::Verifier::builder(store.clone()).build();
        let token = issue(&store.store, &verifier, TokenKind::AccessToken).await;
        let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..REQUESTS)
            .map(|_| {
                let (verifier, arrived) = (verifier.clone(), Arc::clone(&arrived));
                let mut headers = http::HeaderMap::new();
                headers.insert("x-api-key", token.parse().unwrap());
                tokio::spawn(async move {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    verifier.verify(&headers, &[]).await.is_ok()
                })
            })
            .collect();
        // One thread: a task that arrived has run up to its wait, at the gate or on the
        // lookup another task started.
        while arrived.load(Ordering::SeqCst) < REQUESTS {
            tokio::task::yield_now().await;
        }
        store.gate.add_permits(REQUESTS);
        for task in tasks {
            assert!(task.await.unwrap());
        }
        assert_eq!(store.finds.load(Ordering::SeqCst), 1);
        let counted = verifier.metrics();
        assert_eq!(counted.cache_misses(), REQUESTS as u64);
        assert_eq!(counted.coalesced_lookups(), REQUESTS as u64 - 1);
        assert_eq!(counted.admitted(), REQUESTS as u64);
    }

    #[test]
    fn counts_of_every_thread_add_up() {
        let clock: Arc<dyn crate::Clock> = Arc::new(crate::SystemClock);
        let metrics =
            VerifierMetrics::new(Arc::new(Cache::new(crate::CacheSettings::default(), clock)));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        metrics.count(Event::CacheHit);
                    }
                });
            }
        });
        metrics.count(Event::Coalesced);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.cache_hits(), 4000);
        assert_eq!(snapshot.coalesced_lookups(), 1);
        assert_eq!(snapshot.cache_misses(), 0);
    }
}
