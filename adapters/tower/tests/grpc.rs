//! The layer with [`GrpcOnRejection`]: every rejection as a gRPC trailers-only response.

use std::convert::Infallible;
use std::sync::Arc;

use async_trait::async_trait;
use http::{Request, Response, StatusCode};
use m2m_core::{
    Expiry, InvalidRequest, MemoryStore, NewToken, Placement, Principal, RateLimit, Rejection,
    RejectionKind, StoreError, TokenDigest, TokenId, TokenKind, TokenLookup, TokenRecord,
    TokenStore, Verifier,
};
use m2m_tower::{GrpcOnRejection, M2mAuthLayer, OnRejection};
use time::OffsetDateTime;
use tower::{Service, ServiceExt as _, service_fn};

const PATH: &str = "/reports.v1.Reports/ListReports";

/// A store whose database cannot be reached.
#[derive(Debug)]
struct UnreachableStore;

#[async_trait]
impl TokenLookup for UnreachableStore {
    async fn find_token(
        &self,
        _token: &str,
        _digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }

    async fn record_usage(&self, _uses: &[(TokenId, OffsetDateTime)]) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

struct Tokens {
    /// Access token with `reports:read`.
    reader: String,
    /// Access token without scopes.
    unscoped: String,
    /// Client-credentials bearer token with `reports:read`.
    bearer: String,
    /// Access token with `reports:read`, one request per hour.
    limited: String,
}

async fn issue(store: &MemoryStore, verifier: &Verifier, token: NewToken) -> String {
    let issued = store
        .issue(verifier.format(), token, verifier.now())
        .await
        .unwrap();
    issued.token.expose_secret().to_owned()
}

async fn tokens(store: &MemoryStore, verifier: &Verifier) -> Tokens {
    let access = || NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays);
    Tokens {
        reader: issue(store, verifier, access().scope("reports:read")).await,
        unscoped: issue(store, verifier, access()).await,
        bearer: issue(
            store,
            verifier,
            NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60))
                .scope("reports:read"),
        )
        .await,
        limited: issue(
            store,
            verifier,
            access()
                .scope("reports:read")
                .rate_limit(RateLimit::new(1, 3600).unwrap()),
        )
        .await,
    }
}

/// A gRPC service that answers the caller's tenant, behind the layer requiring `reports:read`.
fn service(
    verifier: Verifier,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone {
    tower::ServiceBuilder::new()
        .layer(
            M2mAuthLayer::new(verifier)
                .require_scopes(["reports:read"])
                .grpc(),
        )
        .service(service_fn(|request: Request<String>| async move {
            let tenant = request.extensions().get::<Principal>().unwrap().tenant();
            let mut response = Response::new(tenant.to_owned());
            response
                .headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
            Ok::<_, Infallible>(response)
        }))
}

fn call(headers: &[(&str, &str)]) -> Request<String> {
    let mut request = Request::post(PATH).header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(String::new()).unwrap()
}

/// Asserts the trailers-only shape, the gRPC status `code` and the reason of `kind`.
fn assert_refused(response: &Response<String>, code: &str, kind: RejectionKind) {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert_eq!(response.headers()["grpc-status"], code, "{kind:?}");
    assert_eq!(response.headers()["grpc-message"], kind.detail());
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(
        response.body().is_empty(),
        "a trailers-only response has no body"
    );
}

async fn setup() -> (Verifier, Tokens) {
    let store = Arc::new(MemoryStore::new());
    let verifier = Verifier::builder(store.clone()).build();
    let tokens = tokens(&store, &verifier).await;
    (verifier, tokens)
}

#[tokio::test]
async fn an_admitted_call_reaches_the_service() {
    let (verifier, tokens) = setup().await;
    let service = service(verifier);
    for headers in [
        [("x-api-key", tokens.reader.as_str())],
        [("authorization", &format!("Bearer {}", tokens.bearer))],
    ] {
        let response = service.clone().oneshot(call(&headers)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), "acme");
        assert!(response.headers().get("grpc-status").is_none());
    }
}

#[tokio::test]
async fn missing_credentials_are_unauthenticated() {
    let (verifier, _) = setup().await;
    let response = service(verifier).oneshot(call(&[])).await.unwrap();
    assert_refused(&response, "16", RejectionKind::MissingCredentials);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("ApiKey realm="), "{challenge}");
    assert!(response.headers().get("grpc-retry-pushback-ms").is_none());
}

#[tokio::test]
async fn a_bad_token_is_unauthenticated() {
    let (verifier, tokens) = setup().await;
    let mut bad_checksum = tokens.reader.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'A' { 'B' } else { 'A' });
    let response = service(verifier)
        .oneshot(call(&[("x-api-key", &bad_checksum)]))
        .await
        .unwrap();
    assert_refused(&response, "16", RejectionKind::InvalidToken);
}

#[tokio::test]
async fn a_missing_scope_is_permission_denied() {
    let (verifier, tokens) = setup().await;
    let response = service(verifier)
        .oneshot(call(&[("x-api-key", &tokens.unscoped)]))
        .await
        .unwrap();
    assert_refused(&response, "7", RejectionKind::InsufficientScope);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
}

#[tokio::test]
async fn malformed_credentials_are_an_invalid_argument() {
    let (verifier, tokens) = setup().await;
    let service = service(verifier);
    let bearer = format!("Bearer {}", tokens.bearer);
    let response = service
        .clone()
        .oneshot(call(&[
            ("x-api-key", &tokens.reader),
            ("authorization", &bearer),
        ]))
        .await
        .unwrap();
    assert_refused(
        &response,
        "3",
        RejectionKind::InvalidRequest(InvalidRequest::BothHeaders),
    );

    let response = service
        .oneshot(call(&[("x-api-key", &tokens.bearer)]))
        .await
        .unwrap();
    assert_refused(
        &response,
        "3",
        RejectionKind::InvalidRequest(InvalidRequest::WrongPlacement {
            expected: Placement::Bearer,
        }),
    );
}

#[tokio::test]
async fn a_spent_rate_limit_is_resource_exhausted_with_a_pushback() {
    let (verifier, tokens) = setup().await;
    let service = service(verifier);
    let first = service
        .clone()
        .oneshot(call(&[("x-api-key", &tokens.limited)]))
        .await
        .unwrap();
    assert_eq!(first.body(), "acme");

    let response = service
        .oneshot(call(&[("x-api-key", &tokens.limited)]))
        .await
        .unwrap();
    assert_refused(&response, "8", RejectionKind::RateLimited);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0);
    assert_eq!(
        response.headers()["grpc-retry-pushback-ms"],
        (retry_after * 1000).to_string()
    );
    assert!(response.headers().contains_key("ratelimit-policy"));
}

#[tokio::test]
async fn an_unreachable_store_is_unavailable_with_a_pushback() {
    // A well-formed token, issued elsewhere, that the verifier must ask its store about.
    let (issuer, tokens) = setup().await;
    let verifier = Verifier::builder(UnreachableStore)
        .format(issuer.format().clone())
        .build();
    let response = service(verifier)
        .oneshot(call(&[("x-api-key", &tokens.reader)]))
        .await
        .unwrap();
    assert_refused(&response, "14", RejectionKind::StoreUnavailable);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0);
    assert_eq!(
        response.headers()["grpc-retry-pushback-ms"],
        (retry_after * 1000).to_string()
    );
    assert!(response.headers().get("www-authenticate").is_none());
}

#[test]
fn a_missing_middleware_is_internal() {
    let response: Response<String> = GrpcOnRejection.on_rejection(Rejection::middleware_missing());
    assert_refused(&response, "13", RejectionKind::MiddlewareMissing);
}
