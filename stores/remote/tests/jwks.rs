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

/// A 2048-bit RSA key made for these tests only (PKCS#1 DER, base64), and its modulus
/// (base64url): identity providers sign with RS256 by default, and `ring` cannot make RSA keys.
const TEST_RSA_PKCS1: &[&str] = &[
    "MIIEpAIBAAKCAQEA4Qrc/rr3EJqTBwwjjVuVNGcbE08Mqbk4xvUxzPLmRFIFofgTiTpQ2xjD/r0PCpf1pBOGVN2A",
    "qA3C/P7abKoWK+BfkKYNAzMIp0wNoht1a6M1JOuqZMRN7ujGkSimPfb6tAU1pPvEAhzxBi6CuRvglU1HIAecBKqP",
    "9nZhjOi0ffiq2h7aZ0gwqRW2NIVTdLI4rDXujPFyGrGFPMVBnTpmBp43nx7rFMeDvjW49fLKB45J50PTJmfaIcOj",
    "wOC8N7nLmWgj6SH11smnTjnJs+1LT7/WCYoUbQU34dD62+xez760paGF9GJnNOAoWqrSEY3yDh8YFg8uoP5y9a4u",
    "E50taQIDAQABAoIBACo6cV88YrWjJ9FD+hzhsVUQvvAn3nqvtsOAyaxJbSOnV4a96B6RSpBebJLN07d7bdzwy/17",
    "RhPi5zK1uPN4lCn+E7ivLBRsXGSWPR2s9OLykHuh3ErF2lDpLa+Z9t38TS2AJ8GSe8SgvSqZii6lmEYz5tOQEfr/",
    "LX4EV0hLd2kGqR2cTJ4bwAE/geCQpjm48SX3+u90VNyTnOJuowlPpbNY7gVE+09LtL8qlxKlcpHdCeqTsY6V17JY",
    "eU/dbR0rkHkFssVyphxLsyoslRTvmd3YQpuctJsIPZlZD3gjHNlOO/dubwGU9dV+Kl3Tec93+isdi0cuhIZjsE+k",
    "pYwfuH0CgYEA9rLIqsHmC0DYNQH8yALgVqUzveCNciBoKfU1ezY+3k8PzUX4PKlkiRvvels9hu+hxt0kFbNAx1Aj",
    "VR5tKT4mNlCVu3rY/6ouyd8mBuEBUTRPuBbwejqH2Odhr/o5dvxxR/N7z9ABf5BZJWPJMJl+IngEiaGcHMc3lgOy",
    "1mcEGR0CgYEA6YcMiA6Ve7VjGjm68P3gimfzJZL+Zu3dWW0IDM5K5jMPTN9ouz9NLtWvVqXljCIYiJsLDPAvi5gX",
    "Farh7KwtBVrt0Uw0T2QcmfV0eyViQHgZ87PcrL7JsXE2UMNzR32jtwzT0xu+1lhKgAGG+dJpQgUIOWnaT8cG3YrB",
    "3lUiv70CgYEAuVJ1DFG8zpdX0/o6OsZuYKiZxfn6R9GwblSWaIjHkZky9bGqWWem7pjdvbzs64D4trtJcEPIVfIN",
    "mNPSjTjy27qNwNj4Spc9rsjDeEdvBeGWQWR6Ilf11St8ZwZCRPA+6R4v1F0dwwZc8YmUib3E03/1aK7O54+AYmFE",
    "52tb2MECgYEAr4N4v6l2YAvr+AH7prSo1l1aOZtI6UNNYbC4pCdH08v8a+JdbJ4e/FxN8+mrpK7bkZA1tfuvQFOG",
    "xhowwxiEncnBg9SqXCD5/hyk9wkZ1yptFuTPrmWWYW6dTAYZ1llvelyBt+DahW7GT37WW1zxD1WI4N3V3q/PUSLA",
    "osGJ5GECgYBkPpJQGVBGdm35zKYA4R8y6PcTYsrGhx4N2SeiC2eOf1mGl9kItWnRdCPTHhygjS6Tp+QZGuIBaR4o",
    "zBZ6cvVNLsLiCtVnL6gkgvG8eAZ4oFZZSrYFIM2tlY1RTafaNgygLBvMAkafnfj20T7mSAYwAcL4vA0L3sfqXljf",
    "SO7Lbg==",
];
const TEST_RSA_MODULUS: &[&str] = &[
    "4Qrc_rr3EJqTBwwjjVuVNGcbE08Mqbk4xvUxzPLmRFIFofgTiTpQ2xjD_r0PCpf1pBOGVN2AqA3C_P7abKoWK-Bf",
    "kKYNAzMIp0wNoht1a6M1JOuqZMRN7ujGkSimPfb6tAU1pPvEAhzxBi6CuRvglU1HIAecBKqP9nZhjOi0ffiq2h7a",
    "Z0gwqRW2NIVTdLI4rDXujPFyGrGFPMVBnTpmBp43nx7rFMeDvjW49fLKB45J50PTJmfaIcOjwOC8N7nLmWgj6SH1",
    "1smnTjnJs-1LT7_WCYoUbQU34dD62-xez760paGF9GJnNOAoWqrSEY3yDh8YFg8uoP5y9a4uE50taQ",
];

fn rsa_key(kid: &str) -> Key {
    use base64::engine::general_purpose::STANDARD;
    let der = STANDARD.decode(TEST_RSA_PKCS1.concat()).unwrap();
    Key {
        kid: kid.to_owned(),
        encoding: EncodingKey::from_rsa_der(&der),
        jwk: json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
                    "n": TEST_RSA_MODULUS.concat(), "e": "AQAB"}),
    }
}

fn es256_key(kid: &str) -> Key {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    Key {
        kid: kid.to_owned(),
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65])}),
    }
}

fn sign_with(key: &Key, algorithm: Algorithm, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

/// An issuer's JWKS endpoint on 127.0.0.1 publishing `key`.
async fn jwks_of(key: &Key) -> JwksKeys {
    let endpoint = Arc::new(Endpoint::default());
    endpoint.published.lock().unwrap().push(key.jwk.clone());
    JwksKeys::builder(serve(endpoint).await).build().unwrap()
}

fn bearer_headers(jwt: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {jwt}").parse().unwrap());
    headers
}

/// The three claim mappings the documentation gives, each against tokens shaped as that kind of
/// identity provider issues them, signed by keys its own JWKS endpoint serves.
#[tokio::test]
async fn third_party_issuers_map_their_claims() {
    use m2m_core::jwt::{ClaimMapping, ScopeClaim};
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
    let (saas, auth0, keycloak) = (es256_key("saas-1"), rsa_key("auth0-1"), es256_key("kc-1"));
    let verifier = Verifier::builder(MemoryStore::new())
        // A tenant-aware SaaS identity provider: tenantId, roles and permissions.
        .jwt_issuer(
            JwtIssuer::new("https://auth.saas.example", jwks_of(&saas).await)
                .audience("https://api.example")
                .claims(
                    ClaimMapping::default()
                        .tenant("tenantId")
                        .user("sub")
                        .scopes_list("permissions")
                        .also_scopes(ScopeClaim::List("roles".into())),
                ),
        )
        // Auth0-style: the organization is the tenant, permissions are the scopes, RS256.
        .jwt_issuer(
            JwtIssuer::new("https://acme.auth0.example/", jwks_of(&auth0).await)
                .audience("https://api.example")
                .algorithms([Algorithm::RS256])
                .claims(
                    ClaimMapping::default()
                        .tenant("org_id")
                        .user("sub")
                        .client_id("azp")
                        .scopes_list("permissions"),
                ),
        )
        // Keycloak-style: one realm per tenant, the client in azp, realm roles as scopes.
        .jwt_issuer(
            JwtIssuer::new("https://kc.example/realms/globex", jwks_of(&keycloak).await)
                .audience("account")
                .claims(
                    ClaimMapping::default()
                        .fixed_tenant("globex")
                        .client_id("azp")
                        .scopes_spaced("scope")
                        .also_scopes(ScopeClaim::List("realm_access.roles".into())),
                ),
        )
        .build();

    let saas_jwt = sign_with(
        &saas,
        Algorithm::ES256,
        &json!({
            "iss": "https://auth.saas.example", "aud": "https://api.example", "exp": exp,
            "sub": "9f0c-user", "tenantId": "acme", "roles": ["Admin"],
            "permissions": ["reports.read", "reports.write"],
        }),
    );
    let p = verifier
        .verify(&bearer_headers(&saas_jwt), &["reports.write", "Admin"])
        .await
        .unwrap();
    assert_eq!((p.tenant(), p.user()), ("acme", Some("9f0c-user")));

    let auth0_jwt = sign_with(
        &auth0,
        Algorithm::RS256,
        &json!({
            "iss": "https://acme.auth0.example/", "aud": "https://api.example", "exp": exp,
            "sub": "abc123@clients", "azp": "abc123", "gty": "client-credentials",
            "org_id": "org_7", "permissions": ["read:reports"], "scope": "read:reports",
        }),
    );
    let p = verifier
        .verify(&bearer_headers(&auth0_jwt), &["read:reports"])
        .await
        .unwrap();
    assert_eq!((p.tenant(), p.client_id()), ("org_7", Some("abc123")));

    let keycloak_jwt = sign_with(
        &keycloak,
        Algorithm::ES256,
        &json!({
            "iss": "https://kc.example/realms/globex", "aud": "account", "exp": exp,
            "azp": "billing-service", "scope": "profile email",
            "realm_access": {"roles": ["reports-reader"]},
        }),
    );
    let p = verifier
        .verify(&bearer_headers(&keycloak_jwt), &["email", "reports-reader"])
        .await
        .unwrap();
    assert_eq!(
        (p.tenant(), p.client_id()),
        ("globex", Some("billing-service"))
    );

    // One issuer's key never vouches for another issuer's claims, and an issuer not
    // configured is refused.
    let crossed = sign_with(
        &saas,
        Algorithm::ES256,
        &json!({
            "iss": "https://kc.example/realms/globex", "aud": "account", "exp": exp,
            "azp": "billing-service",
        }),
    );
    let stranger = sign_with(
        &saas,
        Algorithm::ES256,
        &json!({
            "iss": "https://other.example", "aud": "https://api.example", "exp": exp,
            "tenantId": "acme",
        }),
    );
    for jwt in [crossed, stranger] {
        let rejection = verifier
            .verify(&bearer_headers(&jwt), &[])
            .await
            .unwrap_err();
        assert_eq!(rejection.kind(), RejectionKind::InvalidToken);
    }
    // RS256 is accepted only where it is allowed: the SaaS issuer refuses it.
    let rs_for_saas = sign_with(
        &auth0,
        Algorithm::RS256,
        &json!({
            "iss": "https://auth.saas.example", "aud": "https://api.example", "exp": exp,
            "tenantId": "acme",
        }),
    );
    assert_eq!(
        verifier
            .verify(&bearer_headers(&rs_for_saas), &[])
            .await
            .unwrap_err()
            .kind(),
        RejectionKind::InvalidToken
    );
}
