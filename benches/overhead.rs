//! In-process overhead of the m2m middleware per framework, on a cache hit, beside the peers a
//! user would pick instead. No sockets: each request goes through the framework's own test path.
//!
//! ```text
//! cargo bench --bench overhead
//! ```
//!
//! Budget (DESIGN.md, "Performance budgets"): on a cache hit the layer adds ≤ 150 ns per request
//! in axum and actix-web, and less than every peer that does a real lookup.
//!
//! Every app has one `GET /v1/whoami` route: it answers the caller's tenant behind an
//! authentication layer, a fixed string without one. Every token is verified once before
//! measuring, and the verifier's cache keeps it for an hour, so the m2m figures are cache hits.
//! One criterion group per framework, each request built, sent and its status checked inside
//! the timed loop:
//!
//! - `axum` (`tower::ServiceExt::ready` + `call` on one `Router`):
//!   - `bare`: no authentication;
//!   - `m2m`: `m2m_tower::M2mAuthLayer`, an access token in `X-API-KEY`;
//!   - `m2m_layer_only`: the same layer before the fixed handler, which extracts no caller and
//!     allocates no body: what the layer costs by itself;
//!   - `m2m_jwt_bearer`: the same layer over a verifier with a `JwtIssuer`, an EdDSA JWT in
//!     `Authorization: Bearer` (verified once, then a cache hit under its digest);
//!   - `tower_http_bearer_fixed_token`: tower-http's `ValidateRequestHeaderLayer::bearer`, which
//!     compares the header with one token fixed at start: no lookup, no caller;
//!   - `axum_jwt_auth_eddsa`: `axum-jwt-auth`'s `Claims` extractor with a `LocalDecoder`, which
//!     checks the JWT's signature, `iss`, `aud` and `exp` on every request.
//! - `actix` (`actix_web::test::init_service` + `call_service`):
//!   - `bare`: no authentication;
//!   - `m2m`: the `m2m_actix::M2mAuth` middleware, an access token in `X-API-KEY`;
//!   - `m2m_layer_only`: the same middleware before the fixed handler;
//!   - `httpauth_sha256_dashmap`: `actix-web-httpauth`'s `HttpAuthentication::bearer` with the
//!     validator a user would write by hand: SHA-256 of the bearer token, looked up in a
//!     `DashMap` of digests to tenants.
//! - `rocket` (`rocket::local::asynchronous::Client`):
//!   - `bare`: no authentication;
//!   - `m2m`: the `m2m_rocket::M2mAuth` fairing and the `Authenticated` guard.
//!
//! After the groups, a summary line per framework gives the nanoseconds each layer adds to a
//! request (its time less the bare app's), from a loop of its own: every app in turn, several
//! rounds, the median of each. Each line also gives what the core's `Verifier::verify_cached`
//! costs alone, in a tight loop over an `http::HeaderMap` with the same token, and the rest of
//! what the layer adds: the adapter, the extractor, the tenant's body, and what the core costs
//! in the app beyond its tight loop. `M2M_BENCH_ROUNDS` sets the rounds (default 7). A
//! criterion filter (`cargo bench --bench overhead -- axum`) limits the summary to the
//! frameworks it names; `--test`, `--list` and `--profile-time` skip it.

#[path = "common/jwt.rs"]
#[allow(unreachable_pub)] // shared with the other JWT bench
mod jwt_fixture;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServiceRequest;
use actix_web::{HttpMessage as _, web};
use actix_web_httpauth::extractors::bearer::BearerAuth;
use actix_web_httpauth::middleware::HttpAuthentication;
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::Criterion;
use dashmap::DashMap;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::{HeaderMap, Request, StatusCode};
use jwt_fixture::{AUDIENCE, ISSUER, axum_jwt_auth_decoder, signed_jwt};
use m2m_core::jwt::{JwtIssuer, JwtKey, JwtKeys};
use m2m_core::{CacheSettings, Expiry, MemoryStore, NewToken, TokenKind, TokenStore, Verifier};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::runtime::Runtime;
use tower::{Service as _, ServiceExt};

const TENANT: &str = "acme";
const PATH: &str = "/v1/whoami";

/// One app of a group: its criterion name, what the summary calls it, and a loop that sends it
/// `n` requests and returns the time they took.
struct Variant<'a> {
    name: &'static str,
    label: &'static str,
    run: Box<dyn FnMut(u64) -> Duration + 'a>,
}

impl<'a> Variant<'a> {
    fn new(name: &'static str, label: &'static str, run: impl FnMut(u64) -> Duration + 'a) -> Self {
        Self {
            name,
            label,
            run: Box::new(run),
        }
    }
}

/// The credentials of the bench: an opaque access token and a JWT, and the verifier that
/// accepts both, each already verified once.
struct Credentials {
    verifier: Verifier,
    access_token: String,
    jwt: String,
    /// The JWT issuer's public key, for `axum-jwt-auth`.
    jwk: Value,
}

impl Credentials {
    fn new() -> Self {
        let (jwt, jwk) = signed_jwt(TENANT, "reports:read");
        let key = JwtKey::from_jwk(&serde_json::from_value(jwk.clone()).expect("a JWK"))
            .expect("a usable public key");
        let store = Arc::new(MemoryStore::new());
        let verifier = Verifier::builder(store.clone())
            .cache(CacheSettings {
                ttl: Duration::from_secs(3600),
                ..CacheSettings::default()
            })
            .jwt_issuer(JwtIssuer::new(ISSUER, JwtKeys::default().with(key)).audience(AUDIENCE))
            .build();
        let runtime = current_thread();
        let issued = runtime
            .block_on(store.issue(
                verifier.format(),
                NewToken::new(TokenKind::AccessToken, TENANT, Expiry::Never),
                verifier.now(),
            ))
            .expect("issue the bench token");
        let access_token = issued.token.expose_secret().to_owned();
        for headers in [
            header_map(x_api_key(), &access_token),
            header_map(AUTHORIZATION, &format!("Bearer {jwt}")),
        ] {
            let principal = runtime
                .block_on(verifier.verify(&headers, &[]))
                .expect("the bench credentials verify");
            assert_eq!(principal.tenant(), TENANT);
        }
        Self {
            verifier,
            access_token,
            jwt,
            jwk,
        }
    }

    fn api_key_value(&self) -> HeaderValue {
        HeaderValue::from_str(&self.access_token).expect("a header value")
    }

    fn bearer_value(&self, token: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value")
    }
}

fn x_api_key() -> HeaderName {
    HeaderName::from_static("x-api-key")
}

fn header_map(name: HeaderName, value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(name, HeaderValue::from_str(value).expect("a header value"));
    headers
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

// ---------------------------------------------------------------------------------------------
// axum

mod axum_app {
    use axum_jwt_auth::Claims;
    use m2m_tower::Authenticated;
    use serde_json::Value;

    pub(crate) async fn fixed() -> &'static str {
        super::TENANT
    }

    pub(crate) async fn m2m_tenant(caller: Authenticated) -> String {
        caller.tenant().to_owned()
    }

    pub(crate) async fn claims_tenant(caller: Claims<Value>) -> String {
        caller
            .claims
            .get("tenant_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

/// Sends `n` requests with the header `name: value` to `app`, one at a time, on `runtime`.
fn axum_loop(
    runtime: &Runtime,
    app: Router,
    name: HeaderName,
    value: HeaderValue,
) -> impl FnMut(u64) -> Duration + '_ {
    // What `axum::serve` runs: a router whose handlers were turned into routes once. A router
    // called as it is builds every route again per request, its layers included.
    let mut app = app.with_state(());
    move |n| {
        runtime.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                let request = Request::get(PATH)
                    .header(name.clone(), value.clone())
                    .body(Body::empty())
                    .expect("a request");
                let service = ServiceExt::<Request<Body>>::ready(&mut app)
                    .await
                    .expect("the router is ready");
                let response = service.call(request).await.expect("a response");
                assert_eq!(response.status(), StatusCode::OK);
                black_box(response);
            }
            start.elapsed()
        })
    }
}

fn axum_variants<'a>(runtime: &'a Runtime, credentials: &Credentials) -> Vec<Variant<'a>> {
    use axum_app::{claims_tenant, fixed, m2m_tenant};

    let api_key = credentials.api_key_value();
    let jwt_bearer = credentials.bearer_value(&credentials.jwt);
    let token_bearer = credentials.bearer_value(&credentials.access_token);

    let m2m = Router::new()
        .route(PATH, get(m2m_tenant))
        .layer(m2m_tower::M2mAuthLayer::new(credentials.verifier.clone()));

    #[allow(deprecated)] // "too basic to be useful in real applications": the point of comparing
    let fixed_token =
        tower_http::validate_request::ValidateRequestHeaderLayer::bearer(&credentials.access_token);
    let tower_http = Router::new().route(PATH, get(fixed)).layer(fixed_token);

    let decoder = axum_jwt_auth_decoder(credentials.jwk.clone());
    let jwt_auth = Router::new()
        .route(PATH, get(claims_tenant))
        .with_state(decoder);

    vec![
        Variant::new(
            "bare",
            "bare",
            axum_loop(
                runtime,
                Router::new().route(PATH, get(fixed)),
                x_api_key(),
                api_key.clone(),
            ),
        ),
        Variant::new(
            "m2m",
            "m2m",
            axum_loop(runtime, m2m.clone(), x_api_key(), api_key.clone()),
        ),
        Variant::new(
            "m2m_layer_only",
            "m2m layer before the fixed handler (no extractor)",
            axum_loop(
                runtime,
                Router::new()
                    .route(PATH, get(fixed))
                    .layer(m2m_tower::M2mAuthLayer::new(credentials.verifier.clone())),
                x_api_key(),
                api_key.clone(),
            ),
        ),
        Variant::new(
            "m2m_jwt_bearer",
            "m2m on a JWT bearer (cached)",
            axum_loop(runtime, m2m, AUTHORIZATION, jwt_bearer.clone()),
        ),
        Variant::new(
            "tower_http_bearer_fixed_token",
            "tower-http bearer (one fixed token, no lookup)",
            axum_loop(runtime, tower_http, AUTHORIZATION, token_bearer),
        ),
        Variant::new(
            "axum_jwt_auth_eddsa",
            "axum-jwt-auth (EdDSA signature per request)",
            axum_loop(runtime, jwt_auth, AUTHORIZATION, jwt_bearer),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// actix-web

mod actix_app {
    use actix_web::{HttpResponse, web};
    use m2m_actix::Authenticated;

    /// The tenant the hand-written bearer validator found.
    #[derive(Clone)]
    pub(crate) struct Tenant(pub(crate) std::sync::Arc<str>);

    pub(crate) async fn fixed() -> HttpResponse {
        HttpResponse::Ok().body(super::TENANT)
    }

    pub(crate) async fn m2m_tenant(caller: Authenticated) -> HttpResponse {
        HttpResponse::Ok().body(caller.tenant().to_owned())
    }

    pub(crate) async fn httpauth_tenant(tenant: web::ReqData<Tenant>) -> HttpResponse {
        HttpResponse::Ok().body(tenant.0.to_string())
    }
}

/// The validator a user writes for `HttpAuthentication::bearer`: the token's SHA-256 looked up
/// in a map of digests to tenants.
async fn sha256_dashmap(
    tokens: Arc<DashMap<[u8; 32], Arc<str>>>,
    req: ServiceRequest,
    credentials: BearerAuth,
) -> Result<ServiceRequest, (actix_web::Error, ServiceRequest)> {
    let digest: [u8; 32] = Sha256::digest(credentials.token().as_bytes()).into();
    let tenant = tokens.get(&digest).map(|entry| Arc::clone(entry.value()));
    match tenant {
        Some(tenant) => {
            req.extensions_mut().insert(actix_app::Tenant(tenant));
            Ok(req)
        }
        None => Err((actix_web::error::ErrorUnauthorized("unknown token"), req)),
    }
}

/// Builds the actix app (`$app`, an `App`) into a test service on `$system` and returns the
/// timed loop sending it `n` requests with the header `$name: $value`.
macro_rules! actix_loop {
    ($system:expr, $app:expr, $name:expr, $value:expr) => {{
        let system: &actix_web::rt::SystemRunner = $system;
        let service = system.block_on(actix_web::test::init_service($app));
        let name: actix_web::http::header::HeaderName = $name;
        let value: actix_web::http::header::HeaderValue = $value;
        move |n: u64| {
            system.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    let request = actix_web::test::TestRequest::get()
                        .uri(PATH)
                        .insert_header((name.clone(), value.clone()))
                        .to_request();
                    let response = actix_web::test::call_service(&service, request).await;
                    assert_eq!(response.status(), actix_web::http::StatusCode::OK);
                    black_box(response);
                }
                start.elapsed()
            })
        }
    }};
}

fn actix_variants<'a>(
    system: &'a actix_web::rt::SystemRunner,
    credentials: &Credentials,
) -> Vec<Variant<'a>> {
    use actix_app::{fixed, httpauth_tenant, m2m_tenant};
    use actix_web::App;
    use actix_web::http::header::{self as actix_header, HeaderValue as ActixValue};

    let api_key = ActixValue::from_str(&credentials.access_token).expect("a header value");
    let bearer = ActixValue::from_str(&format!("Bearer {}", credentials.access_token))
        .expect("a header value");
    let x_api_key = || actix_header::HeaderName::from_static("x-api-key");

    let tokens = Arc::new(DashMap::new());
    tokens.insert(
        Sha256::digest(credentials.access_token.as_bytes()).into(),
        Arc::<str>::from(TENANT),
    );
    let validator = move |req, bearer| sha256_dashmap(Arc::clone(&tokens), req, bearer);
    let verifier = credentials.verifier.clone();

    vec![
        Variant::new(
            "bare",
            "bare",
            actix_loop!(
                system,
                App::new().service(web::scope("/v1").route("/whoami", web::get().to(fixed))),
                x_api_key(),
                api_key.clone()
            ),
        ),
        Variant::new(
            "m2m",
            "m2m",
            actix_loop!(
                system,
                App::new().service(
                    web::scope("/v1")
                        .wrap(m2m_actix::M2mAuth::new(verifier))
                        .route("/whoami", web::get().to(m2m_tenant))
                ),
                x_api_key(),
                api_key.clone()
            ),
        ),
        Variant::new(
            "m2m_layer_only",
            "m2m middleware before the fixed handler (no extractor)",
            actix_loop!(
                system,
                App::new().service(
                    web::scope("/v1")
                        .wrap(m2m_actix::M2mAuth::new(credentials.verifier.clone()))
                        .route("/whoami", web::get().to(fixed))
                ),
                x_api_key(),
                api_key.clone()
            ),
        ),
        Variant::new(
            "httpauth_sha256_dashmap",
            "actix-web-httpauth bearer, SHA-256 + DashMap lookup",
            actix_loop!(
                system,
                App::new().service(
                    web::scope("/v1")
                        .wrap(HttpAuthentication::bearer(validator))
                        .route("/whoami", web::get().to(httpauth_tenant))
                ),
                actix_header::AUTHORIZATION,
                bearer
            ),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Rocket

mod rocket_app {
    use m2m_rocket::Authenticated;

    #[rocket::get("/v1/whoami")]
    pub(crate) fn fixed() -> &'static str {
        super::TENANT
    }

    #[rocket::get("/v1/whoami")]
    pub(crate) fn m2m_tenant(caller: Authenticated) -> String {
        caller.tenant().to_owned()
    }
}

fn rocket_loop<'a>(
    runtime: &'a Runtime,
    app: rocket::Rocket<rocket::Build>,
    token: &str,
) -> impl FnMut(u64) -> Duration + 'a {
    use rocket::http::{Header, Status};
    use rocket::local::asynchronous::Client;

    let client = runtime
        .block_on(Client::untracked(app))
        .expect("a local Rocket client");
    let token = token.to_owned();
    move |n| {
        runtime.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                let response = client
                    .get(PATH)
                    .header(Header::new("X-API-KEY", token.clone()))
                    .dispatch()
                    .await;
                assert_eq!(response.status(), Status::Ok);
                black_box(response);
            }
            start.elapsed()
        })
    }
}

fn rocket_variants<'a>(runtime: &'a Runtime, credentials: &Credentials) -> Vec<Variant<'a>> {
    let figment = rocket::Config::figment().merge(("log_level", "off"));
    let bare = rocket::custom(figment.clone()).mount("/", rocket::routes![rocket_app::fixed]);
    let m2m = rocket::custom(figment)
        .attach(m2m_rocket::M2mAuth::new(credentials.verifier.clone()))
        .mount("/", rocket::routes![rocket_app::m2m_tenant]);
    vec![
        Variant::new(
            "bare",
            "bare",
            rocket_loop(runtime, bare, &credentials.access_token),
        ),
        Variant::new(
            "m2m",
            "m2m",
            rocket_loop(runtime, m2m, &credentials.access_token),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// The groups and the summary

fn bench_group(c: &mut Criterion, framework: &str, variants: &mut [Variant<'_>]) {
    let mut group = c.benchmark_group(framework);
    for variant in variants.iter_mut() {
        group.bench_function(variant.name, |b| b.iter_custom(|n| (variant.run)(n)));
    }
    group.finish();
}

/// Median nanoseconds per request of each variant: every variant in turn, `rounds` times, each
/// time for about 200 ms (at most 200,000 requests).
fn medians(variants: &mut [Variant<'_>], rounds: usize) -> Vec<f64> {
    let counts: Vec<u64> = variants
        .iter_mut()
        .map(|variant| {
            let per_request = (variant.run)(200).as_secs_f64() / 200.0;
            ((0.2 / per_request) as u64).clamp(200, 200_000)
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(rounds); variants.len()];
    for _ in 0..rounds {
        for ((variant, &n), samples) in variants.iter_mut().zip(&counts).zip(&mut samples) {
            samples.push((variant.run)(n).as_nanos() as f64 / n as f64);
        }
    }
    samples
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect()
}

/// "<framework>: layer adds N ns per request (m2m − bare), peers: …", then the other m2m
/// variants and, when given, the core's own time on a cache hit.
fn summary_line(
    framework: &str,
    variants: &[Variant<'_>],
    medians: &[f64],
    rounds: usize,
    core: Option<f64>,
) -> String {
    let bare = medians[0];
    let added = |i: usize| format!("{} {:+.0} ns", variants[i].label, medians[i] - bare);
    let m2m = variants
        .iter()
        .position(|v| v.name == "m2m")
        .expect("an m2m variant");
    let (details, peers): (Vec<usize>, Vec<usize>) = (1..variants.len())
        .filter(|&i| i != m2m)
        .partition(|&i| variants[i].name.starts_with("m2m"));
    let peers: Vec<String> = peers.into_iter().map(added).collect();
    let mut line = format!(
        "{framework}: layer adds {:.0} ns per request (m2m − bare), peers: {}",
        medians[m2m] - bare,
        if peers.is_empty() {
            "none in process".to_owned()
        } else {
            peers.join(", ")
        },
    );
    line.push_str(&format!(
        " [bare {bare:.0} ns, m2m {:.0} ns per request",
        medians[m2m]
    ));
    for i in details {
        line.push_str(&format!("; {}", added(i)));
    }
    if let Some(core) = core {
        line.push_str(&format!(
            "; core Verifier::verify_cached alone (tight loop) {core:.0} ns, the rest {:.0} ns",
            medians[m2m] - bare - core
        ));
    }
    line.push_str(&format!("; median of {rounds} rounds]"));
    line
}

/// The core's share: `Verifier::verify_cached` alone on the same token, median ns per call.
fn core_verify_cached(credentials: &Credentials, rounds: usize) -> f64 {
    let headers = header_map(x_api_key(), &credentials.access_token);
    let verifier = &credentials.verifier;
    let mut variants = [Variant::new("verify_cached", "verify_cached", |n| {
        let start = Instant::now();
        for _ in 0..n {
            let principal = verifier
                .verify_cached(black_box(&headers), &[])
                .expect("a cache hit")
                .expect("a principal");
            black_box(principal);
        }
        start.elapsed()
    })];
    medians(&mut variants, rounds)[0]
}

/// What the command line asks of the summary: skipped, or limited to a filter.
struct SummaryRequest {
    skip: bool,
    filter: Option<String>,
}

impl SummaryRequest {
    fn from_args() -> Self {
        /// Criterion options followed by a value.
        const WITH_VALUE: &[&str] = &[
            "--profile-time",
            "--save-baseline",
            "--baseline",
            "--baseline-lenient",
            "--load-baseline",
            "--measurement-time",
            "--warm-up-time",
            "--sample-size",
            "--nresamples",
            "--noise-threshold",
            "--confidence-level",
            "--significance-level",
            "--color",
            "--output-format",
            "--plotting-backend",
            "--format",
        ];
        let mut skip = false;
        let mut filter = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if matches!(arg.as_str(), "--test" | "--list" | "--profile-time") {
                skip = true;
            }
            if WITH_VALUE.contains(&arg.as_str()) {
                args.next();
            } else if !arg.starts_with('-') {
                filter = Some(arg);
            }
        }
        Self { skip, filter }
    }

    fn wants(&self, framework: &str) -> bool {
        !self.skip
            && self
                .filter
                .as_deref()
                .is_none_or(|filter| filter.contains(framework) || framework.contains(filter))
    }
}

fn main() {
    let credentials = Credentials::new();
    let request = SummaryRequest::from_args();
    let rounds: usize = std::env::var("M2M_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&rounds| rounds > 0)
        .unwrap_or(7);
    let mut c = Criterion::default().configure_from_args();
    let mut lines = Vec::new();

    let runtime = current_thread();
    let mut axum = axum_variants(&runtime, &credentials);
    bench_group(&mut c, "axum", &mut axum);
    if request.wants("axum") {
        let medians = medians(&mut axum, rounds);
        let core = core_verify_cached(&credentials, rounds);
        lines.push(summary_line("axum", &axum, &medians, rounds, Some(core)));
    }
    drop(axum);

    let system = actix_web::rt::System::new();
    let mut actix = actix_variants(&system, &credentials);
    bench_group(&mut c, "actix", &mut actix);
    if request.wants("actix") {
        let medians = medians(&mut actix, rounds);
        let core = core_verify_cached(&credentials, rounds);
        lines.push(summary_line("actix", &actix, &medians, rounds, Some(core)));
    }
    drop(actix);

    let mut rocket = rocket_variants(&runtime, &credentials);
    bench_group(&mut c, "rocket", &mut rocket);
    if request.wants("rocket") {
        let medians = medians(&mut rocket, rounds);
        let core = core_verify_cached(&credentials, rounds);
        lines.push(summary_line(
            "rocket",
            &rocket,
            &medians,
            rounds,
            Some(core),
        ));
    }
    drop(rocket);

    c.final_summary();
    if !lines.is_empty() {
        println!();
        for line in lines {
            println!("{line}");
        }
    }
}
