//! A small API protected by m2m on actix-web.
//!
//! `GET /health` is public, `GET /v1/whoami` returns the caller as JSON and `GET /v1/reports`
//! requires the scope `reports:read`. `GET /metrics` answers the verifier's numbers in the
//! Prometheus text format (see `common/metrics.rs`; unauthenticated here, which a real
//! application should not be).
//!
//! The store comes from `M2M_STORE` (see `common/store.rs`): in memory by default, a SQLite or
//! PostgreSQL database, or the m2m token service. With a local store it issues one access token
//! (scope `reports:read`) and one client-credentials bearer token (no scope) at start, and
//! prints them with `curl` lines to try.
//!
//! ```text
//! cargo run --example actix -- --listen 127.0.0.1:3000
//! M2M_STORE=http://127.0.0.1:8080 M2M_INTROSPECT_TOKEN=m2m_at_… cargo run --example actix
//! ```
//!
//! The address comes from `--listen ADDR`, else the `M2M_LISTEN` environment variable, else
//! `127.0.0.1:3000`.

#[path = "common/listen.rs"]
mod listen;
#[path = "common/logs.rs"]
mod logs;
#[path = "common/metrics.rs"]
mod metrics;
#[path = "common/store.rs"]
mod store;

use actix_web::{App, HttpResponse, HttpServer, web};
use m2m_actix::{Authenticated, M2mAuth};
use metrics_exporter_prometheus::PrometheusHandle;
use store::ExampleStore;

async fn health() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

async fn whoami(caller: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(&*caller)
}

/// Open, as an example's may be: a real application puts it behind a scraper's scope or on an
/// internal address.
async fn scrape(prometheus: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(metrics::PROMETHEUS_TEXT)
        .body(metrics::render(&prometheus))
}

async fn reports(caller: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "tenant": caller.tenant(),
        "reports": ["2024-q4", "2025-q1"],
    }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    logs::init();
    let prometheus = web::Data::new(metrics::install().map_err(std::io::Error::other)?);
    let address = listen::listen_address("actix").map_err(std::io::Error::other)?;

    let store = ExampleStore::from_env("actix")
        .await
        .map_err(std::io::Error::other)?;
    let verifier = store.verifier.clone();

    let server = HttpServer::new({
        let verifier = verifier.clone();
        move || {
            App::new()
                .app_data(prometheus.clone())
                .route("/health", web::get().to(health))
                .route("/metrics", web::get().to(scrape))
                .service(
                    web::scope("/v1")
                        .wrap(M2mAuth::new(verifier.clone()))
                        .route("/whoami", web::get().to(whoami))
                        .service(
                            web::resource("/reports")
                                .wrap(
                                    M2mAuth::new(verifier.clone()).require_scopes(["reports:read"]),
                                )
                                .route(web::get().to(reports)),
                        ),
                )
        }
    })
    .bind(address)?;

    store.announce("actix", &format!("http://{}", server.addrs()[0]));
    server.run().await
}
