//! The token service's router on a real SQLite file, driven with `tower::ServiceExt::oneshot`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, Method, Request, StatusCode};
use m2m_core::{ManualClock, TokenStore};
use m2m_server::{AppState, ServiceOptions, app, bootstrap_admin};
use m2m_sql::SqlStore;
use serde_json::{Value, json};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};
use tower::ServiceExt as _;

struct Service {
    router: Router,
    state: AppState,
    admin: String,
    clock: ManualClock,
    _dir: TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn is_problem(&self, status: StatusCode) -> bool {
        self.status == status
            && self.headers["content-type"] == "application/problem+json"
            && self.body["status"] == status.as_u16()
            && self.body["type"].is_string()
            && self.body["title"].is_string()
            && self.body["detail"].is_string()
    }

    fn detail(&self) -> String {
        self.body["detail"].as_str().unwrap_or_default().to_owned()
    }
}

async fn service() -> Service {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let store: Arc<dyn TokenStore> = Arc::new(SqlStore::connect(&url).await.unwrap());
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let state = AppState::with_clock(store, ServiceOptions::default(), clock.clone())
        .await
        .unwrap();
    let admin = bootstrap_admin(&state).await.unwrap().unwrap();
    Service {
        router: app(state.clone()),
        state,
        admin: admin.token.expose_secret().to_owned(),
        clock,
        _dir: dir,
    }
}

impl Service {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A request with the admin token and an optional JSON body.
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, Some(&self.admin.clone()), body)
            .await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        api_key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = api_key {
            request = request.header("x-api-key", key);
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    /// A raw body with the admin token.
    async fn admin_raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("x-api-key", &self.admin);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        self.send(request.body(Body::from(body.to_owned())).unwrap())
            .await
    }

    async fn create(&self, tenant: &str, body: Value) -> Reply {
        self.admin(
            Method::POST,
            &format!("/v1/tenants/{tenant}/tokens"),
            Some(body),
        )
        .await
    }

    async fn list(&self, tenant: &str) -> Vec<Value> {
        let reply = self
            .admin(
                Method::GET,
                &format!("/v1/tenants/{tenant}/tokens?limit=200"),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body["items"].as_array().unwrap().clone()
    }

    async fn credential(&self, tenant: &str, body: Value) -> (String, String, String) {
        let mut body = body;
        body["type"] = "client_credentials".into();
        let reply = self.create(tenant, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        (
            reply.body["id"].as_str().unwrap().to_owned(),
            reply.body["client_id"].as_str().unwrap().to_owned(),
            reply.body["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    async fn oauth(&self, basic: Option<(&str, &str)>, form: &str) -> Reply {
        let mut request = Request::post("/oauth/token")
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            let encoded = STANDARD.encode(format!("{id}:{secret}"));
            request = request.header("authorization", format!("Basic {encoded}"));
        }
        self.send(request.body(Body::from(form.to_owned())).unwrap())
            .await
    }
}

fn assert_oauth_error(reply: &Reply, status: StatusCode, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["error"], error, "{}", reply.body);
    assert!(reply.body["error_description"].is_string());
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(reply.headers["content-type"], "application/json");
}

#[tokio::test]
async fn health_is_public() {
    let service = service().await;
    let reply = service.call(Method::GET, "/health", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn the_bootstrap_admin_token_is_issued_once() {
    let service = service().await;
    assert!(bootstrap_admin(&service.state).await.unwrap().is_none());
    let items = service.list("m2m").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["scopes"], json!(["m2m:admin"]));
    assert_eq!(items[0]["expires_in_text"], "Never");
    assert_eq!(items[0]["description"], "bootstrap admin token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_starting_at_once_bootstrap_one_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let mut states = Vec::new();
    for _ in 0..2 {
        let store: Arc<dyn TokenStore> = Arc::new(SqlStore::connect(&url).await.unwrap());
        states.push(
            AppState::new(store, ServiceOptions::default())
                .await
                .unwrap(),
        );
    }
    let (first, second) = tokio::join!(bootstrap_admin(&states[0]), bootstrap_admin(&states[1]));
    let printed = [first.unwrap(), second.unwrap()]
        .into_iter()
        .flatten()
        .count();
    assert_eq!(printed, 1, "exactly one instance shows a bootstrap token");
    let admins = states[0].store().list("m2m").await.unwrap();
    assert_eq!(admins.len(), 1);
}

#[tokio::test]
async fn admin_routes_need_a_token_with_the_admin_scope() {
    let service = service().await;
    let routes = [
        (Method::GET, "/v1/settings"),
        (Method::PUT, "/v1/settings"),
        (Method::GET, "/v1/tenants/acme/settings"),
        (Method::PUT, "/v1/tenants/acme/settings"),
        (Method::GET, "/v1/tenants/acme/tokens"),
        (Method::POST, "/v1/tenants/acme/tokens"),
        (Method::DELETE, "/v1/tenants/acme/tokens/tok_x"),
    ];
    let reply = service
        .create("acme", json!({"expires": "1d", "scopes": ["reports:read"]}))
        .await;
    let reader = reply.body["token"].as_str().unwrap().to_owned();
    for (method, path) in routes {
        let reply = service.call(method.clone(), path, None, None).await;
        assert!(
            reply.is_problem(StatusCode::UNAUTHORIZED),
            "{method} {path}"
        );
        let reply = service
            .call(method.clone(), path, Some(&reader), None)
            .await;
        assert!(reply.is_problem(StatusCode::FORBIDDEN), "{method} {path}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let service = service().await;
    let reply = service.call(Method::GET, "/v2/nothing", None, None).await;
    assert!(reply.is_problem(StatusCode::NOT_FOUND));
    let reply = service.call(Method::PATCH, "/health", None, None).await;
    assert!(reply.is_problem(StatusCode::METHOD_NOT_ALLOWED));
}

#[tokio::test]
async fn settings_switch_the_type_users_may_generate() {
    let service = service().await;
    let reply = service.admin(Method::GET, "/v1/settings", None).await;
    assert_eq!(
        reply.body,
        json!({"token_type": null, "enabled": ["access", "client_credentials"], "bearer_format": "opaque"})
    );

    // Nothing set: the body's type decides, access by default.
    let reply = service.create("acme", json!({"expires": "1d"})).await;
    assert_eq!(reply.body["type"], "access");
    let (_, client_id, _) = service.credential("acme", json!({"expires": "1d"})).await;
    assert!(client_id.starts_with("m2m_ci_"));

    let reply = service
        .admin(
            Method::PUT,
            "/v1/settings",
            Some(json!({"token_type": "client_credentials"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["token_type"], "client_credentials");

    let reply = service
        .admin(Method::GET, "/v1/tenants/acme/settings", None)
        .await;
    assert_eq!(
        reply.body,
        json!({"tenant": "acme", "token_type": "client_credentials", "inherited": true, "enabled": ["client_credentials"]})
    );
    let reply = service
        .admin(
            Method::PUT,
            "/v1/tenants/acme/settings",
            Some(json!({"token_type": "access"})),
        )
        .await;
    assert_eq!(
        reply.body,
        json!({"tenant": "acme", "token_type": "access", "inherited": false, "enabled": ["access"]})
    );

    // acme: access only. The other type is refused and nothing is stored.
    let before = service.list("acme").await.len();
    let reply = service
        .create(
            "acme",
            json!({"expires": "1d", "type": "client_credentials"}),
        )
        .await;
    assert!(reply.is_problem(StatusCode::CONFLICT), "{}", reply.body);
    assert!(reply.detail().contains("access"), "{}", reply.detail());
    assert_eq!(service.list("acme").await.len(), before);
    let reply = service.create("acme", json!({"expires": "1d"})).await;
    assert_eq!(reply.body["type"], "access");

    // globex follows the environment: client credentials by default, access refused.
    let reply = service.create("globex", json!({"expires": "1d"})).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["type"], "client_credentials");
    let reply = service
        .create("globex", json!({"expires": "1d", "type": "access"}))
        .await;
    assert!(reply.is_problem(StatusCode::CONFLICT));

    // The admin API does not lock itself out: the admin access token still works.
    let reply = service.admin(Method::GET, "/v1/settings", None).await;
    assert_eq!(reply.status, StatusCode::OK);

    // Clearing acme's own choice: it follows the environment (client credentials) again.
    let reply = service
        .admin(Method::DELETE, "/v1/tenants/acme/settings", None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = service
        .admin(Method::GET, "/v1/tenants/acme/settings", None)
        .await;
    assert_eq!(reply.body["inherited"], true);
    assert_eq!(reply.body["token_type"], "client_credentials");
    let reply = service.create("acme", json!({"expires": "1d"})).await;
    assert_eq!(reply.body["type"], "client_credentials");
    let reply = service
        .admin(Method::DELETE, "/v1/tenants/acme/settings", None)
        .await;
    assert!(reply.is_problem(StatusCode::NOT_FOUND), "{}", reply.body);
}

#[tokio::test]
async fn settings_reject_bad_input() {
    let service = service().await;
    for path in ["/v1/settings", "/v1/tenants/acme/settings"] {
        let reply = service
            .admin(Method::PUT, path, Some(json!({"token_type": "bogus"})))
            .await;
        assert!(reply.is_problem(StatusCode::UNPROCESSABLE_ENTITY), "{path}");
        assert!(
            reply.detail().contains("unknown variant"),
            "{}",
            reply.detail()
        );
        let reply = service
            .admin(
                Method::PUT,
                path,
                Some(json!({"token_type": "access", "extra": 1})),
            )
            .await;
        assert!(reply.is_problem(StatusCode::UNPROCESSABLE_ENTITY), "{path}");
        assert!(
            reply.detail().contains("unknown field"),
            "{}",
            reply.detail()
        );
        let reply = service
            .admin_raw(
                Method::PUT,
                path,
                Some("application/json"),
                "{\"token_type\":",
            )
            .await;
        assert!(reply.is_problem(StatusCode::BAD_REQUEST), "{path}");
        let reply = service
            .admin_raw(Method::PUT, path, None, "{\"token_type\":\"access\"}")
            .await;
        assert!(
            reply.is_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            "{path}"
        );
    }
    for tenant in ["bad%20name", "b%C3%A4d", &"a".repeat(65)] {
        let path = format!("/v1/tenants/{tenant}/settings");
        let reply = service.admin(Method::GET, &path, None).await;
        assert!(reply.is_problem(StatusCode::BAD_REQUEST), "{path}");
        assert!(reply.detail().contains("tenant"), "{}", reply.detail());
        let reply = service
            .admin(Method::PUT, &path, Some(json!({"token_type": "access"})))
            .await;
        assert!(reply.is_problem(StatusCode::BAD_REQUEST), "{path}");
    }
    // Nothing was saved.
    let reply = service.admin(Method::GET, "/v1/settings", None).await;
    assert_eq!(reply.body["token_type"], Value::Null);
}

#[tokio::test]
async fn an_access_token_is_shown_once_and_listed_without_secret() {
    let service = service().await;
    let reply = service
        .create(
            "acme",
            json!({"description": "nightly export", "expires": "7d", "scopes": ["reports:read", "reports:write"], "user_id": "alice"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        reply.headers["cache-control"], "no-store",
        "no cache keeps the secret"
    );
    let created = reply.body;
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("m2m_at_"));
    assert!(created["id"].as_str().unwrap().starts_with("tok_"));
    assert_eq!(created["type"], "access");
    assert!(token.starts_with(created["stub"].as_str().unwrap().trim_end_matches('…')));
    assert_eq!(created["expires_in"], 7 * 24 * 3600);
    assert_eq!(created["expires_in_text"], "in 7 days");
    assert_eq!(created["user_id"], "alice");
    let created_at = OffsetDateTime::parse(
        created["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires_at = OffsetDateTime::parse(
        created["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires_at - created_at, Duration::days(7));

    // One second later the listing still says 7 days (the nearest whole day); it never shows
    // the secret.
    service.clock.advance(Duration::seconds(1));
    let items = service.list("acme").await;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item["id"], created["id"]);
    assert_eq!(item["expires_in_text"], "in 7 days");
    assert_eq!(item["expires_in"], 7 * 24 * 3600 - 1);
    assert_eq!(item["description"], "nightly export");
    assert_eq!(item["scopes"], json!(["reports:read", "reports:write"]));
    assert_eq!(item["revoked_at"], Value::Null);
    assert_eq!(item["last_used_at"], Value::Null);
    let text = item.to_string();
    assert!(!text.contains(token));
    assert!(item.get("token").is_none() && item.get("digest").is_none());

    // Never: expires_in null.
    let reply = service.create("acme", json!({"expires": "never"})).await;
    assert_eq!(reply.body["expires_in"], Value::Null);
    assert_eq!(reply.body["expires_at"], Value::Null);
    assert_eq!(reply.body["expires_in_text"], "Never");
    let reply = service
        .create("acme", json!({"expires_in_minutes": 90}))
        .await;
    assert_eq!(reply.body["expires_in_text"], "in 2 hours");
    assert_eq!(reply.body["expires_in"], 90 * 60);
    let short_lived = reply.body["id"].clone();

    // Expired.
    service.clock.advance(Duration::minutes(91));
    let items = service.list("acme").await;
    let item = items.iter().find(|item| item["id"] == short_lived).unwrap();
    assert_eq!(item["expires_in_text"], "Expired");
    assert_eq!(item["expires_in"], 0);
}

#[tokio::test]
async fn a_client_credential_shows_its_id_and_secret_once() {
    let service = service().await;
    let reply = service
        .create(
            "acme",
            json!({"expires": "30d", "scopes": ["reports:read"], "type": "client_credentials"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let client_id = reply.body["client_id"].as_str().unwrap();
    let secret = reply.body["client_secret"].as_str().unwrap();
    assert!(client_id.starts_with("m2m_ci_"));
    assert!(secret.starts_with("m2m_cs_"));
    assert!(reply.body.get("token").is_none());
    assert_eq!(reply.body["type"], "client_credentials");
    assert_eq!(reply.body["kind"], "client_secret");
    assert_eq!(reply.body["expires_in_text"], "in 30 days");
    let items = service.list("acme").await;
    assert_eq!(items[0]["client_id"], client_id);
    assert_eq!(items[0]["kind"], "client_secret");
    assert!(!items[0].to_string().contains(secret));
}

#[tokio::test]
async fn creating_rejects_bad_input_and_stores_nothing() {
    let service = service().await;
    let long_scope = "s".repeat(65);
    let many_scopes: Vec<String> = (0..33).map(|i| format!("s{i}")).collect();
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"expires": "14d"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown expiry",
        ),
        (
            json!({"expires": "90m"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown expiry",
        ),
        (
            json!({"expires_in_minutes": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_in_minutes",
        ),
        (
            json!({"expires_in_minutes": -5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_in_minutes",
        ),
        (
            json!({"expires_in_minutes": 525_601}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_in_minutes",
        ),
        (
            json!({"expires_in_minutes": "5"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid type",
        ),
        (
            json!({"expires": "1d", "expires_in_minutes": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not both",
        ),
        (
            json!({"description": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expiry is missing",
        ),
        (
            json!({"expires": "1d", "rate_limit": {"limit": 0, "window_seconds": 60}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "a rate limit is 1 to 1000000 requests",
        ),
        (
            json!({"expires": "1d", "rate_limit": {"limit": 5, "window_seconds": 86_401}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "a rate limit is 1 to 1000000 requests",
        ),
        (
            json!({"expires": "1d", "rate_limit": {"limit": 5}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "window_seconds",
        ),
        (
            json!({"expires": "1d", "lifetime": 3}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field",
        ),
        (
            json!({"expires": "1d", "description": "d".repeat(257)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "description",
        ),
        (
            json!({"expires": "1d", "scopes": many_scopes}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "at most 32",
        ),
        (
            json!({"expires": "1d", "scopes": [long_scope]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "1 to 64",
        ),
        (
            json!({"expires": "1d", "scopes": ["reports read"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "whitespace",
        ),
        (
            json!({"expires": "1d", "scopes": [""]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "1 to 64",
        ),
        (
            json!({"expires": "1d", "scopes": "reports:read"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid type",
        ),
        (
            json!({"expires": "1d", "type": "bogus"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown type",
        ),
        (
            json!({"expires": "1d", "user_id": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "user id",
        ),
    ];
    for (body, status, needle) in cases {
        let reply = service.create("acme", body.clone()).await;
        assert!(
            reply.is_problem(status),
            "{body} -> {} {}",
            reply.status,
            reply.body
        );
        assert!(
            reply.detail().contains(needle),
            "{body} -> {}",
            reply.detail()
        );
    }
    // A description of exactly 256 characters is fine.
    let reply = service
        .create(
            "globex",
            json!({"expires": "1d", "description": "é".repeat(256)}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);

    let reply = service
        .admin_raw(
            Method::POST,
            "/v1/tenants/acme/tokens",
            Some("application/json"),
            "{\"expires\": ",
        )
        .await;
    assert!(reply.is_problem(StatusCode::BAD_REQUEST));
    let reply = service
        .admin_raw(
            Method::POST,
            "/v1/tenants/acme/tokens",
            Some("application/json"),
            "[]",
        )
        .await;
    assert!(reply.is_problem(StatusCode::UNPROCESSABLE_ENTITY));
    let reply = service
        .admin_raw(
            Method::POST,
            "/v1/tenants/acme/tokens",
            Some("text/plain"),
            "{\"expires\":\"1d\"}",
        )
        .await;
    assert!(reply.is_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    let reply = service
        .create("bad%20tenant", json!({"expires": "1d"}))
        .await;
    assert!(reply.is_problem(StatusCode::BAD_REQUEST));
    assert!(reply.detail().contains("tenant"));
    let reply = service
        .create(&"t".repeat(65), json!({"expires": "1d"}))
        .await;
    assert!(reply.is_problem(StatusCode::BAD_REQUEST));

    assert!(service.list("acme").await.is_empty());
}

#[tokio::test]
async fn listing_is_paginated() {
    let service = service().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        service.clock.advance(Duration::seconds(1));
        let reply = service
            .create(
                "acme",
                json!({"expires": "1d", "description": format!("token {i}")}),
            )
            .await;
        ids.push(reply.body["id"].clone());
    }
    let page = |query: &str| {
        let path = format!("/v1/tenants/acme/tokens{query}");
        let service = &service;
        async move { service.admin(Method::GET, &path, None).await }
    };
    let reply = page("?limit=2").await;
    let items: Vec<Value> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(items, ids[..2]);
    assert_eq!(reply.body["next_offset"], 2);
    let reply = page("?limit=2&offset=2").await;
    let items: Vec<Value> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(items, ids[2..4]);
    assert_eq!(reply.body["next_offset"], 4);
    let reply = page("?limit=2&offset=4").await;
    assert_eq!(reply.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(reply.body["next_offset"], Value::Null);
    let reply = page("").await;
    assert_eq!(reply.body["items"].as_array().unwrap().len(), 5);
    assert_eq!(reply.body["next_offset"], Value::Null);
    let reply = page("?offset=10").await;
    assert_eq!(reply.body["items"], json!([]));

    for (query, status) in [
        ("?limit=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("?limit=201", StatusCode::UNPROCESSABLE_ENTITY),
        ("?limit=abc", StatusCode::BAD_REQUEST),
        ("?offset=-1", StatusCode::BAD_REQUEST),
        ("?page=2", StatusCode::BAD_REQUEST),
    ] {
        let reply = page(query).await;
        assert!(reply.is_problem(status), "{query}: {}", reply.body);
    }
    let reply = page("?limit=200").await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = service
        .admin(Method::GET, "/v1/tenants/b%20d/tokens", None)
        .await;
    assert!(reply.is_problem(StatusCode::BAD_REQUEST));
}

#[tokio::test]
async fn listing_pages_after_a_cursor() {
    let service = service().await;
    // Seven tokens, in pairs created at the same instant: ties are ordered by id.
    for i in 0..7 {
        if i % 2 == 0 {
            service.clock.advance(Duration::seconds(1));
        }
        let reply = service
            .create(
                "acme",
                json!({"expires": "1d", "description": format!("token {i}")}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let page = |query: String| {
        let path = format!("/v1/tenants/acme/tokens{query}");
        let service = &service;
        async move { service.admin(Method::GET, &path, None).await }
    };
    let ids = |reply: &Reply| -> Vec<Value> {
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect()
    };
    let everything = ids(&page(String::new()).await);
    assert_eq!(everything.len(), 7);

    let mut seen = Vec::new();
    let mut query = "?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let reply = page(query.clone()).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
        seen.extend(ids(&reply));
        pages += 1;
        if pages > 1 {
            assert_eq!(reply.body["next_offset"], Value::Null, "{query}");
        }
        match reply.body["next_after"].as_str() {
            Some(cursor) => query = format!("?limit=3&after={cursor}&offset=0"),
            None => {
                assert_eq!(reply.body["next_after"], Value::Null);
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, everything);
    // The API tokens (what a member sees) page the same way.
    let reply = page("?limit=6&owner=tenant".to_owned()).await;
    let cursor = reply.body["next_after"].as_str().unwrap().to_owned();
    let reply = page(format!("?owner=tenant&after={cursor}")).await;
    assert_eq!(ids(&reply), everything[6..]);
    assert_eq!(reply.body["next_after"], Value::Null);

    let long = format!("?after=1.tok_{}", "a".repeat(200));
    for query in [
        "?after=",
        "?after=nope",
        "?after=01.tok_a",
        "?after=1.tok%20a",
        "?after=1.tok_a&offset=2",
        long.as_str(),
    ] {
        let reply = page(query.to_owned()).await;
        assert!(
            reply.is_problem(StatusCode::UNPROCESSABLE_ENTITY),
            "{query}: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn revoking_takes_effect_at_once_and_only_within_the_tenant() {
    let service = service().await;
    let reply = service
        .create(
            "ops",
            json!({"expires": "1d", "scopes": ["m2m:tenant-admin"]}),
        )
        .await;
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let ops_admin = reply.body["token"].as_str().unwrap().to_owned();
    let reply = service
        .call(
            Method::GET,
            "/v1/tenants/ops/tokens",
            Some(&ops_admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    let reply = service
        .admin(
            Method::DELETE,
            "/v1/tenants/ops/tokens/tok_doesnotexist",
            None,
        )
        .await;
    assert!(reply.is_problem(StatusCode::NOT_FOUND));
    let reply = service
        .admin(
            Method::DELETE,
            &format!("/v1/tenants/acme/tokens/{id}"),
            None,
        )
        .await;
    assert!(
        reply.is_problem(StatusCode::NOT_FOUND),
        "another tenant's id"
    );
    let reply = service
        .admin(
            Method::DELETE,
            &format!("/v1/tenants/b%20d/tokens/{id}"),
            None,
        )
        .await;
    assert!(reply.is_problem(StatusCode::BAD_REQUEST));
    assert_eq!(service.list("ops").await[0]["revoked_at"], Value::Null);

    let reply = service
        .admin(
            Method::DELETE,
            &format!("/v1/tenants/ops/tokens/{id}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(service.list("ops").await[0]["revoked_at"].is_string());
    let reply = service
        .call(
            Method::GET,
            "/v1/tenants/ops/tokens",
            Some(&ops_admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // Revoking again is harmless.
    let reply = service
        .admin(
            Method::DELETE,
            &format!("/v1/tenants/ops/tokens/{id}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
}

/// How long a test waits for what must happen before it calls the run hung: a guard against
/// hanging, not a speed requirement.
const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(60);

#[tokio::test]
async fn usage_is_recorded_off_the_hot_path_by_the_admin_verifier() {
    let service = service().await;
    let reply = service.admin(Method::GET, "/v1/settings", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(service.list("m2m").await[0]["last_used_at"], Value::Null);
    // Nothing records it by hand: the admin verifier's background task does.
    let recorded = async {
        while !service.list("m2m").await[0]["last_used_at"].is_string() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(HANG_GUARD, recorded)
        .await
        .expect("the admin token's use never reached last_used_at");
}

#[tokio::test]
async fn resource_servers_report_uses_to_v1_usage() {
    let service = service().await;
    let reply = service
        .create(
            "m2m",
            json!({"expires": "30d", "scopes": ["m2m:introspect"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let resource_server = reply.body["token"].as_str().unwrap().to_owned();
    let reply = service.create("acme", json!({"expires": "30d"})).await;
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let token = reply.body["token"].as_str().unwrap().to_owned();
    let used_at = service.state.now() - Duration::minutes(3);
    let report = json!({"uses": [
        {"token_id": id, "used_at": used_at.unix_timestamp()},
        {"token_id": "tok_unknown", "used_at": used_at.unix_timestamp()},
    ]});

    let reply = service
        .call(Method::POST, "/v1/usage", None, Some(report.clone()))
        .await;
    assert!(reply.is_problem(StatusCode::UNAUTHORIZED), "{}", reply.body);
    let reply = service
        .call(
            Method::POST,
            "/v1/usage",
            Some(&token),
            Some(report.clone()),
        )
        .await;
    assert!(reply.is_problem(StatusCode::FORBIDDEN), "{}", reply.body);
    assert_eq!(service.list("acme").await[0]["last_used_at"], Value::Null);

    let reply = service
        .call(
            Method::POST,
            "/v1/usage",
            Some(&resource_server),
            Some(report),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let listed = service.list("acme").await;
    let expected = used_at
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(listed[0]["last_used_at"], expected.as_str());

    // A time in the future counts as now.
    let future = service.state.now() + Duration::days(300);
    let report = json!({"uses": [{"token_id": id, "used_at": future.unix_timestamp()}]});
    let reply = service
        .call(
            Method::POST,
            "/v1/usage",
            Some(&resource_server),
            Some(report),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let last_used = service.list("acme").await[0]["last_used_at"].clone();
    let last_used = OffsetDateTime::parse(
        last_used.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(last_used <= service.state.now());

    // Bounds and shapes: each refusal is problem+json and records nothing.
    let entry = json!({"token_id": id, "used_at": 1});
    let too_many = json!({"uses": vec![entry; m2m_server::MAX_USAGE_BATCH + 1]});
    let reply = service
        .call(
            Method::POST,
            "/v1/usage",
            Some(&resource_server),
            Some(too_many),
        )
        .await;
    assert!(
        reply.is_problem(StatusCode::UNPROCESSABLE_ENTITY),
        "{}",
        reply.body
    );
    let padding = " ".repeat(m2m_server::MAX_USAGE_BODY_BYTES);
    let cases = [
        (
            Some("application/json"),
            format!("{{\"uses\": []{padding}}}"),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Some("text/plain"),
            "{\"uses\": []}".to_owned(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            None,
            "{\"uses\": []}".to_owned(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            Some("application/json"),
            "{\"uses\": [".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Some("application/json"),
            "{\"uses\": [{\"token_id\": 3}]}".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (content_type, body, status) in cases {
        let mut request = Request::post("/v1/usage").header("x-api-key", &resource_server);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let reply = service.send(request.body(Body::from(body)).unwrap()).await;
        assert!(
            reply.is_problem(status),
            "{status}: {} {}",
            reply.status,
            reply.body
        );
    }
    assert_eq!(
        service.list("acme").await[0]["last_used_at"],
        Value::String(
            last_used
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        )
    );
}

#[tokio::test]
async fn client_credentials_are_exchanged_by_basic_and_by_form() {
    let service = service().await;
    let (credential_id, client_id, secret) = service
        .credential(
            "acme",
            json!({"expires": "30d", "scopes": ["reports:read", "reports:write"], "user_id": "bob"}),
        )
        .await;

    let reply = service
        .oauth(Some((&client_id, &secret)), "grant_type=client_credentials")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(reply.headers["pragma"], "no-cache");
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 3600);
    assert_eq!(reply.body["scope"], "reports:read reports:write");
    assert!(reply.body.get("refresh_token").is_none());
    let bearer = reply.body["access_token"].as_str().unwrap().to_owned();
    assert!(bearer.starts_with("m2m_cc_"));

    let form = format!(
        "grant_type=client_credentials&client_id={client_id}&client_secret={secret}&scope=reports%3Aread"
    );
    let reply = service.oauth(None, &form).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["scope"], "reports:read");

    // The bearer tokens are listed under the credential's tenant, without secrets.
    let items = service.list("acme").await;
    let bearers: Vec<&Value> = items
        .iter()
        .filter(|i| i["kind"] == "bearer_token")
        .collect();
    assert_eq!(bearers.len(), 2);
    for item in &bearers {
        assert_eq!(item["type"], "client_credentials");
        assert_eq!(item["client_id"], client_id.as_str());
        assert_eq!(item["credential_id"], credential_id.as_str());
        assert_eq!(item["user_id"], "bob");
        assert_eq!(item["expires_in_text"], "in 1 hour");
        assert!(!item.to_string().contains(&bearer));
    }

    // The bearer token authenticates, but lacks m2m:admin.
    let request = Request::get("/v1/settings")
        .header("authorization", format!("Bearer {bearer}"))
        .body(Body::empty())
        .unwrap();
    let reply = service.send(request).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn revoking_a_credential_revokes_its_bearer_tokens() {
    let service = service().await;
    let (credential_id, client_id, secret) = service
        .credential(
            "acme",
            json!({"expires": "1d", "scopes": ["m2m:tenant-admin"]}),
        )
        .await;
    let reply = service
        .oauth(Some((&client_id, &secret)), "grant_type=client_credentials")
        .await;
    let bearer = reply.body["access_token"].as_str().unwrap().to_owned();
    let whoami = || {
        Request::get("/v1/tenants/acme/tokens")
            .header("authorization", format!("Bearer {bearer}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(service.send(whoami()).await.status, StatusCode::OK);

    let reply = service
        .admin(
            Method::DELETE,
            &format!("/v1/tenants/acme/tokens/{credential_id}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let items = service.list("acme").await;
    assert_eq!(items.len(), 2);
    assert!(
        items.iter().all(|item| item["revoked_at"].is_string()),
        "{items:?}"
    );
    assert_eq!(
        service.send(whoami()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let reply = service
        .oauth(Some((&client_id, &secret)), "grant_type=client_credentials")
        .await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn wrong_secret_and_unknown_client_get_the_same_answer() {
    let service = service().await;
    let (_, client_id, secret) = service.credential("acme", json!({"expires": "1d"})).await;
    let wrong = service
        .oauth(
            Some((&client_id, "m2m_cs_wrong")),
            "grant_type=client_credentials",
        )
        .await;
    assert_oauth_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(wrong.headers["www-authenticate"], "Basic realm=\"m2m\"");
    let unknown = service
        .oauth(
            Some(("m2m_ci_unknown", &secret)),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(
        unknown.headers["www-authenticate"],
        wrong.headers["www-authenticate"]
    );
    // The secret of one client does not open another, and a secret is never echoed.
    assert!(!wrong.body.to_string().contains(&secret));
    let by_form = service
        .oauth(
            None,
            &format!("grant_type=client_credentials&client_id={client_id}&client_secret=nope"),
        )
        .await;
    assert_eq!(by_form.body, wrong.body);
}

#[tokio::test]
async fn malformed_token_requests_follow_rfc_6749() {
    let service = service().await;
    let (_, client_id, secret) = service
        .credential("acme", json!({"expires": "1d", "scopes": ["reports:read"]}))
        .await;
    let basic = Some((client_id.as_str(), secret.as_str()));

    let reply = service
        .oauth(basic, "grant_type=password&username=a&password=b")
        .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    let reply = service.oauth(basic, "").await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let reply = service
        .oauth(
            basic,
            "grant_type=client_credentials&grant_type=client_credentials",
        )
        .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let reply = service
        .oauth(
            basic,
            &format!("grant_type=client_credentials&client_id={client_id}&client_secret={secret}"),
        )
        .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let reply = service
        .oauth(basic, "grant_type=client_credentials&scope=reports%3Awrite")
        .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_scope");
    let reply = service
        .oauth(
            basic,
            "grant_type=client_credentials&scope=reports%3Aread+reports%3Awrite",
        )
        .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_scope");
    let reply = service.oauth(None, "grant_type=client_credentials").await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    let reply = service
        .oauth(
            None,
            &format!("grant_type=client_credentials&client_id={client_id}"),
        )
        .await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");

    let request = Request::post("/oauth/token")
        .header("content-type", "application/json")
        .body(Body::from("{\"grant_type\":\"client_credentials\"}"))
        .unwrap();
    assert_oauth_error(
        &service.send(request).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    let request = Request::post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", "Basic not-base64!")
        .body(Body::from("grant_type=client_credentials"))
        .unwrap();
    assert_oauth_error(
        &service.send(request).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    let request = Request::post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Bearer {secret}"))
        .body(Body::from("grant_type=client_credentials"))
        .unwrap();
    assert_oauth_error(
        &service.send(request).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );

    // Nothing was issued by any of these.
    let items = service.list("acme").await;
    assert_eq!(items.len(), 1);
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded() {
    let service = service().await;
    let (_, client_id, secret) = service.credential("acme", json!({"expires": "1d"})).await;
    // Percent-encoding the (base62) id and secret is allowed by RFC 6749 §2.3.1.
    let encoded_id = client_id.replacen("m2m_", "m2m%5F", 1);
    let reply = service
        .oauth(
            Some((&encoded_id, &secret)),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn a_disabled_type_cannot_be_exchanged() {
    let service = service().await;
    let (_, client_id, secret) = service.credential("acme", json!({"expires": "1d"})).await;
    let reply = service
        .admin(
            Method::PUT,
            "/v1/tenants/acme/settings",
            Some(json!({"token_type": "access"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = service
        .oauth(Some((&client_id, &secret)), "grant_type=client_credentials")
        .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "unauthorized_client");

    let reply = service
        .admin(
            Method::PUT,
            "/v1/tenants/acme/settings",
            Some(json!({"token_type": "client_credentials"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = service
        .oauth(Some((&client_id, &secret)), "grant_type=client_credentials")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_bearer_token_never_outlives_its_credential() {
    let service = service().await;
    let (_, client_id, secret) = service
        .credential("acme", json!({"expires_in_minutes": 30}))
        .await;
    let basic = Some((client_id.as_str(), secret.as_str()));
    let reply = service.oauth(basic, "grant_type=client_credentials").await;
    assert_eq!(reply.body["expires_in"], 30 * 60, "{}", reply.body);

    service
        .clock
        .advance(Duration::minutes(20) + Duration::seconds(30));
    let reply = service.oauth(basic, "grant_type=client_credentials").await;
    assert_eq!(reply.body["expires_in"], 9 * 60, "{}", reply.body);

    // Under a minute left: refused like an expired credential.
    service.clock.advance(Duration::minutes(9));
    let reply = service.oauth(basic, "grant_type=client_credentials").await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");

    service.clock.advance(Duration::minutes(1));
    let expired = service.oauth(basic, "grant_type=client_credentials").await;
    assert_oauth_error(&expired, StatusCode::UNAUTHORIZED, "invalid_client");
    let unknown = service
        .oauth(
            Some(("m2m_ci_unknown", &secret)),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(expired.body, unknown.body);
}

#[tokio::test]
async fn the_bearer_lifetime_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let store: Arc<dyn TokenStore> = Arc::new(SqlStore::connect(&url).await.unwrap());
    let options = ServiceOptions {
        bearer_lifetime_minutes: 5,
        ..ServiceOptions::default()
    };
    let state = AppState::new(store, options).await.unwrap();
    let admin = bootstrap_admin(&state).await.unwrap().unwrap();
    let service = Service {
        router: app(state.clone()),
        state,
        admin: admin.token.expose_secret().to_owned(),
        clock: ManualClock::new(OffsetDateTime::now_utc()),
        _dir: dir,
    };
    let (_, client_id, secret) = service
        .credential("acme", json!({"expires": "never"}))
        .await;
    let reply = service
        .oauth(Some((&client_id, &secret)), "grant_type=client_credentials")
        .await;
    assert_eq!(reply.body["expires_in"], 300);
}

#[tokio::test]
async fn health_is_503_when_the_store_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let store = SqlStore::connect(&url).await.unwrap();
    let state = AppState::new(Arc::new(store.clone()), ServiceOptions::default())
        .await
        .unwrap();
    let service = Service {
        router: app(state.clone()),
        state,
        admin: String::new(),
        clock: ManualClock::new(OffsetDateTime::now_utc()),
        _dir: dir,
    };
    store.close().await;
    let reply = service.call(Method::GET, "/health", None, None).await;
    assert!(
        reply.is_problem(StatusCode::SERVICE_UNAVAILABLE),
        "{}",
        reply.body
    );
    assert!(reply.headers.contains_key("retry-after"));
    // A well-formed secret needs the store: 503, never invalid_client.
    let secret = m2m_core::TokenFormat::default().generate(m2m_core::TokenKind::ClientSecret);
    let reply = service
        .oauth(
            Some(("m2m_ci_x", secret.expose_secret())),
            "grant_type=client_credentials",
        )
        .await;
    assert!(
        reply.is_problem(StatusCode::SERVICE_UNAVAILABLE),
        "{}",
        reply.body
    );
    assert!(reply.headers.contains_key("retry-after"));
    // A malformed one is refused before the store is asked.
    let reply = service
        .oauth(
            Some(("m2m_ci_x", "m2m_cs_y")),
            "grant_type=client_credentials",
        )
        .await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn every_body_is_bounded_and_read_in_linear_time() {
    let service = service().await;
    let (_, client_id, secret) = service.credential("acme", json!({"expires": "7d"})).await;

    // 300,000 empty fields: refused by size before any field is compared.
    let huge = "&".repeat(300_000);
    let reply = service.oauth(Some((&client_id, &secret)), &huge).await;
    assert!(
        reply.is_problem(StatusCode::PAYLOAD_TOO_LARGE),
        "{}",
        reply.body
    );
    // Within the limit, a form of many repeated names is one linear pass: the first repeat is
    // named (cut short), and nobody is authenticated.
    let repeated = "x=1&".repeat(m2m_server::MAX_OAUTH_BODY_BYTES / 4 - 1);
    let reply = service.oauth(Some((&client_id, &secret)), &repeated).await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let long_name = format!("{}=1&{}=2", "n".repeat(1000), "n".repeat(1000));
    let reply = service.oauth(Some((&client_id, &secret)), &long_name).await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(reply.body["error_description"].as_str().unwrap().len() < 200);
    // A long scope list with repeats is granted once per scope.
    let scopes = vec!["reports:read"; 500].join(" ");
    let (_, reader_id, reader_secret) = service
        .credential("acme", json!({"expires": "7d", "scopes": ["reports:read"]}))
        .await;
    let reply = service
        .oauth(
            Some((&reader_id, &reader_secret)),
            &format!(
                "grant_type=client_credentials&scope={}",
                scopes.replace(' ', "+")
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["scope"], "reports:read");

    // Introspection and the admin JSON API have their own bounds.
    let resource_server = service
        .create(
            "m2m",
            json!({"expires": "7d", "scopes": [m2m_server::INTROSPECT_SCOPE]}),
        )
        .await;
    let resource_server = resource_server.body["token"].as_str().unwrap().to_owned();
    let introspect = Request::post("/oauth/introspect")
        .header("x-api-key", &resource_server)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "token={}",
            "a".repeat(m2m_server::MAX_OAUTH_BODY_BYTES)
        )))
        .unwrap();
    let reply = service.send(introspect).await;
    assert!(
        reply.is_problem(StatusCode::PAYLOAD_TOO_LARGE),
        "{}",
        reply.body
    );
    let before = service.list("acme").await.len();
    let description = "d".repeat(m2m_server::MAX_ADMIN_BODY_BYTES);
    let reply = service
        .create("acme", json!({"expires": "7d", "description": description}))
        .await;
    assert!(
        reply.is_problem(StatusCode::PAYLOAD_TOO_LARGE),
        "{}",
        reply.body
    );
    assert_eq!(
        service.list("acme").await.len(),
        before,
        "nothing more was stored"
    );
}

#[tokio::test]
async fn guessing_a_secret_is_refused_after_a_burst_and_never_for_long() {
    let service = service().await;
    let (_, client_id, secret) = service.credential("acme", json!({"expires": "7d"})).await;
    let (_, other_id, other_secret) = service.credential("acme", json!({"expires": "7d"})).await;
    let form = "grant_type=client_credentials";
    // The burst of failures is answered as failures.
    for _ in 0..=m2m_server::CLIENT_FAILURE_BURST {
        let reply = service
            .oauth(Some((&client_id, "m2m_cs_wrong")), form)
            .await;
        assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    }
    // Past it, even the right secret waits, and is told how long.
    let refused = service.oauth(Some((&client_id, &secret)), form).await;
    assert!(
        refused.is_problem(StatusCode::TOO_MANY_REQUESTS),
        "{}",
        refused.body
    );
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=m2m_server::CLIENT_FAILURE_PERIOD.as_secs()).contains(&wait),
        "{wait}"
    );
    // Another client is not affected.
    let reply = service.oauth(Some((&other_id, &other_secret)), form).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // After the wait, the right secret works again.
    tokio::time::sleep(std::time::Duration::from_millis(wait * 1000 + 100)).await;
    let reply = service.oauth(Some((&client_id, &secret)), form).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}
