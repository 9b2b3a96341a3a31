//! Portal sessions through the token service's router, on a real SQLite file and a manual
//! clock, driven with `tower::ServiceExt::oneshot`: the single-use link, the cookie's flags,
//! the link's and the session's lifetimes, revocation, the CSRF checks and signing out.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Method, Request, Response, StatusCode};
use m2m_core::{ManualClock, TokenStore};
use m2m_server::{AppState, ServiceOptions, app};
use m2m_sql::SqlStore;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt as _;

struct Portal {
    router: Router,
    clock: ManualClock,
    admin: String,
    _dir: TempDir,
}

async fn portal(public_url: Option<&str>) -> Portal {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let store: Arc<dyn TokenStore> = Arc::new(SqlStore::connect(&url).await.unwrap());
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    let options = ServiceOptions {
        public_url: public_url.map(str::to_owned),
        ..ServiceOptions::default()
    };
    let state = AppState::with_clock(store, options, clock.clone())
        .await
        .unwrap();
    let admin = m2m_server::bootstrap_admin(&state).await.unwrap().unwrap();
    Portal {
        router: app(state),
        clock,
        admin: admin.token.expose_secret().to_owned(),
        _dir: dir,
    }
}

async fn json_of(response: Response<Body>) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

impl Portal {
    async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.router.clone().oneshot(request).await.unwrap()
    }

    /// Creates a session as the vendor; the answer's body.
    async fn create(&self, body: Value, host: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::post("/v1/portal/sessions")
            .header("x-api-key", &self.admin)
            .header("content-type", "application/json");
        if let Some(host) = host {
            request = request.header("host", host);
        }
        let response = self
            .send(request.body(Body::from(body.to_string())).unwrap())
            .await;
        let status = response.status();
        if status == StatusCode::CREATED {
            assert_eq!(response.headers()["cache-control"], "no-store");
        }
        (status, json_of(response).await)
    }

    /// Opens a session's link.
    async fn enter(&self, url: &str) -> Response<Body> {
        let path = &url[url.find("/portal/enter").expect("a portal link")..];
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// A request with the session cookie and, when given, the CSRF token.
    async fn as_session(
        &self,
        method: Method,
        path: &str,
        cookie: &str,
        csrf: Option<&str>,
        body: Option<Value>,
    ) -> Response<Body> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("cookie", cookie);
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }
}

fn alice() -> Value {
    json!({"tenant": "acme", "user_id": "alice", "display_name": "Alice",
           "role": "admin", "permissions": ["reports:read"]})
}

/// The `name=value` part of a `Set-Cookie` header, and its attributes.
fn cookie_of(response: &Response<Body>) -> (String, Vec<String>) {
    let header = response.headers()["set-cookie"].to_str().unwrap();
    let mut parts = header.split(';').map(|part| part.trim().to_owned());
    let pair = parts.next().unwrap();
    (pair, parts.collect())
}

#[tokio::test]
async fn a_link_opens_once_and_sets_a_strict_http_only_cookie() {
    let portal = portal(None).await;
    let (status, created) = portal.create(alice(), Some("portal.test:8080")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let url = created["url"].as_str().unwrap();
    assert!(
        url.starts_with("http://portal.test:8080/portal/enter?code="),
        "{url}"
    );
    assert_eq!(created["role"], "admin");
    assert_eq!(created["permissions"], json!(["reports:read"]));

    let entered = portal.enter(url).await;
    assert_eq!(entered.status(), StatusCode::SEE_OTHER);
    assert_eq!(entered.headers()["location"], "/portal");
    assert_eq!(entered.headers()["cache-control"], "no-store");
    let (pair, attributes) = cookie_of(&entered);
    assert!(pair.starts_with("m2m_portal="), "{pair}");
    assert!(pair.len() > "m2m_portal=".len() + 30, "a long secret");
    let code = &url[url.find("code=").unwrap() + 5..];
    assert!(!pair.contains(code), "the cookie is not the code");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
        assert!(
            attributes.iter().any(|a| a == flag),
            "{flag} in {attributes:?}"
        );
    }
    assert!(
        !attributes.iter().any(|a| a == "Secure"),
        "not Secure over plain http: the browser would drop it"
    );

    // Single use: the second opening is refused, and sets nothing.
    let again = portal.enter(url).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert!(again.headers().get("set-cookie").is_none());
    assert_eq!(again.headers()["content-type"], "application/problem+json");

    // The cookie works; the code never does.
    let me = portal
        .as_session(Method::GET, "/v1/portal/me", &pair, None, None)
        .await;
    assert_eq!(me.status(), StatusCode::OK);
    let me = json_of(me).await;
    assert_eq!(me["tenant"], "acme");
    assert_eq!(me["display_name"], "Alice");
    assert_eq!(me["may_manage_api_tokens"], true);
    assert!(me["csrf_token"].as_str().unwrap().len() == 64);
    let with_code = portal
        .as_session(
            Method::GET,
            "/v1/portal/me",
            &format!("m2m_portal={code}"),
            None,
            None,
        )
        .await;
    assert_eq!(with_code.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn over_https_the_cookie_is_secure_and_links_use_the_public_url() {
    let portal = portal(Some("https://tokens.example.com/")).await;
    let (status, created) = portal.create(alice(), Some("ignored:1")).await;
    assert_eq!(status, StatusCode::CREATED);
    let url = created["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://tokens.example.com/portal/enter?code="),
        "{url}"
    );
    let entered = portal.enter(url).await;
    let (_, attributes) = cookie_of(&entered);
    assert!(attributes.iter().any(|a| a == "Secure"), "{attributes:?}");
}

#[tokio::test]
async fn links_and_sessions_end_and_can_be_revoked() {
    let portal = portal(Some("http://portal.test")).await;
    // A link opened too late.
    let (_, late) = portal.create(alice(), None).await;
    portal.clock.advance(time::Duration::minutes(5));
    let refused = portal.enter(late["url"].as_str().unwrap()).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // A session that ends after its lifetime.
    let mut short = alice();
    short["lifetime_minutes"] = json!(10);
    let (_, created) = portal.create(short, None).await;
    let entered = portal.enter(created["url"].as_str().unwrap()).await;
    let (cookie, attributes) = cookie_of(&entered);
    assert!(
        attributes.iter().any(|a| a == "Max-Age=600"),
        "{attributes:?}"
    );
    let me = |cookie: String| {
        let portal = &portal;
        async move {
            portal
                .as_session(Method::GET, "/v1/portal/me", &cookie, None, None)
                .await
                .status()
        }
    };
    assert_eq!(me(cookie.clone()).await, StatusCode::OK);
    portal.clock.advance(time::Duration::minutes(10));
    assert_eq!(me(cookie).await, StatusCode::UNAUTHORIZED);

    // A session the vendor revokes.
    let (_, created) = portal.create(alice(), None).await;
    let entered = portal.enter(created["url"].as_str().unwrap()).await;
    let (cookie, _) = cookie_of(&entered);
    assert_eq!(me(cookie.clone()).await, StatusCode::OK);
    let id = created["id"].as_str().unwrap();
    let revoke = |id: String| {
        let portal = &portal;
        async move {
            portal
                .send(
                    Request::delete(format!("/v1/portal/sessions/{id}"))
                        .header("x-api-key", &portal.admin)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .status()
        }
    };
    assert_eq!(revoke(id.to_owned()).await, StatusCode::NO_CONTENT);
    assert_eq!(me(cookie).await, StatusCode::UNAUTHORIZED);
    assert_eq!(revoke(id.to_owned()).await, StatusCode::NOT_FOUND);

    // Bad requests for sessions: the environment's own tenant, unknown roles, the
    // environment's scopes, too long a lifetime, the tenant-admin right as a permission.
    for (body, what) in [
        (
            json!({"tenant": "m2m", "user_id": "u", "display_name": "U", "role": "admin"}),
            "m2m",
        ),
        (
            json!({"tenant": "acme", "user_id": "u", "display_name": "U", "role": "owner"}),
            "role",
        ),
        (
            json!({"tenant": "acme", "user_id": "u", "display_name": "U", "role": "admin", "permissions": ["m2m:admin"]}),
            "scope",
        ),
        (
            json!({"tenant": "acme", "user_id": "u", "display_name": "U", "role": "admin", "permissions": ["m2m:tenant-admin"]}),
            "right",
        ),
        (
            json!({"tenant": "acme", "user_id": "u", "display_name": "U", "role": "admin", "lifetime_minutes": 100_000}),
            "lifetime",
        ),
        (
            json!({"tenant": "acme", "user_id": "u", "display_name": "", "role": "admin"}),
            "name",
        ),
    ] {
        let (status, body) = portal.create(body, None).await;
        assert!(status.is_client_error(), "{what}: {status} {body}");
        assert_eq!(body["status"], status.as_u16(), "{what}: problem+json");
    }
}

#[tokio::test]
async fn changes_need_the_csrf_token_and_the_own_origin_and_signing_out_ends_the_session() {
    let portal = portal(Some("http://portal.test")).await;
    let (_, created) = portal.create(alice(), None).await;
    let entered = portal.enter(created["url"].as_str().unwrap()).await;
    let (cookie, _) = cookie_of(&entered);
    let me = json_of(
        portal
            .as_session(Method::GET, "/v1/portal/me", &cookie, None, None)
            .await,
    )
    .await;
    let csrf = me["csrf_token"].as_str().unwrap().to_owned();
    let create = Some(json!({"expires": "7d", "user_id": "alice"}));

    for (token, what) in [(None, "no token"), (Some("0".repeat(64)), "a wrong token")] {
        let refused = portal
            .as_session(
                Method::POST,
                "/v1/tenants/acme/tokens",
                &cookie,
                token.as_deref(),
                create.clone(),
            )
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{what}");
    }
    // From another site's page, even with the token.
    let cross_site = Request::post("/v1/tenants/acme/tokens")
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("host", "portal.test")
        .header("origin", "https://attacker.example")
        .header("content-type", "application/json")
        .body(Body::from(create.clone().unwrap().to_string()))
        .unwrap();
    assert_eq!(
        portal.send(cross_site).await.status(),
        StatusCode::FORBIDDEN
    );
    let created = portal
        .as_session(
            Method::POST,
            "/v1/tenants/acme/tokens",
            &cookie,
            Some(&csrf),
            create,
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(json_of(created).await["created_by"], "Alice");

    // The cookie alone is no credential for another tenant, nor a credential header's
    // replacement on resource-server routes.
    let other = portal
        .as_session(
            Method::GET,
            "/v1/tenants/globex/tokens",
            &cookie,
            None,
            None,
        )
        .await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    let stats = portal
        .as_session(Method::GET, "/v1/stats", &cookie, None, None)
        .await;
    assert_eq!(stats.status(), StatusCode::UNAUTHORIZED);

    // Signing out needs the token too, then ends the session and clears the cookie.
    let refused = portal
        .as_session(Method::POST, "/portal/logout", &cookie, None, None)
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let out = portal
        .as_session(Method::POST, "/portal/logout", &cookie, Some(&csrf), None)
        .await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let (pair, attributes) = cookie_of(&out);
    assert_eq!(pair, "m2m_portal=");
    assert!(attributes.iter().any(|a| a == "Max-Age=0"));
    let after = portal
        .as_session(Method::GET, "/v1/portal/me", &cookie, None, None)
        .await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);

    // A cookie sent twice is a 400, never a guess.
    let twice = portal
        .as_session(
            Method::GET,
            "/v1/portal/me",
            "m2m_portal=a; m2m_portal=b",
            None,
            None,
        )
        .await;
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_portal_page_is_served_with_the_page_security_headers() {
    let portal = portal(None).await;
    for (path, content_type) in [
        ("/portal", "text/html; charset=utf-8"),
        ("/portal/assets/portal.js", "text/javascript; charset=utf-8"),
    ] {
        let response = portal
            .send(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-type"], content_type);
        assert!(
            response.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        assert_eq!(response.headers()["x-frame-options"], "DENY");
    }
    let page = portal
        .send(Request::get("/portal").body(Body::empty()).unwrap())
        .await;
    let html = String::from_utf8(
        axum::body::to_bytes(page.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert_eq!(html.matches("<script").count(), 2);
    assert!(html.contains(
        "<script src=\"/assets/common.js\" defer></script>\n<script src=\"/portal/assets/portal.js\" defer></script>"
    ));
}
