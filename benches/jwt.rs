//! Criterion benches of offline JWT verification (`m2m_core::jwt`), in one group, `jwt`, so that
//! its figures come from the same run and compare:
//!
//! - `first_verification/<alg>`: `Verifier::verify` of a signed JWT by a verifier whose cache
//!   holds nothing (capacity 0), so that every call costs what the first request with a JWT
//!   costs: decoding its header and claims, finding the issuer and the key, checking the
//!   signature, `iss`, `aud`, `exp` and `nbf`, and mapping the claims to a `Principal`. For
//!   EdDSA (Ed25519), ES256 (P-256) and RS256 (a 2048-bit key made at start).
//! - `raw_signature/<alg>`: `jsonwebtoken::decode` of the same JWT with the same public key and
//!   a `Validation` for the same algorithm, issuer and audience: the JWT crate's own cost, so
//!   that `first_verification` less `raw_signature` is what the verifier adds.
//! - `cached_hit/jwt` and `cached_hit/opaque`: `Verifier::verify_cached` of a JWT (the EdDSA
//!   one) and of an opaque access token, both already verified and cached by the same
//!   verifier: what every later request with the same credential costs.
//!
//! ```text
//! cargo bench --bench jwt
//! ```

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use m2m_core::jwt::{ACCESS_TOKEN_TYP, JwtIssuer, JwtKey, JwtKeys};
use m2m_core::{
    CacheSettings, Expiry, MemoryStore, NewToken, TokenFormat, TokenKind, TokenStore, Verifier,
};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};

const ISSUER: &str = "https://tokens.example";
const AUDIENCE: &str = "https://api.example";
const SCOPES: &[&str] = &["reports:read"];

/// Polls a future that completes without waiting (every path here does: the keys are given in
/// code and the store is in memory), so the figures hold the verification and not an executor.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benched path waited"),
    }
}

/// A private key that signs the bench JWTs, and its public JWK.
struct Signer {
    algorithm: Algorithm,
    kid: &'static str,
    key: EncodingKey,
    jwk: Value,
}

impl Signer {
    fn ed25519() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("an Ed25519 key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("the Ed25519 key");
        Self {
            algorithm: Algorithm::EdDSA,
            kid: "ed25519",
            key: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed25519", "alg": "EdDSA",
                        "use": "sig", "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())}),
        }
    }

    fn es256() -> Self {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("the P-256 key");
        let point = pair.public_key().as_ref();
        Self {
            algorithm: Algorithm::ES256,
            kid: "p256",
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": "p256", "alg": "ES256", "use": "sig",
                        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                        "y": URL_SAFE_NO_PAD.encode(&point[33..65])}),
        }
    }

    fn rs256() -> Self {
        let private =
            rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("a 2048-bit RSA key");
        let pkcs1 = private.to_pkcs1_der().expect("the RSA key as PKCS#1");
        Self {
            algorithm: Algorithm::RS256,
            kid: "rsa2048",
            key: EncodingKey::from_rsa_der(pkcs1.as_bytes()),
            jwk: json!({"kty": "RSA", "kid": "rsa2048", "alg": "RS256", "use": "sig",
                        "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
                        "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be())}),
        }
    }

    fn name(&self) -> String {
        format!("{:?}", self.algorithm)
    }

    /// The public key, for the verifier.
    fn public(&self) -> JwtKey {
        JwtKey::from_jwk(&serde_json::from_value(self.jwk.clone()).expect("a JWK"))
            .expect("a usable public key")
    }

    /// The same public key, for `jsonwebtoken` alone.
    fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_jwk(&serde_json::from_value(self.jwk.clone()).expect("a JWK"))
            .expect("a usable public key")
    }

    /// An access token for tenant `acme`, valid for a day.
    fn sign(&self) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "m2m_ci_client",
            "iat": now, "exp": now + 86_400,
            "jti": format!("jwt_{}", self.kid), "client_id": "m2m_ci_client",
            "cid": "tok_credential", "scope": "reports:read reports:write", "tenant_id": "acme",
        });
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.to_owned());
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("a signed JWT")
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value"),
    );
    headers
}

fn api_key(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-api-key",
        HeaderValue::from_str(token).expect("a header value"),
    );
    headers
}

fn jwt(c: &mut Criterion) {
    let signers = [Signer::ed25519(), Signer::es256(), Signer::rs256()];
    let keys = signers.iter().fold(JwtKeys::default(), |keys, signer| {
        keys.with(signer.public())
    });
    let issuer = JwtIssuer::new(ISSUER, keys)
        .audience(AUDIENCE)
        .algorithms(signers.iter().map(|s| s.algorithm));
    let store = Arc::new(MemoryStore::new());
    let uncached = Verifier::builder(store.clone())
        .cache(CacheSettings {
            capacity: 0,
            ..CacheSettings::default()
        })
        .jwt_issuer(issuer.clone())
        .build();
    // An hour's TTL keeps the opaque token's entry fresh for the whole run, as a JWT's is
    // until its `exp`.
    let cached = Verifier::builder(store.clone())
        .cache(CacheSettings {
            ttl: Duration::from_secs(3600),
            ..CacheSettings::default()
        })
        .jwt_issuer(issuer)
        .build();

    let mut group = c.benchmark_group("jwt");
    let mut first_jwt = None;
    for signer in &signers {
        let jwt = signer.sign();
        let headers = bearer(&jwt);
        let principal = ready(uncached.verify(&headers, SCOPES)).expect("a valid JWT");
        assert_eq!(principal.tenant(), "acme");
        group.bench_function(BenchmarkId::new("first_verification", signer.name()), |b| {
            b.iter(|| ready(uncached.verify(black_box(&headers), SCOPES)).unwrap())
        });

        let key = signer.decoding_key();
        let mut validation = Validation::new(signer.algorithm);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        jsonwebtoken::decode::<Value>(&jwt, &key, &validation).expect("a valid JWT");
        group.bench_function(BenchmarkId::new("raw_signature", signer.name()), |b| {
            b.iter(|| jsonwebtoken::decode::<Value>(black_box(&jwt), &key, &validation).unwrap())
        });
        first_jwt.get_or_insert(headers);
    }

    let jwt = first_jwt.expect("at least one signer");
    ready(cached.verify(&jwt, SCOPES)).expect("a valid JWT");
    let issued = ready(store.issue(
        &TokenFormat::default(),
        NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays).scope("reports:read"),
        time::OffsetDateTime::now_utc(),
    ))
    .expect("an opaque token");
    let opaque = api_key(issued.token.expose_secret());
    ready(cached.verify(&opaque, SCOPES)).expect("a valid opaque token");
    for (name, headers) in [("jwt", &jwt), ("opaque", &opaque)] {
        cached
            .verify_cached(headers, SCOPES)
            .expect("a cache hit")
            .expect("an accepted token");
        group.bench_function(BenchmarkId::new("cached_hit", name), |b| {
            b.iter(|| {
                cached
                    .verify_cached(black_box(headers), SCOPES)
                    .unwrap()
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = jwt
}
criterion_main!(benches);
