//! [`JwksKeys`] against a JWKS endpoint on 127.0.0.1: fetched once and cached, refetched for an
//! unknown `kid` at a bounded rate, a rotated key found, a failing endpoint a 503 only while
//! nothing was fetched; and a verifier trusting the issuer through it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use m2m_core::jwt::{JwtIssuer, KeySource};
use m2m_core::{MemoryStore, RejectionKind, Verifier};
use m2m_remote::JwksKeys;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};

struct Key {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

fn key(kid: &str) -> Key {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    Key {
        kid: kid.to_owned(),
        encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA",
                    "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())}),
    }
}

/// The endpoint's state: the keys it publishes, how often it was asked, whether it fails.
#[derive(Default)]
struct Endpoint {
    published: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
    failing: AtomicBool,
}

async fn jwks(State(endpoint): State<Arc<Endpoint>>) -> Response {
    endpoint.fetches.fetch_add(1, Ordering::SeqCst);
    if endpoint.failing.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys = endpoint.published.lock().unwrap().clone();
    let mut headers = HeaderMap::new();
    headers.insert(
        "cache-control",
        HeaderValue::from_static("public, max-age=3600"),
    );
    (headers, axum::Json(json!({ "keys": keys }))).into_response()
}

async fn serve(endpoint: Arc<Endpoint>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let app = Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(endpoint);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn sign(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

#[tokio::test]
async fn keys_are_cached_and_refetched_for_an_unknown_kid_at_a_bounded_rate() {
    let endpoint = Arc::new(Endpoint::default());
    let first = key("k1");
    endpoint.published.lock().unwrap().push(first.jwk.clone());
    let url = serve(endpoint.clone()).await;
    let keys = JwksKeys::builder(url)
        .min_refresh_interval(Duration::from_millis(300))
        .build()
        .unwrap();

    for _ in 0..5 {
        assert_eq!(
            keys.key(Some("k1")).await.unwrap().unwrap().kid(),
            Some("k1")
        );
    }
    assert_eq!(
        endpoint.fetches.load(Ordering::SeqCst),
        1,
        "cached for max-age"
    );

    // An unknown kid: asked for once, then not again within the refresh interval.
    assert!(keys.key(Some("made-up")).await.unwrap().is_none());
    assert!(keys.key(Some("made-up-2")).await.unwrap().is_none());
    assert_eq!(
        endpoint.fetches.load(Ordering::SeqCst),
        1,
        "one fetch, at start"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(keys.key(Some("made-up")).await.unwrap().is_none());
    assert_eq!(endpoint.fetches.load(Ordering::SeqCst), 2);
    for _ in 0..20 {
        assert!(keys.key(Some("made-up")).await.unwrap().is_none());
    }
    assert_eq!(endpoint.fetches.load(Ordering::SeqCst), 2, "bounded");

    // A key rotated in at the issuer is found by the next fetch.
    let second = key("k2");
    endpoint.published.lock().unwrap().push(second.jwk.clone());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        keys.key(Some("k2")).await.unwrap().unwrap().kid(),
        Some("k2")
    );

    // The endpoint failing later: the keys fetched before are still used.
    endpoint.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(keys.key(Some("k3")).await.unwrap().is_none());
    assert!(keys.key(Some("k1")).await.unwrap().is_some());
}

#[tokio::test]
async fn a_verifier_trusts_the_issuer_through_its_jwks_and_503s_without_keys() {
    let endpoint = Arc::new(Endpoint::default());
    let signing = key("k1");
    endpoint.published.lock().unwrap().push(signing.jwk.clone());
    endpoint.failing.store(true, Ordering::SeqCst);
    let url = serve(endpoint.clone()).await;
    let verifier = Verifier::builder(MemoryStore::new())
        .jwt_issuer(
            JwtIssuer::new(
                "https://idp.example",
                JwksKeys::builder(url)
                    .min_refresh_interval(Duration::ZERO)
                    .build()
                    .unwrap(),
            )
            .audience("https://api.example"),
        )
        .build();
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
    let jwt = sign(
        &signing,
        &json!({"iss": "https://idp.example", "aud": "https://api.example", "exp": exp,
                "tenant_id": "acme", "scope": "reports:read"}),
    );
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {jwt}").parse().unwrap());
    let rejection = verifier.verify(&headers, &[]).await.unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::StoreUnavailable);

    endpoint.failing.store(false, Ordering::SeqCst);
    let principal = verifier.verify(&headers, &["reports:read"]).await.unwrap();
    assert_eq!(principal.tenant(), "acme");
}
