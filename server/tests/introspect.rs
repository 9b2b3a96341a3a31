//! `POST /oauth/introspect`, `GET /v1/revocations` and `GET /v1/stats` of the token service on
//! 127.0.0.1, asked with reqwest and with the real `m2m-remote` client.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, StatusCode};
use m2m_core::{CacheSettings, MemoryStore, TokenLookup, TokenStore, Verifier};
use m2m_remote::{IntrospectionCredential, RemoteStore};
use m2m_server::{AppState, INTROSPECT_SCOPE, ServiceOptions};
use serde_json::{Value, json};
use tower::ServiceExt as _;

struct Service {
    base: String,
    admin: String,
    http: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn is_problem(&self, status: StatusCode) -> bool {
        self.status == status
            && self.headers["content-type"] == "application/problem+json"
            && self.body["status"] == status.as_u16()
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

/// A resource server's way of authenticating.
enum Caller<'a> {
    ApiKey(&'a str),
    Bearer(&'a str),
    Basic(&'a str, &'a str),
    Nobody,
}

impl Caller<'_> {
    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Caller::ApiKey(token) => request.header("x-api-key", *token),
            Caller::Bearer(token) => request.bearer_auth(token),
            Caller::Basic(id, secret) => request.basic_auth(id, Some(secret)),
            Caller::Nobody => request,
        }
    }
}

impl Service {
    async fn start() -> Self {
        let (base, admin, server) = support::memory_service().await;
        Self {
            base,
            admin,
            http: reqwest::Client::new(),
            _server: server,
        }
    }

    /// Issues a token through REST; the whole 201 body.
    async fn create(&self, tenant: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/v1/tenants/{tenant}/tokens", self.base))
            .header("x-api-key", &self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    async fn access_token(&self, tenant: &str, scopes: &[&str]) -> (String, String) {
        let created = self
            .create(tenant, json!({"expires": "30d", "scopes": scopes}))
            .await;
        (
            created["token"].as_str().unwrap().to_owned(),
            created["id"].as_str().unwrap().to_owned(),
        )
    }

    /// A client credential (id, secret, token id) and a bearer token exchanged from it.
    async fn client(&self, tenant: &str, scopes: &[&str]) -> (String, String, String, String) {
        let created = self
            .create(
                tenant,
                json!({"type": "client_credentials", "expires": "never", "scopes": scopes}),
            )
            .await;
        let id = created["client_id"].as_str().unwrap().to_owned();
        let secret = created["client_secret"].as_str().unwrap().to_owned();
        let exchanged: Value = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let bearer = exchanged["access_token"].as_str().unwrap().to_owned();
        let token_id = created["id"].as_str().unwrap().to_owned();
        (id, secret, bearer, token_id)
    }

    async fn revoke(&self, tenant: &str, id: &str) {
        let response = self
            .http
            .delete(format!("{}/v1/tenants/{tenant}/tokens/{id}", self.base))
            .header("x-api-key", &self.admin)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    async fn introspect(&self, caller: &Caller<'_>, token: &str) -> Reply {
        let request = self
            .http
            .post(format!("{}/oauth/introspect", self.base))
            .form(&[("token", token), ("token_type_hint", "access_token")]);
        reply(caller.apply(request).send().await.unwrap()).await
    }

    async fn stats(&self) -> Value {
        let response = self
            .http
            .get(format!("{}/v1/stats", self.base))
            .header("x-api-key", &self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

fn inactive(reply: &Reply) -> bool {
    reply.status == StatusCode::OK && reply.body == json!({"active": false})
}

#[tokio::test]
async fn active_tokens_are_described_as_rfc_7662_says() {
    let service = Service::start().await;
    let (caller, _) = service.access_token("m2m", &[INTROSPECT_SCOPE]).await;
    let created = service
        .create(
            "acme",
            json!({"expires": "7d", "scopes": ["reports:read", "reports:write"], "user_id": "alice"}),
        )
        .await;
    let token = created["token"].as_str().unwrap();

    let answer = service.introspect(&Caller::ApiKey(&caller), token).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["cache-control"], "no-store");
    let body = &answer.body;
    assert_eq!(body["active"], true);
    assert_eq!(body["jti"], created["id"]);
    assert_eq!(body["kind"], "access_token");
    assert!(
        body.get("token_type").is_none(),
        "RFC 6749 token types are not sent"
    );
    assert_eq!(body["tenant_id"], "acme");
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["scope"], "reports:read reports:write");
    assert!(body.get("client_id").is_none());
    let (iat, exp) = (body["iat"].as_i64().unwrap(), body["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 7 * 24 * 3600);

    let (client_id, client_secret, bearer, _) = service.client("acme", &["orders:read"]).await;
    let answer = service.introspect(&Caller::ApiKey(&caller), &bearer).await;
    assert_eq!(answer.body["active"], true);
    assert_eq!(answer.body["kind"], "bearer_token");
    assert_eq!(answer.body["client_id"], client_id.as_str());
    assert_eq!(answer.body["scope"], "orders:read");
    assert!(answer.body["exp"].is_i64());

    // Client ids and secrets are not tokens a resource server accepts.
    for other in [&client_id, &client_secret] {
        assert!(inactive(
            &service.introspect(&Caller::ApiKey(&caller), other).await
        ));
    }
    let never = service.create("acme", json!({"expires": "never"})).await;
    let answer = service
        .introspect(&Caller::ApiKey(&caller), never["token"].as_str().unwrap())
        .await;
    assert_eq!(answer.body["active"], true);
    assert!(answer.body.get("exp").is_none());
    assert_eq!(answer.body["scope"], "");
}

#[tokio::test]
async fn unusable_tokens_get_only_active_false() {
    let service = Service::start().await;
    let (caller, _) = service.access_token("m2m", &[INTROSPECT_SCOPE]).await;
    let caller = Caller::ApiKey(&caller);

    let (revoked, revoked_id) = service.access_token("acme", &[]).await;
    service.revoke("acme", &revoked_id).await;
    // A bearer token dies with its credential.
    let (_, _, bearer, credential_id) = service.client("acme", &[]).await;
    assert_eq!(
        service.introspect(&caller, &bearer).await.body["active"],
        true
    );
    service.revoke("acme", &credential_id).await;

    let (valid, _) = service.access_token("acme", &[]).await;
    let mut bad_checksum = valid.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'a' { 'b' } else { 'a' });
    let unknown = format!("m2m_at_{}", "A".repeat(60));

    for token in [
        revoked.as_str(),
        bearer.as_str(),
        bad_checksum.as_str(),
        unknown.as_str(),
        "",
        "not a token",
    ] {
        let answer = service.introspect(&caller, token).await;
        assert!(inactive(&answer), "{:?}", answer.body);
        assert_eq!(answer.headers["cache-control"], "no-store");
    }

    // Without the `token` field the request itself is wrong.
    let response = caller
        .apply(
            service
                .http
                .post(format!("{}/oauth/introspect", service.base)),
        )
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert!(reply(response).await.is_problem(StatusCode::BAD_REQUEST));
}

#[tokio::test]
async fn callers_authenticate_as_resource_servers() {
    let service = Service::start().await;
    let (target, _) = service.access_token("acme", &[]).await;
    let (api_key, api_key_id) = service.access_token("m2m", &[INTROSPECT_SCOPE]).await;
    let (client_id, client_secret, bearer, _) = service.client("m2m", &[INTROSPECT_SCOPE]).await;
    let (no_scope, _) = service.access_token("m2m", &["reports:read"]).await;
    let (other_id, other_secret, _, _) = service.client("m2m", &["reports:read"]).await;

    for caller in [
        Caller::ApiKey(&api_key),
        Caller::Bearer(&bearer),
        Caller::Basic(&client_id, &client_secret),
    ] {
        let answer = service.introspect(&caller, &target).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body["active"], true);
    }

    let nobody = service.introspect(&Caller::Nobody, &target).await;
    assert!(
        nobody.is_problem(StatusCode::UNAUTHORIZED),
        "{:?}",
        nobody.body
    );
    assert!(!nobody.body.to_string().contains(&target));

    let wrong_secret = service
        .introspect(&Caller::Basic(&client_id, &other_secret), &target)
        .await;
    assert!(wrong_secret.is_problem(StatusCode::UNAUTHORIZED));
    assert!(
        wrong_secret.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );

    // The target itself carries no introspection scope.
    let unknown_caller = service.introspect(&Caller::ApiKey(&target), &target).await;
    assert!(unknown_caller.is_problem(StatusCode::FORBIDDEN));
    let without_scope = service
        .introspect(&Caller::ApiKey(&no_scope), &target)
        .await;
    assert!(without_scope.is_problem(StatusCode::FORBIDDEN));
    let client_without_scope = service
        .introspect(&Caller::Basic(&other_id, &other_secret), &target)
        .await;
    assert!(client_without_scope.is_problem(StatusCode::FORBIDDEN));

    service.revoke("m2m", &api_key_id).await;
    let revoked_caller = service.introspect(&Caller::ApiKey(&api_key), &target).await;
    assert!(revoked_caller.is_problem(StatusCode::UNAUTHORIZED));

    let stream = service
        .http
        .get(format!("{}/v1/revocations", service.base))
        .send()
        .await
        .unwrap();
    assert!(reply(stream).await.is_problem(StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn forged_tokens_never_block_the_callers_valid_ones() {
    let service = Service::start().await;
    let (resource_server, _) = service.access_token("m2m", &[INTROSPECT_SCOPE]).await;
    // Forged tokens pass the format check (the checksum is public): here, made by the token
    // format itself and never stored.
    let forged = |_: u32| {
        m2m_core::TokenFormat::default()
            .generate(m2m_core::TokenKind::AccessToken)
            .expose_secret()
            .to_owned()
    };
    for n in 0..100 {
        let token = forged(n);
        assert!(
            m2m_core::TokenFormat::default().parse(&token).is_ok(),
            "{token} is well formed"
        );
        assert!(inactive(
            &service
                .introspect(&Caller::ApiKey(&resource_server), &token)
                .await
        ));
    }
    // A valid token issued now, so that no cache holds it: active.
    let (valid, _) = service.access_token("acme", &[]).await;
    let answer = service
        .introspect(&Caller::ApiKey(&resource_server), &valid)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["active"], true, "{:?}", answer.body);

    let stats = service.stats().await;
    assert_eq!(stats["inactive"], 100);
    assert_eq!(stats["active"], 1);
    assert!(stats.get("throttled").is_none());
}

#[tokio::test]
async fn stats_are_for_admins_only() {
    let service = Service::start().await;
    let (resource_server, _) = service.access_token("m2m", &[INTROSPECT_SCOPE]).await;
    let url = format!("{}/v1/stats", service.base);
    let anonymous = reply(service.http.get(&url).send().await.unwrap()).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let not_admin = reply(
        service
            .http
            .get(&url)
            .header("x-api-key", &resource_server)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(not_admin.status, StatusCode::FORBIDDEN);
    let stats = service.stats().await;
    assert_eq!(stats["introspections"], 0);
    assert_eq!(stats["event_streams"], 0);
}

/// Polls `done` until it holds; returns how long that took, for the report. The timeout guards
/// against a hung run; it is not a speed requirement.
async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    let happened = async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), happened)
        .await
        .unwrap_or_else(|_| panic!("{what}: never happened"));
    start.elapsed()
}

/// The real client: introspection on a miss, eviction by the event stream on revocation.
#[tokio::test]
async fn the_remote_store_follows_revocations_of_the_service() {
    let service = Service::start().await;
    let (client_id, client_secret, _, _) = service.client("m2m", &[INTROSPECT_SCOPE]).await;
    let credential = IntrospectionCredential::Basic {
        client_id,
        client_secret,
    };
    let store = RemoteStore::builder(service.base.as_str(), credential)
        .build()
        .unwrap();
    // A TTL no test outlives: a token the verifier refuses was evicted by the event stream.
    let verifier = Verifier::builder(store.clone())
        .cache(CacheSettings {
            ttl: Duration::from_secs(3600),
            ..CacheSettings::default()
        })
        .build();
    let (token, id) = service.access_token("acme", &["reports:read"]).await;
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_str(&token).unwrap());

    let principal = verifier.verify(&headers, &["reports:read"]).await.unwrap();
    assert_eq!(principal.tenant(), "acme");
    assert_eq!(principal.token_id().as_str(), id);
    wait_for("the event stream opens", async || {
        store.event_stream_connected() && service.stats().await["event_streams"] == 1
    })
    .await;
    // The stream opened with a reset (what was cached before it cannot be trusted), so the
    // token may be introspected once more; after that, it is served from the cache.
    verifier.verify(&headers, &[]).await.unwrap();
    let introspections = service.stats().await["introspections"].clone();
    assert!(
        introspections == 1 || introspections == 2,
        "{introspections}"
    );
    for _ in 0..10 {
        verifier.verify(&headers, &[]).await.unwrap();
    }
    assert_eq!(service.stats().await["introspections"], introspections);

    service.revoke("acme", &id).await;
    let delay = wait_for("the revocation reaches the cache", async || {
        verifier.verify(&headers, &[]).await.is_err()
    })
    .await;
    eprintln!("revocation delay through the event stream, in process: {delay:?}");
    let rejection = verifier.verify(&headers, &[]).await.unwrap_err();
    assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
    assert!(service.stats().await["revocation_events"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn rate_limits_set_at_creation_reach_remote_verifiers() {
    let service = Service::start().await;
    let (introspector, _) = service.access_token("m2m", &[INTROSPECT_SCOPE]).await;
    let limit = json!({"limit": 2, "window_seconds": 60});
    let created = service
        .create("acme", json!({"expires": "30d", "rate_limit": limit}))
        .await;
    assert_eq!(created["rate_limit"], limit);
    let token = created["token"].as_str().unwrap().to_owned();
    let answer = service
        .introspect(&Caller::ApiKey(&introspector), &token)
        .await;
    assert_eq!(answer.body["rate_limit"], limit);

    // A bearer token carries its credential's limit and id.
    let credential = service
        .create(
            "acme",
            json!({"type": "client_credentials", "expires": "never", "rate_limit": limit}),
        )
        .await;
    let exchanged: Value = service
        .http
        .post(format!("{}/oauth/token", service.base))
        .basic_auth(
            credential["client_id"].as_str().unwrap(),
            credential["client_secret"].as_str(),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = exchanged["access_token"].as_str().unwrap().to_owned();
    let answer = service
        .introspect(&Caller::ApiKey(&introspector), &bearer)
        .await;
    assert_eq!(answer.body["rate_limit"], limit);
    assert_eq!(answer.body["credential_id"], credential["id"]);

    // A resource server on the remote store enforces the limit it learnt.
    let store = RemoteStore::builder(
        service.base.as_str(),
        IntrospectionCredential::ApiKey(introspector.clone()),
    )
    .build()
    .unwrap();
    let verifier = Verifier::builder(store).build();
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_str(&token).unwrap());
    for _ in 0..2 {
        verifier.verify(&headers, &[]).await.unwrap();
    }
    let refused = verifier.verify(&headers, &[]).await.unwrap_err();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.retry_after(), Some(30));

    // A token without a limit has none on the wire, and is never refused for it.
    let (free, _) = service.access_token("acme", &[]).await;
    let answer = service
        .introspect(&Caller::ApiKey(&introspector), &free)
        .await;
    assert!(answer.body.get("rate_limit").is_none());
}

/// A memory store that counts the lookups of one digest, can be slowed down so that lookups
/// overlap, and can be switched off.
#[derive(Debug, Default)]
struct CountingStore {
    store: MemoryStore,
    watched: std::sync::Mutex<Option<m2m_core::TokenDigest>>,
    lookups: AtomicUsize,
    slow: AtomicBool,
    down: AtomicBool,
}

impl CountingStore {
    fn watch(&self, token: &str) {
        *self.watched.lock().unwrap() = Some(m2m_core::TokenDigest::of(token));
        self.lookups.store(0, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), m2m_core::StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(m2m_core::StoreError::Unavailable("switched off".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl TokenLookup for CountingStore {
    async fn find_token(
        &self,
        token: &str,
        digest: &m2m_core::TokenDigest,
    ) -> Result<Option<m2m_core::TokenRecord>, m2m_core::StoreError> {
        self.check()?;
        if *self.watched.lock().unwrap() == Some(*digest) {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            if self.slow.load(Ordering::SeqCst) {
                // Long enough for every concurrent request to miss the cache meanwhile.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        self.store.find_token(token, digest).await
    }
    async fn record_usage(
        &self,
        uses: &[(m2m_core::TokenId, time::OffsetDateTime)],
    ) -> Result<(), m2m_core::StoreError> {
        self.check()?;
        self.store.record_usage(uses).await
    }
    fn subscribe(&self, listener: Arc<dyn m2m_core::RevocationListener>) -> bool {
        self.store.subscribe(listener)
    }
}

#[async_trait::async_trait]
impl TokenStore for CountingStore {
    async fn find(
        &self,
        digest: &m2m_core::TokenDigest,
    ) -> Result<Option<m2m_core::TokenRecord>, m2m_core::StoreError> {
        self.check()?;
        self.store.find(digest).await
    }
    async fn get(
        &self,
        id: &m2m_core::TokenId,
    ) -> Result<Option<m2m_core::TokenRecord>, m2m_core::StoreError> {
        self.check()?;
        self.store.get(id).await
    }
    async fn find_client(
        &self,
        client_id: &str,
    ) -> Result<Option<m2m_core::TokenRecord>, m2m_core::StoreError> {
        self.check()?;
        self.store.find_client(client_id).await
    }
    async fn insert(&self, record: m2m_core::TokenRecord) -> Result<(), m2m_core::StoreError> {
        self.check()?;
        self.store.insert(record).await
    }
    async fn insert_derived(
        &self,
        record: m2m_core::TokenRecord,
    ) -> Result<bool, m2m_core::StoreError> {
        self.check()?;
        self.store.insert_derived(record).await
    }
    async fn list(&self, tenant: &str) -> Result<Vec<m2m_core::TokenRecord>, m2m_core::StoreError> {
        self.check()?;
        self.store.list(tenant).await
    }
    async fn list_page(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<m2m_core::TokenRecord>, m2m_core::StoreError> {
        self.check()?;
        self.store.list_page(tenant, offset, limit).await
    }
    async fn revoke(
        &self,
        id: &m2m_core::TokenId,
        at: time::OffsetDateTime,
    ) -> Result<bool, m2m_core::StoreError> {
        self.check()?;
        self.store.revoke(id, at).await
    }
    async fn list_user_page(
        &self,
        tenant: &str,
        user: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<m2m_core::TokenRecord>, m2m_core::StoreError> {
        self.check()?;
        self.store.list_user_page(tenant, user, offset, limit).await
    }
    async fn revoke_user(
        &self,
        tenant: &str,
        user: &str,
        at: time::OffsetDateTime,
    ) -> Result<usize, m2m_core::StoreError> {
        self.check()?;
        self.store.revoke_user(tenant, user, at).await
    }
    async fn load_settings(&self) -> Result<m2m_core::TypeSettings, m2m_core::StoreError> {
        self.check()?;
        self.store.load_settings().await
    }
    async fn save_token_type(
        &self,
        tenant: Option<&str>,
        token_type: m2m_core::TokenType,
    ) -> Result<(), m2m_core::StoreError> {
        self.check()?;
        self.store.save_token_type(tenant, token_type).await
    }
    async fn clear_token_type(&self, tenant: &str) -> Result<bool, m2m_core::StoreError> {
        self.check()?;
        self.store.clear_token_type(tenant).await
    }
    async fn load_portal_settings(&self) -> Result<m2m_core::PortalSettings, m2m_core::StoreError> {
        self.check()?;
        self.store.load_portal_settings().await
    }
    async fn save_portal_settings(
        &self,
        settings: &m2m_core::PortalSettings,
    ) -> Result<(), m2m_core::StoreError> {
        self.check()?;
        self.store.save_portal_settings(settings).await
    }
    async fn list_api_page(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<m2m_core::TokenRecord>, m2m_core::StoreError> {
        self.check()?;
        self.store.list_api_page(tenant, offset, limit).await
    }
    async fn insert_portal_session(
        &self,
        session: &m2m_core::PortalSession,
        code: &m2m_core::TokenDigest,
        code_expires_at: time::OffsetDateTime,
    ) -> Result<(), m2m_core::StoreError> {
        self.check()?;
        self.store
            .insert_portal_session(session, code, code_expires_at)
            .await
    }
    async fn redeem_portal_code(
        &self,
        code: &m2m_core::TokenDigest,
        secret: &m2m_core::TokenDigest,
        now: time::OffsetDateTime,
    ) -> Result<Option<m2m_core::PortalSession>, m2m_core::StoreError> {
        self.check()?;
        self.store.redeem_portal_code(code, secret, now).await
    }
    async fn find_portal_session(
        &self,
        secret: &m2m_core::TokenDigest,
    ) -> Result<Option<m2m_core::PortalSession>, m2m_core::StoreError> {
        self.check()?;
        self.store.find_portal_session(secret).await
    }
    async fn revoke_portal_session(
        &self,
        id: &str,
        at: time::OffsetDateTime,
    ) -> Result<bool, m2m_core::StoreError> {
        self.check()?;
        self.store.revoke_portal_session(id, at).await
    }
    async fn revoke_user_portal_sessions(
        &self,
        tenant: &str,
        user: &str,
        at: time::OffsetDateTime,
    ) -> Result<usize, m2m_core::StoreError> {
        self.check()?;
        self.store
            .revoke_user_portal_sessions(tenant, user, at)
            .await
    }
    async fn record_audit(&self, entry: &m2m_core::AuditEntry) -> Result<(), m2m_core::StoreError> {
        self.check()?;
        self.store.record_audit(entry).await
    }
    async fn list_audit(
        &self,
        tenant: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<m2m_core::AuditEntry>, m2m_core::StoreError> {
        self.check()?;
        self.store.list_audit(tenant, offset, limit).await
    }
    async fn save_bearer_format(
        &self,
        format: m2m_core::BearerFormat,
    ) -> Result<(), m2m_core::StoreError> {
        self.check()?;
        self.store.save_bearer_format(format).await
    }
    async fn revoked_credentials(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<Vec<m2m_core::RevocationEvent>, m2m_core::StoreError> {
        self.check()?;
        self.store.revoked_credentials(since).await
    }
    async fn insert_signing_key(
        &self,
        key: &m2m_core::SigningKey,
    ) -> Result<(), m2m_core::StoreError> {
        self.check()?;
        self.store.insert_signing_key(key).await
    }
    async fn retire_signing_keys(
        &self,
        kid: &str,
        at: time::OffsetDateTime,
    ) -> Result<u64, m2m_core::StoreError> {
        self.check()?;
        self.store.retire_signing_keys(kid, at).await
    }
    async fn signing_keys(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<Vec<m2m_core::SigningKey>, m2m_core::StoreError> {
        self.check()?;
        self.store.signing_keys(since).await
    }
}

/// The service's router over a counting store; its admin token.
async fn counted_service() -> (Arc<CountingStore>, axum::Router, String) {
    let store = Arc::new(CountingStore::default());
    let state = AppState::new(store.clone(), ServiceOptions::default())
        .await
        .unwrap();
    let admin = m2m_server::bootstrap_admin(&state).await.unwrap().unwrap();
    (
        store,
        m2m_server::app(state),
        admin.token.expose_secret().to_owned(),
    )
}

/// Issues a token with the scopes through the router; the whole 201 body.
async fn create_through(router: &axum::Router, admin: &str, tenant: &str, body: Value) -> Value {
    let request = http::Request::post(format!("/v1/tenants/{tenant}/tokens"))
        .header("x-api-key", admin)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn introspection(caller: &str, token: &str) -> http::Request<axum::body::Body> {
    http::Request::post("/oauth/introspect")
        .header("x-api-key", caller)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(format!("token={token}")))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_introspections_of_one_token_make_one_store_call() {
    let (store, router, admin) = counted_service().await;
    let caller = create_through(
        &router,
        &admin,
        "m2m",
        json!({"expires": "1d", "scopes": [INTROSPECT_SCOPE]}),
    )
    .await;
    let caller = caller["token"].as_str().unwrap().to_owned();
    let target = create_through(&router, &admin, "acme", json!({"expires": "1d"})).await;
    let target = target["token"].as_str().unwrap().to_owned();
    store.watch(&target);
    store.slow.store(true, Ordering::SeqCst);

    let requests: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(router.clone().oneshot(introspection(&caller, &target))))
        .collect();
    for request in requests {
        let response = request.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(answer["active"], true);
    }
    assert_eq!(store.lookups.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failing_store_is_a_503_never_inactive() {
    let (store, router, admin) = counted_service().await;
    let caller = create_through(
        &router,
        &admin,
        "m2m",
        json!({"expires": "1d", "scopes": [INTROSPECT_SCOPE]}),
    )
    .await;
    let caller = caller["token"].as_str().unwrap().to_owned();
    // Cache the caller's credential, then switch the store off.
    let warm = router
        .clone()
        .oneshot(introspection(&caller, "m2m_at_x"))
        .await
        .unwrap();
    assert_eq!(warm.status(), StatusCode::OK);
    let target = create_through(&router, &admin, "acme", json!({"expires": "1d"})).await;
    store.down.store(true, Ordering::SeqCst);

    let response = router
        .clone()
        .oneshot(introspection(&caller, target["token"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}
