//! The remote store against a real token service on 127.0.0.1: verification through
//! introspection, single-flight, fault injection and revocation through the event stream.

mod service;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, StatusCode};
use m2m_core::{
    CacheSettings, Expiry, IssuedToken, ManualClock, NewToken, Principal, Rejection,
    RevocationEvent, StoreError, TokenDigest, TokenFormat, TokenId, TokenKind, TokenLookup,
    TokenStore, TokenType, Verifier,
};
use m2m_remote::{IntrospectionCredential, RemoteStore};
use service::{Mode, TokenService};
use time::OffsetDateTime;

const SHORT: Duration = Duration::from_millis(200);
/// A cache TTL far beyond any test's length: a token it refuses was evicted by an event.
const ONLY_EVENTS_EVICT: Duration = Duration::from_secs(3600);

fn remote_store(service: &TokenService, credential: IntrospectionCredential) -> RemoteStore {
    RemoteStore::builder(service.base_url(), credential)
        .connect_timeout(SHORT)
        .request_timeout(SHORT)
        .retries(1)
        .build()
        .unwrap()
}

fn verifier(store: &RemoteStore, ttl: Duration) -> Verifier {
    Verifier::builder(store.clone())
        .cache(CacheSettings {
            ttl,
            ..CacheSettings::default()
        })
        .build()
}

fn headers(issued: &IssuedToken) -> HeaderMap {
    let secret = issued.token.expose_secret();
    let mut headers = HeaderMap::new();
    match issued.token.kind() {
        TokenKind::AccessToken => {
            headers.insert("x-api-key", HeaderValue::from_str(secret).unwrap());
        }
        _ => {
            let value = format!("Bearer {secret}");
            headers.insert("authorization", HeaderValue::from_str(&value).unwrap());
        }
    }
    headers
}

async fn access_token(service: &TokenService, scopes: &[&str]) -> IssuedToken {
    let mut request =
        NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays).user("alice");
    for scope in scopes {
        request = request.scope(*scope);
    }
    service.issue(request, OffsetDateTime::now_utc()).await
}

async fn verify(verifier: &Verifier, issued: &IssuedToken) -> Result<Principal, Rejection> {
    verifier.verify(&headers(issued), &[]).await
}

fn assert_unavailable(result: Result<Principal, Rejection>, what: &str) {
    let rejection = result.expect_err(what);
    assert_eq!(
        rejection.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}"
    );
    assert!(rejection.retry_after().is_some_and(|s| s >= 1), "{what}");
    assert!(
        rejection
            .headers()
            .iter()
            .any(|(name, _)| name == http::header::RETRY_AFTER),
        "{what}"
    );
    assert!(rejection.www_authenticate().is_none(), "{what}");
}

fn assert_invalid_token(result: Result<Principal, Rejection>, what: &str) {
    let rejection = result.expect_err(what);
    assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(rejection.error_code(), Some("invalid_token"), "{what}");
}

/// How long a test waits for something that must happen before it calls the run hung. A guard
/// against hanging, not a speed requirement: delays are printed, and measured in benches.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// Polls `verify` every 20 ms until the token is refused; returns how long that took, for the
/// report.
async fn time_until_refused(verifier: &Verifier, issued: &IssuedToken) -> Duration {
    let start = Instant::now();
    let refused = async {
        loop {
            if let Err(rejection) = verify(verifier, issued).await {
                assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(HANG_GUARD, refused)
        .await
        .expect("the revoked token is never refused");
    start.elapsed()
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let happened = async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(HANG_GUARD, happened)
        .await
        .unwrap_or_else(|_| panic!("{what} never happened"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_tokens_authenticate_with_every_kind_of_resource_server_credential() {
    let service = TokenService::start().await;
    let credentials = service.credentials();
    let client_secret = &credentials.client_secret;
    let resource_server_credentials = [
        service.api_key(),
        IntrospectionCredential::Bearer(credentials.bearer_token.token.expose_secret().to_owned()),
        IntrospectionCredential::Basic {
            client_id: client_secret.record.client_id.clone().unwrap(),
            client_secret: client_secret.token.expose_secret().to_owned(),
        },
    ];
    let now = OffsetDateTime::now_utc();
    let credential = service
        .issue(
            NewToken::new(TokenKind::ClientSecret, "globex", Expiry::OneYear),
            now,
        )
        .await;
    let client_id = credential.record.client_id.clone().unwrap();
    for resource_server in resource_server_credentials {
        let shown = format!("{resource_server:?}");
        let store = remote_store(&service, resource_server);
        assert!(!format!("{store:?}").contains("m2m_at_") || shown.contains("m2m_ci_"));
        let verifier = verifier(&store, Duration::from_secs(10));

        let issued = access_token(&service, &["reports:read", "reports:write"]).await;
        let principal = verify(&verifier, &issued).await.expect(&shown);
        assert_eq!(principal.token_id(), &issued.record.id);
        assert_eq!(principal.tenant(), "acme");
        assert_eq!(principal.user(), Some("alice"));
        assert_eq!(principal.token_type(), TokenType::AccessToken);
        assert_eq!(
            principal.scopes().collect::<Vec<_>>(),
            ["reports:read", "reports:write"]
        );
        assert_eq!(
            principal.expires_at().map(OffsetDateTime::unix_timestamp),
            issued.record.expires_at.map(OffsetDateTime::unix_timestamp)
        );
        let forbidden = verifier
            .verify(&headers(&issued), &["admin"])
            .await
            .unwrap_err();
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);

        let mut bearer = NewToken::new(TokenKind::BearerToken, "globex", Expiry::Minutes(60))
            .scope("orders:read");
        bearer.credential = Some((credential.record.id.clone(), client_id.clone()));
        let bearer = service.issue(bearer, now).await;
        let principal = verify(&verifier, &bearer).await.expect(&shown);
        assert_eq!(principal.token_type(), TokenType::ClientCredentials);
        assert_eq!(principal.tenant(), "globex");
        assert_eq!(principal.client_id(), Some(client_id.as_str()));
        assert_eq!(principal.user(), None);
        assert!(principal.has_scope("orders:read"));

        let found = store
            .find_token(bearer.token.expose_secret(), &bearer.token.digest())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.kind, TokenKind::BearerToken);
        assert_eq!(found.stub, bearer.record.stub);
        assert_eq!(found.digest, bearer.record.digest);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_revoked_and_expired_tokens_are_invalid_token() {
    let service = TokenService::start().await;
    let store = remote_store(&service, service.api_key());
    let verifier = verifier(&store, Duration::from_secs(10));

    let unknown = NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never)
        .generate(&TokenFormat::default(), OffsetDateTime::now_utc());
    assert_invalid_token(verify(&verifier, &unknown).await, "unknown");

    let revoked = access_token(&service, &[]).await;
    service.revoke(&revoked.record).await;
    assert_invalid_token(verify(&verifier, &revoked).await, "revoked");

    let an_hour_ago = OffsetDateTime::now_utc() - time::Duration::hours(1);
    let expired = service
        .issue(
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::Minutes(1)),
            an_hour_ago,
        )
        .await;
    assert_invalid_token(verify(&verifier, &expired).await, "expired");

    let before = service.introspections();
    let mut bad_checksum = unknown.token.expose_secret().to_owned();
    bad_checksum.pop();
    bad_checksum.push('!');
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_str(&bad_checksum).unwrap());
    let rejection = verifier.verify(&headers, &[]).await.unwrap_err();
    assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        service.introspections(),
        before,
        "malformed tokens never leave the process"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_misses_make_one_introspection_call() {
    let service = TokenService::start().await;
    let store = RemoteStore::builder(service.base_url(), service.api_key())
        .build()
        .unwrap();
    let verifier = verifier(&store, Duration::from_secs(10));
    let issued = access_token(&service, &["reports:read"]).await;
    service.set_delay(Duration::from_millis(50));

    let headers = Arc::new(headers(&issued));
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let verifier = verifier.clone();
            let headers = Arc::clone(&headers);
            tokio::spawn(async move { verifier.verify(&*headers, &["reports:read"]).await })
        })
        .collect();
    for call in calls {
        let principal = call.await.unwrap().unwrap();
        assert_eq!(principal.token_id(), &issued.record.id);
    }
    assert_eq!(service.introspections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_is_a_503_with_retry_after_and_service_resumes() {
    let service = TokenService::start().await;
    let store = remote_store(&service, service.api_key());
    let verifier = verifier(&store, Duration::from_secs(10));

    let recovered = |what: &'static str| {
        let service = &service;
        let verifier = &verifier;
        async move {
            service.set_mode(Mode::Normal);
            service.set_delay(Duration::ZERO);
            let issued = access_token(service, &[]).await;
            let principal = verify(verifier, &issued).await.expect(what);
            assert_eq!(principal.token_id(), &issued.record.id, "{what}");
        }
    };

    // Nothing listening: connections are refused.
    service.stop().await;
    let issued = access_token(&service, &[]).await;
    assert_unavailable(verify(&verifier, &issued).await, "connection refused");
    service.restart().await;
    let principal = verify(&verifier, &issued).await.expect("after restart");
    assert_eq!(principal.token_id(), &issued.record.id);

    let faults = [
        (Mode::ServerError, "500"),
        (Mode::Unavailable, "503"),
        (Mode::Garbage, "garbage JSON"),
        (Mode::MissingFields, "an active token without its fields"),
        (Mode::Redirect, "a redirect"),
        (
            Mode::RefuseCredential,
            "401 to the resource server's credential",
        ),
    ];
    for (mode, what) in faults {
        service.set_mode(mode);
        let issued = access_token(&service, &[]).await;
        assert_unavailable(verify(&verifier, &issued).await, what);
        recovered(what).await;
        assert!(
            verify(&verifier, &issued).await.is_ok(),
            "{what}, the same token"
        );
    }

    // Answers after the request timeout.
    service.set_delay(Duration::from_secs(1));
    let issued = access_token(&service, &[]).await;
    // The service would answer correctly after 1 s: a 503 means the request timeout cut it.
    assert_unavailable(verify(&verifier, &issued).await, "timeout");
    recovered("timeout").await;

    // A credential the service does not know.
    let stranger = remote_store(
        &service,
        IntrospectionCredential::ApiKey("m2m_at_unknown".into()),
    );
    let verifier = Verifier::builder(stranger).build();
    assert_unavailable(
        verify(&verifier, &access_token(&service, &[]).await).await,
        "unknown credential",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_and_final_ones_are_not() {
    let service = TokenService::start().await;
    let store = RemoteStore::builder(service.base_url(), service.api_key())
        .request_timeout(SHORT)
        .retries(2)
        .build()
        .unwrap();
    let issued = access_token(&service, &[]).await;
    let token = issued.token.expose_secret();
    let digest = issued.token.digest();

    let cases = [
        (Mode::Unavailable, 3),
        (Mode::ServerError, 1),
        (Mode::Garbage, 1),
        (Mode::RefuseCredential, 1),
        (Mode::Redirect, 1),
    ];
    for (mode, calls) in cases {
        service.set_mode(mode);
        let before = service.introspections();
        let error = store.find_token(token, &digest).await.unwrap_err();
        assert_eq!(service.introspections() - before, calls, "{mode:?}");
        let StoreError::Unavailable(message) = &error else {
            panic!("{mode:?}: {error:?}");
        };
        assert!(!message.contains(token) && !format!("{error:?}").contains(token));
        if mode == Mode::RefuseCredential {
            assert!(message.contains("m2m:introspect"), "{message}");
        }
    }

    service.set_mode(Mode::Normal);
    service.set_delay(Duration::from_secs(1));
    let before = service.introspections();
    let error = store.find_token(token, &digest).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)));
    assert_eq!(service.introspections() - before, 3, "timeouts are retried");

    service.set_delay(Duration::ZERO);
    let found = store.find_token(token, &digest).await.unwrap().unwrap();
    assert_eq!(found.id, issued.record.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_seen_by_the_verifier_reach_the_token_service() {
    let service = TokenService::start().await;
    let store = remote_store(&service, service.api_key());
    let verifier = Verifier::builder(store.clone())
        .usage_interval(Duration::from_millis(20))
        .build();
    let first = access_token(&service, &[]).await;
    let second = access_token(&service, &[]).await;
    let before = OffsetDateTime::now_utc().unix_timestamp();
    verify(&verifier, &first).await.unwrap();
    verify(&verifier, &second).await.unwrap();

    let reported = || {
        let mut ids: Vec<String> = service
            .usage_reports()
            .iter()
            .flat_map(|report| report["uses"].as_array().unwrap().clone())
            .map(|entry| entry["token_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort_unstable();
        ids
    };
    let mut expected = vec![first.record.id.to_string(), second.record.id.to_string()];
    expected.sort_unstable();
    wait_for("both uses reported", || reported() == expected).await;
    let reports = service.usage_reports();
    for report in &reports {
        for entry in report["uses"].as_array().unwrap() {
            let used_at = entry["used_at"].as_i64().expect("unix seconds");
            assert!(used_at >= before, "{entry}");
        }
    }
    let text = serde_json::to_string(&reports).unwrap();
    assert!(!text.contains(first.token.expose_secret()) && !text.contains("m2m_at_"));

    for issued in [&first, &second] {
        let stored = service.store.get(&issued.record.id).await.unwrap().unwrap();
        assert!(stored.last_used_at.is_some(), "recorded at the service");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_usage_batch_is_split_into_reports_of_at_most_max_usage_batch() {
    let service = TokenService::start().await;
    let store = remote_store(&service, service.api_key());
    let issued = access_token(&service, &[]).await;
    let at = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let mut uses: Vec<(TokenId, OffsetDateTime)> = (0..2 * m2m_remote::MAX_USAGE_BATCH + 500)
        .map(|i| (TokenId::new(format!("tok_elsewhere{i}")), at))
        .collect();
    uses.push((issued.record.id.clone(), at));
    store.record_usage(&uses).await.unwrap();
    let sizes: Vec<usize> = service
        .usage_reports()
        .iter()
        .map(|report| report["uses"].as_array().unwrap().len())
        .collect();
    assert_eq!(
        sizes,
        [
            m2m_remote::MAX_USAGE_BATCH,
            m2m_remote::MAX_USAGE_BATCH,
            501
        ]
    );
    let stored = service.store.get(&issued.record.id).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, Some(at));
    store.record_usage(&[]).await.unwrap();
    assert_eq!(
        service.usage_reports().len(),
        3,
        "nothing to report, no request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_report_that_fails_is_unavailable_and_names_no_secret() {
    let service = TokenService::start().await;
    let issued = access_token(&service, &[]).await;
    let uses = [(issued.record.id.clone(), OffsetDateTime::now_utc())];

    let stranger_token = "m2m_at_unknown_resource_server";
    let stranger = remote_store(
        &service,
        IntrospectionCredential::ApiKey(stranger_token.into()),
    );
    let error = stranger.record_usage(&uses).await.unwrap_err();
    let StoreError::Unavailable(message) = &error else {
        panic!("{error:?}");
    };
    assert!(message.contains("m2m:introspect"), "{message}");
    assert!(!message.contains(stranger_token));

    let store = remote_store(&service, service.api_key());
    service.set_mode(Mode::Unavailable);
    assert!(matches!(
        store.record_usage(&uses).await,
        Err(StoreError::Unavailable(_))
    ));
    service.set_mode(Mode::Normal);
    service.stop().await;
    assert!(matches!(
        store.record_usage(&uses).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(service.usage_reports().is_empty());
    service.restart().await;
    store.record_usage(&uses).await.unwrap();
    assert_eq!(service.usage_reports().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_base_urls_and_credentials_are_refused() {
    let service = TokenService::start().await;
    let url_errors = [
        "not a url",
        "ftp://tokens.example.com",
        "http://user:pass@tokens.example.com",
        "https://tokens.example.com/?a=b",
        // Tokens would cross the network in clear.
        "http://tokens.example.com",
        "http://10.0.0.7:8080",
    ];
    for url in url_errors {
        assert!(
            RemoteStore::builder(url, service.api_key())
                .build()
                .is_err(),
            "{url}"
        );
    }
    // Explicitly allowed, or on this machine, plain http is fine.
    for url in [
        "http://localhost:8080",
        "http://127.0.0.2:8080",
        "http://[::1]:8080",
    ] {
        assert!(
            RemoteStore::builder(url, service.api_key()).build().is_ok(),
            "{url}"
        );
    }
    assert!(
        RemoteStore::builder("http://tokens.internal:8080", service.api_key())
            .allow_plain_http(true)
            .build()
            .is_ok()
    );
    let empty = RemoteStore::builder(
        service.base_url(),
        IntrospectionCredential::ApiKey(String::new()),
    );
    assert!(empty.build().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_event_evicts_the_cached_token() {
    let service = TokenService::start().await;
    let store = remote_store(&service, service.api_key());
    let verifier = verifier(&store, ONLY_EVENTS_EVICT);
    wait_for("the event stream", || store.event_stream_connected()).await;

    let issued = access_token(&service, &[]).await;
    verify(&verifier, &issued).await.unwrap();
    verify(&verifier, &issued).await.unwrap();
    assert_eq!(
        service.introspections(),
        1,
        "the second verification is cached"
    );

    service.revoke(&issued.record).await;
    let delay = time_until_refused(&verifier, &issued).await;
    eprintln!("revocation delay through the event stream: {delay:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_reconnects_after_it_is_cut_or_the_service_restarts() {
    let service = TokenService::start().await;
    let store = remote_store(&service, service.api_key());
    let verifier = verifier(&store, ONLY_EVENTS_EVICT);
    wait_for("the event stream", || service.stream_connections() == 1).await;

    // The service closes the stream: the store reopens it, and later events still evict.
    service.cut_streams();
    wait_for("the second stream", || {
        service.stream_connections() == 2 && service.open_streams() == 1
    })
    .await;
    let issued = access_token(&service, &[]).await;
    verify(&verifier, &issued).await.unwrap();
    service.revoke(&issued.record).await;
    let delay = time_until_refused(&verifier, &issued).await;
    eprintln!("revocation delay through the reopened event stream: {delay:?}");

    // An event without a digest evicts by token id.
    let issued = access_token(&service, &[]).await;
    verify(&verifier, &issued).await.unwrap();
    service.set_omit_digests(true);
    service.revoke(&issued.record).await;
    time_until_refused(&verifier, &issued).await;
    service.set_omit_digests(false);

    // The whole service goes away and comes back.
    service.stop().await;
    wait_for("the stream to drop", || !store.event_stream_connected()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    service.restart().await;
    wait_for("the stream after a restart", || {
        store.event_stream_connected() && service.open_streams() == 1
    })
    .await;
    let issued = access_token(&service, &[]).await;
    verify(&verifier, &issued).await.unwrap();
    service.revoke(&issued.record).await;
    let delay = time_until_refused(&verifier, &issued).await;
    eprintln!("revocation delay through the event stream after a restart: {delay:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_event_stream_down_the_cache_ttl_bounds_a_revoked_token() {
    let service = TokenService::start().await;
    service.set_events_down(true);
    let store = remote_store(&service, service.api_key());
    let ttl = time::Duration::seconds(10);
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let verifier = Verifier::builder(store.clone())
        .clock(clock.clone())
        .cache(CacheSettings {
            ttl: Duration::from_secs(10),
            ..CacheSettings::default()
        })
        .build();

    let issued = access_token(&service, &[]).await;
    verify(&verifier, &issued).await.unwrap();
    service.revoke(&issued.record).await;
    assert!(!store.event_stream_connected());

    // The revocation did not reach this instance: the cached entry serves until the TTL ends.
    clock.advance(ttl - time::Duration::milliseconds(1));
    assert!(verify(&verifier, &issued).await.is_ok());
    assert_eq!(service.introspections(), 1, "served from the cache");
    clock.advance(time::Duration::milliseconds(1));
    assert_invalid_token(verify(&verifier, &issued).await, "after the TTL");
    assert_eq!(service.introspections(), 2, "asked the service again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_ends_the_event_stream() {
    let service = TokenService::start().await;
    let store = remote_store(&service, service.api_key());
    let verifier = verifier(&store, Duration::from_secs(10));
    let second = verifier.clone();
    wait_for("the event stream", || service.open_streams() == 1).await;
    assert!(format!("{store:?}").contains("event_stream_connected: true"));
    assert!(
        !format!("{store:?}").contains(service.credentials().access_token.token.expose_secret())
    );
    drop(store);
    drop(verifier);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        service.open_streams(),
        1,
        "a verifier clone still holds the store"
    );
    drop(second);
    wait_for("the stream to close", || service.open_streams() == 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        service.stream_connections(),
        1,
        "no reconnection after the drop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_subscribed_directly_hears_revocations() {
    struct Heard(std::sync::Mutex<Vec<RevocationEvent>>);
    impl m2m_core::RevocationListener for Heard {
        fn revoked(&self, event: &RevocationEvent) {
            self.0.lock().unwrap().push(event.clone());
        }
    }
    let service = TokenService::start().await;
    let store = remote_store(&service, service.api_key());
    let heard = Arc::new(Heard(std::sync::Mutex::new(Vec::new())));
    assert!(store.subscribe(Arc::clone(&heard) as Arc<dyn m2m_core::RevocationListener>));
    wait_for("the event stream", || store.event_stream_connected()).await;
    let issued = access_token(&service, &[]).await;
    service.revoke(&issued.record).await;
    service.publish(RevocationEvent {
        token_id: TokenId::new("tok_elsewhere"),
        digest: Some(TokenDigest::of("elsewhere")),
    });
    wait_for("two events", || heard.0.lock().unwrap().len() == 2).await;
    let events = heard.0.lock().unwrap().clone();
    assert_eq!(events[0].token_id, issued.record.id);
    assert_eq!(events[0].digest, Some(issued.token.digest()));
    assert_eq!(events[1].token_id, TokenId::new("tok_elsewhere"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_event_stream_is_reopened_after_the_idle_timeout() {
    let service = TokenService::start().await;
    service.set_silent_streams(true);
    let store = RemoteStore::builder(service.base_url(), service.api_key())
        .event_stream_idle_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let verifier = verifier(&store, ONLY_EVENTS_EVICT);
    wait_for("a reopened stream", || service.stream_connections() >= 2).await;

    // With keepalive comments the stream stays open past the idle timeout.
    service.set_silent_streams(false);
    let before = service.stream_connections();
    service.cut_streams();
    wait_for("a talking stream", || {
        service.stream_connections() > before && service.open_streams() == 1
    })
    .await;
    let opened = service.stream_connections();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(service.stream_connections(), opened);
    let issued = access_token(&service, &[]).await;
    verify(&verifier, &issued).await.unwrap();
    service.revoke(&issued.record).await;
    time_until_refused(&verifier, &issued).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_back_pressure_cached_tokens_still_pass() {
    let service = TokenService::start().await;
    let store = remote_store(&service, service.api_key());
    let verifier = verifier(&store, Duration::from_secs(60));
    let cached = access_token(&service, &[]).await;
    verify(&verifier, &cached)
        .await
        .expect("cached while the service answers");

    service.set_mode(Mode::TooManyRequests);
    let first = access_token(&service, &[]).await;
    let before = service.introspections();
    assert_unavailable(verify(&verifier, &first).await, "429");
    assert_eq!(service.introspections(), before + 1, "a 429 is not retried");
    // During the pause the service is not asked at all; the cached token still passes.
    let second = access_token(&service, &[]).await;
    assert_unavailable(verify(&verifier, &second).await, "during the pause");
    assert_eq!(
        service.introspections(),
        before + 1,
        "the pause is honoured"
    );
    let principal = verify(&verifier, &cached)
        .await
        .expect("the cache still serves");
    assert_eq!(principal.token_id(), &cached.record.id);

    // After the pause the service is asked again.
    service.set_mode(Mode::Normal);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let principal = verify(&verifier, &second).await.expect("after the pause");
    assert_eq!(principal.token_id(), &second.record.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_event_drops_every_cached_token() {
    let service = TokenService::start().await;
    let store = remote_store(&service, service.api_key());
    let verifier = verifier(&store, ONLY_EVENTS_EVICT);
    wait_for("the event stream", || store.event_stream_connected()).await;
    for _ in 0..3 {
        let issued = access_token(&service, &[]).await;
        verify(&verifier, &issued).await.unwrap();
    }
    assert_eq!(verifier.cached_entries(), 3);
    // The service could not replay what this follower missed: nothing cached is trusted.
    service.send_reset();
    wait_for("the cache to be dropped", || verifier.cached_entries() == 0).await;
}
