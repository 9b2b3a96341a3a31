//! The conformance suite: ONE table of HTTP cases, each run against the axum (tower), actix-web
//! and Rocket adapters through their own test clients, asserting that all three answer alike
//! and as the HTTP contract says.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use m2m_core::jwt::{JwtIssuer, JwtKeys};
use m2m_core::{
    Clock, Expiry, ManualClock, MemoryStore, NewToken, RateLimit, RevocationListener, StoreError,
    TokenDigest, TokenFormat, TokenId, TokenKind, TokenLookup, TokenRecord, TokenStore, TokenType,
    TokenTypes, Verifier,
};
use time::{Duration, OffsetDateTime, macros::datetime};

const T0: OffsetDateTime = datetime!(2026-06-01 08:00 UTC);

/// A memory store that can be switched into failing, as an unreachable database would.
#[derive(Debug, Default)]
struct SwitchableStore {
    inner: MemoryStore,
    down: AtomicBool,
}

#[async_trait]
impl TokenLookup for SwitchableStore {
    async fn find_token(
        &self,
        token: &str,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        self.inner.find_token(token, digest).await
    }

    async fn record_usage(&self, uses: &[(TokenId, OffsetDateTime)]) -> Result<(), StoreError> {
        self.inner.record_usage(uses).await
    }

    fn subscribe(&self, listener: Arc<dyn RevocationListener>) -> bool {
        self.inner.subscribe(listener)
    }
}

/// The tokens every case can use, issued into a fresh store per case and adapter.
struct Tokens {
    /// Access token with `reports:read`.
    access: String,
    /// Access token with `reports:read` and `reports:write`.
    reporter: String,
    /// Client-credentials bearer token without scopes.
    bearer: String,
    /// Access token that expired one second ago.
    expired: String,
    /// Access token that expires one second from now.
    expiring: String,
    /// Access token, to be revoked by the cases that want it.
    revocable: (String, TokenId),
    /// Bearer token of a tenant that only enables access tokens.
    disabled: String,
    /// Well-formed, right checksum, never issued.
    unknown: String,
    /// The access token with its last checksum character changed.
    bad_checksum: String,
    /// Access token limited to two requests per minute.
    limited: String,
    /// A signed JWT of the trusted issuer with `reports:read`, its credential the revocable
    /// token.
    jwt: String,
    /// The JWT with its tenant changed after signing.
    jwt_tampered: String,
    /// A JWT of the trusted issuer that expired a minute ago.
    jwt_expired: String,
    /// A JWT signed by a key the issuer does not publish.
    jwt_foreign: String,
    /// The JWT's claims under `alg: none`, without a signature.
    jwt_none: String,
    /// A JWT of the trusted issuer for another audience.
    jwt_other_audience: String,
    /// A JWT of the trusted issuer valid only from ten minutes on.
    jwt_not_yet_valid: String,
    /// The JWT with one bit of its signature flipped.
    jwt_bad_signature: String,
    /// The JWT's claims signed with HS256 keyed by the issuer's public key.
    jwt_hs256: String,
}

const JWT_ISSUER: &str = "https://tokens.example";

/// An Ed25519 key: the encoding key, its public JWK and its public key bytes.
fn ed25519_key(kid: &str) -> (jsonwebtoken::EncodingKey, m2m_core::jwt::JwtKey, Vec<u8>) {
    use base64::Engine as _;
    use ring::signature::KeyPair as _;
    let pkcs8 =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let jwk = serde_json::json!({
        "kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA",
        "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
    });
    (
        jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
        m2m_core::jwt::JwtKey::from_jwk(&serde_json::from_value(jwk).unwrap()).unwrap(),
        pair.public_key().as_ref().to_vec(),
    )
}

fn sign(key: &jsonwebtoken::EncodingKey, kid: &str, claims: &serde_json::Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

struct Fixture {
    store: Arc<SwitchableStore>,
    clock: ManualClock,
    verifier: Verifier,
    tokens: Tokens,
}

async fn fixture() -> Fixture {
    let store = Arc::new(SwitchableStore::default());
    let clock = ManualClock::new(T0 - Duration::minutes(10));
    let (signing, public, public_bytes) = ed25519_key("k1");
    let verifier = Verifier::builder(store.clone())
        .clock(clock.clone())
        .jwt_issuer(
            JwtIssuer::new(JWT_ISSUER, JwtKeys::default().with(public)).audience("https://api"),
        )
        .build();
    verifier
        .policy()
        .set_tenant("legacy", TokenTypes::only(TokenType::AccessToken));
    let format = TokenFormat::default();
    let issue = |request: NewToken, at: OffsetDateTime| {
        let store = store.clone();
        let format = format.clone();
        async move { store.inner.issue(&format, request, at).await.unwrap() }
    };
    let secret = |issued: &m2m_core::IssuedToken| issued.token.expose_secret().to_owned();
    let access = issue(
        NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays).scope("reports:read"),
        clock.now(),
    )
    .await;
    let reporter = issue(
        NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays)
            .scope("reports:read")
            .scope("reports:write"),
        clock.now(),
    )
    .await;
    let bearer = issue(
        NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60)),
        clock.now(),
    )
    .await;
    // Issued 9 min 59 s and 10 min 1 s before T0, each with a 10-minute lifetime.
    let expired = issue(
        NewToken::new(TokenKind::AccessToken, "acme", Expiry::Minutes(10)),
        T0 - Duration::minutes(10) - Duration::seconds(1),
    )
    .await;
    let expiring = issue(
        NewToken::new(TokenKind::AccessToken, "acme", Expiry::Minutes(10)),
        T0 - Duration::minutes(10) + Duration::seconds(1),
    )
    .await;
    let revocable = issue(
        NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
        clock.now(),
    )
    .await;
    let disabled = issue(
        NewToken::new(TokenKind::BearerToken, "legacy", Expiry::OneDay),
        clock.now(),
    )
    .await;
    let limited = issue(
        NewToken::new(TokenKind::AccessToken, "acme", Expiry::OneDay)
            .rate_limit(RateLimit::new(2, 60).unwrap()),
        clock.now(),
    )
    .await;
    clock.set(T0);

    let claims = |exp: OffsetDateTime, tenant: &str| {
        serde_json::json!({
            "iss": JWT_ISSUER, "aud": "https://api", "exp": exp.unix_timestamp(),
            "iat": (T0 - Duration::minutes(5)).unix_timestamp(), "jti": "jwt_conformance",
            "tenant_id": tenant, "scope": "reports:read", "client_id": "m2m_ci_conformance",
            "cid": revocable.record.id.as_str(),
        })
    };
    let jwt = sign(&signing, "k1", &claims(T0 + Duration::minutes(55), "acme"));
    let jwt_tampered = {
        use base64::Engine as _;
        let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(claims(T0 + Duration::minutes(55), "globex").to_string());
        parts.join(".")
    };
    let jwt_expired = sign(&signing, "k1", &claims(T0 - Duration::minutes(1), "acme"));
    let jwt_foreign = sign(
        &ed25519_key("k1").0,
        "k1",
        &claims(T0 + Duration::minutes(55), "acme"),
    );
    let jwt_none = {
        use base64::Engine as _;
        let encode = |value: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
        };
        format!(
            "{}.{}.",
            encode(serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": "k1"})),
            encode(claims(T0 + Duration::minutes(55), "acme"))
        )
    };
    let mut other_audience = claims(T0 + Duration::minutes(55), "acme");
    other_audience["aud"] = "https://elsewhere".into();
    let jwt_other_audience = sign(&signing, "k1", &other_audience);
    let mut not_yet = claims(T0 + Duration::minutes(55), "acme");
    not_yet["nbf"] = (T0 + Duration::minutes(10)).unix_timestamp().into();
    let jwt_not_yet_valid = sign(&signing, "k1", &not_yet);
    let jwt_bad_signature = {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = jwt.split('.').collect();
        let mut signature = engine.decode(parts[2]).unwrap();
        signature[0] ^= 1;
        format!("{}.{}.{}", parts[0], parts[1], engine.encode(signature))
    };
    let jwt_hs256 = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("k1".to_owned());
        header.typ = Some("at+jwt".to_owned());
        jsonwebtoken::encode(
            &header,
            &claims(T0 + Duration::minutes(55), "acme"),
            &jsonwebtoken::EncodingKey::from_secret(&public_bytes),
        )
        .unwrap()
    };

    let mut bad = secret(&access).into_bytes();
    let last = bad.len() - 1;
    bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
    let tokens = Tokens {
        access: secret(&access),
        reporter: secret(&reporter),
        bearer: secret(&bearer),
        expired: secret(&expired),
        expiring: secret(&expiring),
        revocable: (secret(&revocable), revocable.record.id.clone()),
        disabled: secret(&disabled),
        unknown: format
            .generate(TokenKind::AccessToken)
            .expose_secret()
            .to_owned(),
        bad_checksum: String::from_utf8(bad).unwrap(),
        limited: secret(&limited),
        jwt,
        jwt_tampered,
        jwt_expired,
        jwt_foreign,
        jwt_none,
        jwt_other_audience,
        jwt_not_yet_valid,
        jwt_bad_signature,
        jwt_hs256,
    };
    Fixture {
        store,
        clock,
        verifier,
        tokens,
    }
}

/// Something to do to the fixture before the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Before {
    Nothing,
    /// Send the request once (it is then cached), then revoke the token.
    RevokeAfterCaching,
    /// Take the store down.
    StoreDown,
    /// Send the request this many times first, each admitted.
    Repeat(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Options,
}

/// How the application's outer middleware is configured for a case: the same options, set the
/// same way, in every adapter.
#[derive(Clone, Copy, Debug)]
struct Profile {
    /// Whether the middleware is there at all.
    middleware: bool,
    optional: bool,
    cors_preflight: bool,
    strip_credentials: bool,
    /// One `require_scopes` call per entry.
    scopes: &'static [&'static [&'static str]],
}

/// The outer middleware of most cases: optional, so that `/v1/optional` works, and every other
/// route demands a caller through its extractor or guard.
const OPTIONAL: Profile = Profile {
    middleware: true,
    optional: true,
    cors_preflight: false,
    strip_credentials: false,
    scopes: &[],
};

/// A middleware with every default.
const DEFAULTS: Profile = Profile {
    optional: false,
    ..OPTIONAL
};

/// One HTTP case.
struct Case {
    name: &'static str,
    profile: Profile,
    method: Method,
    path: &'static str,
    headers: fn(&Tokens) -> Vec<(String, String)>,
    before: Before,
    status: u16,
    /// The body `error` field (RFC 6750 code) of a rejection.
    error: Option<&'static str>,
    /// Text the `WWW-Authenticate` value must contain.
    challenge: &'static [&'static str],
    /// The body of a success.
    body: Option<&'static str>,
}

fn h(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

fn cases() -> Vec<Case> {
    let ok = |name, path, headers, body| Case {
        name,
        profile: OPTIONAL,
        method: Method::Get,
        path,
        headers,
        before: Before::Nothing,
        status: 200,
        error: None,
        challenge: &[],
        body: Some(body),
    };
    let refused = |name, headers, status, error, challenge| Case {
        name,
        profile: OPTIONAL,
        method: Method::Get,
        path: "/v1/whoami",
        headers,
        before: Before::Nothing,
        status,
        error,
        challenge,
        body: None,
    };
    const REQUEST: &[&str] = &["error=\"invalid_request\""];
    const TOKEN: &[&str] = &["error=\"invalid_token\"", "the token is not valid"];
    const NO_ERROR: &[&str] = &["Bearer realm=\"m2m\"", "ApiKey realm=\"m2m\""];
    vec![
        ok(
            "access token in X-API-KEY",
            "/v1/whoami",
            |t| vec![h("X-API-KEY", &t.access)],
            "acme",
        ),
        ok(
            "header name in lowercase",
            "/v1/whoami",
            |t| vec![h("x-api-key", &t.access)],
            "acme",
        ),
        ok(
            "bearer token, scheme Bearer",
            "/v1/whoami",
            |t| vec![h("Authorization", format!("Bearer {}", t.bearer))],
            "acme",
        ),
        ok(
            "scheme bearer",
            "/v1/whoami",
            |t| vec![h("Authorization", format!("bearer {}", t.bearer))],
            "acme",
        ),
        ok(
            "scheme BEARER",
            "/v1/whoami",
            |t| vec![h("Authorization", format!("BEARER {}", t.bearer))],
            "acme",
        ),
        ok(
            "extra spaces after the scheme",
            "/v1/whoami",
            |t| vec![h("Authorization", format!("Bearer    {}", t.bearer))],
            "acme",
        ),
        ok(
            "a tab after the scheme",
            "/v1/whoami",
            |t| vec![h("Authorization", format!("Bearer\t{}", t.bearer))],
            "acme",
        ),
        ok(
            "trailing whitespace",
            "/v1/whoami",
            |t| vec![h("Authorization", format!("Bearer {}  ", t.bearer))],
            "acme",
        ),
        ok(
            "expiring one second from now",
            "/v1/whoami",
            |t| vec![h("X-API-KEY", &t.expiring)],
            "acme",
        ),
        ok(
            "required scope present",
            "/v1/reports",
            |t| vec![h("X-API-KEY", &t.access)],
            "reports of acme",
        ),
        ok(
            "optional route without a token",
            "/v1/optional",
            |_| vec![],
            "anonymous",
        ),
        ok(
            "optional route with a token",
            "/v1/optional",
            |t| vec![h("X-API-KEY", &t.access)],
            "acme",
        ),
        ok(
            "X-API-KEY together with Basic auth",
            "/v1/whoami",
            |t| {
                vec![
                    h("X-API-KEY", &t.access),
                    h("Authorization", "Basic dXNlcjpwYXNz"),
                ]
            },
            "acme",
        ),
        Case {
            name: "CORS preflight, passing enabled",
            profile: Profile {
                cors_preflight: true,
                ..DEFAULTS
            },
            method: Method::Options,
            path: "/v1/whoami",
            headers: |_| {
                vec![
                    h("Origin", "https://app.example"),
                    h("Access-Control-Request-Method", "GET"),
                ]
            },
            before: Before::Nothing,
            status: 204,
            error: None,
            challenge: &[],
            body: Some(""),
        },
        Case {
            name: "CORS preflight, by default",
            profile: DEFAULTS,
            method: Method::Options,
            headers: |_| {
                vec![
                    h("Origin", "https://app.example"),
                    h("Access-Control-Request-Method", "GET"),
                ]
            },
            ..refused("", |_| vec![], 401, None, NO_ERROR)
        },
        Case {
            name: "OPTIONS without Origin is no preflight",
            profile: Profile {
                cors_preflight: true,
                ..DEFAULTS
            },
            method: Method::Options,
            headers: |_| vec![h("Access-Control-Request-Method", "GET")],
            ..refused("", |_| vec![], 401, None, NO_ERROR)
        },
        Case {
            name: "scopes of two require_scopes calls: both present",
            profile: Profile {
                scopes: &[&["reports:read"], &["reports:write"]],
                ..DEFAULTS
            },
            ..ok(
                "",
                "/v1/whoami",
                |t| vec![h("X-API-KEY", &t.reporter)],
                "acme",
            )
        },
        Case {
            name: "scopes of two require_scopes calls: the second missing",
            profile: Profile {
                scopes: &[&["reports:read"], &["reports:write"]],
                ..DEFAULTS
            },
            ..refused(
                "",
                |t| vec![h("X-API-KEY", &t.access)],
                403,
                Some("insufficient_scope"),
                &[
                    "error=\"insufficient_scope\"",
                    "scope=\"reports:read reports:write\"",
                ],
            )
        },
        Case {
            name: "a route's scopes on top of the middleware's: both present",
            profile: Profile {
                scopes: &[&["reports:write"]],
                ..OPTIONAL
            },
            ..ok(
                "",
                "/v1/reports",
                |t| vec![h("X-API-KEY", &t.reporter)],
                "reports of acme",
            )
        },
        Case {
            name: "a route's scopes on top of the middleware's: the middleware's missing",
            profile: Profile {
                scopes: &[&["reports:write"]],
                ..OPTIONAL
            },
            path: "/v1/reports",
            ..refused(
                "",
                |t| vec![h("X-API-KEY", &t.access)],
                403,
                Some("insufficient_scope"),
                &["scope=\"reports:write\""],
            )
        },
        Case {
            name: "stripping removes both credential headers",
            profile: Profile {
                strip_credentials: true,
                ..DEFAULTS
            },
            ..ok(
                "",
                "/v1/headers",
                |t| {
                    vec![
                        h("X-API-KEY", &t.access),
                        h("Authorization", "Basic dXNlcjpwYXNz"),
                    ]
                },
                "credential headers: none",
            )
        },
        Case {
            name: "without stripping the handler sees the headers",
            profile: DEFAULTS,
            ..ok(
                "",
                "/v1/headers",
                |t| {
                    vec![
                        h("X-API-KEY", &t.access),
                        h("Authorization", "Basic dXNlcjpwYXNz"),
                    ]
                },
                "credential headers: x-api-key authorization",
            )
        },
        Case {
            name: "stripping a bearer token",
            profile: Profile {
                strip_credentials: true,
                ..DEFAULTS
            },
            ..ok(
                "",
                "/v1/headers",
                |t| vec![h("Authorization", format!("Bearer {}", t.bearer))],
                "credential headers: none",
            )
        },
        Case {
            name: "not optional: a route without credentials",
            profile: DEFAULTS,
            path: "/v1/optional",
            ..refused("", |_| vec![], 401, None, NO_ERROR)
        },
        Case {
            name: "optional: a misplaced token is still refused",
            path: "/v1/optional",
            ..refused(
                "",
                |t| vec![h("X-API-KEY", &t.bearer)],
                400,
                Some("invalid_request"),
                REQUEST,
            )
        },
        Case {
            name: "the extractor without the middleware",
            profile: Profile {
                middleware: false,
                ..DEFAULTS
            },
            headers: |t| vec![h("X-API-KEY", &t.access)],
            ..refused("", |_| vec![], 500, None, &[])
        },
        refused("no credentials", |_| vec![], 401, None, NO_ERROR),
        refused(
            "another scheme only",
            |_| vec![h("Authorization", "Basic dXNlcjpwYXNz")],
            401,
            None,
            NO_ERROR,
        ),
        refused(
            "both headers",
            |t| {
                vec![
                    h("X-API-KEY", &t.access),
                    h("Authorization", format!("Bearer {}", t.bearer)),
                ]
            },
            400,
            Some("invalid_request"),
            REQUEST,
        ),
        refused(
            "two X-API-KEY headers",
            |t| vec![h("X-API-KEY", &t.access), h("X-API-KEY", &t.access)],
            400,
            Some("invalid_request"),
            REQUEST,
        ),
        refused(
            "two Authorization headers",
            |t| {
                vec![
                    h("Authorization", format!("Bearer {}", t.bearer)),
                    h("Authorization", format!("Bearer {}", t.bearer)),
                ]
            },
            400,
            Some("invalid_request"),
            REQUEST,
        ),
        refused(
            "empty X-API-KEY",
            |_| vec![h("X-API-KEY", "")],
            400,
            Some("invalid_request"),
            REQUEST,
        ),
        refused(
            "Bearer with nothing after",
            |_| vec![h("Authorization", "Bearer ")],
            400,
            Some("invalid_request"),
            REQUEST,
        ),
        refused(
            "non-ASCII bytes",
            |_| vec![h("X-API-KEY", "m2m_at_caf\u{e9}")],
            400,
            Some("invalid_request"),
            REQUEST,
        ),
        refused(
            "an 8 KiB token",
            |_| vec![h("X-API-KEY", "m2m_at_".to_owned() + &"a".repeat(8192))],
            400,
            Some("invalid_request"),
            REQUEST,
        ),
        refused(
            "access token as Bearer",
            |t| vec![h("Authorization", format!("Bearer {}", t.access))],
            400,
            Some("invalid_request"),
            &["error=\"invalid_request\"", "X-API-KEY"],
        ),
        refused(
            "bearer token in X-API-KEY",
            |t| vec![h("X-API-KEY", &t.bearer)],
            400,
            Some("invalid_request"),
            &["error=\"invalid_request\"", "Authorization"],
        ),
        refused(
            "bad checksum",
            |t| vec![h("X-API-KEY", &t.bad_checksum)],
            401,
            Some("invalid_token"),
            TOKEN,
        ),
        refused(
            "unknown token",
            |t| vec![h("X-API-KEY", &t.unknown)],
            401,
            Some("invalid_token"),
            TOKEN,
        ),
        refused(
            "expired by one second",
            |t| vec![h("X-API-KEY", &t.expired)],
            401,
            Some("invalid_token"),
            &[
                "error=\"invalid_token\"",
                "error_description=\"the token expired\"",
            ],
        ),
        refused(
            "type disabled by policy",
            |t| vec![h("Authorization", format!("Bearer {}", t.disabled))],
            401,
            Some("invalid_token"),
            &["error=\"invalid_token\""],
        ),
        Case {
            name: "revoked after it was cached",
            headers: |t| vec![h("X-API-KEY", &t.revocable.0)],
            before: Before::RevokeAfterCaching,
            ..refused("", |_| vec![], 401, Some("invalid_token"), TOKEN)
        },
        Case {
            name: "missing scope",
            path: "/v1/reports",
            headers: |t| vec![h("Authorization", format!("Bearer {}", t.bearer))],
            ..refused(
                "",
                |_| vec![],
                403,
                Some("insufficient_scope"),
                &["error=\"insufficient_scope\"", "scope=\"reports:read\""],
            )
        },
        Case {
            name: "the store failing",
            headers: |t| vec![h("X-API-KEY", &t.access)],
            before: Before::StoreDown,
            ..refused("", |_| vec![], 503, None, &[])
        },
        ok(
            "rate-limited token within its limit",
            "/v1/whoami",
            |t| vec![h("X-API-KEY", &t.limited)],
            "acme",
        ),
        Case {
            name: "rate-limited token past its limit",
            headers: |t| vec![h("X-API-KEY", &t.limited)],
            before: Before::Repeat(2),
            ..refused("", |_| vec![], 429, None, &[])
        },
        Case {
            name: "rate-limited token past its limit on an optional route",
            path: "/v1/optional",
            headers: |t| vec![h("X-API-KEY", &t.limited)],
            before: Before::Repeat(2),
            ..refused("", |_| vec![], 429, None, &[])
        },
        ok(
            "signed JWT as a bearer token",
            "/v1/reports",
            |t| vec![h("Authorization", format!("Bearer {}", t.jwt))],
            "reports of acme",
        ),
        refused(
            "JWT with a tampered payload",
            |t| vec![h("Authorization", format!("Bearer {}", t.jwt_tampered))],
            401,
            Some("invalid_token"),
            TOKEN,
        ),
        refused(
            "JWT signed by a key not published",
            |t| vec![h("Authorization", format!("Bearer {}", t.jwt_foreign))],
            401,
            Some("invalid_token"),
            TOKEN,
        ),
        refused(
            "JWT with a tampered signature",
            |t| {
                vec![h(
                    "Authorization",
                    format!("Bearer {}", t.jwt_bad_signature),
                )]
            },
            401,
            Some("invalid_token"),
            TOKEN,
        ),
        refused(
            "JWT signed with HS256 keyed by the public key",
            |t| vec![h("Authorization", format!("Bearer {}", t.jwt_hs256))],
            401,
            Some("invalid_token"),
            TOKEN,
        ),
        refused(
            "JWT with alg none",
            |t| vec![h("Authorization", format!("Bearer {}", t.jwt_none))],
            401,
            Some("invalid_token"),
            TOKEN,
        ),
        refused(
            "JWT for another audience",
            |t| {
                vec![h(
                    "Authorization",
                    format!("Bearer {}", t.jwt_other_audience),
                )]
            },
            401,
            Some("invalid_token"),
            TOKEN,
        ),
        refused(
            "JWT not yet valid",
            |t| {
                vec![h(
                    "Authorization",
                    format!("Bearer {}", t.jwt_not_yet_valid),
                )]
            },
            401,
            Some("invalid_token"),
            TOKEN,
        ),
        refused(
            "expired JWT",
            |t| vec![h("Authorization", format!("Bearer {}", t.jwt_expired))],
            401,
            Some("invalid_token"),
            &["error=\"invalid_token\"", "the token expired"],
        ),
        refused(
            "JWT in X-API-KEY",
            |t| vec![h("X-API-KEY", &t.jwt)],
            400,
            Some("invalid_request"),
            &["error=\"invalid_request\"", "Authorization"],
        ),
        Case {
            name: "JWT whose credential was revoked after it was cached",
            headers: |t| vec![h("Authorization", format!("Bearer {}", t.jwt))],
            before: Before::RevokeAfterCaching,
            ..refused("", |_| vec![], 401, Some("invalid_token"), TOKEN)
        },
        Case {
            name: "JWT missing the route's scope",
            path: "/v1/whoami",
            profile: Profile {
                scopes: &[&["reports:write"]],
                ..OPTIONAL
            },
            headers: |t| vec![h("Authorization", format!("Bearer {}", t.jwt))],
            ..refused(
                "",
                |_| vec![],
                403,
                Some("insufficient_scope"),
                &["scope=\"reports:write\""],
            )
        },
        Case {
            name: "optional route with a bad token",
            path: "/v1/optional",
            headers: |t| vec![h("X-API-KEY", &t.unknown)],
            ..refused("", |_| vec![], 401, Some("invalid_token"), TOKEN)
        },
    ]
}

/// What a client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    status: u16,
    www_authenticate: Option<String>,
    retry_after: Option<String>,
    cache_control: Option<String>,
    content_type: Option<String>,
    ratelimit_policy: Option<String>,
    ratelimit: Option<String>,
    /// The body `error` field of a problem+json body, else the raw body.
    body: String,
}

fn seen(status: u16, header: impl Fn(&str) -> Option<String>, body: &[u8]) -> Seen {
    let content_type = header("content-type");
    let body = if content_type.as_deref() == Some("application/problem+json") {
        let problem: serde_json::Value = serde_json::from_slice(body).expect("a JSON problem body");
        assert_eq!(problem["status"], status, "problem status");
        for field in ["type", "title", "detail"] {
            assert!(problem[field].is_string(), "problem {field}");
        }
        format!("error={}", problem["error"])
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    Seen {
        status,
        www_authenticate: header("www-authenticate"),
        retry_after: header("retry-after"),
        cache_control: header("cache-control"),
        content_type: content_type.filter(|t| t.contains("problem")),
        ratelimit_policy: header("ratelimit-policy"),
        ratelimit: header("ratelimit"),
        body,
    }
}

/// What a handler reports of the credential headers it can read (an empty value counts as
/// none: Rocket 0.5 can only blank a request header, not remove it).
fn credential_headers<'a>(value: impl Fn(&str) -> Option<&'a str>) -> String {
    let present: Vec<&str> = ["x-api-key", "authorization"]
        .into_iter()
        .filter(|name| value(name).is_some_and(|v| !v.is_empty()))
        .collect();
    if present.is_empty() {
        "credential headers: none".to_owned()
    } else {
        format!("credential headers: {}", present.join(" "))
    }
}

mod axum_app {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use m2m_tower::{Authenticated, M2mAuthLayer};
    use tower::ServiceExt as _;

    async fn whoami(caller: Authenticated) -> String {
        caller.tenant().to_owned()
    }

    async fn reports(caller: Authenticated) -> String {
        format!("reports of {}", caller.tenant())
    }

    async fn optional(caller: Option<Authenticated>) -> String {
        caller.map_or_else(|| "anonymous".to_owned(), |c| c.tenant().to_owned())
    }

    async fn headers(_caller: Authenticated, headers: http::HeaderMap) -> String {
        credential_headers(|name| headers.get(name).and_then(|v| v.to_str().ok()))
    }

    pub(super) async fn send(
        verifier: &Verifier,
        profile: Profile,
        method: Method,
        path: &str,
        headers: &[(String, String)],
    ) -> Seen {
        let app = Router::new()
            .route("/v1/reports", get(reports))
            .route_layer(M2mAuthLayer::new(verifier.clone()).require_scopes(["reports:read"]))
            .route(
                "/v1/whoami",
                get(whoami).options(|| async { StatusCode::NO_CONTENT }),
            )
            .route("/v1/optional", get(optional))
            .route("/v1/headers", get(self::headers));
        let app = if profile.middleware {
            let mut layer = M2mAuthLayer::new(verifier.clone())
                .optional(profile.optional)
                .strip_credentials(profile.strip_credentials);
            for scopes in profile.scopes {
                layer = layer.require_scopes(scopes.iter().copied());
            }
            // Left at its default unless the case turns it on.
            if profile.cors_preflight {
                layer = layer.cors_preflight(true);
            }
            app.layer(layer)
        } else {
            app
        };
        let mut request = Request::builder().uri(path).method(match method {
            Method::Get => http::Method::GET,
            Method::Options => http::Method::OPTIONS,
        });
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        seen(
            status,
            |name| headers.get(name).map(|v| v.to_str().unwrap().to_owned()),
            &body,
        )
    }
}

mod actix_app {
    use super::*;
    use actix_web::middleware::Condition;
    use actix_web::{App, HttpRequest, HttpResponse, test, web};
    use m2m_actix::{Authenticated, M2mAuth};

    async fn whoami(caller: Authenticated) -> String {
        caller.tenant().to_owned()
    }

    async fn reports(caller: Authenticated) -> String {
        format!("reports of {}", caller.tenant())
    }

    async fn optional(caller: Option<Authenticated>) -> String {
        caller.map_or_else(|| "anonymous".to_owned(), |c| c.tenant().to_owned())
    }

    async fn headers(_caller: Authenticated, request: HttpRequest) -> String {
        credential_headers(|name| request.headers().get(name).and_then(|v| v.to_str().ok()))
    }

    pub(super) async fn send(
        verifier: &Verifier,
        profile: Profile,
        method: Method,
        path: &str,
        headers: &[(String, String)],
    ) -> Seen {
        let mut middleware = M2mAuth::new(verifier.clone())
            .optional(profile.optional)
            .strip_credentials(profile.strip_credentials);
        for scopes in profile.scopes {
            middleware = middleware.require_scopes(scopes.iter().copied());
        }
        // Left at its default unless the case turns it on.
        if profile.cors_preflight {
            middleware = middleware.cors_preflight(true);
        }
        let app = test::init_service(
            App::new()
                .wrap(Condition::new(profile.middleware, middleware))
                .service(web::resource("/v1/headers").route(web::get().to(self::headers)))
                .service(
                    web::resource("/v1/whoami")
                        .route(web::get().to(whoami))
                        .route(
                            web::method(actix_web::http::Method::OPTIONS)
                                .to(HttpResponse::NoContent),
                        ),
                )
                .service(web::resource("/v1/optional").route(web::get().to(optional)))
                .service(
                    web::resource("/v1/reports")
                        .wrap(M2mAuth::new(verifier.clone()).require_scopes(["reports:read"]))
                        .route(web::get().to(reports)),
                ),
        )
        .await;
        let mut request = match method {
            Method::Get => test::TestRequest::get(),
            Method::Options => {
                test::TestRequest::default().method(actix_web::http::Method::OPTIONS)
            }
        }
        .uri(path);
        for (name, value) in headers {
            request = request.append_header((name.as_str(), value.as_str()));
        }
        let response = test::call_service(&app, request.to_request()).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = test::read_body(response).await;
        seen(
            status,
            |name| headers.get(name).map(|v| v.to_str().unwrap().to_owned()),
            &body,
        )
    }
}

mod rocket_app {
    use super::*;
    use m2m_rocket::{Authenticated, M2mAuth, Scoped};
    use rocket::http::{Header, Status};
    use rocket::local::asynchronous::Client;

    m2m_rocket::scopes!(ReportsRead => "reports:read");

    #[rocket::get("/v1/whoami")]
    fn whoami(caller: Authenticated) -> String {
        caller.tenant().to_owned()
    }

    #[rocket::options("/v1/whoami")]
    fn preflight() -> Status {
        Status::NoContent
    }

    #[rocket::get("/v1/reports")]
    fn reports(caller: Scoped<ReportsRead>) -> String {
        format!("reports of {}", caller.tenant())
    }

    #[rocket::get("/v1/optional")]
    fn optional(caller: Option<Authenticated>) -> String {
        caller.map_or_else(|| "anonymous".to_owned(), |c| c.tenant().to_owned())
    }

    #[rocket::get("/v1/headers")]
    fn headers(_caller: Authenticated, seen: SeenHeaders) -> String {
        seen.0
    }

    /// What a handler reads of the credential headers.
    struct SeenHeaders(String);

    #[rocket::async_trait]
    impl<'r> rocket::request::FromRequest<'r> for SeenHeaders {
        type Error = ();

        async fn from_request(
            request: &'r rocket::Request<'_>,
        ) -> rocket::request::Outcome<Self, ()> {
            let seen = credential_headers(|name| request.headers().get_one(name));
            rocket::request::Outcome::Success(SeenHeaders(seen))
        }
    }

    pub(super) async fn send(
        verifier: &Verifier,
        profile: Profile,
        method: Method,
        path: &str,
        headers: &[(String, String)],
    ) -> Seen {
        let config = rocket::Config {
            log_level: rocket::config::LogLevel::Off,
            ..rocket::Config::debug_default()
        };
        let rocket = rocket::custom(config).mount(
            "/",
            rocket::routes![whoami, preflight, reports, optional, headers],
        );
        let rocket = if profile.middleware {
            let mut fairing = M2mAuth::new(verifier.clone())
                .optional(profile.optional)
                .strip_credentials(profile.strip_credentials);
            for scopes in profile.scopes {
                fairing = fairing.require_scopes(scopes.iter().copied());
            }
            // Left at its default unless the case turns it on.
            if profile.cors_preflight {
                fairing = fairing.cors_preflight(true);
            }
            rocket.attach(fairing)
        } else {
            // Without the fairing, the catchers render the guards' 500 as in the others.
            rocket.register("/", m2m_rocket::catchers())
        };
        let client = Client::untracked(rocket).await.unwrap();
        let mut request = match method {
            Method::Get => client.get(path.to_owned()),
            Method::Options => client.options(path.to_owned()),
        };
        for (name, value) in headers {
            request = request.header(Header::new(name.clone(), value.clone()));
        }
        let response = request.dispatch().await;
        let status = response.status().code;
        let header = |name: &str| response.headers().get_one(name).map(str::to_owned);
        let (www, retry, cache, content, policy, limit) = (
            header("www-authenticate"),
            header("retry-after"),
            header("cache-control"),
            header("content-type"),
            header("ratelimit-policy"),
            header("ratelimit"),
        );
        let body = response.into_bytes().await.unwrap_or_default();
        seen(
            status,
            |name| match name {
                "www-authenticate" => www.clone(),
                "retry-after" => retry.clone(),
                "cache-control" => cache.clone(),
                "content-type" => content.clone(),
                "ratelimit-policy" => policy.clone(),
                "ratelimit" => limit.clone(),
                _ => None,
            },
            &body,
        )
    }
}

#[derive(Clone, Copy, Debug)]
enum Adapter {
    Axum,
    Actix,
    Rocket,
}

async fn run(adapter: Adapter, case: &Case) -> Seen {
    let f = fixture().await;
    let headers = (case.headers)(&f.tokens);
    let send = |verifier: Verifier, headers: Vec<(String, String)>| async move {
        match adapter {
            Adapter::Axum => {
                axum_app::send(&verifier, case.profile, case.method, case.path, &headers).await
            }
            Adapter::Actix => {
                actix_app::send(&verifier, case.profile, case.method, case.path, &headers).await
            }
            Adapter::Rocket => {
                rocket_app::send(&verifier, case.profile, case.method, case.path, &headers).await
            }
        }
    };
    match case.before {
        Before::Nothing => {}
        Before::RevokeAfterCaching => {
            let first = send(f.verifier.clone(), headers.clone()).await;
            assert_eq!(
                first.status, 200,
                "{adapter:?} {}: before revocation",
                case.name
            );
            f.store
                .inner
                .revoke(&f.tokens.revocable.1, f.clock.now())
                .await
                .unwrap();
        }
        Before::StoreDown => f.store.down.store(true, Ordering::SeqCst),
        Before::Repeat(times) => {
            for n in 0..times {
                let first = send(f.verifier.clone(), headers.clone()).await;
                assert_eq!(first.status, 200, "{adapter:?} {}: request {n}", case.name);
            }
        }
    }
    send(f.verifier.clone(), headers).await
}

fn check(adapter: Adapter, case: &Case, seen: &Seen) {
    let name = format!("{adapter:?} / {}", case.name);
    assert_eq!(seen.status, case.status, "{name}: {seen:#?}");
    if let Some(body) = case.body {
        assert_eq!(seen.body, body, "{name}");
        assert_eq!(seen.www_authenticate, None, "{name}");
        return;
    }
    let error = case.error.map_or("null".to_owned(), |e| format!("\"{e}\""));
    assert_eq!(seen.body, format!("error={error}"), "{name}");
    assert_eq!(seen.cache_control.as_deref(), Some("no-store"), "{name}");
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/problem+json"),
        "{name}"
    );
    if case.status == 503 {
        assert_eq!(seen.retry_after.as_deref(), Some("5"), "{name}");
        assert_eq!(seen.www_authenticate, None, "{name}");
    } else if case.status == 429 {
        // Two per minute: the next request may pass 30 seconds after the second.
        assert_eq!(seen.retry_after.as_deref(), Some("30"), "{name}");
        assert_eq!(
            seen.ratelimit_policy.as_deref(),
            Some("\"token\";q=2;w=60"),
            "{name}"
        );
        assert_eq!(
            seen.ratelimit.as_deref(),
            Some("\"token\";r=0;t=30"),
            "{name}"
        );
        assert_eq!(seen.www_authenticate, None, "{name}");
    } else if case.status == 500 {
        assert_eq!(seen.www_authenticate, None, "{name}");
    } else {
        let challenge = seen
            .www_authenticate
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: no challenge"));
        for part in case.challenge {
            assert!(
                challenge.contains(part),
                "{name}: {challenge:?} lacks {part:?}"
            );
        }
        if case.error.is_none() {
            assert!(!challenge.contains("error="), "{name}: {challenge}");
        }
    }
}

#[test]
fn the_table_has_at_least_thirty_cases() {
    assert!(cases().len() >= 30, "{} cases", cases().len());
}

#[actix_web::test]
async fn every_case_answers_alike_in_all_three_adapters() {
    let mut failures = Vec::new();
    for case in cases() {
        let axum = run(Adapter::Axum, &case).await;
        let actix = run(Adapter::Actix, &case).await;
        let rocket = run(Adapter::Rocket, &case).await;
        for (adapter, seen) in [
            (Adapter::Axum, &axum),
            (Adapter::Actix, &actix),
            (Adapter::Rocket, &rocket),
        ] {
            if let Err(panic) = std::panic::catch_unwind(|| check(adapter, &case, seen)) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "check failed".to_owned());
                failures.push(message);
            }
        }
        if axum != actix || axum != rocket {
            failures.push(format!(
                "{}: adapters differ\n axum:   {axum:?}\n actix:  {actix:?}\n rocket: {rocket:?}",
                case.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
