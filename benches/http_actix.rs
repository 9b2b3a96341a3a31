//! HTTP overhead of `m2m_actix::M2mAuth` on cache hits: the same actix-web app with and without
//! the middleware, each loaded in turn by `wrk` on loopback.
//!
//! ```text
//! cargo bench --bench http_actix
//! ```

#[path = "common/wrk.rs"]
#[allow(unreachable_pub)] // shared with the other HTTP benches
mod wrk;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, mpsc};
use std::thread;

use actix_web::{App, HttpResponse, HttpServer, web};
use m2m_actix::{Authenticated, M2mAuth};
use m2m_core::{Expiry, MemoryStore, NewToken, TokenKind, TokenStore, Verifier};

/// The handler behind the middleware: receives the caller, answers the same fixed body.
async fn whoami(_caller: Authenticated) -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// The handler of the app without the middleware.
async fn fixed() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// Starts the app on an ephemeral loopback port in its own actix system, with the middleware
/// when `verifier` is given; returns the address.
fn start(verifier: Option<Verifier>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let address = listener.local_addr().expect("a local address");
    let (started, ready) = mpsc::channel();
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                let scope = web::scope("/v1");
                match &verifier {
                    Some(verifier) => App::new().service(
                        scope
                            .wrap(M2mAuth::new(verifier.clone()))
                            .route("/whoami", web::get().to(whoami)),
                    ),
                    None => App::new().service(scope.route("/whoami", web::get().to(fixed))),
                }
            })
            .workers(1)
            .listen(listener)
            .expect("listen on the bound port")
            .run();
            started.send(()).expect("signal the bench");
            server.await.expect("the bench server runs");
        });
    });
    ready.recv().expect("the server started");
    address
}

fn main() {
    let store = Arc::new(MemoryStore::new());
    let verifier = Verifier::builder(store.clone()).build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime to seed the store");
    let issued = runtime
        .block_on(store.issue(
            verifier.format(),
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
            verifier.now(),
        ))
        .expect("seed an access token");

    let with_layer = start(Some(verifier));
    let without_layer = start(None);
    wrk::compare(
        "actix",
        &format!("http://{with_layer}/v1/whoami"),
        &format!("http://{without_layer}/v1/whoami"),
        &format!("X-API-KEY: {}", issued.token.expose_secret()),
    );
}
