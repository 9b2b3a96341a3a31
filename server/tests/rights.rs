//! Rights on every route of the token service, on a real SQLite file, driven with
//! `tower::ServiceExt::oneshot`: each route × {environment admin, tenant admin of the tenant,
//! tenant admin of another tenant, a token of the tenant without rights, a token of another
//! tenant claiming `m2m:admin`, portal sessions of an admin and a member of the tenant and of
//! an admin of another tenant, no credentials}, and the escalation attempts.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode};
use m2m_core::{Expiry, NewToken, TokenKind, TokenStore};
use m2m_server::{ADMIN_SCOPE, ADMIN_TENANT, AppState, INTROSPECT_SCOPE, ServiceOptions, app};
use m2m_sql::SqlStore;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt as _;

/// The callers of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    EnvironmentAdmin,
    /// `m2m:tenant-admin` of `acme`.
    AcmeAdmin,
    /// `m2m:tenant-admin` of `globex`.
    GlobexAdmin,
    /// A token of `acme` with an application scope only.
    AcmeMember,
    /// A token of `acme` that carries `m2m:admin` and `m2m:introspect` (as an older version
    /// could issue): the environment scopes count only in the reserved tenant.
    AcmeImpostor,
    /// A portal session of `acme`'s admin `alice`, permission `reports:read`.
    AcmeAdminSession,
    /// A portal session of `acme`'s member `bob`, permission `reports:read`.
    AcmeMemberSession,
    /// A portal session of `globex`'s admin `carol`.
    GlobexAdminSession,
    Nobody,
}

const EVERYONE: [Who; 9] = [
    Who::EnvironmentAdmin,
    Who::AcmeAdmin,
    Who::GlobexAdmin,
    Who::AcmeMember,
    Who::AcmeImpostor,
    Who::AcmeAdminSession,
    Who::AcmeMemberSession,
    Who::GlobexAdminSession,
    Who::Nobody,
];

/// A portal session as the browser holds it: the cookie and the CSRF token the page reads.
struct Session {
    cookie: String,
    csrf: String,
}

struct Service {
    router: Router,
    store: Arc<dyn TokenStore>,
    state: AppState,
    tokens: Vec<(Who, String)>,
    sessions: Vec<(Who, Session)>,
    _dir: TempDir,
}

async fn issue(state: &AppState, request: NewToken) -> (String, String) {
    let issued = state
        .store()
        .issue(state.format(), request, state.now())
        .await
        .unwrap();
    (
        issued.token.expose_secret().to_owned(),
        issued.record.id.to_string(),
    )
}

async fn service() -> Service {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let store: Arc<dyn TokenStore> = Arc::new(SqlStore::connect(&url).await.unwrap());
    let options = ServiceOptions {
        public_url: Some("http://m2m.test".to_owned()),
        ..ServiceOptions::default()
    };
    let state = AppState::new(store.clone(), options).await.unwrap();
    let admin = m2m_server::bootstrap_admin(&state).await.unwrap().unwrap();
    let access = |tenant: &str, scopes: &[&str]| {
        let mut request = NewToken::new(TokenKind::AccessToken, tenant, Expiry::OneDay);
        for scope in scopes {
            request = request.scope(*scope);
        }
        request
    };
    let mut tokens = vec![(
        Who::EnvironmentAdmin,
        admin.token.expose_secret().to_owned(),
    )];
    for (who, tenant, scopes) in [
        (
            Who::AcmeAdmin,
            "acme",
            &["m2m:tenant-admin", "reports:read"][..],
        ),
        (Who::GlobexAdmin, "globex", &["m2m:tenant-admin"][..]),
        (Who::AcmeMember, "acme", &["reports:read"][..]),
        (
            Who::AcmeImpostor,
            "acme",
            &[ADMIN_SCOPE, INTROSPECT_SCOPE][..],
        ),
    ] {
        // Issued through the store, which is how a token from before the rights model looks.
        let (token, _) = issue(&state, access(tenant, scopes)).await;
        tokens.push((who, token));
    }
    let mut service = Service {
        router: app(state.clone()),
        store,
        state,
        tokens,
        sessions: Vec::new(),
        _dir: dir,
    };
    for (who, tenant, user, role) in [
        (Who::AcmeAdminSession, "acme", "alice", "admin"),
        (Who::AcmeMemberSession, "acme", "bob", "member"),
        (Who::GlobexAdminSession, "globex", "carol", "admin"),
    ] {
        let session = service.open_session(tenant, user, role).await;
        service.sessions.push((who, session));
    }
    service
}

struct Reply {
    status: StatusCode,
    body: Value,
    problem: bool,
}

impl Service {
    fn token(&self, who: Who) -> Option<&str> {
        self.tokens
            .iter()
            .find(|(w, _)| *w == who)
            .map(|(_, token)| token.as_str())
    }

    /// Creates a portal session (as the vendor would), opens its link and reads its CSRF
    /// token (as the page would).
    async fn open_session(&self, tenant: &str, user: &str, role: &str) -> Session {
        let created = self
            .call(
                Who::EnvironmentAdmin,
                Method::POST,
                "/v1/portal/sessions",
                Some(
                    json!({"tenant": tenant, "user_id": user, "display_name": user,
                            "role": role, "permissions": ["reports:read"]}),
                ),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let url = created.body["url"].as_str().unwrap();
        let path = &url[url.find("/portal/enter").unwrap()..];
        let entered = self
            .router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(entered.status(), StatusCode::SEE_OTHER);
        let set_cookie = entered.headers()["set-cookie"].to_str().unwrap();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let me = self
            .router
            .clone()
            .oneshot(
                Request::get("/v1/portal/me")
                    .header("cookie", &cookie)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);
        let me: Value = serde_json::from_slice(
            &axum::body::to_bytes(me.into_body(), usize::MAX)
                .await
                .unwrap(),
        )
        .unwrap();
        Session {
            cookie,
            csrf: me["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    async fn call(&self, who: Who, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = self.token(who) {
            request = request.header("x-api-key", token);
        }
        if let Some((_, session)) = self.sessions.iter().find(|(w, _)| *w == who) {
            request = request
                .header("cookie", &session.cookie)
                .header("x-csrf-token", &session.csrf);
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let problem = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/problem+json");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            problem,
        }
    }

    /// A fresh token of `tenant`, for the revoke routes.
    async fn victim(&self, tenant: &str) -> String {
        issue(
            &self.state,
            NewToken::new(TokenKind::AccessToken, tenant, Expiry::OneDay),
        )
        .await
        .1
    }
}

/// Who gets what on one route; `allowed` get `ok`, the others 403, nobody 401 (and a portal
/// session 401 where the route does not take sessions).
async fn check_route(
    service: &Service,
    method: Method,
    path: &str,
    body: Option<Value>,
    allowed: &[Who],
    ok: StatusCode,
) {
    for who in EVERYONE {
        let path = path.replace("{victim}", &service.victim("acme").await);
        let reply = service.call(who, method.clone(), &path, body.clone()).await;
        let is_session = matches!(
            who,
            Who::AcmeAdminSession | Who::AcmeMemberSession | Who::GlobexAdminSession
        );
        let expected = if allowed.contains(&who) {
            ok
        } else if who == Who::Nobody || (is_session && path == "/v1/stats") {
            // The statistics belong to the resource-server routes, where a portal cookie is no
            // credential at all.
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(
            reply.status, expected,
            "{method} {path} as {who:?}: {}",
            reply.body
        );
        if expected.is_client_error() {
            assert!(reply.problem, "{method} {path} as {who:?}: problem+json");
            assert_eq!(reply.body["status"], expected.as_u16());
        }
    }
}

#[tokio::test]
async fn every_route_checks_the_callers_rights() {
    use Who::*;
    let service = service().await;
    let environment = [EnvironmentAdmin];
    let acme_admins = [EnvironmentAdmin, AcmeAdmin, AcmeAdminSession];
    let acme_users = [
        EnvironmentAdmin,
        AcmeAdmin,
        AcmeAdminSession,
        AcmeMemberSession,
    ];
    let sessions = [AcmeAdminSession, AcmeMemberSession, GlobexAdminSession];
    let token_type = Some(json!({"token_type": "access"}));
    // Method, path, body, who may, and what they get.
    type Case<'a> = (Method, &'a str, Option<Value>, &'a [Who], StatusCode);
    let cases: Vec<Case<'_>> = vec![
        (
            Method::GET,
            "/v1/settings",
            None,
            &environment,
            StatusCode::OK,
        ),
        (
            Method::PUT,
            "/v1/settings",
            token_type.clone(),
            &environment,
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/v1/tenants/acme/settings",
            None,
            &acme_admins,
            StatusCode::OK,
        ),
        (
            Method::PUT,
            "/v1/tenants/acme/settings",
            token_type,
            &environment,
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            "/v1/tenants/acme/settings",
            None,
            &environment,
            StatusCode::NO_CONTENT,
        ),
        (
            Method::GET,
            "/v1/tenants/acme/tokens",
            None,
            &acme_users,
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/v1/portal/me",
            None,
            &sessions,
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/v1/audit?tenant=acme",
            None,
            &acme_admins,
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/v1/portal/sessions",
            Some(
                json!({"tenant": "acme", "user_id": "dave", "display_name": "Dave",
                        "role": "member"}),
            ),
            &environment,
            StatusCode::CREATED,
        ),
        (
            Method::POST,
            "/v1/tenants/acme/tokens",
            Some(json!({"expires": "1d"})),
            &acme_admins,
            StatusCode::CREATED,
        ),
        (
            Method::DELETE,
            "/v1/tenants/acme/tokens/{victim}",
            None,
            &acme_admins,
            StatusCode::NO_CONTENT,
        ),
        (Method::GET, "/v1/stats", None, &environment, StatusCode::OK),
        (
            Method::GET,
            "/v1/settings/portal",
            None,
            &environment,
            StatusCode::OK,
        ),
        (
            Method::PUT,
            "/v1/settings/portal",
            Some(json!({"grantable_scopes": [{"name": "reports:read", "description": "Read"}]})),
            &environment,
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            "/v1/tenants/acme/users/dave",
            None,
            &acme_admins,
            StatusCode::OK,
        ),
    ];
    for (method, path, body, allowed, ok) in cases {
        check_route(&service, method, path, body, allowed, ok).await;
    }
}

#[tokio::test]
async fn another_tenant_learns_nothing_of_what_exists() {
    let service = service().await;
    let existing = service.victim("acme").await;
    let there = service
        .call(
            Who::GlobexAdmin,
            Method::DELETE,
            &format!("/v1/tenants/acme/tokens/{existing}"),
            None,
        )
        .await;
    let not_there = service
        .call(
            Who::GlobexAdmin,
            Method::DELETE,
            "/v1/tenants/acme/tokens/tok_doesnotexist",
            None,
        )
        .await;
    assert_eq!(there.status, StatusCode::FORBIDDEN);
    assert_eq!(there.body, not_there.body, "the same refusal either way");
    let tenants = [
        service
            .call(
                Who::GlobexAdmin,
                Method::GET,
                "/v1/tenants/acme/tokens",
                None,
            )
            .await,
        service
            .call(
                Who::GlobexAdmin,
                Method::GET,
                "/v1/tenants/nobody/tokens",
                None,
            )
            .await,
    ];
    assert_eq!(tenants[0].body, tenants[1].body);
    // A tenant admin revoking another tenant's token through its own tenant's path: the same
    // answer as for an id that does not exist.
    let globex_token = service.victim("globex").await;
    let elsewhere = service
        .call(
            Who::AcmeAdmin,
            Method::DELETE,
            &format!("/v1/tenants/acme/tokens/{globex_token}"),
            None,
        )
        .await;
    let missing = service
        .call(
            Who::AcmeAdmin,
            Method::DELETE,
            "/v1/tenants/acme/tokens/tok_doesnotexist",
            None,
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let revoked = service
        .store
        .get(&m2m_core::TokenId::new(globex_token))
        .await;
    assert!(revoked.unwrap().unwrap().revoked_at.is_none());
}

#[tokio::test]
async fn nobody_grants_what_they_do_not_hold() {
    let service = service().await;
    let create = |who: Who, tenant: &'static str, scopes: Value| {
        let service = &service;
        async move {
            service
                .call(
                    who,
                    Method::POST,
                    &format!("/v1/tenants/{tenant}/tokens"),
                    Some(json!({"expires": "never", "scopes": scopes})),
                )
                .await
        }
    };
    // Environment scopes never leave the reserved tenant, whoever asks.
    for scope in [ADMIN_SCOPE, INTROSPECT_SCOPE] {
        for who in [Who::EnvironmentAdmin, Who::AcmeAdmin] {
            let reply = create(who, "acme", json!([scope])).await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{who:?} {scope}"
            );
            assert!(reply.problem);
        }
    }
    // A tenant admin grants only what it holds, and of that only what the environment declared
    // grantable (and the tenant-admin right itself).
    let reply = create(Who::AcmeAdmin, "acme", json!(["reports:read"])).await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "not declared: {}",
        reply.body
    );
    let catalogue = json!({"grantable_scopes": [
        {"name": "reports:read", "description": "Read the reports"},
        {"name": "reports:write", "description": "Write the reports"},
    ]});
    let reply = service
        .call(
            Who::EnvironmentAdmin,
            Method::PUT,
            "/v1/settings/portal",
            Some(catalogue),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = create(Who::AcmeAdmin, "acme", json!(["reports:write"])).await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "not held: {}",
        reply.body
    );
    let reply = create(
        Who::AcmeAdmin,
        "acme",
        json!(["reports:read", "m2m:tenant-admin"]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    // The environment admin grants what it likes within a tenant, and the environment's scopes
    // within its own.
    let reply = create(Who::EnvironmentAdmin, "acme", json!(["reports:write"])).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = create(
        Who::EnvironmentAdmin,
        ADMIN_TENANT,
        json!([INTROSPECT_SCOPE]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    // A tenant admin cannot mint in another tenant, nor in the environment's.
    let reply = create(Who::AcmeAdmin, "globex", json!([])).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = create(Who::AcmeAdmin, ADMIN_TENANT, json!([])).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn only_the_environment_acts_as_a_resource_server() {
    let service = service().await;
    let (resource_server, _) = issue(
        &service.state,
        NewToken::new(TokenKind::AccessToken, ADMIN_TENANT, Expiry::OneDay).scope(INTROSPECT_SCOPE),
    )
    .await;
    let introspect = |token: &str| {
        Request::post("/oauth/introspect")
            .header("x-api-key", token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("token=m2m_at_unknown"))
            .unwrap()
    };
    let status = |request: Request<Body>| {
        let router = service.router.clone();
        async move { router.oneshot(request).await.unwrap().status() }
    };
    assert_eq!(status(introspect(&resource_server)).await, StatusCode::OK);
    let impostor = service.token(Who::AcmeImpostor).unwrap();
    assert_eq!(status(introspect(impostor)).await, StatusCode::FORBIDDEN);
    let revocations = |token: &str| {
        Request::get("/v1/revocations")
            .header("x-api-key", token)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(status(revocations(impostor)).await, StatusCode::FORBIDDEN);
    let usage = Request::post("/v1/usage")
        .header("x-api-key", impostor)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"uses":[]}"#))
        .unwrap();
    assert_eq!(status(usage).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn removing_a_user_revokes_the_users_tokens_at_once() {
    let service = service().await;
    let create = |user: &'static str| {
        let service = &service;
        async move {
            let reply = service
                .call(
                    Who::AcmeAdmin,
                    Method::POST,
                    "/v1/tenants/acme/tokens",
                    Some(
                        json!({"expires": "30d", "user_id": user, "scopes": ["m2m:tenant-admin"]}),
                    ),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
            reply.body["token"].as_str().unwrap().to_owned()
        }
    };
    let alice = [create("alice").await, create("alice").await];
    let bob = create("bob").await;
    let lists = |token: String| {
        let router = service.router.clone();
        async move {
            let request = Request::get("/v1/tenants/acme/tokens")
                .header("x-api-key", token)
                .body(Body::empty())
                .unwrap();
            router.oneshot(request).await.unwrap().status()
        }
    };
    for token in alice.iter().chain([&bob]) {
        assert_eq!(lists(token.clone()).await, StatusCode::OK);
    }
    // Listed per user.
    let reply = service
        .call(
            Who::AcmeAdmin,
            Method::GET,
            "/v1/tenants/acme/tokens?user_id=alice",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let users: Vec<&Value> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| &item["user_id"])
        .collect();
    assert_eq!(users, [&json!("alice"), &json!("alice")]);

    let reply = service
        .call(
            Who::AcmeAdmin,
            Method::DELETE,
            "/v1/tenants/acme/users/alice",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"tenant": "acme", "user_id": "alice", "revoked_tokens": 2, "revoked_sessions": 1})
    );
    // Alice's portal session ended with her.
    let reply = service
        .call(Who::AcmeAdminSession, Method::GET, "/v1/portal/me", None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // At once: the service's own cache heard the revocations before the answer.
    for token in &alice {
        assert_eq!(lists(token.clone()).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        lists(bob).await,
        StatusCode::OK,
        "another user keeps theirs"
    );

    // Another tenant's admin cannot remove acme's users; a bad user id is a 400.
    let reply = service
        .call(
            Who::GlobexAdmin,
            Method::DELETE,
            "/v1/tenants/acme/users/bob",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = service
        .call(
            Who::AcmeAdmin,
            Method::DELETE,
            "/v1/tenants/acme/users/%01",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.problem);
}

#[tokio::test]
async fn the_portal_settings_rule_what_tenant_users_create() {
    let service = service().await;
    let put = |body: Value| {
        let service = &service;
        async move {
            service
                .call(
                    Who::EnvironmentAdmin,
                    Method::PUT,
                    "/v1/settings/portal",
                    Some(body),
                )
                .await
        }
    };
    let create = |who: Who, user: Option<&'static str>| {
        let service = &service;
        async move {
            let mut body = json!({"expires": "1d"});
            if let Some(user) = user {
                body["user_id"] = user.into();
            }
            service
                .call(who, Method::POST, "/v1/tenants/acme/tokens", Some(body))
                .await
                .status
        }
    };
    // Both sections visible by default.
    let reply = service
        .call(
            Who::EnvironmentAdmin,
            Method::GET,
            "/v1/settings/portal",
            None,
        )
        .await;
    assert_eq!(
        reply.body,
        json!({"grantable_scopes": [], "api_tokens_visible": true, "personal_tokens_visible": true})
    );
    assert_eq!(create(Who::AcmeAdmin, None).await, StatusCode::CREATED);

    let reply = put(json!({"api_tokens_visible": false})).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(create(Who::AcmeAdmin, None).await, StatusCode::FORBIDDEN);
    assert_eq!(
        create(Who::AcmeAdmin, Some("alice")).await,
        StatusCode::CREATED
    );
    assert_eq!(
        create(Who::EnvironmentAdmin, None).await,
        StatusCode::CREATED
    );

    let reply = put(json!({"personal_tokens_visible": false})).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(create(Who::AcmeAdmin, None).await, StatusCode::CREATED);
    assert_eq!(
        create(Who::AcmeAdmin, Some("alice")).await,
        StatusCode::FORBIDDEN
    );

    // The catalogue is checked: environment scopes, duplicates, bad names, too many.
    for bad in [
        json!({"grantable_scopes": [{"name": "m2m:admin"}]}),
        json!({"grantable_scopes": [{"name": "a"}, {"name": "a"}]}),
        json!({"grantable_scopes": [{"name": "two words"}]}),
        json!({"grantable_scopes": (0..=m2m_server::MAX_GRANTABLE_SCOPES)
            .map(|i| json!({"name": format!("s{i}")}))
            .collect::<Vec<_>>()}),
    ] {
        let reply = put(bad.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(reply.problem);
    }
    let reply = put(json!({"unknown": true})).await;
    assert!(
        reply.status.is_client_error() && reply.problem,
        "{}",
        reply.body
    );
}

/// Creates a token as `who` and returns the answer.
async fn create_as(service: &Service, who: Who, body: Value) -> Reply {
    service
        .call(who, Method::POST, "/v1/tenants/acme/tokens", Some(body))
        .await
}

#[tokio::test]
async fn a_member_manages_only_its_own_personal_tokens() {
    let service = service().await;
    let catalogue = json!({"grantable_scopes": [
        {"name": "reports:read", "description": "Read the reports"},
        {"name": "reports:write", "description": "Write the reports"},
    ]});
    let reply = service
        .call(
            Who::EnvironmentAdmin,
            Method::PUT,
            "/v1/settings/portal",
            Some(catalogue),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    // The admin session creates an API token; the created-by column names the session's user.
    let api = create_as(
        &service,
        Who::AcmeAdminSession,
        json!({"expires": "30d", "description": "export", "scopes": ["m2m:tenant-admin", "reports:read"]}),
    )
    .await;
    assert_eq!(api.status, StatusCode::CREATED, "{}", api.body);
    assert_eq!(api.body["created_by"], "alice");
    let api_id = api.body["id"].as_str().unwrap().to_owned();

    // Personal tokens: each user's own.
    let alices = create_as(
        &service,
        Who::AcmeAdminSession,
        json!({"expires": "7d", "user_id": "alice"}),
    )
    .await;
    assert_eq!(alices.status, StatusCode::CREATED, "{}", alices.body);
    let alices_id = alices.body["id"].as_str().unwrap().to_owned();
    let bobs = create_as(
        &service,
        Who::AcmeMemberSession,
        json!({"expires": "7d", "user_id": "bob", "scopes": ["reports:read"]}),
    )
    .await;
    assert_eq!(bobs.status, StatusCode::CREATED, "{}", bobs.body);
    let bobs_id = bobs.body["id"].as_str().unwrap().to_owned();

    // Escalations of the member: an API token, a personal token of another user, a scope it
    // does not hold, the tenant-admin right.
    for (body, what) in [
        (json!({"expires": "7d"}), "an API token"),
        (
            json!({"expires": "7d", "user_id": "alice"}),
            "alice's personal token",
        ),
        (
            json!({"expires": "7d", "user_id": "bob", "scopes": ["reports:write"]}),
            "a scope not held",
        ),
        (
            json!({"expires": "7d", "user_id": "bob", "scopes": ["m2m:tenant-admin"]}),
            "the admin right",
        ),
    ] {
        let reply = create_as(&service, Who::AcmeMemberSession, body).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            reply.body
        );
        assert!(reply.problem, "{what}");
    }
    // The admin session cannot create personal tokens for another user either.
    let reply = create_as(
        &service,
        Who::AcmeAdminSession,
        json!({"expires": "7d", "user_id": "bob"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // The member reads the tenant's API tokens and its own, not alice's.
    let listed = |who: Who, query: &'static str| {
        let service = &service;
        async move {
            service
                .call(
                    who,
                    Method::GET,
                    &format!("/v1/tenants/acme/tokens{query}"),
                    None,
                )
                .await
        }
    };
    let ids = |reply: &Reply| -> Vec<String> {
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let tenant_view = listed(Who::AcmeMemberSession, "").await;
    assert_eq!(tenant_view.status, StatusCode::OK);
    assert!(ids(&tenant_view).contains(&api_id));
    assert!(
        !ids(&tenant_view).contains(&alices_id),
        "no personal tokens among API tokens"
    );
    assert!(!ids(&tenant_view).contains(&bobs_id));
    let own = listed(Who::AcmeMemberSession, "?user_id=bob").await;
    assert_eq!(ids(&own), [bobs_id.as_str()]);
    let other = listed(Who::AcmeMemberSession, "?user_id=alice").await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let api_only = listed(Who::AcmeAdminSession, "?owner=tenant").await;
    assert!(ids(&api_only).contains(&api_id));
    assert!(!ids(&api_only).contains(&alices_id));

    // Revoking: the member's own token yes; alice's personal token, the API token and an id
    // that does not exist all get the same 403.
    let revoke = |who: Who, id: String| {
        let service = &service;
        async move {
            service
                .call(
                    who,
                    Method::DELETE,
                    &format!("/v1/tenants/acme/tokens/{id}"),
                    None,
                )
                .await
        }
    };
    let refusals = [
        revoke(Who::AcmeMemberSession, alices_id.clone()).await,
        revoke(Who::AcmeMemberSession, api_id.clone()).await,
        revoke(Who::AcmeMemberSession, "tok_doesnotexist".to_owned()).await,
    ];
    for refusal in &refusals {
        assert_eq!(refusal.status, StatusCode::FORBIDDEN);
        assert_eq!(
            refusal.body, refusals[0].body,
            "one answer, whatever exists"
        );
    }
    for id in [&alices_id, &api_id] {
        let record = service.store.get(&m2m_core::TokenId::new(id.clone())).await;
        assert!(
            record.unwrap().unwrap().revoked_at.is_none(),
            "{id} untouched"
        );
    }
    assert_eq!(
        revoke(Who::AcmeMemberSession, bobs_id).await.status,
        StatusCode::NO_CONTENT
    );
    // The admin session revokes the tenant's API token.
    assert_eq!(
        revoke(Who::AcmeAdminSession, api_id).await.status,
        StatusCode::NO_CONTENT
    );
    // The globex session sees nothing of acme, whatever the id.
    assert_eq!(
        revoke(Who::GlobexAdminSession, alices_id).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_audit_log_says_who_changed_what_and_each_tenant_sees_its_own() {
    let service = service().await;
    let created = create_as(
        &service,
        Who::AcmeAdminSession,
        json!({"expires": "7d", "description": "audited"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let revoked = service
        .call(
            Who::EnvironmentAdmin,
            Method::DELETE,
            &format!("/v1/tenants/acme/tokens/{id}"),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let settings = service
        .call(
            Who::EnvironmentAdmin,
            Method::PUT,
            "/v1/settings",
            Some(json!({"token_type": "access"})),
        )
        .await;
    assert_eq!(settings.status, StatusCode::OK);
    let globex = service
        .call(
            Who::GlobexAdmin,
            Method::POST,
            "/v1/tenants/globex/tokens",
            Some(json!({"expires": "1d"})),
        )
        .await;
    assert_eq!(globex.status, StatusCode::CREATED);

    let actions = |reply: &Reply| -> Vec<(String, String, String)> {
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                (
                    item["action"].as_str().unwrap().to_owned(),
                    item["tenant"].as_str().unwrap_or("").to_owned(),
                    item["actor"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let all = service
        .call(Who::EnvironmentAdmin, Method::GET, "/v1/audit", None)
        .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    let all = actions(&all);
    // Newest first; the sessions the fixture opened came first of all.
    assert_eq!(all[0].0, "token.create");
    assert_eq!(all[0].1, "globex");
    assert_eq!(
        all[1],
        (
            "settings.update".into(),
            "".into(),
            format!("token {}", m2m_server::BOOTSTRAP_TOKEN_ID)
        )
    );
    assert_eq!(all[2].0, "token.revoke");
    assert_eq!(all[3].0, "token.create");
    assert!(
        all[3].2.starts_with("session ps_") && all[3].2.ends_with("(alice)"),
        "{:?}",
        all[3]
    );
    assert!(
        all.iter()
            .any(|(action, ..)| action == "portal_session.create")
    );

    // A tenant admin reads its own tenant's entries, and only those.
    let own = service
        .call(Who::AcmeAdmin, Method::GET, "/v1/audit", None)
        .await;
    assert_eq!(own.status, StatusCode::OK);
    let own = actions(&own);
    assert!(!own.is_empty());
    assert!(own.iter().all(|(_, tenant, _)| tenant == "acme"), "{own:?}");
    for (who, path) in [
        (Who::GlobexAdmin, "/v1/audit?tenant=acme"),
        (Who::AcmeMemberSession, "/v1/audit"),
        (Who::AcmeMember, "/v1/audit"),
    ] {
        let refused = service.call(who, Method::GET, path, None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{who:?} {path}");
    }
}
