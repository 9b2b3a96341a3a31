//! HTTP cost of JWT authentication in axum: three apps, each loaded in turn by `wrk` on loopback
//! with the same `Authorization: Bearer <JWT>` (EdDSA, valid for a day):
//!
//! - (a) no authentication at all;
//! - (b) `m2m_tower::M2mAuthLayer` over a verifier with a `JwtIssuer`: the JWT is verified once,
//!   then every request is a cache hit under its digest;
//! - (c) `axum-jwt-auth`'s `Claims` extractor with a `LocalDecoder`: `jsonwebtoken::decode`
//!   (signature, `iss`, `aud`, `exp`) on every request. `jwt-authorizer`, the other JWT layer for
//!   axum, builds on axum 0.7 in its latest release (0.15), so it does not fit an axum 0.8 app.
//!
//! Prints the median requests/s of each app and the ratios (b)/(a) and (c)/(a).
//! `M2M_BENCH_ROUNDS` (default 3) and `M2M_BENCH_SECONDS` (default 5) set the rounds and their
//! length, as for the other HTTP benches.
//!
//! ```text
//! cargo bench --bench http_jwt
//! ```

#[path = "common/wrk.rs"]
#[allow(unreachable_pub, dead_code)] // shared with the other HTTP benches; only single runs here
mod wrk;

#[path = "common/jwt.rs"]
#[allow(unreachable_pub)] // shared with the other JWT bench
mod jwt_fixture;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use axum_jwt_auth::Claims;
use jwt_fixture::{AUDIENCE, ISSUER, axum_jwt_auth_decoder, signed_jwt};
use m2m_core::jwt::{JwtIssuer, JwtKey, JwtKeys};
use m2m_core::{MemoryStore, Verifier};
use m2m_tower::{Authenticated, M2mAuthLayer};
use serde_json::Value;

async fn fixed() -> &'static str {
    "acme"
}

async fn m2m_tenant(caller: Authenticated) -> String {
    caller.tenant().to_owned()
}

async fn claims_tenant(caller: Claims<Value>) -> String {
    caller
        .claims
        .get("tenant_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Starts `app` on an ephemeral loopback port, on its own single-threaded runtime; returns the
/// address.
fn start(app: Router) -> SocketAddr {
    let (started, ready) = mpsc::channel();
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a loopback port");
            started
                .send(listener.local_addr().expect("a local address"))
                .expect("signal the bench");
            axum::serve(listener, app)
                .await
                .expect("the bench server runs");
        });
    });
    ready.recv().expect("the server started")
}

fn main() {
    let (jwt, jwk) = signed_jwt("acme", "reports:read reports:write");

    let key = JwtKey::from_jwk(&serde_json::from_value(jwk.clone()).expect("a JWK"))
        .expect("a usable public key");
    let verifier = Verifier::builder(MemoryStore::new())
        .jwt_issuer(JwtIssuer::new(ISSUER, JwtKeys::default().with(key)).audience(AUDIENCE))
        .build();

    let decoder = axum_jwt_auth_decoder(jwk);

    let urls = [
        start(Router::new().route("/v1/whoami", get(fixed))),
        start(
            Router::new()
                .route("/v1/whoami", get(m2m_tenant))
                .layer(M2mAuthLayer::new(verifier)),
        ),
        start(
            Router::new()
                .route("/v1/whoami", get(claims_tenant))
                .with_state(decoder),
        ),
    ]
    .map(|addr| format!("http://{addr}/v1/whoami"));
    let header = format!("Authorization: Bearer {jwt}");

    let rounds: usize = std::env::var("M2M_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seconds: u64 = std::env::var("M2M_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    // Warm every app (and the m2m verifier's cache) before measuring.
    for url in &urls {
        wrk::requests_per_second(url, &header, Duration::from_secs(1));
    }
    let mut rates: [Vec<f64>; 3] = Default::default();
    for _ in 0..rounds {
        for (url, rates) in urls.iter().zip(&mut rates) {
            rates.push(wrk::requests_per_second(url, &header, duration));
        }
    }
    let [none, m2m, other] = rates.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    });
    println!(
        "axum JWT: no auth {none:.0} req/s, m2m layer {m2m:.0} req/s (ratio {:.3}), \
         axum-jwt-auth {other:.0} req/s (ratio {:.3}) (median of {rounds} × {seconds}s, wrk -t1 -c32)",
        m2m / none,
        other / none
    );
}
