//! HTTP overhead of `m2m_tower::M2mAuthLayer` on cache hits: the same axum app with and without
//! the layer, each loaded in turn by `wrk` on loopback.
//!
//! ```text
//! cargo bench --bench http_axum
//! ```

#[path = "common/wrk.rs"]
#[allow(unreachable_pub)] // shared with the other HTTP benches
mod wrk;

use std::net::SocketAddr;
use std::sync::{Arc, mpsc};
use std::thread;

use axum::Router;
use axum::routing::get;
use m2m_core::{Expiry, MemoryStore, NewToken, TokenKind, TokenStore, Verifier};
use m2m_tower::{Authenticated, M2mAuthLayer};

async fn whoami(caller: Authenticated) -> String {
    caller.tenant().to_owned()
}

async fn fixed() -> &'static str {
    "acme"
}

/// Starts the app on an ephemeral loopback port, on its own single-threaded runtime, with the
/// layer when `verifier` is given; returns the address.
fn start(verifier: Option<Verifier>) -> SocketAddr {
    let (started, ready) = mpsc::channel();
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async move {
            let app = match verifier {
                Some(verifier) => Router::new()
                    .route("/v1/whoami", get(whoami))
                    .layer(M2mAuthLayer::new(verifier)),
                None => Router::new().route("/v1/whoami", get(fixed)),
            };
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
    let store = Arc::new(MemoryStore::new());
    let verifier = Verifier::builder(store.clone()).build();
    let issued = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime")
        .block_on(store.issue(
            verifier.format(),
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
            verifier.now(),
        ))
        .expect("issue the bench token");
    let with_layer = start(Some(verifier));
    let without_layer = start(None);
    wrk::compare(
        "axum",
        &format!("http://{with_layer}/v1/whoami"),
        &format!("http://{without_layer}/v1/whoami"),
        &format!("X-API-KEY: {}", issued.token.expose_secret()),
    );
}
