//! The layer and extractors driving a real axum 0.8 `Router` through `tower::ServiceExt::oneshot`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, Method, Request, StatusCode};
use m2m_core::{Expiry, MemoryStore, NewToken, Rejection, TokenKind, TokenStore, Verifier};
use m2m_tower::{Authenticated, M2mAuthLayer};
use serde_json::Value;
use tower::ServiceExt as _;

struct Fixture {
    verifier: Verifier,
    /// Access token with `reports:read`.
    access: String,
    /// Bearer token with no scope.
    bearer: String,
}

async fn fixture() -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let verifier = Verifier::builder(store.clone()).build();
    let now = verifier.now();
    let access = store
        .issue(
            verifier.format(),
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays).scope("reports:read"),
            now,
        )
        .await
        .unwrap();
    let bearer = store
        .issue(
            verifier.format(),
            NewToken::new(TokenKind::BearerToken, "globex", Expiry::Minutes(60)),
            now,
        )
        .await
        .unwrap();
    Fixture {
        verifier,
        access: access.token.expose_secret().to_owned(),
        bearer: bearer.token.expose_secret().to_owned(),
    }
}

async fn whoami(Authenticated(caller): Authenticated) -> axum::Json<m2m_core::Principal> {
    axum::Json(caller)
}

async fn tenant(caller: Authenticated) -> String {
    caller.tenant().to_owned()
}

async fn greeting(caller: Option<Authenticated>) -> String {
    match caller {
        Some(caller) => format!("hello {}", caller.tenant()),
        None => "hello anonymous".to_owned(),
    }
}

/// `/v1/whoami` behind the layer, `/v1/reports` behind a route layer requiring `reports:read`,
/// `/health` public.
fn app(verifier: &Verifier) -> Router {
    let reports = Router::new()
        .route("/v1/reports", get(tenant))
        .route_layer(M2mAuthLayer::new(verifier.clone()).require_scopes(["reports:read"]));
    let api = Router::new()
        .route("/v1/whoami", get(whoami))
        .route_layer(M2mAuthLayer::new(verifier.clone()));
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .merge(api)
        .merge(reports)
}

fn request(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

fn get_with(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    request(Method::GET, path, headers)
}

async fn body_text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn send(app: Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let response = app.oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, body_text(response).await)
}

/// The response is the core rejection for the same headers and scopes, byte for byte.
async fn assert_is_rejection(
    verifier: &Verifier,
    sent: &[(&str, &str)],
    scopes: &[&str],
    (status, headers, body): &(StatusCode, HeaderMap, String),
) -> Rejection {
    let mut request_headers = HeaderMap::new();
    for (name, value) in sent {
        request_headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let expected = verifier.verify(&request_headers, scopes).await.unwrap_err();
    assert_eq!(*status, expected.status());
    let expected_headers = expected.headers();
    // axum adds Content-Length from the body; every other header is the rejection's.
    let mut headers = headers.clone();
    if let Some(length) = headers.remove(http::header::CONTENT_LENGTH) {
        assert_eq!(length, body.len().to_string());
    }
    assert_eq!(headers.len(), expected_headers.len(), "{headers:?}");
    for (name, value) in &expected_headers {
        assert_eq!(headers.get_all(name).iter().collect::<Vec<_>>(), [value]);
    }
    assert_eq!(*body, expected.body());
    expected
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn valid_access_token_reaches_the_handler_with_its_principal() {
    let f = fixture().await;
    let (status, _, body) = send(
        app(&f.verifier),
        get_with("/v1/whoami", &[("x-api-key", &f.access)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let principal = json(&body);
    assert_eq!(principal["tenant"], "acme");
    assert_eq!(principal["token_type"], "access");
    assert_eq!(principal["scopes"], serde_json::json!(["reports:read"]));
    assert!(!body.contains(&f.access));
}

#[tokio::test]
async fn valid_bearer_token_reaches_the_handler() {
    let f = fixture().await;
    let auth = format!("Bearer {}", f.bearer);
    let (status, _, body) = send(
        app(&f.verifier),
        get_with("/v1/whoami", &[("authorization", &auth)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["tenant"], "globex");
}

#[tokio::test]
async fn public_route_needs_no_credentials() {
    let f = fixture().await;
    let (status, _, body) = send(app(&f.verifier), get_with("/health", &[])).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn no_credentials_is_401_with_the_contract_response() {
    let f = fixture().await;
    let sent = send(app(&f.verifier), get_with("/v1/whoami", &[])).await;
    assert_is_rejection(&f.verifier, &[], &[], &sent).await;
    let (status, headers, body) = sent;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("ApiKey realm=") && challenge.contains("Bearer realm="),
        "{challenge}"
    );
    assert!(!challenge.contains("error="), "{challenge}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["content-type"], "application/problem+json");
    let body = json(&body);
    assert_eq!(body["status"], 401);
    assert!(body.get("error").is_none());
}

#[tokio::test]
async fn unknown_token_is_401_invalid_token() {
    let f = fixture().await;
    let forged = f.verifier.format().generate(TokenKind::AccessToken);
    let sent_headers = [("x-api-key", forged.expose_secret())];
    let sent = send(app(&f.verifier), get_with("/v1/whoami", &sent_headers)).await;
    assert_is_rejection(&f.verifier, &sent_headers, &[], &sent).await;
    assert_eq!(sent.0, StatusCode::UNAUTHORIZED);
    assert_eq!(json(&sent.2)["error"], "invalid_token");
    assert!(!sent.2.contains(forged.expose_secret()));
}

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope() {
    let f = fixture().await;
    let auth = format!("Bearer {}", f.bearer);
    let sent_headers = [("authorization", auth.as_str())];
    let sent = send(app(&f.verifier), get_with("/v1/reports", &sent_headers)).await;
    assert_is_rejection(&f.verifier, &sent_headers, &["reports:read"], &sent).await;
    let (status, headers, body) = sent;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"scope="reports:read""#), "{challenge}");
    assert_eq!(json(&body)["error"], "insufficient_scope");

    // The access token has the scope.
    let (status, _, body) = send(
        app(&f.verifier),
        get_with("/v1/reports", &[("x-api-key", &f.access)]),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "acme"));
}

#[tokio::test]
async fn token_in_the_wrong_header_is_400_invalid_request() {
    let f = fixture().await;
    let sent_headers = [("x-api-key", f.bearer.as_str())];
    let sent = send(app(&f.verifier), get_with("/v1/whoami", &sent_headers)).await;
    assert_is_rejection(&f.verifier, &sent_headers, &[], &sent).await;
    let (status, headers, body) = sent;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_request""#)
    );
    let body = json(&body);
    assert_eq!(body["error"], "invalid_request");
    assert!(body["detail"].as_str().unwrap().contains("Authorization"));
}

fn optional_app(verifier: &Verifier) -> Router {
    Router::new()
        .route("/greeting", get(greeting))
        .route("/tenant", get(tenant))
        .layer(M2mAuthLayer::new(verifier.clone()).optional(true))
}

#[tokio::test]
async fn optional_mode_without_credentials_passes_through_without_a_principal() {
    let f = fixture().await;
    let (status, _, body) = send(optional_app(&f.verifier), get_with("/greeting", &[])).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello anonymous"));
}

#[tokio::test]
async fn optional_mode_with_a_token_gives_the_principal() {
    let f = fixture().await;
    let (status, _, body) = send(
        optional_app(&f.verifier),
        get_with("/greeting", &[("x-api-key", &f.access)]),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello acme"));
}

#[tokio::test]
async fn optional_mode_still_refuses_a_bad_token() {
    let f = fixture().await;
    let sent_headers = [("x-api-key", f.bearer.as_str())];
    let sent = send(
        optional_app(&f.verifier),
        get_with("/greeting", &sent_headers),
    )
    .await;
    assert_is_rejection(&f.verifier, &sent_headers, &[], &sent).await;
    assert_eq!(sent.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn required_extractor_behind_an_optional_layer_answers_the_contract_401() {
    let f = fixture().await;
    let sent = send(optional_app(&f.verifier), get_with("/tenant", &[])).await;
    let rejection = assert_is_rejection(&f.verifier, &[], &[], &sent).await;
    assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn extractor_without_the_layer_answers_the_core_500() {
    let f = fixture().await;
    let app = Router::new()
        .route("/tenant", get(tenant))
        .route("/greeting", get(greeting));
    for path in ["/tenant", "/greeting"] {
        let (status, headers, body) =
            send(app.clone(), get_with(path, &[("x-api-key", &f.access)])).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(headers["cache-control"], "no-store");
        assert!(!headers.contains_key("www-authenticate"));
        assert_eq!(body, m2m_core::Rejection::middleware_missing().body());
        assert_eq!(json(&body)["status"], 500);
    }
}

fn preflight(path: &str) -> Request<Body> {
    request(
        Method::OPTIONS,
        path,
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "GET"),
        ],
    )
}

fn cors_app(verifier: &Verifier, pass_through: bool) -> Router {
    Router::new()
        .route(
            "/v1/data",
            get(tenant).options(|| async { (StatusCode::NO_CONTENT, "preflight") }),
        )
        .layer(M2mAuthLayer::new(verifier.clone()).cors_preflight(pass_through))
}

#[tokio::test]
async fn cors_preflight_passes_through_by_default() {
    let f = fixture().await;
    let (status, _, body) = send(cors_app(&f.verifier, true), preflight("/v1/data")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NO_CONTENT, "preflight")
    );

    // A plain OPTIONS is no preflight.
    let (status, _, _) = send(
        cors_app(&f.verifier, true),
        request(Method::OPTIONS, "/v1/data", &[]),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cors_preflight_is_authenticated_when_pass_through_is_off() {
    let f = fixture().await;
    let (status, _, _) = send(cors_app(&f.verifier, false), preflight("/v1/data")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn credential_headers(headers: HeaderMap) -> String {
    format!(
        "x-api-key:{} authorization:{}",
        headers.contains_key("x-api-key"),
        headers.contains_key("authorization")
    )
}

fn strip_app(verifier: &Verifier, strip: bool) -> Router {
    Router::new()
        .route("/headers", get(credential_headers))
        .layer(M2mAuthLayer::new(verifier.clone()).strip_credentials(strip))
}

#[tokio::test]
async fn strip_credentials_removes_the_credential_header_before_the_handler() {
    let f = fixture().await;
    let auth = format!("Bearer {}", f.bearer);
    let (_, _, body) = send(
        strip_app(&f.verifier, true),
        get_with("/headers", &[("x-api-key", &f.access)]),
    )
    .await;
    assert_eq!(body, "x-api-key:false authorization:false");
    let (_, _, body) = send(
        strip_app(&f.verifier, true),
        get_with("/headers", &[("authorization", &auth)]),
    )
    .await;
    assert_eq!(body, "x-api-key:false authorization:false");
}

#[tokio::test]
async fn credentials_reach_the_handler_by_default() {
    let f = fixture().await;
    let (_, _, body) = send(
        strip_app(&f.verifier, false),
        get_with("/headers", &[("x-api-key", &f.access)]),
    )
    .await;
    assert_eq!(body, "x-api-key:true authorization:false");
}

#[tokio::test]
async fn custom_responder_renders_rejections() {
    let f = fixture().await;
    let app = Router::new().route("/v1/whoami", get(whoami)).layer(
        M2mAuthLayer::new(f.verifier.clone()).on_rejection(|rejection: Rejection| {
            let code = rejection.error_code().unwrap_or("unauthenticated");
            (
                StatusCode::IM_A_TEAPOT,
                [("x-reason", code)],
                format!("custom {}", rejection.status().as_u16()),
            )
                .into_response()
        }),
    );
    let (status, headers, body) = send(app.clone(), get_with("/v1/whoami", &[])).await;
    assert_eq!(status, StatusCode::IM_A_TEAPOT);
    assert_eq!(headers["x-reason"], "unauthenticated");
    assert_eq!(body, "custom 401");

    let (status, headers, _) = send(
        app.clone(),
        get_with("/v1/whoami", &[("x-api-key", &f.bearer)]),
    )
    .await;
    assert_eq!(status, StatusCode::IM_A_TEAPOT);
    assert_eq!(headers["x-reason"], "invalid_request");

    // Accepted requests are untouched.
    let (status, _, _) = send(app, get_with("/v1/whoami", &[("x-api-key", &f.access)])).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn scopes_accumulate_across_layers_and_calls() {
    let f = fixture().await;
    let layer = M2mAuthLayer::new(f.verifier.clone())
        .require_scopes(["reports:read"])
        .require_scopes(vec![String::from("reports:write")]);
    assert_eq!(
        layer.scopes().collect::<Vec<_>>(),
        ["reports:read", "reports:write"]
    );
    let app = Router::new()
        .route("/v1/reports", get(tenant))
        .route_layer(layer);
    let sent_headers = [("x-api-key", f.access.as_str())];
    let sent = send(app, get_with("/v1/reports", &sent_headers)).await;
    assert_is_rejection(
        &f.verifier,
        &sent_headers,
        &["reports:read", "reports:write"],
        &sent,
    )
    .await;
    assert_eq!(sent.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn many_required_scopes_are_all_checked() {
    let f = fixture().await;
    let scopes = ["a:read", "b:read", "c:read", "d:read", "reports:read"];
    let app = Router::new()
        .route("/v1/reports", get(tenant))
        .route_layer(M2mAuthLayer::new(f.verifier.clone()).require_scopes(scopes));
    let sent_headers = [("x-api-key", f.access.as_str())];
    let sent = send(app, get_with("/v1/reports", &sent_headers)).await;
    assert_is_rejection(&f.verifier, &sent_headers, &scopes, &sent).await;
    assert_eq!(
        json(&sent.2)["scope"],
        "a:read b:read c:read d:read reports:read"
    );
}
