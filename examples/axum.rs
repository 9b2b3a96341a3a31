//! A small API protected by m2m tokens, on axum.
//!
//! - `GET /health`: public;
//! - `GET /v1/whoami`: any valid token; answers the caller's `Principal` as JSON;
//! - `GET /v1/reports`: a token with the scope `reports:read`;
//! - `GET /metrics`: the verifier's numbers in the Prometheus text format (see
//!   `common/metrics.rs`; unauthenticated here, which a real application should not be).
//!
//! The store comes from `M2M_STORE` (see `common/store.rs`): in memory by default, a SQLite or
//! PostgreSQL database, or the m2m token service. With a local store it issues one access token
//! (scope `reports:read`) and one client-credentials bearer token (no scope) at start, and
//! prints them with `curl` lines to try.
//!
//! ```text
//! cargo run --example axum -- --listen 127.0.0.1:3000    # or M2M_LISTEN=127.0.0.1:3000
//! M2M_STORE=http://127.0.0.1:8080 M2M_INTROSPECT_TOKEN=m2m_at_… cargo run --example axum
//! ```

#[path = "common/listen.rs"]
mod listen;
#[path = "common/logs.rs"]
mod logs;
#[path = "common/metrics.rs"]
mod metrics;
#[path = "common/store.rs"]
mod store;

use std::error::Error;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::{Json, Router};
use m2m_core::{Principal, Verifier};
use m2m_tower::{Authenticated, M2mAuthLayer};
use metrics_exporter_prometheus::PrometheusHandle;
use store::ExampleStore;

async fn health() -> &'static str {
    "ok"
}

async fn whoami(Authenticated(caller): Authenticated) -> Json<Principal> {
    Json(caller)
}

async fn reports(caller: Authenticated) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "tenant": caller.tenant(),
        "reports": [{ "id": 1, "title": "Monthly usage" }],
    }))
}

/// The routes: `/v1/reports` requires `reports:read` through a route layer; `/metrics` is
/// open, as an example's may be (a real application puts it behind a scraper's scope or on an
/// internal address).
fn app(verifier: &Verifier, prometheus: PrometheusHandle) -> Router {
    let reports = Router::new()
        .route("/v1/reports", get(reports))
        .route_layer(M2mAuthLayer::new(verifier.clone()).require_scopes(["reports:read"]));
    let whoami = Router::new()
        .route("/v1/whoami", get(whoami))
        .route_layer(M2mAuthLayer::new(verifier.clone()));
    let scrape = move || {
        let text = metrics::render(&prometheus);
        async move { ([(CONTENT_TYPE, metrics::PROMETHEUS_TEXT)], text) }
    };
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(scrape))
        .merge(whoami)
        .merge(reports)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    logs::init();
    let prometheus = metrics::install()?;
    let listen = listen::listen_address("axum")?;
    let store = ExampleStore::from_env("axum").await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    store.announce("axum", &url);
    axum::serve(listener, app(&store.verifier, prometheus)).await?;
    Ok(())
}
