//! `GET /metrics`: the service's numbers in the Prometheus text format, for a scraper whose
//! token holds the environment scope [`METRICS_SCOPE`](crate::METRICS_SCOPE) (or an
//! environment admin's).
//!
//! The process installs one Prometheus recorder of the `metrics` facade, the first time a
//! router is built (a second router in the same process, as in tests, shares it). Before each
//! render the handler has every verifier of the process hand over its counts
//! ([`m2m_core::metrics::publish`]) and this service its own, so a scrape is exact. Histograms
//! are rendered with buckets (the store-call buckets of [`m2m_core::metrics`]).
//!
//! Besides the verifiers' metrics (decisions, token checks, cache, coalesced lookups, store
//! call latency: see [`m2m_core::metrics`]), the service counts:
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `m2m_service_introspections_total` | counter | `outcome`: `active`, `inactive`, `refused_caller`, `invalid_request`, `store_unavailable` | `POST /oauth/introspect` answers |
//! | `m2m_service_token_requests_total` | counter | `outcome`: `granted`, `refused`; `error` when refused: the RFC 6749 error code, `too_many_requests`, `store_unavailable` or `payload_too_large` | `POST /oauth/token` answers |
//! | `m2m_service_revocation_streams` | gauge | | `GET /v1/revocations` streams open now |
//! | `m2m_service_revocation_events_total` | counter | | revocation events written to streams (one per stream and event) |
//!
//! `GET /v1/stats` answers from the same counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use m2m_core::metrics::{STORE_CALL_BUCKETS, STORE_CALL_DURATION};
use m2m_tower::Authenticated;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::caller::Caller;
use crate::introspect::Introspection;

/// Introspection answers by outcome (counter).
pub const INTROSPECTIONS: &str = "m2m_service_introspections_total";
/// Token endpoint answers by outcome and error (counter).
pub const TOKEN_REQUESTS: &str = "m2m_service_token_requests_total";
/// Revocation event streams open now (gauge).
pub const REVOCATION_STREAMS: &str = "m2m_service_revocation_streams";
/// Revocation events written to streams (counter).
pub const REVOCATION_EVENTS: &str = "m2m_service_revocation_events_total";

/// The content type of the Prometheus text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's Prometheus recorder, installed as the `metrics` facade's global recorder the
/// first time it is asked for. When another recorder was installed before, the handle renders
/// only what reaches this one (nothing), and a warning says so once.
pub(crate) fn prometheus() -> &'static PrometheusHandle {
    static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();
    PROMETHEUS.get_or_init(|| {
        let store_calls = Matcher::Full(STORE_CALL_DURATION.to_owned());
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(store_calls, STORE_CALL_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(error) = ::metrics::set_global_recorder(recorder) {
            tracing::warn!(
                %error,
                "another metrics recorder is installed: GET /metrics stays empty"
            );
        }
        handle
    })
}

/// An introspection answer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Introspected {
    Active,
    Inactive,
    RefusedCaller,
    InvalidRequest,
    StoreUnavailable,
}

/// A token endpoint answer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TokenRequest {
    Granted,
    /// Refused with this RFC 6749 error code.
    Refused(&'static str),
    /// Refused with a problem of this status.
    Failed(StatusCode),
}

const INTROSPECTION_OUTCOMES: [&str; 5] = [
    "active",
    "inactive",
    "refused_caller",
    "invalid_request",
    "store_unavailable",
];

/// The `error` label of each refused token request, `granted` first.
const TOKEN_ERRORS: [&str; 9] = [
    "",
    "invalid_request",
    "invalid_client",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "too_many_requests",
    "store_unavailable",
    "payload_too_large",
];

/// The `error` label of a refusal none of these names.
const OTHER_TOKEN_ERROR: &str = "other";

/// The service's own counters: `GET /v1/stats` reads them, `GET /metrics` publishes them.
#[derive(Debug, Default)]
pub(crate) struct ServiceMetrics {
    introspections: [AtomicU64; INTROSPECTION_OUTCOMES.len()],
    token_requests: [AtomicU64; TOKEN_ERRORS.len() + 1],
    published: Mutex<Published>,
}

#[derive(Debug, Default)]
struct Published {
    introspections: [u64; INTROSPECTION_OUTCOMES.len()],
    token_requests: [u64; TOKEN_ERRORS.len() + 1],
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl ServiceMetrics {
    /// Counts an introspection answer.
    pub(crate) fn introspected(&self, outcome: Introspected) {
        self.introspections[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a token endpoint answer.
    pub(crate) fn token_request(&self, outcome: TokenRequest) {
        let error = match outcome {
            TokenRequest::Granted => "",
            TokenRequest::Refused(code) => code,
            TokenRequest::Failed(StatusCode::TOO_MANY_REQUESTS) => "too_many_requests",
            TokenRequest::Failed(StatusCode::SERVICE_UNAVAILABLE) => "store_unavailable",
            TokenRequest::Failed(StatusCode::PAYLOAD_TOO_LARGE) => "payload_too_large",
            TokenRequest::Failed(_) => OTHER_TOKEN_ERROR,
        };
        let slot = TOKEN_ERRORS
            .iter()
            .position(|known| *known == error)
            .unwrap_or(TOKEN_ERRORS.len());
        self.token_requests[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Introspection answers so far.
    pub(crate) fn introspections(&self) -> u64 {
        self.introspections.iter().map(read).sum()
    }

    /// Introspection answers with `outcome` so far.
    pub(crate) fn introspections_with(&self, outcome: Introspected) -> u64 {
        read(&self.introspections[outcome as usize])
    }

    /// Token endpoint answers so far: granted, and refused.
    pub(crate) fn token_requests(&self) -> (u64, u64) {
        let granted = read(&self.token_requests[0]);
        let all: u64 = self.token_requests.iter().map(read).sum();
        (granted, all - granted)
    }

    /// Hands what was counted since the last call to the installed recorder.
    pub(crate) fn publish(&self) {
        describe();
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for ((outcome, counter), last) in INTROSPECTION_OUTCOMES
            .iter()
            .zip(&self.introspections)
            .zip(&mut published.introspections)
        {
            let total = read(counter);
            ::metrics::counter!(INTROSPECTIONS, "outcome" => *outcome).increment(total - *last);
            *last = total;
        }
        let errors = TOKEN_ERRORS.iter().chain([&OTHER_TOKEN_ERROR]);
        for ((error, counter), last) in errors
            .zip(&self.token_requests)
            .zip(&mut published.token_requests)
        {
            let total = read(counter);
            let counter = if error.is_empty() {
                ::metrics::counter!(TOKEN_REQUESTS, "outcome" => "granted")
            } else {
                ::metrics::counter!(TOKEN_REQUESTS, "outcome" => "refused", "error" => *error)
            };
            counter.increment(total - *last);
            *last = total;
        }
    }
}

/// The numbers of one revocation feed last handed to the recorder.
#[derive(Debug, Default)]
pub(crate) struct FeedPublished {
    last: Mutex<(u64, u64)>,
}

impl FeedPublished {
    /// Hands the change of the feed's open streams and sent events to the recorder.
    pub(crate) fn publish(&self, open_streams: usize, events_sent: u64) {
        let open_streams = u64::try_from(open_streams).unwrap_or(u64::MAX);
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let (streams, events) = *last;
        let gauge = ::metrics::gauge!(REVOCATION_STREAMS);
        if open_streams >= streams {
            gauge.increment((open_streams - streams) as f64);
        } else {
            gauge.decrement((streams - open_streams) as f64);
        }
        ::metrics::counter!(REVOCATION_EVENTS).increment(events_sent.saturating_sub(events));
        *last = (open_streams, events_sent.max(events));
    }
}

/// Describes the service's metrics to the installed recorder.
fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(
        INTROSPECTIONS,
        Unit::Count,
        "Answers of POST /oauth/introspect by outcome"
    );
    describe_counter!(
        TOKEN_REQUESTS,
        Unit::Count,
        "Answers of POST /oauth/token: granted, or refused with the error"
    );
    describe_gauge!(
        REVOCATION_STREAMS,
        Unit::Count,
        "Revocation event streams (GET /v1/revocations) open now"
    );
    describe_counter!(
        REVOCATION_EVENTS,
        Unit::Count,
        "Revocation events written to streams, one per stream and event"
    );
}

/// `GET /metrics`: everything the process counted, in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "service",
    summary = "The service's metrics in the Prometheus text format",
    security(
        ("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"]),
        ("api_key" = ["m2m:metrics"]), ("client_credentials" = ["m2m:metrics"]),
    ),
    responses((
        status = 200,
        description = "The metrics, for a scraper whose token holds `m2m:metrics` (or an \
                       environment admin's)",
        content_type = "text/plain; version=0.0.4",
        body = String,
    )),
)]
pub(crate) async fn scrape(
    State(state): State<Introspection>,
    Authenticated(caller): Authenticated,
) -> Response {
    if let Err(refused) = crate::rights::require_metrics_reader(&Caller::Token(caller)) {
        return refused.into_response();
    }
    m2m_core::metrics::publish();
    state.publish_metrics();
    let prometheus = prometheus();
    prometheus.run_upkeep();
    (
        StatusCode::OK,
        [(CONTENT_TYPE, PROMETHEUS_TEXT), (CACHE_CONTROL, "no-store")],
        prometheus.render(),
    )
        .into_response()
}
