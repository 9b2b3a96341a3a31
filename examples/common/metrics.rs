//! The examples' `GET /metrics`: a Prometheus recorder installed for the `metrics` facade, and
//! the text format it renders once every verifier of the process has handed over its counts
//! (`m2m::metrics::publish`): decisions by outcome and reason, the cache, store call latency.
//!
//! The examples serve it without authentication, beside the API. A real application should not
//! hand its numbers to anyone who asks: protect the route (an m2m layer that requires a
//! scraper's scope) or serve it on an address only the scraper reaches.

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// The content type of the Prometheus text exposition format.
pub(crate) const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Installs the process's Prometheus recorder, with buckets for the store call latency.
///
/// # Errors
///
/// When another recorder is already installed.
pub(crate) fn install() -> Result<PrometheusHandle, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(m2m_core::metrics::STORE_CALL_DURATION.to_owned()),
            m2m_core::metrics::STORE_CALL_BUCKETS,
        )?
        .install_recorder()
}

/// What a scrape answers: every verifier's counts handed over first, so the text is exact.
pub(crate) fn render(prometheus: &PrometheusHandle) -> String {
    m2m_core::metrics::publish();
    prometheus.run_upkeep();
    prometheus.render()
}
