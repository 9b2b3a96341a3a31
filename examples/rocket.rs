//! A small API protected by m2m tokens, on Rocket.
//!
//! - `GET /health`: public;
//! - `GET /v1/whoami`: any valid token; answers the caller's `Principal` as JSON;
//! - `GET /v1/reports`: a token with the scope `reports:read`.
//!
//! At start it issues one access token (scope `reports:read`) and one client-credentials bearer
//! token (no scope) into an in-memory store, and prints them with `curl` lines to try.
//!
//! ```text
//! cargo run --example rocket -- --listen 127.0.0.1:3000    # or M2M_LISTEN=127.0.0.1:3000
//! ```

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use m2m_core::{Expiry, MemoryStore, NewToken, Principal, TokenKind, TokenStore, Verifier};
use m2m_rocket::{Authenticated, M2mAuth, Scoped};
use rocket::serde::json::Json;
use rocket::{Build, Rocket, get, routes};

const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

m2m_rocket::scopes!(ReportsRead => "reports:read");

#[get("/health")]
fn health() -> &'static str {
    "ok"
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
fn app(verifier: Verifier, listen: SocketAddr) -> Rocket<Build> {
    let figment = rocket::Config::figment()
        .merge(("address", listen.ip()))
        .merge(("port", listen.port()))
        .merge(("log_level", "critical"))
        .merge(("cli_colors", false));
    rocket::custom(figment)
        .attach(M2mAuth::new(verifier).optional(true))
        .mount("/", routes![health, whoami, reports])
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
            return Err(format!("unknown argument {arg:?}; usage: rocket [--listen ADDR]").into());
        }
    }
    let listen = listen
        .or_else(|| std::env::var("M2M_LISTEN").ok())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    Ok(listen
        .parse()
        .map_err(|_| format!("not a socket address: {listen:?}"))?)
}

#[rocket::main]
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
                .description("rocket example access token"),
            now,
        )
        .await?;
    let bearer = store
        .issue(
            verifier.format(),
            NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60))
                .description("rocket example bearer token"),
            now,
        )
        .await?;

    let url = format!("http://{listen}");
    let access = access.token.expose_secret();
    let bearer = bearer.token.expose_secret();
    // The tokens are printed once, on purpose: trying them is what this example is for.
    println!("m2m rocket example listening on {url}");
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

    let _rocket = app(verifier, listen).launch().await?;
    Ok(())
}
