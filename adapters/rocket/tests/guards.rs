//! The fairing, guards and catchers driven through Rocket's local client.

use std::sync::Arc;

use async_trait::async_trait;
use m2m_core::{
    Expiry, MemoryStore, NewToken, Rejection, StoreError, TokenDigest, TokenId, TokenKind,
    TokenLookup, TokenRecord, TokenStore, Verifier,
};
use m2m_rocket::{Authenticated, M2mAuth, Scoped};
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket::{Build, Rocket, get, routes};
use serde_json::Value;
use time::OffsetDateTime;

m2m_rocket::scopes!(ReportsRead => "reports:read");

#[get("/v1/whoami")]
fn whoami(caller: Authenticated) -> String {
    caller.tenant().to_owned()
}

#[get("/v1/reports")]
fn reports(caller: Scoped<ReportsRead>) -> String {
    format!("reports of {}", caller.tenant())
}

#[get("/v1/greeting")]
fn greeting(caller: Option<Authenticated>) -> String {
    match caller {
        Some(caller) => format!("hello {}", caller.tenant()),
        None => "hello stranger".to_owned(),
    }
}

#[get("/health")]
fn health() -> &'static str {
    "ok"
}

#[get("/teapot")]
fn teapot() -> Status {
    Status::Unauthorized
}

#[get("/v1/headers")]
fn headers(_caller: Authenticated, seen: SeenHeaders) -> String {
    seen.0
}

/// What a handler can read of the credential headers.
struct SeenHeaders(String);

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for SeenHeaders {
    type Error = ();

    async fn from_request(request: &'r rocket::Request<'_>) -> rocket::request::Outcome<Self, ()> {
        let key = request.headers().get_one("X-API-KEY").unwrap_or("<none>");
        rocket::request::Outcome::Success(SeenHeaders(format!("x-api-key=[{key}]")))
    }
}

struct Tokens {
    verifier: Verifier,
    access: String,
    bearer: String,
}

async fn tokens() -> Tokens {
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
    Tokens {
        verifier,
        access: access.token.expose_secret().to_owned(),
        bearer: bearer.token.expose_secret().to_owned(),
    }
}

fn app(auth: M2mAuth) -> Rocket<Build> {
    rocket::build()
        .configure(rocket::Config::figment().merge(("log_level", "off")))
        .attach(auth)
        .mount(
            "/",
            routes![whoami, reports, greeting, health, teapot, headers],
        )
}

async fn client(auth: M2mAuth) -> Client {
    Client::tracked(app(auth)).await.unwrap()
}

fn api_key(token: &str) -> Header<'static> {
    Header::new("X-API-KEY", token.to_owned())
}

fn bearer(token: &str) -> Header<'static> {
    Header::new("Authorization", format!("Bearer {token}"))
}

/// Status, the contract headers and the body's `error` of a rejection.
struct Refusal {
    status: Status,
    www_authenticate: Option<String>,
    retry_after: Option<String>,
    cache_control: Option<String>,
    content_type: Option<String>,
    body: Value,
}

async fn refusal(response: LocalResponse<'_>) -> Refusal {
    let header = |name: &str| response.headers().get_one(name).map(str::to_owned);
    let (www_authenticate, retry_after, cache_control, content_type) = (
        header("WWW-Authenticate"),
        header("Retry-After"),
        header("Cache-Control"),
        header("Content-Type"),
    );
    let status = response.status();
    let text = response.into_string().await.unwrap_or_default();
    Refusal {
        status,
        www_authenticate,
        retry_after,
        cache_control,
        content_type,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

impl Refusal {
    fn assert_problem(&self, status: Status, error: Option<&str>) {
        assert_eq!(self.status, status);
        assert_eq!(self.cache_control.as_deref(), Some("no-store"));
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/problem+json")
        );
        assert_eq!(self.body["status"], status.code);
        assert_eq!(self.body["error"].as_str(), error);
    }
}

#[rocket::async_test]
async fn a_valid_access_token_reaches_the_handler() {
    let t = tokens().await;
    let client = client(M2mAuth::new(t.verifier)).await;
    let response = client
        .get("/v1/whoami")
        .header(api_key(&t.access))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.into_string().await.unwrap(), "acme");
}

#[rocket::async_test]
async fn a_valid_bearer_token_reaches_the_handler() {
    let t = tokens().await;
    let client = client(M2mAuth::new(t.verifier)).await;
    let response = client
        .get("/v1/whoami")
        .header(bearer(&t.bearer))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.into_string().await.unwrap(), "globex");
}

#[rocket::async_test]
async fn no_credentials_is_401_with_a_challenge_per_type() {
    let t = tokens().await;
    let client = client(M2mAuth::new(t.verifier)).await;
    let r = refusal(client.get("/v1/whoami").dispatch().await).await;
    r.assert_problem(Status::Unauthorized, None);
    let challenge = r.www_authenticate.unwrap();
    assert!(challenge.contains("ApiKey realm=") && challenge.contains("Bearer realm="));
    assert!(!challenge.contains("error="));
}

#[rocket::async_test]
async fn the_default_fairing_protects_every_route() {
    let t = tokens().await;
    let client = client(M2mAuth::new(t.verifier)).await;
    let r = refusal(client.get("/health").dispatch().await).await;
    r.assert_problem(Status::Unauthorized, None);
}

#[rocket::async_test]
async fn a_missing_scope_is_403_naming_the_scope() {
    let t = tokens().await;
    let client = client(M2mAuth::new(t.verifier)).await;
    let r = refusal(
        client
            .get("/v1/reports")
            .header(bearer(&t.bearer))
            .dispatch()
            .await,
    )
    .await;
    r.assert_problem(Status::Forbidden, Some("insufficient_scope"));
    let challenge = r.www_authenticate.unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"reports:read\""), "{challenge}");

    let response = client
        .get("/v1/reports")
        .header(api_key(&t.access))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.into_string().await.unwrap(), "reports of acme");
}

#[rocket::async_test]
async fn scopes_required_by_the_fairing_apply_everywhere() {
    let t = tokens().await;
    let auth = M2mAuth::new(t.verifier).require_scopes(["reports:read"]);
    let client = client(auth).await;
    let r = refusal(
        client
            .get("/v1/whoami")
            .header(bearer(&t.bearer))
            .dispatch()
            .await,
    )
    .await;
    r.assert_problem(Status::Forbidden, Some("insufficient_scope"));
    let response = client
        .get("/v1/whoami")
        .header(api_key(&t.access))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
}

#[rocket::async_test]
async fn a_token_in_the_wrong_header_is_400() {
    let t = tokens().await;
    let client = client(M2mAuth::new(t.verifier)).await;
    let r = refusal(
        client
            .get("/v1/whoami")
            .header(bearer(&t.access))
            .dispatch()
            .await,
    )
    .await;
    r.assert_problem(Status::BadRequest, Some("invalid_request"));
    assert!(
        r.www_authenticate
            .unwrap()
            .contains("error=\"invalid_request\"")
    );
    assert!(r.body["detail"].as_str().unwrap().contains("X-API-KEY"));
    assert!(!r.body.to_string().contains(&t.access));
}

#[rocket::async_test]
async fn both_headers_are_400() {
    let t = tokens().await;
    let client = client(M2mAuth::new(t.verifier)).await;
    let request = client
        .get("/v1/whoami")
        .header(api_key(&t.access))
        .header(bearer(&t.bearer));
    let r = refusal(request.dispatch().await).await;
    r.assert_problem(Status::BadRequest, Some("invalid_request"));
}

#[rocket::async_test]
async fn a_repeated_header_is_400() {
    let t = tokens().await;
    let client = client(M2mAuth::new(t.verifier)).await;
    let request = client
        .get("/v1/whoami")
        .header(api_key(&t.access))
        .header(api_key(&t.access));
    let r = refusal(request.dispatch().await).await;
    r.assert_problem(Status::BadRequest, Some("invalid_request"));
}

#[rocket::async_test]
async fn control_characters_are_400_not_missing() {
    let t = tokens().await;
    let client = client(M2mAuth::new(t.verifier).optional(true)).await;
    let value = format!("{}\u{1}", t.access);
    let request = client
        .get("/v1/greeting")
        .header(Header::new("X-API-KEY", value));
    let r = refusal(request.dispatch().await).await;
    r.assert_problem(Status::BadRequest, Some("invalid_request"));

    let request = client
        .get("/v1/greeting")
        .header(Header::new("X-API-KEY", "é"));
    let r = refusal(request.dispatch().await).await;
    r.assert_problem(Status::BadRequest, Some("invalid_request"));
}

#[rocket::async_test]
async fn an_unknown_token_is_401_invalid_token() {
    let t = tokens().await;
    let client = client(M2mAuth::new(t.verifier)).await;
    let r = refusal(
        client
            .get("/v1/whoami")
            .header(api_key("m2m_at_nope"))
            .dispatch()
            .await,
    )
    .await;
    r.assert_problem(Status::Unauthorized, Some("invalid_token"));
}

/// A store that cannot answer.
#[derive(Debug)]
struct DownStore;

#[async_trait]
impl TokenLookup for DownStore {
    async fn find_token(
        &self,
        _: &str,
        _: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        Err(StoreError::Unavailable("the database is down".into()))
    }

    async fn record_usage(&self, _: &[(TokenId, OffsetDateTime)]) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("the database is down".into()))
    }
}

#[rocket::async_test]
async fn a_store_outage_is_503_with_retry_after() {
    let t = tokens().await;
    let verifier = Verifier::builder(DownStore).build();
    let client = client(M2mAuth::new(verifier)).await;
    let r = refusal(
        client
            .get("/v1/whoami")
            .header(api_key(&t.access))
            .dispatch()
            .await,
    )
    .await;
    r.assert_problem(Status::ServiceUnavailable, None);
    assert_eq!(r.retry_after.as_deref(), Some("5"));
    assert_eq!(r.www_authenticate, None);
}

#[rocket::async_test]
async fn an_optional_route_with_and_without_a_token() {
    let t = tokens().await;
    let client = client(M2mAuth::new(t.verifier).optional(true)).await;
    let response = client.get("/v1/greeting").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.into_string().await.unwrap(), "hello stranger");

    let response = client
        .get("/v1/greeting")
        .header(api_key(&t.access))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.into_string().await.unwrap(), "hello acme");

    // A bad credential is refused, not turned into an anonymous caller.
    let r = refusal(
        client
            .get("/v1/greeting")
            .header(api_key("m2m_at_nope"))
            .dispatch()
            .await,
    )
    .await;
    r.assert_problem(Status::Unauthorized, Some("invalid_token"));

    // Public routes stay public; guarded ones still need credentials.
    assert_eq!(client.get("/health").dispatch().await.status(), Status::Ok);
    let r = refusal(client.get("/v1/whoami").dispatch().await).await;
    r.assert_problem(Status::Unauthorized, None);
}

#[rocket::async_test]
async fn a_custom_rejection_responder_replaces_the_response() {
    let t = tokens().await;
    let auth = M2mAuth::new(t.verifier).on_rejection(|rejection: Rejection| {
        let status = Status::new(rejection.status().as_u16());
        (
            status,
            (ContentType::Text, format!("denied: {}", rejection.detail())),
        )
    });
    let client = client(auth).await;
    let response = client.get("/v1/whoami").dispatch().await;
    assert_eq!(response.status(), Status::Unauthorized);
    assert_eq!(response.content_type(), Some(ContentType::Text));
    assert_eq!(
        response.into_string().await.unwrap(),
        "denied: the request carries no credentials"
    );
}

#[rocket::async_test]
async fn other_errors_keep_a_plain_response() {
    let t = tokens().await;
    let client = client(M2mAuth::new(t.verifier).optional(true)).await;
    let response = client.get("/teapot").dispatch().await;
    assert_eq!(response.status(), Status::Unauthorized);
    assert_eq!(response.headers().get_one("WWW-Authenticate"), None);
    assert_eq!(response.content_type(), Some(ContentType::Plain));
    assert_eq!(response.into_string().await.unwrap(), "401 Unauthorized");
}

#[rocket::async_test]
async fn cors_preflights_are_verified_unless_the_fairing_lets_them_pass() {
    let t = tokens().await;
    fn preflight(client: &Client) -> rocket::local::asynchronous::LocalRequest<'_> {
        client
            .options("/v1/whoami")
            .header(Header::new("Origin", "https://app.example"))
            .header(Header::new("Access-Control-Request-Method", "GET"))
    }
    let client = client(M2mAuth::new(t.verifier.clone())).await;
    assert_eq!(
        preflight(&client).dispatch().await.status(),
        Status::Unauthorized
    );

    let client = client_of(M2mAuth::new(t.verifier).cors_preflight(true)).await;
    // No OPTIONS route: Rocket's own 404, not a 401.
    assert_eq!(
        preflight(&client).dispatch().await.status(),
        Status::NotFound
    );
    let no_origin = client
        .options("/v1/whoami")
        .header(Header::new("Access-Control-Request-Method", "GET"));
    assert_eq!(no_origin.dispatch().await.status(), Status::Unauthorized);
}

async fn client_of(auth: M2mAuth) -> Client {
    client(auth).await
}

#[rocket::async_test]
async fn stripped_credentials_are_blank_to_handlers() {
    let t = tokens().await;
    let client = client(M2mAuth::new(t.verifier.clone()).strip_credentials(true)).await;
    let response = client
        .get("/v1/headers")
        .header(api_key(&t.access))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.into_string().await.unwrap(), "x-api-key=[]");

    let client = client_of(M2mAuth::new(t.verifier)).await;
    let response = client
        .get("/v1/headers")
        .header(api_key(&t.access))
        .dispatch()
        .await;
    assert_eq!(
        response.into_string().await.unwrap(),
        format!("x-api-key=[{}]", t.access)
    );
}

#[rocket::async_test]
async fn without_a_fairing_or_verifier_the_guard_answers_500() {
    let rocket = rocket::build()
        .configure(rocket::Config::figment().merge(("log_level", "off")))
        .mount("/", routes![whoami]);
    let client = Client::tracked(rocket).await.unwrap();
    assert_eq!(
        client.get("/v1/whoami").dispatch().await.status(),
        Status::InternalServerError
    );
}

#[rocket::async_test]
async fn without_a_fairing_a_managed_verifier_is_not_used() {
    let t = tokens().await;
    let rocket = rocket::build()
        .configure(rocket::Config::figment().merge(("log_level", "off")))
        .manage(t.verifier)
        .register("/", m2m_rocket::catchers())
        .mount("/", routes![whoami, reports]);
    let client = Client::tracked(rocket).await.unwrap();
    // Guards read the fairing's decision and never verify by themselves.
    let expected = m2m_core::Rejection::middleware_missing();
    for path in ["/v1/whoami", "/v1/reports"] {
        let response = client.get(path).header(api_key(&t.access)).dispatch().await;
        assert_eq!(response.status(), Status::InternalServerError);
        assert_eq!(response.into_string().await.unwrap(), expected.body());
    }
}
