//! What the token service logs when it refuses a request: the reason, and never a token or a
//! secret. Alone in its test binary: the log is captured with a subscriber of this thread, and
//! no other test runs beside it to race on tracing's per-callsite interest.

use std::sync::Arc;

use http::StatusCode;
use m2m_core::{MemoryStore, TokenStore};
use m2m_server::{AppState, INTROSPECT_SCOPE, ServiceOptions};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// The service's router over a memory store, and its admin token.
async fn service() -> (axum::Router, String) {
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let state = AppState::new(store, ServiceOptions::default())
        .await
        .unwrap();
    let admin = m2m_server::bootstrap_admin(&state).await.unwrap().unwrap();
    (
        m2m_server::app(state),
        admin.token.expose_secret().to_owned(),
    )
}

/// Issues a token through the router; the whole 201 body.
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

/// Log lines captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn send(router: &axum::Router, request: http::Request<axum::body::Body>) -> StatusCode {
    router.clone().oneshot(request).await.unwrap().status()
}

/// Refused introspections and token requests each log their reason at debug level, and no
/// token or secret reaches the log.
#[tokio::test]
async fn refusals_are_logged_with_their_reason_and_without_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (router, admin) = service().await;
    let caller = create_through(
        &router,
        &admin,
        "m2m",
        json!({"expires": "1d", "scopes": [INTROSPECT_SCOPE]}),
    )
    .await;
    let caller = caller["token"].as_str().unwrap().to_owned();
    let client = create_through(
        &router,
        &admin,
        "acme",
        json!({"expires": "1d", "type": "client_credentials"}),
    )
    .await;
    let (client_id, secret) = (
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    let unknown = m2m_core::TokenFormat::default().generate(m2m_core::TokenKind::AccessToken);
    let unknown = unknown.expose_secret();
    let other_secret = m2m_core::TokenFormat::default().generate(m2m_core::TokenKind::ClientSecret);
    let other_secret = other_secret.expose_secret();

    let answer = router
        .clone()
        .oneshot(introspection(&caller, unknown))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let token_request = |secret: &str| {
        http::Request::post("/oauth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(format!(
                "grant_type=client_credentials&client_id={client_id}&client_secret={secret}"
            )))
            .unwrap()
    };
    assert_eq!(
        send(&router, token_request(other_secret)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(send(&router, token_request(secret)).await, StatusCode::OK);
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{client_id}:{other_secret}"),
    );
    let refused = http::Request::post("/oauth/introspect")
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(format!("token={unknown}")))
        .unwrap();
    assert_eq!(send(&router, refused).await, StatusCode::UNAUTHORIZED);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("introspection: token inactive") && log.contains("reason=\"unknown\""),
        "{log}"
    );
    assert!(
        log.contains("token request refused") && log.contains(client_id),
        "{log}"
    );
    assert!(log.contains("resource server refused"), "{log}");
    for secret in [caller.as_str(), &admin, secret, other_secret, unknown] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
}
