//! A small API protected by m2m tokens, on Rocket.
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
//! cargo run --example rocket -- --listen 127.0.0.1:3000    # or M2M_LISTEN=127.0.0.1:3000
//! M2M_STORE=http://127.0.0.1:8080 M2M_INTROSPECT_TOKEN=m2m_at_… cargo run --example rocket
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
use std::net::SocketAddr;

use m2m_core::{Principal, Verifier};
use m2m_rocket::{Authenticated, M2mAuth, Scoped};
use metrics_exporter_prometheus::PrometheusHandle;
use rocket::http::ContentType;
use rocket::serde::json::Json;
use rocket::{Build, Rocket, State, get, routes};
use store::ExampleStore;

m2m_rocket::scopes!(ReportsRead => "reports:read");

#[get("/health")]
fn health() -> &'static str {
    "ok"
}

/// Open, as an example's may be: a real application puts it behind a scraper's scope or on an
/// internal address.
#[get("/metrics")]
fn scrape(prometheus: &State<PrometheusHandle>) -> (ContentType, String) {
    let text = ContentType::parse_flexible(metrics::PROMETHEUS_TEXT).unwrap_or(ContentType::Plain);
    (text, metrics::render(prometheus))
}

#[get("/v1/whoami")]
fn whoami(caller: Authenticated) -> Json<Principal> {
    Json(caller.into_inner())
}

#[get("/v1/reports")]
fn reports(caller: Scoped<ReportsRead>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "tenant": caller.tenant(),
        "reports": [{ "id": 1, "title": "Monthly usage" }],
    }))
}

/// The application: the fairing lets requests without credentials reach the routes, whose
/// guards decide; a bad credential is refused on every route.
fn app(verifier: Verifier, prometheus: PrometheusHandle, listen: SocketAddr) -> Rocket<Build> {
    let figment = rocket::Config::figment()
        .merge(("address", listen.ip()))
        .merge(("port", listen.port()))
        .merge(("log_level", "critical"))
        .merge(("cli_colors", false));
    rocket::custom(figment)
        .attach(M2mAuth::new(verifier).optional(true))
        .manage(prometheus)
        .mount("/", routes![health, scrape, whoami, reports])
}

#[rocket::main]
async fn main() -> Result<(), Box<dyn Error>> {
    logs::init();
    let prometheus = metrics::install()?;
    let listen = listen::listen_address("rocket")?;
    let store = ExampleStore::from_env("rocket").await?;
    store.announce("rocket", &format!("http://{listen}"));
    let _rocket = app(store.verifier.clone(), prometheus, listen)
        .launch()
        .await?;
    Ok(())
}
