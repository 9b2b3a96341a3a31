//! The gRPC example served on loopback and called with its generated tonic client: each refusal
//! of the HTTP contract arrives as its gRPC status, with the same reason as message.

use std::net::SocketAddr;

use m2m_core::{
    Expiry, InvalidRequest, NewToken, Placement, RateLimit, RejectionKind, TokenKind, TokenStore,
    Verifier,
};
use m2m_example_grpc::proto::ListReportsRequest;
use m2m_example_grpc::proto::reports_client::ReportsClient;
use m2m_sql::SqlStore;
use tempfile::TempDir;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Status};

/// The tokens the cases present, issued into the SQLite store.
struct Tokens {
    /// Access token with `reports:read`.
    reader: String,
    /// Its public id.
    reader_id: String,
    /// Client-credentials bearer token with `reports:read`.
    bearer: String,
    /// Access token without scopes.
    unscoped: String,
    /// Access token with `reports:read`, one call per hour.
    limited: String,
    /// Well-formed, right checksum, never issued.
    unknown: String,
}

/// The example server on 127.0.0.1, over a SQLite file store, and a client connected to it.
struct Api {
    store: SqlStore,
    tokens: Tokens,
    client: ReportsClient<Channel>,
    _dir: TempDir,
}

async fn issue(store: &SqlStore, verifier: &Verifier, token: NewToken) -> (String, String) {
    let issued = store
        .issue(verifier.format(), token, verifier.now())
        .await
        .unwrap();
    (
        issued.token.expose_secret().to_owned(),
        issued.record.id.as_str().to_owned(),
    )
}

async fn start() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let store = SqlStore::connect(&url).await.unwrap();
    let verifier = Verifier::builder(store.clone()).build();
    let access = || NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays);
    let (reader, reader_id) = issue(&store, &verifier, access().scope("reports:read")).await;
    let (bearer, _) = issue(
        &store,
        &verifier,
        NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60)).scope("reports:read"),
    )
    .await;
    let (unscoped, _) = issue(&store, &verifier, access()).await;
    let (limited, _) = issue(
        &store,
        &verifier,
        access()
            .scope("reports:read")
            .rate_limit(RateLimit::new(1, 3600).unwrap()),
    )
    .await;
    let unknown = access()
        .scope("reports:read")
        .generate(verifier.format(), verifier.now())
        .token
        .expose_secret()
        .to_owned();

    let incoming = TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let address = incoming.local_addr().unwrap();
    tokio::spawn(m2m_example_grpc::server(verifier).serve_with_incoming(incoming));
    let client = ReportsClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    Api {
        store,
        tokens: Tokens {
            reader,
            reader_id,
            bearer,
            unscoped,
            limited,
            unknown,
        },
        client,
        _dir: dir,
    }
}

/// A `ListReports` call carrying `metadata`.
fn call(metadata: &[(&'static str, &str)]) -> Request<ListReportsRequest> {
    let mut request = Request::new(ListReportsRequest {});
    for (name, value) in metadata {
        request.metadata_mut().insert(*name, value.parse().unwrap());
    }
    request
}

async fn refused(api: &mut Api, metadata: &[(&'static str, &str)]) -> Status {
    api.client
        .list_reports(call(metadata))
        .await
        .expect_err("the call is refused")
}

fn assert_status(status: &Status, code: Code, kind: RejectionKind) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), kind.detail());
}

/// The retry pushback in milliseconds, checked against the HTTP `Retry-After` beside it.
fn pushback_ms(status: &Status) -> u64 {
    let metadata = status.metadata();
    let pushback: u64 = metadata
        .get("grpc-retry-pushback-ms")
        .expect("grpc-retry-pushback-ms")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let retry_after: u64 = metadata
        .get("retry-after")
        .expect("retry-after")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(pushback, retry_after * 1000);
    pushback
}

#[tokio::test]
async fn an_admitted_call_sees_its_caller() {
    let mut api = start().await;
    let response = api
        .client
        .list_reports(call(&[("x-api-key", &api.tokens.reader)]))
        .await
        .unwrap()
        .into_inner();
    let caller = response.caller.unwrap();
    assert_eq!(caller.tenant, "acme");
    assert_eq!(caller.token_id, api.tokens.reader_id);
    assert_eq!(caller.token_kind, "access_token");
    assert_eq!(caller.scopes, ["reports:read"]);
    assert_eq!(response.reports.len(), 1);

    let bearer = format!("Bearer {}", api.tokens.bearer);
    let response = api
        .client
        .list_reports(call(&[("authorization", &bearer)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.caller.unwrap().token_kind, "bearer_token");
}

#[tokio::test]
async fn no_credentials_are_unauthenticated() {
    let mut api = start().await;
    let status = refused(&mut api, &[]).await;
    assert_status(
        &status,
        Code::Unauthenticated,
        RejectionKind::MissingCredentials,
    );
    let challenge = status
        .metadata()
        .get("www-authenticate")
        .expect("www-authenticate")
        .to_str()
        .unwrap();
    assert!(challenge.contains("ApiKey realm="), "{challenge}");
}

#[tokio::test]
async fn a_bad_token_is_unauthenticated() {
    let mut api = start().await;
    let unknown = api.tokens.unknown.clone();
    let status = refused(&mut api, &[("x-api-key", &unknown)]).await;
    assert_status(&status, Code::Unauthenticated, RejectionKind::InvalidToken);

    let mut bad_checksum = api.tokens.reader.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'A' { 'B' } else { 'A' });
    let status = refused(&mut api, &[("x-api-key", &bad_checksum)]).await;
    assert_status(&status, Code::Unauthenticated, RejectionKind::InvalidToken);
}

#[tokio::test]
async fn a_token_without_the_scope_is_permission_denied() {
    let mut api = start().await;
    let unscoped = api.tokens.unscoped.clone();
    let status = refused(&mut api, &[("x-api-key", &unscoped)]).await;
    assert_status(
        &status,
        Code::PermissionDenied,
        RejectionKind::InsufficientScope,
    );
}

#[tokio::test]
async fn malformed_credentials_are_an_invalid_argument() {
    let mut api = start().await;
    let reader = api.tokens.reader.clone();
    let bearer = format!("Bearer {}", api.tokens.bearer);
    let status = refused(
        &mut api,
        &[("x-api-key", &reader), ("authorization", &bearer)],
    )
    .await;
    assert_status(
        &status,
        Code::InvalidArgument,
        RejectionKind::InvalidRequest(InvalidRequest::BothHeaders),
    );

    // A bearer token in the access tokens' header.
    let misplaced = api.tokens.bearer.clone();
    let status = refused(&mut api, &[("x-api-key", &misplaced)]).await;
    assert_status(
        &status,
        Code::InvalidArgument,
        RejectionKind::InvalidRequest(InvalidRequest::WrongPlacement {
            expected: Placement::Bearer,
        }),
    );
}

#[tokio::test]
async fn a_failing_store_is_unavailable_with_a_pushback() {
    let mut api = start().await;
    // The database goes away before the token's first call, so nothing of it is cached.
    api.store.close().await;
    let reader = api.tokens.reader.clone();
    let status = refused(&mut api, &[("x-api-key", &reader)]).await;
    assert_status(&status, Code::Unavailable, RejectionKind::StoreUnavailable);
    assert!(pushback_ms(&status) > 0);
    assert!(status.metadata().get("www-authenticate").is_none());
}

#[tokio::test]
async fn a_spent_rate_limit_is_resource_exhausted_with_a_pushback() {
    let mut api = start().await;
    let limited = api.tokens.limited.clone();
    api.client
        .list_reports(call(&[("x-api-key", &limited)]))
        .await
        .expect("the first call is within the limit");
    let status = refused(&mut api, &[("x-api-key", &limited)]).await;
    assert_status(&status, Code::ResourceExhausted, RejectionKind::RateLimited);
    assert!(pushback_ms(&status) > 0);
}
