//! The EdDSA-signed JWT the JWT benches present, and the key that verifies it.

use std::sync::Arc;

use axum_jwt_auth::{Decoder, LocalDecoder};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use m2m_core::jwt::ACCESS_TOKEN_TYP;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};

/// The `iss` of the JWT.
pub const ISSUER: &str = "https://tokens.example";
/// The `aud` of the JWT.
pub const AUDIENCE: &str = "https://api.example";

/// A fresh Ed25519 key: an RFC 9068 access token it signed for `tenant` with `scope` (valid for
/// a day), and its public JWK.
pub fn signed_jwt(tenant: &str, scope: &str) -> (String, Value) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("an Ed25519 key");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("the Ed25519 key");
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA", "use": "sig",
                     "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())});
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "m2m_ci_client",
        "iat": now, "exp": now + 86_400,
        "jti": "jwt_1", "client_id": "m2m_ci_client", "cid": "tok_credential",
        "scope": scope, "tenant_id": tenant,
    });
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".to_owned());
    header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
    let jwt = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(pkcs8.as_ref()))
        .expect("a signed JWT");
    (jwt, jwk)
}

/// axum-jwt-auth's decoder for the JWT [`signed_jwt`] made: EdDSA with `jwk`, `iss` and `aud`
/// checked on every request.
pub fn axum_jwt_auth_decoder(jwk: Value) -> Decoder<Value> {
    let key = jsonwebtoken10::DecodingKey::from_jwk(&serde_json::from_value(jwk).expect("a JWK"))
        .expect("a usable public key");
    let mut validation = jsonwebtoken10::Validation::new(jsonwebtoken10::Algorithm::EdDSA);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    Arc::new(
        LocalDecoder::builder()
            .keys(vec![key])
            .validation(validation)
            .build()
            .expect("an axum-jwt-auth decoder"),
    )
}
