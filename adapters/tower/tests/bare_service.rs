//! The layer around bare tower services, with no axum router.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use m2m_core::{Expiry, MemoryStore, NewToken, Principal, TokenKind, TokenStore, Verifier};
use m2m_tower::M2mAuthLayer;
use tower::{Layer as _, Service, ServiceExt as _, service_fn};

async fn verifier_and_token() -> (Verifier, String) {
    let store = Arc::new(MemoryStore::new());
    let verifier = Verifier::builder(store.clone()).build();
    let issued = store
        .issue(
            verifier.format(),
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
            verifier.now(),
        )
        .await
        .unwrap();
    (verifier, issued.token.expose_secret().to_owned())
}

fn with_api_key(token: &str) -> Request<String> {
    Request::builder()
        .header("x-api-key", token)
        .body(String::new())
        .unwrap()
}

#[tokio::test]
async fn service_fn_receives_the_principal_in_the_extensions() {
    let (verifier, token) = verifier_and_token().await;
    let service =
        M2mAuthLayer::new(verifier).layer(service_fn(|request: Request<String>| async move {
            let principal = request.extensions().get::<Principal>().cloned();
            Ok::<_, Infallible>(Response::new(
                principal.map(|p| p.tenant().to_owned()).unwrap_or_default(),
            ))
        }));

    let response = service.clone().oneshot(with_api_key(&token)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body(), "acme");

    let response = service.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
    assert_eq!(body["status"], 401);
}

/// A service that must be polled ready before each call, as tower requires; clones start unready.
#[derive(Debug, Default)]
struct ReadyOnce {
    ready: bool,
}

impl Clone for ReadyOnce {
    fn clone(&self) -> Self {
        Self { ready: false }
    }
}

impl Service<Request<String>> for ReadyOnce {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<String>) -> Self::Future {
        assert!(self.ready, "called without poll_ready");
        self.ready = false;
        ready(Ok(Response::new("called".to_owned())))
    }
}

#[tokio::test]
async fn the_service_polled_ready_is_the_one_called() {
    let (verifier, token) = verifier_and_token().await;
    let mut service = M2mAuthLayer::new(verifier).layer(ReadyOnce::default());
    for _ in 0..3 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(with_api_key(&token))
            .await
            .unwrap();
        assert_eq!(response.body(), "called");
    }
}

#[tokio::test]
async fn rejection_is_rendered_into_the_inner_body_type() {
    let (verifier, _) = verifier_and_token().await;
    let service = M2mAuthLayer::new(verifier.clone()).layer(ReadyOnce::default());
    let response = service
        .oneshot(with_api_key("m2m_at_not-a-token"))
        .await
        .unwrap();
    let expected = verifier
        .verify(with_api_key("m2m_at_not-a-token").headers(), &[])
        .await
        .unwrap_err();
    assert_eq!(response.status(), expected.status());
    assert_eq!(response.body(), &expected.body());
    for (name, value) in expected.headers() {
        assert_eq!(response.headers()[name], value);
    }
}

#[tokio::test]
async fn the_layer_and_service_print_no_secret() {
    let (verifier, token) = verifier_and_token().await;
    let layer = M2mAuthLayer::new(verifier).require_scopes(["reports:read"]);
    let mut service = layer.layer(ReadyOnce::default());
    let printed = format!("{layer:?} {service:?}");
    assert!(printed.contains("reports:read"));
    assert!(!printed.contains(&token));
    let future = service.ready().await.unwrap().call(with_api_key(&token));
    let printed = format!("{future:?}");
    assert!(
        printed.contains("verifying") && !printed.contains(&token),
        "{printed}"
    );
    assert_eq!(future.await.unwrap().status(), StatusCode::FORBIDDEN);
}
