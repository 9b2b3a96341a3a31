//! A small API protected by m2m tokens, on axum.
//!
//! - `GET /health`: public;
//! - `GET /v1/whoami`: any valid token; answers the caller's `Principal` as JSON;
//! - `GET /v1/reports`: a token with the scope `reports:read`.
//!
//! At start it issues one access token (scope `reports:read`) and one client-credentials bearer
//! token (no scope) into an in-memory store, and prints them with `curl` lines to try.
//!
//! ```text
//! cargo run --example axum -- --listen 127.0.0.1:3000    # or M2M_LISTEN=127.0.0.1:3000
//! ```

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use m2m_core::{Expiry, MemoryStore, NewToken, Principal, TokenKind, TokenStore, Verifier};
use m2m_tower::{Authenticated, M2mAuthLayer};

const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

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

/// `--listen ADDR` (or `--listen=ADDR`), else `M2M_LISTEN`, else 127.0.0.1:3000.
fn listen_address() -> Result<SocketAddr, Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let mut listen = None;
    while let Some(arg) = args.next() {
        if arg == "--listen" {
            listen = Some(
                args.next()
                    .ok_or("--listen needs an address, such as 127.0.0.1:3000")?,
            );
        } else if let Some(value) = arg.strip_prefix("--listen=") {
            listen = Some(value.to_owned());
        } else {
            return Err(format!("unknown argument {arg:?}; usage: axum [--listen ADDR]").into());
        }
    }
    let listen = listen
        .or_else(|| std::env::var("M2M_LISTEN").ok())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    Ok(listen
        .parse()
        .map_err(|_| format!("not a socket address: {listen:?}"))?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let listen = listen_address()?;

    let store = Arc::new(MemoryStore::new());
    let verifier = Verifier::builder(store.clone()).build();
    let now = verifier.now();
    let access = store
        .issue(
            verifier.format(),
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays)
                .scope("reports:read")
                .description("axum example access token"),
            now,
        )
        .await?;
    let bearer = store
        .issue(
            verifier.format(),
            NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60))
                .description("axum example bearer token"),
            now,
        )
        .await?;

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let access = access.token.expose_secret();
    let bearer = bearer.token.expose_secret();
    // The tokens are printed once, on purpose: trying them is what this example is for.
    println!("m2m axum example listening on {url}");
    println!();
    println!("access token (X-API-KEY, scope reports:read, expires in 30 days):");
    println!("  {access}");
    println!(
        "client-credentials bearer token (Authorization: Bearer, no scope, expires in 60 minutes):"
    );
    println!("  {bearer}");
    println!();
    println!("# 200, public");
    println!("curl -i {url}/health");
    println!("# 200, the caller as JSON");
    println!("curl -i {url}/v1/whoami -H 'X-API-KEY: {access}'");
    println!("curl -i {url}/v1/whoami -H 'Authorization: Bearer {bearer}'");
    println!("# 200, the access token has reports:read");
    println!("curl -i {url}/v1/reports -H 'X-API-KEY: {access}'");
    println!("# 403 insufficient_scope, the bearer token lacks reports:read");
    println!("curl -i {url}/v1/reports -H 'Authorization: Bearer {bearer}'");
    println!("# 401, no credentials");
    println!("curl -i {url}/v1/whoami");
    println!("# 400 invalid_request, a bearer token in X-API-KEY");
    println!("curl -i {url}/v1/whoami -H 'X-API-KEY: {bearer}'");

    axum::serve(listener, app(&verifier)).await?;
    Ok(())
}
