//! The OpenAPI document at `GET /openapi.json`: an independent validator accepts it, it lists
//! exactly the routes the router serves, anyone may read it, and the service's answers match
//! the schemas it gives them (checked by `jsonschema`, which comes with the validator).
//!
//! # How the routes are found
//!
//! axum's `Router` cannot list its routes, so the test asks the router itself about every path
//! it could have:
//!
//! 1. **Candidate paths**: the path literal of every `.route("…", …)` call in the service's
//!    source (every `.rs` file under `server/src`), and every path of the document. A
//!    `.route(` whose path is not a string literal, and any `.nest(`, `.nest_service(` or
//!    `.route_service(`, fail the test: the scan could not see the paths they add. (Routers
//!    built in another crate and merged in would be out of its sight too; the service has
//!    none.)
//! 2. **Served methods**: each candidate path, its `{parameters}` filled in, is sent every
//!    method (`GET`, `POST`, `PUT`, `DELETE`, `PATCH`, `OPTIONS`, `TRACE`) through `oneshot`,
//!    without credentials or body. The router answers a method it does not route with its 405
//!    and a path it does not know with its 404 "no such route"; any other answer (200, 400,
//!    401, …) comes from a handler, so the path and method are routed. `HEAD` is not asked:
//!    axum answers it wherever `GET` is routed.
//! 3. **Comparison**: the routed (path, method) pairs and the document's operations must be
//!    the same set.
//!
//! A route added to `app()` without an annotation is found by (1), shown routed by (2) and
//! reported undocumented by (3); an operation documented without a route is reported by (3)
//! in the other direction.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode};
use m2m_core::TokenStore;
use m2m_server::{AppState, ServiceOptions, app};
use m2m_sql::SqlStore;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt as _;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/validate_openapi.py"
);
const ANSWERS_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/validate_answers.py"
);
const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Every method asked about, in the document's spelling.
const METHODS: [(Method, &str); 7] = [
    (Method::GET, "get"),
    (Method::POST, "post"),
    (Method::PUT, "put"),
    (Method::DELETE, "delete"),
    (Method::PATCH, "patch"),
    (Method::OPTIONS, "options"),
    (Method::TRACE, "trace"),
];

/// The Python interpreter with openapi-spec-validator; the test fails without it.
fn python() -> String {
    std::env::var("M2M_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "M2M_TEST_PYTHON is not set: it names the Python interpreter of a venv with \
             openapi-spec-validator. Run `.ci/test`, which creates that venv in \
             target/python-venv and sets the variable."
        )
    })
}

async fn router() -> (Router, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let store: Arc<dyn TokenStore> = Arc::new(SqlStore::connect(&url).await.unwrap());
    let state = AppState::new(store, ServiceOptions::default())
        .await
        .unwrap();
    (app(state), dir)
}

/// `GET /openapi.json`, without credentials: the answer's content type and body.
async fn served_document(router: &Router) -> (String, Value) {
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (content_type, serde_json::from_slice(&body).unwrap())
}

/// Runs the validator on `document`: whether it passed, and what it printed.
fn validate(document: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(document).unwrap()).unwrap();
    let output = Command::new(python())
        .arg(SCRIPT)
        .arg(&file)
        .output()
        .expect("the Python interpreter of M2M_TEST_PYTHON runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

#[tokio::test]
async fn the_document_is_public_json() {
    let (router, _dir) = router().await;
    let (content_type, document) = served_document(&router).await;
    assert_eq!(content_type, "application/json");
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document,
        serde_json::to_value(m2m_server::openapi::document()).unwrap(),
        "the route serves the document the code generates"
    );
    let operation = &document["paths"]["/openapi.json"]["get"];
    assert!(operation.is_object(), "it documents itself");
    assert!(
        operation.get("security").is_none(),
        "and needs no credential"
    );
}

#[tokio::test]
async fn an_independent_validator_accepts_the_document() {
    let (router, _dir) = router().await;
    let (_, document) = served_document(&router).await;
    let (valid, printed) = validate(&document);
    assert!(
        valid,
        "openapi-spec-validator refuses the document:\n{printed}"
    );
    assert_eq!(printed.trim(), "valid");

    // The validator does judge: a document with an operation that answers nothing is refused.
    let mut broken = document.clone();
    broken["paths"]["/health"]["get"]["responses"] = Value::String("none".into());
    let (valid, printed) = validate(&broken);
    assert!(!valid, "a broken document passed the validator: {printed}");
}

#[tokio::test]
async fn both_token_schemes_and_the_problem_shape_are_declared() {
    let document = serde_json::to_value(m2m_server::openapi::document()).unwrap();
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["type"], "apiKey");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "X-API-KEY");
    let flow = &schemes["client_credentials"]["flows"]["clientCredentials"];
    assert_eq!(flow["tokenUrl"], "/oauth/token");
    assert!(flow["scopes"]["m2m:admin"].is_string());
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(schemes["portal_session"]["in"], "cookie");
    assert_eq!(
        schemes["portal_session"]["name"],
        m2m_server::SESSION_COOKIE
    );

    let problem = &document["components"]["schemas"]["Problem"];
    for field in ["type", "title", "status", "detail", "error"] {
        assert!(problem["properties"][field].is_object(), "Problem.{field}");
    }

    // An admin route accepts both token types with the admin scope, and answers the HTTP
    // contract's refusals as problems.
    let settings = &document["paths"]["/v1/settings"]["get"];
    let security = settings["security"].as_array().unwrap();
    for scheme in ["api_key", "client_credentials"] {
        assert!(
            security.iter().any(|r| r[scheme][0] == "m2m:admin"),
            "{scheme} in {security:?}"
        );
    }
    for status in ["400", "401", "403", "429", "503"] {
        let response = &settings["responses"][status];
        let reference = response["$ref"].as_str().unwrap_or_default();
        let name = reference.rsplit('/').next().unwrap();
        let content = &document["components"]["responses"][name]["content"];
        assert_eq!(
            content["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem",
            "{status}"
        );
    }
    assert!(
        settings["responses"]["401"]["$ref"]
            .as_str()
            .is_some_and(|r| r.ends_with("/Unauthorized"))
    );

    // The token endpoint takes HTTP Basic or the form fields, and answers RFC 6749 errors.
    let token = &document["paths"]["/oauth/token"]["post"];
    assert_eq!(token["security"], serde_json::json!([{"basic": []}, {}]));
    assert!(token["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
    assert!(token["responses"]["401"]["content"]["application/json"].is_object());
}

/// The path literals of every `.route(` in the service's source.
fn routed_paths_in_source() -> BTreeSet<String> {
    fn files(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    let mut sources = Vec::new();
    files(Path::new(SOURCE), &mut sources);
    assert!(sources.len() > 10, "the scan reads the service's source");
    let mut paths = BTreeSet::new();
    for file in sources {
        let text = std::fs::read_to_string(&file).unwrap();
        for unseen in [".nest(", ".nest_service(", ".route_service("] {
            assert!(
                !text.contains(unseen),
                "{}: `{unseen}` adds routes this test cannot see; extend the scan",
                file.display()
            );
        }
        for (at, _) in text.match_indices(".route(") {
            let rest = text[at + ".route(".len()..].trim_start();
            let literal = rest
                .strip_prefix('"')
                .and_then(|rest| rest.split_once('"'))
                .map(|(path, _)| path)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: a `.route(` whose path is not a string literal: {}",
                        file.display(),
                        &rest[..rest.len().min(60)]
                    )
                });
            paths.insert(literal.to_owned());
        }
    }
    paths
}

/// `path` with each `{parameter}` replaced by a value.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').expect("a closed parameter") + open;
        out.push_str("probe");
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Whether the router routes `method` on `path` (see the module docs).
async fn is_routed(router: &Router, method: &Method, path: &str) -> bool {
    let request = Request::builder()
        .method(method.clone())
        .uri(concrete(path))
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let detail = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|body| body["detail"].as_str().map(str::to_owned));
    match status {
        StatusCode::METHOD_NOT_ALLOWED => false,
        StatusCode::NOT_FOUND => detail.as_deref() != Some("no such route"),
        _ => true,
    }
}

#[tokio::test]
async fn every_route_of_the_router_is_documented_and_every_operation_routed() {
    let (router, _dir) = router().await;
    let document = serde_json::to_value(m2m_server::openapi::document()).unwrap();
    let paths = document["paths"].as_object().unwrap();
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|(_, name)| item.get(*name).is_some())
                .map(|(_, name)| (path.clone(), (*name).to_owned()))
        })
        .collect();

    let in_source = routed_paths_in_source();
    assert!(in_source.contains("/oauth/token") && in_source.contains("/v1/settings"));
    let candidates: BTreeSet<String> = in_source
        .iter()
        .cloned()
        .chain(paths.keys().cloned())
        .collect();
    let mut routed = BTreeSet::new();
    for path in &candidates {
        for (method, name) in &METHODS {
            if is_routed(&router, method, path).await {
                routed.insert((path.clone(), (*name).to_owned()));
            }
        }
    }

    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes of the router missing from the OpenAPI document (annotate their handlers \
         with #[utoipa::path] and list them in openapi.rs): {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "documented operations the router does not serve: {unrouted:?}"
    );
    // The probe tells routes apart: a known route and method is routed, a wrong method not.
    assert!(routed.contains(&("/v1/tenants/{tenant}/tokens".to_owned(), "post".to_owned())));
    assert!(!routed.contains(&("/health".to_owned(), "post".to_owned())));
    assert!(routed.len() >= 30, "{} routes", routed.len());
}

/// Answers of the service, each with the schema the document gives it.
struct Answers {
    document: Value,
    recorded: Vec<Value>,
}

/// `text` as one JSON pointer token.
fn pointer_token(text: &str) -> String {
    text.replace('~', "~0").replace('/', "~1")
}

impl Answers {
    /// Sends `request` (its path documented as `template`), checks that the document describes
    /// the answer's status and content type, and keeps a JSON body for validation.
    async fn call(&mut self, router: &Router, template: &str, request: Request<Body>) -> Value {
        let method = request.method().as_str().to_ascii_lowercase();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16().to_string();
        let media = response.headers().get("content-type").map(|value| {
            value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim()
                .to_owned()
        });
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let what = format!("{method} {template} {status}");
        let described = &self.document["paths"][template][&method]["responses"][&status];
        assert!(described.is_object(), "the document describes {what}");
        let (base, described) = match described["$ref"].as_str() {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap();
                (
                    format!("/components/responses/{name}"),
                    self.document["components"]["responses"][name].clone(),
                )
            }
            None => (
                format!(
                    "/paths/{}/{method}/responses/{status}",
                    pointer_token(template)
                ),
                described.clone(),
            ),
        };
        let Some(media) = media.filter(|media| media.ends_with("json")) else {
            return Value::Null;
        };
        assert!(
            described["content"][&media].is_object(),
            "the document gives {what} the content type {media}: {described}"
        );
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        self.recorded.push(serde_json::json!({
            "what": what,
            "pointer": format!("{base}/content/{}/schema", pointer_token(&media)),
            "body": body,
        }));
        body
    }
}

fn json_request(method: Method, uri: &str, token: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("x-api-key", token)
        .header("content-type", "application/json")
        .header("host", "localhost")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::get(uri);
    if let Some(token) = token {
        request = request.header("x-api-key", token);
    }
    request.body(Body::empty()).unwrap()
}

fn form(uri: &str, authorization: (&str, &str), body: &str) -> Request<Body> {
    Request::post(uri)
        .header(authorization.0, authorization.1)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn the_service_answers_what_the_document_says() {
    use base64::Engine as _;
    use serde_json::json;

    let (router, _dir, admin) = {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
        let store: Arc<dyn TokenStore> = Arc::new(SqlStore::connect(&url).await.unwrap());
        let state = AppState::new(store, ServiceOptions::default())
            .await
            .unwrap();
        let admin = m2m_server::bootstrap_admin(&state).await.unwrap().unwrap();
        (app(state), dir, admin.token.expose_secret().to_owned())
    };
    let admin = admin.as_str();
    let mut answers = Answers {
        document: serde_json::to_value(m2m_server::openapi::document()).unwrap(),
        recorded: Vec::new(),
    };
    let a = &mut answers;
    let r = &router;

    a.call(r, "/health", get("/health", None)).await;
    a.call(r, "/v1/settings", get("/v1/settings", Some(admin)))
        .await;
    a.call(r, "/v1/settings", get("/v1/settings", None)).await;
    a.call(
        r,
        "/v1/settings",
        get("/v1/settings", Some("m2m_at_forged")),
    )
    .await;
    let portal = json!({"grantable_scopes": [{"name": "reports:read", "description": "Read"}]});
    let put = json_request(Method::PUT, "/v1/settings/portal", admin, portal);
    a.call(r, "/v1/settings/portal", put).await;
    a.call(
        r,
        "/v1/settings/portal",
        get("/v1/settings/portal", Some(admin)),
    )
    .await;
    let tenant_settings = "/v1/tenants/{tenant}/settings";
    a.call(
        r,
        tenant_settings,
        get("/v1/tenants/acme/settings", Some(admin)),
    )
    .await;

    let tokens = "/v1/tenants/{tenant}/tokens";
    let body = json!({"expires": "7d", "scopes": ["reports:read"], "description": "export",
                      "rate_limit": {"limit": 10, "window_seconds": 60}});
    let created = a
        .call(
            r,
            tokens,
            json_request(Method::POST, "/v1/tenants/acme/tokens", admin, body),
        )
        .await;
    let access = created["token"].as_str().unwrap().to_owned();
    let body = json!({"type": "client_credentials", "expires": "30d", "user_id": "alice"});
    let credential = a
        .call(
            r,
            tokens,
            json_request(Method::POST, "/v1/tenants/acme/tokens", admin, body),
        )
        .await;
    let body = json!({"expires": "30d", "scopes": ["m2m:introspect"]});
    let resource_server = a
        .call(
            r,
            tokens,
            json_request(Method::POST, "/v1/tenants/m2m/tokens", admin, body),
        )
        .await;
    let resource_server = resource_server["token"].as_str().unwrap().to_owned();
    let bad = json_request(
        Method::POST,
        "/v1/tenants/acme/tokens",
        admin,
        json!({"x": 1}),
    );
    a.call(r, tokens, bad).await;
    a.call(
        r,
        tokens,
        get("/v1/tenants/acme/tokens?limit=1", Some(admin)),
    )
    .await;
    a.call(r, tokens, get("/v1/tenants/acme/tokens", Some(&access)))
        .await;

    let basic = |id: &str, secret: &str| {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        format!("Basic {pair}")
    };
    let client = basic(
        credential["client_id"].as_str().unwrap(),
        credential["client_secret"].as_str().unwrap(),
    );
    let grant = "grant_type=client_credentials";
    let exchange = form("/oauth/token", ("authorization", &client), grant);
    a.call(r, "/oauth/token", exchange).await;
    let wrong = basic(credential["client_id"].as_str().unwrap(), "m2m_cs_wrong");
    a.call(
        r,
        "/oauth/token",
        form("/oauth/token", ("authorization", &wrong), grant),
    )
    .await;
    let unsupported = form(
        "/oauth/token",
        ("authorization", &client),
        "grant_type=password",
    );
    a.call(r, "/oauth/token", unsupported).await;

    let introspect = |token: &str| {
        form(
            "/oauth/introspect",
            ("x-api-key", &resource_server),
            &format!("token={token}"),
        )
    };
    a.call(r, "/oauth/introspect", introspect(&access)).await;
    a.call(r, "/oauth/introspect", introspect("m2m_at_forged"))
        .await;
    let refused = form("/oauth/introspect", ("x-api-key", &access), "token=x");
    a.call(r, "/oauth/introspect", refused).await;
    let usage = Request::post("/v1/usage")
        .header("x-api-key", &resource_server)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"uses": "many"}"#))
        .unwrap();
    a.call(r, "/v1/usage", usage).await;

    let body = json!({"tenant": "acme", "user_id": "alice", "display_name": "Alice",
                      "role": "admin", "permissions": ["reports:read"]});
    let session = json_request(Method::POST, "/v1/portal/sessions", admin, body);
    a.call(r, "/v1/portal/sessions", session).await;
    a.call(r, "/v1/portal/me", get("/v1/portal/me", Some(admin)))
        .await;
    let remove = Request::delete("/v1/tenants/acme/users/alice")
        .header("x-api-key", admin)
        .body(Body::empty())
        .unwrap();
    a.call(r, "/v1/tenants/{tenant}/users/{user}", remove).await;
    a.call(r, "/v1/audit", get("/v1/audit", Some(admin))).await;
    a.call(r, "/v1/audit", get("/v1/audit?limit=0", Some(admin)))
        .await;
    let rotate = Request::post("/v1/keys/rotate")
        .header("x-api-key", admin)
        .body(Body::empty())
        .unwrap();
    a.call(r, "/v1/keys/rotate", rotate).await;
    a.call(r, "/v1/keys", get("/v1/keys", Some(admin))).await;
    a.call(r, "/v1/stats", get("/v1/stats", Some(admin))).await;
    a.call(
        r,
        "/.well-known/jwks.json",
        get("/.well-known/jwks.json", None),
    )
    .await;
    let metadata = "/.well-known/oauth-authorization-server";
    a.call(r, metadata, get(metadata, None)).await;
    a.call(r, "/portal/enter", get("/portal/enter?code=spent", None))
        .await;

    assert!(answers.recorded.len() >= 30, "{}", answers.recorded.len());
    let (valid, printed) = validate_answers(&answers.document, &answers.recorded);
    assert!(
        valid,
        "answers that do not match their documented schemas:\n{printed}"
    );

    // The check does judge: a health answer with a number for its status is refused.
    let mut wrong = answers.recorded[0].clone();
    assert_eq!(wrong["what"], "get /health 200");
    wrong["body"]["status"] = 7.into();
    let (valid, printed) = validate_answers(&answers.document, &[wrong]);
    assert!(!valid, "a wrong answer passed: {printed}");
}

/// Runs the answer check: whether every answer matched its schema, and what it printed.
fn validate_answers(document: &Value, answers: &[Value]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let document_file = dir.path().join("openapi.json");
    let answers_file = dir.path().join("answers.json");
    std::fs::write(&document_file, document.to_string()).unwrap();
    std::fs::write(&answers_file, Value::from(answers.to_vec()).to_string()).unwrap();
    let output = Command::new(python())
        .arg(ANSWERS_SCRIPT)
        .arg(&document_file)
        .arg(&answers_file)
        .output()
        .expect("the Python interpreter of M2M_TEST_PYTHON runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}
