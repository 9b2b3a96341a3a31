//! A small API protected by m2m tokens, on axum.
//!
//! - `GET /health`: public;
//! - `GET /v1/whoami`: any valid token; answers the caller's `Principal` as JSON;
//! - `GET /v1/reports`: a token with the scope `reports:read`.
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
#[path = "common/store.rs"]
mod store;

use std::error::Error;

use axum::routing::get;
use axum::{Json, Router};
use m2m_core::{Principal, Verifier};
use m2m_tower::{Authenticated, M2mAuthLayer};
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

/// The routes: `/v1/reports` requires `reports:read` through a route layer.
fn app(verifier: &Verifier) -> Router {
    let reports = Router::new()
        .route("/v1/reports", get(reports))
        .route_layer(M2mAuthLayer::new(verifier.clone()).require_scopes(["reports:read"]));
    let whoami = Router::new()
        .route("/v1/whoami", get(whoami))
        .route_layer(M2mAuthLayer::new(verifier.clone()));
    Router::new()
        .route("/health", get(health))
        .merge(whoami)
        .merge(reports)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    logs::init();
    let listen = listen::listen_address("axum")?;
    let store = ExampleStore::from_env("axum").await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    store.announce("axum", &url);
    axum::serve(listener, app(&store.verifier)).await?;
    Ok(())
}
