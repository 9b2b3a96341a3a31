//! The middleware and extractor driven through the real actix service.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, test, web};
use m2m_actix::{Authenticated, M2mAuth};
use m2m_core::{Expiry, MemoryStore, NewToken, Rejection, TokenKind, TokenStore, Verifier};

struct Fixture {
    verifier: Verifier,
    access_token: String,
    bearer_token: String,
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
        access_token: access.token.expose_secret().to_owned(),
        bearer_token: bearer.token.expose_secret().to_owned(),
    }
}

async fn whoami(caller: Authenticated) -> HttpResponse {
    HttpResponse::Ok().body(caller.tenant().to_owned())
}

async fn maybe_whoami(caller: Option<Authenticated>) -> HttpResponse {
    let name = caller.map_or_else(|| "anonymous".to_owned(), |c| c.tenant().to_owned());
    HttpResponse::Ok().body(name)
}

async fn credential_headers_seen(req: HttpRequest) -> HttpResponse {
    let seen = ["x-api-key", "authorization"]
        .iter()
        .filter(|name| req.headers().contains_key(**name))
        .count();
    HttpResponse::Ok().body(seen.to_string())
}

/// `/v1/whoami` and friends behind `$auth`, `/v1/reports` additionally requiring `reports:read`.
macro_rules! app {
    ($auth:expr, $verifier:expr) => {
        test::init_service(
            App::new().service(
                web::scope("/v1")
                    .wrap($auth)
                    .route("/whoami", web::get().to(whoami))
                    .route("/maybe", web::get().to(maybe_whoami))
                    .route("/headers", web::get().to(credential_headers_seen))
                    .route("/preflight", web::route().to(HttpResponse::NoContent))
                    .service(
                        web::resource("/reports")
                            .wrap(M2mAuth::new($verifier.clone()).require_scopes(["reports:read"]))
                            .to(whoami),
                    ),
            ),
        )
        .await
    };
}

/// A GET of `$uri` with `$headers`, each appended (so a name may repeat).
macro_rules! get {
    ($app:expr, $uri:expr, $headers:expr) => {{
        let headers: &[(&str, &str)] = $headers;
        let mut request = test::TestRequest::get().uri($uri);
        for (name, value) in headers {
            request = request.append_header((*name, *value));
        }
        test::call_service(&$app, request.to_request()).await
    }};
}

/// What the core answers for these headers.
async fn core_rejection(
    verifier: &Verifier,
    headers: &[(&str, &str)],
    scopes: &[&str],
) -> Rejection {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    verifier.verify(&map, scopes).await.unwrap_err()
}

/// The response is the core rejection: status, exactly its headers, and its body.
async fn assert_is(
    response: ServiceResponse<impl MessageBody>,
    rejection: &Rejection,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), rejection.status().as_u16());
    let expected = rejection.headers();
    assert_eq!(
        response.headers().len(),
        expected.len(),
        "{:?}",
        response.headers()
    );
    for (name, value) in &expected {
        assert_eq!(
            response.headers().get(name.as_str()).map(|v| v.as_bytes()),
            Some(value.as_bytes()),
            "{name}"
        );
    }
    let body = test::read_body(response).await;
    assert_eq!(body, rejection.body().as_bytes());
    serde_json::from_slice(&body).unwrap()
}

async fn body_text(response: ServiceResponse<impl MessageBody>) -> String {
    String::from_utf8(test::read_body(response).await.to_vec()).unwrap()
}

#[actix_web::test]
async fn a_valid_access_token_reaches_the_handler() {
    let f = fixture().await;
    let app = app!(M2mAuth::new(f.verifier.clone()), f.verifier);
    let response = get!(app, "/v1/whoami", &[("X-API-KEY", f.access_token.as_str())]);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "acme");
}

#[actix_web::test]
async fn a_valid_bearer_token_reaches_the_handler() {
    let f = fixture().await;
    let app = app!(M2mAuth::new(f.verifier.clone()), f.verifier);
    let authorization = format!("bearer {}", f.bearer_token);
    let response = get!(
        app,
        "/v1/whoami",
        &[("Authorization", authorization.as_str())]
    );
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "globex");
}

#[actix_web::test]
async fn no_credentials_is_the_core_401() {
    let f = fixture().await;
    let app = app!(M2mAuth::new(f.verifier.clone()), f.verifier);
    let response = get!(app, "/v1/whoami", &[]);
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let challenge = response
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("ApiKey realm=") && challenge.contains("Bearer realm="),
        "{challenge}"
    );
    assert!(!challenge.contains("error="), "{challenge}");
    let body = assert_is(response, &core_rejection(&f.verifier, &[], &[]).await).await;
    assert_eq!(body["status"], 401);
    assert!(body.get("error").is_none());
}

#[actix_web::test]
async fn another_scheme_counts_as_no_credentials() {
    let f = fixture().await;
    let app = app!(M2mAuth::new(f.verifier.clone()), f.verifier);
    let headers = [("Authorization", "Basic dXNlcjpwYXNz")];
    let response = get!(app, "/v1/whoami", &headers);
    assert_is(response, &core_rejection(&f.verifier, &headers, &[]).await).await;
}

#[actix_web::test]
async fn an_unknown_token_is_invalid_token() {
    let f = fixture().await;
    let app = app!(M2mAuth::new(f.verifier.clone()), f.verifier);
    let headers = [(
        "X-API-KEY",
        "m2m_at_notarealtokennotarealtokennotarealtoken",
    )];
    let response = get!(app, "/v1/whoami", &headers);
    let body = assert_is(response, &core_rejection(&f.verifier, &headers, &[]).await).await;
    assert_eq!(body["error"], "invalid_token");
    assert!(!body.to_string().contains("notarealtoken"));
}

#[actix_web::test]
async fn a_missing_scope_is_403() {
    let f = fixture().await;
    let app = app!(M2mAuth::new(f.verifier.clone()), f.verifier);
    let authorization = format!("Bearer {}", f.bearer_token);
    let headers = [("Authorization", authorization.as_str())];
    let response = get!(app, "/v1/reports", &headers);
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"reports:read\""), "{challenge}");
    let rejection = core_rejection(&f.verifier, &headers, &["reports:read"]).await;
    let body = assert_is(response, &rejection).await;
    assert_eq!(body["error"], "insufficient_scope");

    let response = get!(
        app,
        "/v1/reports",
        &[("X-API-KEY", f.access_token.as_str())]
    );
    assert_eq!(response.status(), StatusCode::OK);
}

#[actix_web::test]
async fn a_token_in_the_wrong_header_is_400() {
    let f = fixture().await;
    let app = app!(M2mAuth::new(f.verifier.clone()), f.verifier);
    let headers = [("X-API-KEY", f.bearer_token.as_str())];
    let response = get!(app, "/v1/whoami", &headers);
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = assert_is(response, &core_rejection(&f.verifier, &headers, &[]).await).await;
    assert_eq!(body["error"], "invalid_request");
    assert!(body["detail"].as_str().unwrap().contains("Authorization"));

    let authorization = format!("Bearer {}", f.access_token);
    let headers = [("Authorization", authorization.as_str())];
    let response = get!(app, "/v1/whoami", &headers);
    let body = assert_is(response, &core_rejection(&f.verifier, &headers, &[]).await).await;
    assert!(body["detail"].as_str().unwrap().contains("X-API-KEY"));
}

#[actix_web::test]
async fn both_headers_are_400() {
    let f = fixture().await;
    let app = app!(M2mAuth::new(f.verifier.clone()), f.verifier);
    let authorization = format!("Bearer {}", f.bearer_token);
    let headers = [
        ("X-API-KEY", f.access_token.as_str()),
        ("Authorization", authorization.as_str()),
    ];
    let response = get!(app, "/v1/whoami", &headers);
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = assert_is(response, &core_rejection(&f.verifier, &headers, &[]).await).await;
    assert_eq!(body["error"], "invalid_request");
}

#[actix_web::test]
async fn a_repeated_header_is_400() {
    let f = fixture().await;
    let app = app!(M2mAuth::new(f.verifier.clone()), f.verifier);
    let headers = [
        ("X-API-KEY", f.access_token.as_str()),
        ("x-api-key", f.access_token.as_str()),
    ];
    let response = get!(app, "/v1/whoami", &headers);
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = assert_is(response, &core_rejection(&f.verifier, &headers, &[]).await).await;
    assert_eq!(body["error"], "invalid_request");
}

#[actix_web::test]
async fn optional_mode_passes_requests_without_credentials() {
    let f = fixture().await;
    let app = app!(M2mAuth::new(f.verifier.clone()).optional(true), f.verifier);

    let response = get!(app, "/v1/maybe", &[]);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "anonymous");

    let response = get!(app, "/v1/maybe", &[("X-API-KEY", f.access_token.as_str())]);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "acme");

    // Any other failure is still refused.
    let headers = [("X-API-KEY", f.bearer_token.as_str())];
    let response = get!(app, "/v1/maybe", &headers);
    assert_is(response, &core_rejection(&f.verifier, &headers, &[]).await).await;

    // A handler that demands a caller answers the core 401.
    let response = get!(app, "/v1/whoami", &[]);
    assert_is(response, &core_rejection(&f.verifier, &[], &[]).await).await;
}

#[actix_web::test]
async fn cors_preflights_are_verified_unless_the_middleware_lets_them_pass() {
    let f = fixture().await;
    let preflight = |origin: bool| {
        let mut request = test::TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/v1/preflight")
            .insert_header(("Access-Control-Request-Method", "GET"));
        if origin {
            request = request.insert_header(("Origin", "https://example.com"));
        }
        request.to_request()
    };
    let app = app!(M2mAuth::new(f.verifier.clone()), f.verifier);
    let response = test::call_service(&app, preflight(true)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let app = app!(
        M2mAuth::new(f.verifier.clone()).cors_preflight(true),
        f.verifier
    );
    let response = test::call_service(&app, preflight(true)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    // Without Origin it is no preflight, and a plain OPTIONS is authenticated like any request.
    let response = test::call_service(&app, preflight(false)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let plain = test::TestRequest::default()
        .method(actix_web::http::Method::OPTIONS)
        .uri("/v1/preflight")
        .to_request();
    let response = test::call_service(&app, plain).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn strip_credentials_removes_the_headers_before_the_handler() {
    let f = fixture().await;
    let headers = [("X-API-KEY", f.access_token.as_str())];

    let app = app!(M2mAuth::new(f.verifier.clone()), f.verifier);
    let response = get!(app, "/v1/headers", &headers);
    assert_eq!(body_text(response).await, "1");

    let app = app!(
        M2mAuth::new(f.verifier.clone()).strip_credentials(true),
        f.verifier
    );
    let response = get!(app, "/v1/headers", &headers);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "0");

    let authorization = format!("Bearer {}", f.bearer_token);
    let response = get!(
        app,
        "/v1/headers",
        &[("Authorization", authorization.as_str())]
    );
    assert_eq!(body_text(response).await, "0");
}

#[actix_web::test]
async fn a_custom_responder_replaces_the_rejection() {
    let f = fixture().await;
    let custom = |rejection: Rejection| {
        HttpResponse::ImATeapot().body(format!("refused: {}", rejection.status().as_u16()))
    };
    let app = app!(
        M2mAuth::new(f.verifier.clone()).on_rejection(custom),
        f.verifier
    );
    let response = get!(app, "/v1/whoami", &[]);
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(body_text(response).await, "refused: 401");

    // In optional mode the extractor answers with the same responder.
    let app = app!(
        M2mAuth::new(f.verifier.clone())
            .optional(true)
            .on_rejection(custom),
        f.verifier
    );
    let response = get!(app, "/v1/whoami", &[]);
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    let response = get!(app, "/v1/maybe", &[]);
    assert_eq!(response.status(), StatusCode::OK);
}

#[actix_web::test]
async fn the_extractor_without_middleware_is_500_even_with_a_verifier_in_app_data() {
    let f = fixture().await;
    let expected = Rejection::middleware_missing();
    for data in [true, false] {
        let app = if data {
            App::new().app_data(web::Data::new(f.verifier.clone()))
        } else {
            App::new()
        };
        let app = test::init_service(
            app.route("/whoami", web::get().to(whoami))
                .route("/maybe", web::get().to(maybe_whoami)),
        )
        .await;
        // The extractor reads what a middleware decided; it never verifies by itself.
        let response = get!(app, "/whoami", &[("X-API-KEY", f.access_token.as_str())]);
        assert_is(response, &expected).await;
        let response = get!(app, "/maybe", &[("X-API-KEY", f.access_token.as_str())]);
        assert_eq!(body_text(response).await, "anonymous");
    }
}
