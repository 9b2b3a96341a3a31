//! HTTP overhead of the `m2m_rocket` fairing and guard on cache hits: the same Rocket app with
//! and without them, each loaded in turn by `wrk` on loopback.
//!
//! ```text
//! cargo bench --bench http_rocket
//! ```

#[path = "common/wrk.rs"]
#[allow(unreachable_pub)] // shared with the other HTTP benches
mod wrk;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use m2m_core::{Expiry, MemoryStore, NewToken, TokenKind, TokenStore, Verifier};
use m2m_rocket::{Authenticated, M2mAuth};
use rocket::{get, routes};

#[get("/v1/whoami")]
fn whoami(caller: Authenticated) -> String {
    caller.tenant().to_owned()
}

#[get("/v1/whoami")]
fn fixed() -> &'static str {
    "acme"
}

/// A loopback port free at the time of asking (Rocket 0.5 needs a concrete port).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Launches the app on its own runtime thread, with the fairing when `verifier` is given, and
/// waits until it accepts connections.
fn start(verifier: Option<Verifier>) -> SocketAddr {
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let figment = rocket::Config::figment()
        .merge(("address", address.ip()))
        .merge(("port", address.port()))
        .merge(("log_level", "off"));
    let app = match verifier {
        Some(verifier) => rocket::custom(figment)
            .attach(M2mAuth::new(verifier))
            .mount("/", routes![whoami]),
        None => rocket::custom(figment).mount("/", routes![fixed]),
    };
    thread::spawn(move || {
        rocket::execute(app.launch()).expect("the bench server runs");
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "the bench server did not start");
        thread::sleep(Duration::from_millis(20));
    }
    address
}

fn main() {
    let store = Arc::new(MemoryStore::new());
    let verifier = Verifier::builder(store.clone()).build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let issued = runtime
        .block_on(store.issue(
            verifier.format(),
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
            verifier.now(),
        ))
        .expect("issue the bench token");
    let with_layer = start(Some(verifier));
    let without_layer = start(None);
    let header = format!("X-API-KEY: {}", issued.token.expose_secret());
    wrk::compare(
        "rocket",
        &format!("http://{with_layer}/v1/whoami"),
        &format!("http://{without_layer}/v1/whoami"),
        &header,
    );
}
