//! Offline verification of signed JWTs: every way a JWT can be wrong, caching until expiry,
//! and revocation by event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use m2m_core::jwt::{ACCESS_TOKEN_TYP, JwtIssuer, JwtKey, JwtKeys, KeySource};
use m2m_core::{
    ManualClock, MemoryStore, RejectionKind, StoreError, TokenId, TokenStore, Verifier,
};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-06-01 08:00 UTC);
const ISSUER: &str = "https://tokens.example";
const AUDIENCE: &str = "https://api.example";

/// A signing key and its public JWK.
struct Signer {
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

impl Signer {
    fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig",
                        "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())}),
        }
    }

    fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::ES256,
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
                        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                        "y": URL_SAFE_NO_PAD.encode(&point[33..65])}),
        }
    }

    fn public(&self) -> JwtKey {
        JwtKey::from_jwk(&serde_json::from_value(self.jwk.clone()).unwrap()).unwrap()
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

fn claims(exp_in: Duration) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "m2m_ci_client",
        "iat": T0.unix_timestamp(), "exp": (T0 + exp_in).unix_timestamp(),
        "jti": "jwt_1", "client_id": "m2m_ci_client", "cid": "tok_credential",
        "scope": "reports:read reports:write", "tenant_id": "acme",
    })
}

/// Keys given in code, counting lookups, failing on demand.
#[derive(Debug)]
struct CountingKeys {
    keys: JwtKeys,
    lookups: AtomicUsize,
    down: AtomicBool,
}

#[async_trait]
impl KeySource for CountingKeys {
    async fn key(&self, kid: Option<&str>) -> Result<Option<Arc<JwtKey>>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("JWKS unreachable".into()));
        }
        self.keys.key(kid).await
    }
}

struct Fixture {
    signer: Signer,
    keys: Arc<CountingKeys>,
    clock: ManualClock,
    store: Arc<MemoryStore>,
    verifier: Verifier,
}

fn fixture(signer: Signer) -> Fixture {
    let keys = Arc::new(CountingKeys {
        keys: JwtKeys::default().with(signer.public()),
        lookups: AtomicUsize::new(0),
        down: AtomicBool::new(false),
    });
    let clock = ManualClock::new(T0);
    let store = Arc::new(MemoryStore::new());
    let issuer = JwtIssuer::with_shared_keys(ISSUER, keys.clone())
        .audience(AUDIENCE)
        .require_typ(ACCESS_TOKEN_TYP)
        .leeway(StdDuration::from_secs(5));
    let verifier = Verifier::builder(store.clone())
        .clock(clock.clone())
        .jwt_issuer(issuer)
        .build();
    Fixture {
        signer,
        keys,
        clock,
        store,
        verifier,
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

fn api_key(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_str(token).unwrap());
    headers
}

/// The parts of a JWT, with one replaced.
fn with_part(jwt: &str, index: usize, part: &str) -> String {
    let mut parts: Vec<&str> = jwt.split('.').collect();
    parts[index] = part;
    parts.join(".")
}

fn encode_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

async fn refused(f: &Fixture, token: &str) -> RejectionKind {
    f.verifier
        .verify(&bearer(token), &[])
        .await
        .unwrap_err()
        .kind()
}

#[tokio::test]
async fn a_valid_jwt_maps_to_a_principal_and_is_then_a_cache_hit() {
    for signer in [Signer::ed25519("k1"), Signer::es256("k2")] {
        let f = fixture(signer);
        let jwt = f.signer.sign(&claims(Duration::minutes(60)));
        let principal = f
            .verifier
            .verify(&bearer(&jwt), &["reports:read"])
            .await
            .unwrap();
        assert_eq!(principal.tenant(), "acme");
        assert_eq!(principal.token_id().as_str(), "jwt_1");
        assert_eq!(principal.client_id(), Some("m2m_ci_client"));
        assert_eq!(
            principal.credential_id().unwrap().as_str(),
            "tok_credential"
        );
        assert_eq!(principal.issuer(), Some(ISSUER));
        assert_eq!(
            principal.scopes().collect::<Vec<_>>(),
            ["reports:read", "reports:write"]
        );
        assert_eq!(
            principal.expires_at(),
            Some(T0 + Duration::minutes(60) + Duration::seconds(5))
        );

        // Cached until it expires: no key lookup, no signature check, even past the TTL.
        f.clock.advance(Duration::minutes(30));
        let cached = f
            .verifier
            .verify_cached(&bearer(&jwt), &["reports:write"])
            .unwrap()
            .unwrap();
        assert_eq!(cached.token_id().as_str(), "jwt_1");
        assert_eq!(f.keys.lookups.load(Ordering::SeqCst), 1);
        let missing = f
            .verifier
            .verify(&bearer(&jwt), &["admin"])
            .await
            .unwrap_err();
        assert_eq!(missing.status(), StatusCode::FORBIDDEN);

        // Expired, from the cache, with the leeway.
        f.clock
            .advance(Duration::minutes(30) + Duration::seconds(5));
        let expired = f.verifier.verify(&bearer(&jwt), &[]).await.unwrap_err();
        assert_eq!(expired.kind(), RejectionKind::ExpiredToken);
    }
}

#[tokio::test]
async fn every_forgery_is_an_invalid_token() {
    let f = fixture(Signer::ed25519("k1"));
    let jwt = f.signer.sign(&claims(Duration::minutes(60)));
    let parts: Vec<&str> = jwt.split('.').collect();

    let mut tampered_claims = claims(Duration::minutes(60));
    tampered_claims["tenant_id"] = "globex".into();
    let tampered_payload = with_part(&jwt, 1, &encode_json(&tampered_claims));

    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[0] ^= 1;
    let tampered_signature = with_part(&jwt, 2, &URL_SAFE_NO_PAD.encode(&signature));

    let none = format!(
        "{}.{}.",
        encode_json(&json!({"alg": "none", "typ": "at+jwt", "kid": "k1"})),
        parts[1]
    );

    // HS256 keyed with the public key's bytes, as a confused verifier would accept.
    let public_x = f.signer.jwk["x"].as_str().unwrap().to_owned();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("k1".to_owned());
    hs_header.typ = Some("at+jwt".to_owned());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims(Duration::minutes(60)),
        &EncodingKey::from_secret(&URL_SAFE_NO_PAD.decode(&public_x).unwrap()),
    )
    .unwrap();

    let other = Signer::ed25519("k1");
    let foreign_key = other.sign(&claims(Duration::minutes(60)));

    let mut wrong_iss = claims(Duration::minutes(60));
    wrong_iss["iss"] = "https://evil.example".into();
    let mut wrong_aud = claims(Duration::minutes(60));
    wrong_aud["aud"] = "https://other-api.example".into();
    let mut not_yet = claims(Duration::minutes(60));
    not_yet["nbf"] = (T0 + Duration::minutes(1)).unix_timestamp().into();
    let mut no_tenant = claims(Duration::minutes(60));
    no_tenant.as_object_mut().unwrap().remove("tenant_id");

    let mut wrong_typ = Header::new(Algorithm::EdDSA);
    wrong_typ.kid = Some("k1".to_owned());
    wrong_typ.typ = Some("JWT".to_owned());
    let wrong_typ =
        jsonwebtoken::encode(&wrong_typ, &claims(Duration::minutes(60)), &f.signer.key).unwrap();

    let cases = [
        ("tampered payload", tampered_payload),
        ("tampered signature", tampered_signature),
        ("alg none", none),
        ("HS256 with the public key", hs256),
        ("signed by another key under the same kid", foreign_key),
        ("wrong iss", f.signer.sign(&wrong_iss)),
        ("wrong aud", f.signer.sign(&wrong_aud)),
        ("not yet valid", f.signer.sign(&not_yet)),
        ("no tenant", f.signer.sign(&no_tenant)),
        ("wrong typ", wrong_typ),
        ("not base64", "eyJ!.eyJ!.abc".to_owned()),
    ];
    for (name, token) in cases {
        let rejection = f.verifier.verify(&bearer(&token), &[]).await.unwrap_err();
        assert_eq!(rejection.kind(), RejectionKind::InvalidToken, "{name}");
        assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert!(!format!("{rejection:?}").contains(&token), "{name}");
    }
    // The genuine token still passes.
    assert!(f.verifier.verify(&bearer(&jwt), &[]).await.is_ok());
}

#[tokio::test]
async fn an_unknown_kid_is_asked_for_once_then_refused_from_the_cache() {
    let f = fixture(Signer::ed25519("k1"));
    let stranger = Signer::ed25519("k9").sign(&claims(Duration::minutes(60)));
    assert_eq!(refused(&f, &stranger).await, RejectionKind::InvalidToken);
    assert_eq!(refused(&f, &stranger).await, RejectionKind::InvalidToken);
    assert_eq!(f.keys.lookups.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unreachable_keys_are_a_503_never_a_401() {
    let f = fixture(Signer::ed25519("k1"));
    f.keys.down.store(true, Ordering::SeqCst);
    let jwt = f.signer.sign(&claims(Duration::minutes(60)));
    let rejection = f.verifier.verify(&bearer(&jwt), &[]).await.unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::StoreUnavailable);
    assert_eq!(rejection.retry_after(), Some(5));
    f.keys.down.store(false, Ordering::SeqCst);
    assert!(f.verifier.verify(&bearer(&jwt), &[]).await.is_ok());
}

#[tokio::test]
async fn a_jwt_in_x_api_key_is_a_wrong_placement() {
    let f = fixture(Signer::ed25519("k1"));
    let jwt = f.signer.sign(&claims(Duration::minutes(60)));
    let rejection = f.verifier.verify(&api_key(&jwt), &[]).await.unwrap_err();
    assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
    assert!(
        rejection.detail().contains("Authorization"),
        "{}",
        rejection.detail()
    );
    assert_eq!(f.keys.lookups.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn revoking_the_credential_or_the_jti_refuses_cached_jwts() {
    let f = fixture(Signer::ed25519("k1"));
    let jwt = f.signer.sign(&claims(Duration::minutes(60)));
    assert!(f.verifier.verify(&bearer(&jwt), &[]).await.is_ok());

    // The store announces the credential's revocation, as the token service's event does.
    let credential = f
        .store
        .issue(
            f.verifier.format(),
            m2m_core::NewToken::new(
                m2m_core::TokenKind::ClientSecret,
                "acme",
                m2m_core::Expiry::Never,
            ),
            T0,
        )
        .await
        .unwrap();
    let mut other_claims = claims(Duration::minutes(60));
    other_claims["cid"] = credential.record.id.as_str().into();
    other_claims["jti"] = "jwt_2".into();
    let minted = f.signer.sign(&other_claims);
    assert!(f.verifier.verify(&bearer(&minted), &[]).await.is_ok());
    f.store.revoke(&credential.record.id, T0).await.unwrap();
    let refused_jwt = f.verifier.verify(&bearer(&minted), &[]).await.unwrap_err();
    assert_eq!(refused_jwt.kind(), RejectionKind::InvalidToken);
    assert!(f.verifier.verify(&bearer(&jwt), &[]).await.is_ok());

    // An event naming the jti alone refuses that one token.
    assert_eq!(
        refused_after_event(&f, &jwt, "jwt_1").await,
        RejectionKind::InvalidToken
    );
}

/// Makes the store announce a revocation event naming `id`, then verifies `jwt`.
async fn refused_after_event(f: &Fixture, jwt: &str, id: &str) -> RejectionKind {
    let mut record = m2m_core::NewToken::new(
        m2m_core::TokenKind::AccessToken,
        "acme",
        m2m_core::Expiry::Never,
    )
    .generate(f.verifier.format(), T0)
    .record;
    record.id = TokenId::new(id);
    f.store.insert(record).await.unwrap();
    f.store.revoke(&TokenId::new(id), T0).await.unwrap();
    refused(f, jwt).await
}

#[tokio::test]
async fn issuers_are_told_apart_and_unknown_ones_refused() {
    let f = fixture(Signer::ed25519("k1"));
    let second = Signer::es256("other-1");
    let verifier = Verifier::builder(MemoryStore::new())
        .clock(f.clock.clone())
        .jwt_issuer(
            JwtIssuer::new(ISSUER, JwtKeys::default().with(f.signer.public())).audience(AUDIENCE),
        )
        .jwt_issuer(
            JwtIssuer::new(
                "https://idp.example",
                JwtKeys::default().with(second.public()),
            )
            .claims(
                m2m_core::jwt::ClaimMapping::default()
                    .tenant("org_id")
                    .scopes_list("permissions"),
            ),
        )
        .build();
    let ours = f.signer.sign(&claims(Duration::minutes(5)));
    let theirs = second.sign(&json!({
        "iss": "https://idp.example", "org_id": "initech", "permissions": ["orders:read"],
        "exp": (T0 + Duration::minutes(5)).unix_timestamp(), "sub": "auth0|123",
    }));
    let p = verifier.verify(&bearer(&ours), &[]).await.unwrap();
    assert_eq!(p.tenant(), "acme");
    let p = verifier
        .verify(&bearer(&theirs), &["orders:read"])
        .await
        .unwrap();
    assert_eq!(
        (p.tenant(), p.issuer()),
        ("initech", Some("https://idp.example"))
    );
    // The first issuer's key never verifies the second issuer's tokens.
    let mut crossed = claims(Duration::minutes(5));
    crossed["iss"] = "https://idp.example".into();
    crossed["org_id"] = "initech".into();
    let crossed = f.signer.sign(&crossed);
    assert_eq!(
        verifier
            .verify(&bearer(&crossed), &[])
            .await
            .unwrap_err()
            .kind(),
        RejectionKind::InvalidToken
    );
}
