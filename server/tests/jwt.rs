//! The token service in `jwt` mode on 127.0.0.1: JWTs minted by the client-credentials grant
//! without a database write, verified offline against the service's JWKS, key rotation, the
//! RFC 8414 metadata, and revocation of the credential reaching a remote verifier.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, StatusCode};
use m2m_core::jwt::{ACCESS_TOKEN_TYP, JwtIssuer, JwtKeys};
use m2m_core::{MemoryStore, RejectionKind, TokenStore, Verifier};
use m2m_remote::{IntrospectionCredential, RemoteStore};
use m2m_server::{AppState, BearerFormat, INTROSPECT_SCOPE, ServiceOptions};
use m2m_sql::SqlStore;
use serde_json::{Value, json};

struct Service {
    base: String,
    admin: String,
    http: reqwest::Client,
    store: Arc<dyn TokenStore>,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

impl Service {
    async fn start() -> Self {
        Self::with_format(BearerFormat::Jwt).await
    }

    async fn with_format(bearer_format: BearerFormat) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
        let store: Arc<dyn TokenStore> = Arc::new(SqlStore::connect(&url).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let options = ServiceOptions {
            public_url: Some(base.clone()),
            bearer_format,
            jwt_audience: Some("https://api.example".to_owned()),
            ..ServiceOptions::default()
        };
        let state = AppState::new(store.clone(), options).await.unwrap();
        let admin = m2m_server::bootstrap_admin(&state).await.unwrap().unwrap();
        let router = m2m_server::app(state);
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            base,
            admin: admin.token.expose_secret().to_owned(),
            http: reqwest::Client::new(),
            store,
            _dir: dir,
            _server: server,
        }
    }

    async fn admin_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", &self.admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Revokes the token `id` of `tenant` through REST.
    async fn revoke(&self, tenant: &str, id: &Value) {
        let path = format!("/v1/tenants/{tenant}/tokens/{}", id.as_str().unwrap());
        let (status, body) = self.admin_json(reqwest::Method::DELETE, &path, None).await;
        assert!(status.is_success(), "{status}: {body}");
    }

    async fn credential(&self, body: Value) -> Value {
        let (status, created) = self
            .admin_json(reqwest::Method::POST, "/v1/tenants/acme/tokens", Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }

    async fn exchange(&self, credential: &Value) -> Value {
        let response = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .basic_auth(
                credential["client_id"].as_str().unwrap(),
                credential["client_secret"].as_str(),
            )
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        response.json().await.unwrap()
    }

    async fn jwks(&self) -> (JwtKeys, Value) {
        let response = self
            .http
            .get(format!("{}/.well-known/jwks.json", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "public, max-age=300");
        let text = response.text().await.unwrap();
        (
            JwtKeys::from_jwks(&text).unwrap(),
            serde_json::from_str(&text).unwrap(),
        )
    }

    fn verifier(&self, keys: JwtKeys) -> Verifier {
        Verifier::builder(MemoryStore::new())
            .jwt_issuer(
                JwtIssuer::new(self.base.as_str(), keys)
                    .audience("https://api.example")
                    .require_typ(ACCESS_TOKEN_TYP),
            )
            .build()
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

fn header_of(jwt: &str) -> Value {
    let header = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

#[tokio::test]
async fn jwts_are_minted_without_a_write_and_verified_offline() {
    let service = Service::start().await;
    let credential = service
        .credential(json!({"type": "client_credentials", "expires": "30d",
                           "scopes": ["reports:read", "reports:write"], "user_id": "bob"}))
        .await;
    let rows = service.store.list("acme").await.unwrap().len();

    let answer = service.exchange(&credential).await;
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 3600);
    let jwt = answer["access_token"].as_str().unwrap().to_owned();
    let header = header_of(&jwt);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());
    for _ in 0..5 {
        service.exchange(&credential).await;
    }
    assert_eq!(
        service.store.list("acme").await.unwrap().len(),
        rows,
        "nothing stored"
    );

    let (keys, published) = service.jwks().await;
    assert_eq!(published["keys"].as_array().unwrap().len(), 1);
    assert_eq!(published["keys"][0]["kid"], header["kid"]);
    assert!(
        published["keys"][0].get("d").is_none(),
        "never the private key"
    );
    let verifier = service.verifier(keys);
    let principal = verifier
        .verify(&bearer(&jwt), &["reports:write"])
        .await
        .unwrap();
    assert_eq!(principal.tenant(), "acme");
    assert_eq!(principal.user(), Some("bob"));
    assert_eq!(principal.client_id(), credential["client_id"].as_str());
    assert_eq!(
        principal.credential_id().map(|id| id.as_str()),
        credential["id"].as_str()
    );
    assert_eq!(principal.issuer(), Some(service.base.as_str()));

    // Another audience refuses it.
    let (keys, _) = service.jwks().await;
    let elsewhere = Verifier::builder(MemoryStore::new())
        .jwt_issuer(JwtIssuer::new(service.base.as_str(), keys).audience("https://other.example"))
        .build();
    assert_eq!(
        elsewhere
            .verify(&bearer(&jwt), &[])
            .await
            .unwrap_err()
            .kind(),
        RejectionKind::InvalidToken
    );

    let response = service
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            service.base
        ))
        .send()
        .await
        .unwrap();
    let metadata: Value = response.json().await.unwrap();
    assert_eq!(metadata["issuer"], service.base.as_str());
    assert_eq!(
        metadata["jwks_uri"],
        format!("{}/.well-known/jwks.json", service.base)
    );
    assert_eq!(
        metadata["token_endpoint"],
        format!("{}/oauth/token", service.base)
    );
    assert_eq!(
        metadata["grant_types_supported"],
        json!(["client_credentials"])
    );
}

#[tokio::test]
async fn rotation_signs_with_the_new_key_and_keeps_the_old_one_published() {
    let service = Service::start().await;
    let credential = service
        .credential(json!({"type": "client_credentials", "expires": "never"}))
        .await;
    let before = service.exchange(&credential).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, rotated) = service
        .admin_json(reqwest::Method::POST, "/v1/keys/rotate", None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let after = service.exchange(&credential).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(header_of(&after)["kid"], rotated["kid"]);
    assert_ne!(header_of(&before)["kid"], header_of(&after)["kid"]);

    let (keys, published) = service.jwks().await;
    assert_eq!(published["keys"].as_array().unwrap().len(), 2);
    let verifier = service.verifier(keys);
    for jwt in [&before, &after] {
        verifier.verify(&bearer(jwt), &[]).await.unwrap();
    }
    let (status, listed) = service
        .admin_json(reqwest::Method::GET, "/v1/keys", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items[0]["kid"], rotated["kid"]);
    assert!(items[0]["retired_at"].is_null());
    assert!(items[1]["retired_at"].is_string());

    // Only environment admins rotate.
    let tenant_admin = service
        .credential(json!({"expires": "1d", "scopes": ["m2m:tenant-admin"]}))
        .await;
    let response = service
        .http
        .post(format!("{}/v1/keys/rotate", service.base))
        .header("x-api-key", tenant_admin["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn revoking_the_credential_refuses_its_jwts_at_a_remote_verifier() {
    let service = Service::start().await;
    let (status, introspector) = service
        .admin_json(
            reqwest::Method::POST,
            "/v1/tenants/m2m/tokens",
            Some(json!({"expires": "1d", "scopes": [INTROSPECT_SCOPE]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let store = RemoteStore::builder(
        service.base.as_str(),
        IntrospectionCredential::ApiKey(introspector["token"].as_str().unwrap().to_owned()),
    )
    .build()
    .unwrap();
    let (keys, _) = service.jwks().await;
    let verifier = Verifier::builder(store.clone())
        .jwt_issuer(JwtIssuer::new(service.base.as_str(), keys).audience("https://api.example"))
        .build();
    let credential = service
        .credential(json!({"type": "client_credentials", "expires": "never"}))
        .await;
    let jwt = service.exchange(&credential).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    verifier.verify(&bearer(&jwt), &[]).await.unwrap();

    let started = Instant::now();
    while !store.event_stream_connected() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no event stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    service.revoke("acme", &credential["id"]).await;
    let started = Instant::now();
    while verifier.verify(&bearer(&jwt), &[]).await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the revocation never reached the verifier"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = verifier.verify(&bearer(&jwt), &[]).await.unwrap_err();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_follower_that_connects_after_the_revocation_still_refuses_the_jwts() {
    let service = Service::start().await;
    let (_, introspector) = service
        .admin_json(
            reqwest::Method::POST,
            "/v1/tenants/m2m/tokens",
            Some(json!({"expires": "1d", "scopes": [INTROSPECT_SCOPE]})),
        )
        .await;
    let credential = service
        .credential(json!({"type": "client_credentials", "expires": "never"}))
        .await;
    let jwt = service.exchange(&credential).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    service.revoke("acme", &credential["id"]).await;

    // A resource server that starts (or reconnects without a replayable position) only now:
    // its stream opens with a reset followed by the recent credential revocations.
    let store = RemoteStore::builder(
        service.base.as_str(),
        IntrospectionCredential::ApiKey(introspector["token"].as_str().unwrap().to_owned()),
    )
    .build()
    .unwrap();
    let verifier = Verifier::builder(store.clone())
        .jwt_issuer(
            JwtIssuer::new(service.base.as_str(), store.jwks_keys().unwrap())
                .audience("https://api.example"),
        )
        .build();
    let started = Instant::now();
    while !store.event_stream_connected() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no event stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    while verifier.verify(&bearer(&jwt), &[]).await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the replayed revocation never reached the new follower"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A JWT of a live credential passes through the same keys.
    let live = service
        .credential(json!({"type": "client_credentials", "expires": "never"}))
        .await;
    let fresh = service.exchange(&live).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    verifier.verify(&bearer(&fresh), &[]).await.unwrap();
}

#[tokio::test]
async fn the_environment_setting_switches_the_bearer_format() {
    let service = Service::with_format(BearerFormat::Opaque).await;
    let credential = service
        .credential(json!({"type": "client_credentials", "expires": "never"}))
        .await;
    let token = |answer: Value| answer["access_token"].as_str().unwrap().to_owned();
    assert!(token(service.exchange(&credential).await).starts_with("m2m_cc_"));
    let (_, settings) = service
        .admin_json(reqwest::Method::GET, "/v1/settings", None)
        .await;
    assert_eq!(settings["bearer_format"], "opaque");

    let (status, settings) = service
        .admin_json(
            reqwest::Method::PUT,
            "/v1/settings",
            Some(json!({"bearer_format": "jwt"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["bearer_format"], "jwt");
    let jwt = token(service.exchange(&credential).await);
    assert_eq!(header_of(&jwt)["typ"], "at+jwt");
    let (keys, _) = service.jwks().await;
    service
        .verifier(keys)
        .verify(&bearer(&jwt), &[])
        .await
        .unwrap();

    for bad in [
        json!({}),
        json!({"bearer_format": "paseto"}),
        json!({"bearer_format": "jwt", "audience": "x"}),
    ] {
        let (status, problem) = service
            .admin_json(reqwest::Method::PUT, "/v1/settings", Some(bad.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {problem}");
    }
    service
        .admin_json(
            reqwest::Method::PUT,
            "/v1/settings",
            Some(json!({"bearer_format": "opaque"})),
        )
        .await;
    assert!(token(service.exchange(&credential).await).starts_with("m2m_cc_"));
}

#[tokio::test]
async fn the_services_own_api_accepts_its_jwts_until_their_credential_is_revoked() {
    let service = Service::start().await;
    let (status, credential) = service
        .admin_json(
            reqwest::Method::POST,
            "/v1/tenants/m2m/tokens",
            Some(
                json!({"type": "client_credentials", "expires": "never", "scopes": ["m2m:admin"]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{credential}");
    let jwt = service.exchange(&credential).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let settings = |token: String| {
        let request = service
            .http
            .get(format!("{}/v1/settings", service.base))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(settings(jwt.clone()).await, 200);
    // A JWT of the same claims signed elsewhere is refused.
    let forged = {
        let mut parts: Vec<&str> = jwt.split('.').collect();
        parts[2] = "AAAA";
        parts.join(".")
    };
    assert_eq!(settings(forged).await, 401);
    service.revoke("m2m", &credential["id"]).await;
    assert_eq!(settings(jwt).await, 401);
}
