//! A small API protected by m2m on actix-web.
//!
//! `GET /health` is public, `GET /v1/whoami` returns the caller as JSON and `GET /v1/reports`
//! requires the scope `reports:read`. At start the example issues one access token (with
//! `reports:read`) and one client-credentials bearer token (without it) into a memory store and
//! prints them with curl lines to try.
//!
//! ```text
//! cargo run --example actix -- --listen 127.0.0.1:3000
//! ```
//!
//! The address comes from `--listen ADDR`, else the `M2M_LISTEN` environment variable, else
//! `127.0.0.1:3000`.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};
use m2m_actix::{Authenticated, M2mAuth};
use m2m_core::{Expiry, MemoryStore, NewToken, TokenKind, TokenStore, Verifier};

const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

async fn health() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

async fn whoami(caller: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(&*caller)
}

async fn reports(caller: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "tenant": caller.tenant(),
        "reports": ["2024-q4", "2025-q1"],
    }))
}

/// `--listen ADDR` or `--listen=ADDR`, else `M2M_LISTEN`, else the default.
fn listen_address() -> Result<SocketAddr, String> {
    let mut args = std::env::args().skip(1);
    let mut listen = None;
    while let Some(arg) = args.next() {
        if arg == "--listen" {
            listen = Some(args.next().ok_or("--listen needs an address")?);
        } else if let Some(value) = arg.strip_prefix("--listen=") {
            listen = Some(value.to_owned());
        } else {
            return Err(format!(
                "unknown argument {arg:?}; usage: actix [--listen ADDR]"
            ));
        }
    }
    let text = listen
        .or_else(|| std::env::var("M2M_LISTEN").ok())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    text.parse()
        .map_err(|e| format!("invalid listen address {text:?}: {e}"))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let address = listen_address().map_err(std::io::Error::other)?;

    let store = Arc::new(MemoryStore::new());
    let verifier = Verifier::builder(store.clone()).build();
    let now = verifier.now();
    let access =
        NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays).scope("reports:read");
    let access = store
        .issue(verifier.format(), access, now)
        .await
        .map_err(std::io::Error::other)?;
    let bearer = NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60));
    let bearer = store
        .issue(verifier.format(), bearer, now)
        .await
        .map_err(std::io::Error::other)?;

    let server = HttpServer::new({
        let verifier = verifier.clone();
        move || {
            App::new().route("/health", web::get().to(health)).service(
                web::scope("/v1")
                    .wrap(M2mAuth::new(verifier.clone()))
                    .route("/whoami", web::get().to(whoami))
                    .service(
                        web::resource("/reports")
                            .wrap(M2mAuth::new(verifier.clone()).require_scopes(["reports:read"]))
                            .route(web::get().to(reports)),
                    ),
            )
        }
    })
    .bind(address)?;

    let base = format!("http://{}", server.addrs()[0]);
    let at = access.token.expose_secret();
    let cc = bearer.token.expose_secret();
    println!("m2m actix example listening on {base}");
    println!("access token (scope reports:read): {at}");
    println!("bearer token (no scope, 60 minutes): {cc}");
    println!();
    println!("# 200, public");
    println!("curl -i {base}/health");
    println!("# 200, the caller as JSON");
    println!("curl -i -H 'X-API-KEY: {at}' {base}/v1/whoami");
    println!("curl -i -H 'Authorization: Bearer {cc}' {base}/v1/whoami");
    println!("# 401, no credentials");
    println!("curl -i {base}/v1/whoami");
    println!("# 200, the access token has reports:read");
    println!("curl -i -H 'X-API-KEY: {at}' {base}/v1/reports");
    println!("# 403, the bearer token lacks reports:read");
    println!("curl -i -H 'Authorization: Bearer {cc}' {base}/v1/reports");
    println!("# 400, a bearer token in the access token's header");
    println!("curl -i -H 'X-API-KEY: {cc}' {base}/v1/whoami");

    server.run().await
}
