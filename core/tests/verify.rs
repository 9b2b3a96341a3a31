//! The verifier against every row of the HTTP contract, the cache rules and store failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use m2m_core::{
    CacheSettings, Expiry, ManualClock, MemoryStore, NewToken, Policy, Principal, RateLimit,
    Rejection, RejectionKind, RevocationListener, StoreError, TokenDigest, TokenFormat, TokenId,
    TokenKind, TokenLookup, TokenRecord, TokenStore, TokenType, TokenTypes, Verifier,
};
use time::{Duration, OffsetDateTime, macros::datetime};

const T0: OffsetDateTime = datetime!(2026-06-01 08:00 UTC);

/// A real [`MemoryStore`] that counts lookups, can be slowed down and can be made to fail.
#[derive(Debug, Default)]
struct CountingStore {
    inner: MemoryStore,
    usage_batches: std::sync::Mutex<Vec<Vec<(TokenId, OffsetDateTime)>>>,
    finds: AtomicUsize,
    failing: AtomicBool,
    delay: StdDuration,
}

impl CountingStore {
    fn slow(delay: StdDuration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    fn finds(&self) -> usize {
        self.finds.load(Ordering::SeqCst)
    }

    fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

/// The lookup the verifier uses: counted, slowed down and failing on demand.
#[async_trait]
impl TokenLookup for CountingStore {
    async fn find_token(
        &self,
        token: &str,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        self.inner.find_token(token, digest).await
    }

    fn subscribe(&self, listener: Arc<dyn RevocationListener>) -> bool {
        self.inner.subscribe(listener)
    }

    async fn record_usage(&self, uses: &[(TokenId, OffsetDateTime)]) -> Result<(), StoreError> {
        self.usage_batches.lock().unwrap().push(uses.to_vec());
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        self.inner.record_usage(uses).await
    }
}

struct Fixture {
    store: Arc<CountingStore>,
    clock: ManualClock,
    verifier: Verifier,
}

impl Fixture {
    fn new(settings: CacheSettings) -> Self {
        Self::with_store(CountingStore::default(), settings)
    }

    fn with_store(store: CountingStore, settings: CacheSettings) -> Self {
        let store = Arc::new(store);
        let clock = ManualClock::new(T0);
        let verifier = Verifier::builder(store.clone())
            .clock(clock.clone())
            .cache(settings)
            .build();
        Self {
            store,
            clock,
            verifier,
        }
    }

    async fn issue(&self, request: NewToken) -> String {
        self.store
            .inner
            .issue(&TokenFormat::default(), request, self.clock.now())
            .await
            .unwrap()
            .token
            .expose_secret()
            .to_owned()
    }

    async fn issue_record(&self, request: NewToken) -> (String, TokenRecord) {
        let issued = self
            .store
            .inner
            .issue(&TokenFormat::default(), request, self.clock.now())
            .await
            .unwrap();
        (issued.token.expose_secret().to_owned(), issued.record)
    }

    async fn verify(&self, headers: &HeaderMap, scopes: &[&str]) -> Result<Principal, Rejection> {
        self.verifier.verify(headers, scopes).await
    }
}

use m2m_core::Clock as _;

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    map
}

fn api_key(token: &str) -> HeaderMap {
    headers(&[("x-api-key", token.as_bytes())])
}

fn bearer(token: &str) -> HeaderMap {
    headers(&[("authorization", format!("Bearer {token}").as_bytes())])
}

fn access(tenant: &str, expiry: Expiry) -> NewToken {
    NewToken::new(TokenKind::AccessToken, tenant, expiry).scope("reports:read")
}

/// What a contract row must produce.
#[derive(Debug)]
struct Expected {
    status: StatusCode,
    error: Option<&'static str>,
    challenge: &'static [&'static str],
    detail: Option<&'static str>,
}

fn check(case: &str, outcome: Result<Principal, Rejection>, expected: &Expected, token: &str) {
    let rejection = match outcome {
        Ok(principal) => panic!("{case}: accepted as {principal:?}"),
        Err(rejection) => rejection,
    };
    assert_eq!(rejection.status(), expected.status, "{case}");
    assert_eq!(rejection.error_code(), expected.error, "{case}");
    let challenge = rejection.www_authenticate().unwrap_or_default();
    for part in expected.challenge {
        assert!(
            challenge.contains(part),
            "{case}: {challenge:?} lacks {part:?}"
        );
    }
    if expected.error.is_none() {
        assert!(!challenge.contains("error="), "{case}: {challenge}");
    }
    if let Some(detail) = expected.detail {
        assert!(
            rejection.detail().contains(detail),
            "{case}: {}",
            rejection.detail()
        );
    }
    let body: serde_json::Value = serde_json::from_str(&rejection.body()).unwrap();
    assert_eq!(body["status"], expected.status.as_u16(), "{case}");
    assert_eq!(body["error"].as_str(), expected.error, "{case}");
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "{case}: body lacks {field}");
    }
    let headers = rejection.headers();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("cache-control").unwrap(), "no-store", "{case}");
    assert_eq!(
        header("content-type").unwrap(),
        "application/problem+json",
        "{case}"
    );
    assert_eq!(
        header("retry-after").is_some(),
        expected.status == StatusCode::SERVICE_UNAVAILABLE,
        "{case}"
    );
    assert_eq!(
        header("www-authenticate").is_some(),
        expected.status != StatusCode::SERVICE_UNAVAILABLE,
        "{case}"
    );
    if !token.is_empty() {
        let secret = &token[token.len() - 20..];
        assert!(
            !rejection.body().contains(secret),
            "{case}: body echoes the token"
        );
        assert!(
            !challenge.contains(secret),
            "{case}: challenge echoes the token"
        );
        assert!(
            !format!("{rejection:?}").contains(secret),
            "{case}: Debug echoes the token"
        );
    }
}

const INVALID_REQUEST: &[&str] = &["error=\"invalid_request\""];
const INVALID_TOKEN: &[&str] = &["error=\"invalid_token\""];

fn bad_request(detail: &'static str) -> Expected {
    Expected {
        status: StatusCode::BAD_REQUEST,
        error: Some("invalid_request"),
        challenge: INVALID_REQUEST,
        detail: Some(detail),
    }
}

fn invalid_token(detail: &'static str) -> Expected {
    Expected {
        status: StatusCode::UNAUTHORIZED,
        error: Some("invalid_token"),
        challenge: INVALID_TOKEN,
        detail: Some(detail),
    }
}

#[tokio::test]
async fn every_contract_row() {
    let f = Fixture::new(CacheSettings::default());
    let at = f.issue(access("acme", Expiry::ThirtyDays)).await;
    let cc = f
        .issue(NewToken::new(
            TokenKind::BearerToken,
            "acme",
            Expiry::Minutes(60),
        ))
        .await;
    let expired = f.issue(access("acme", Expiry::Minutes(1))).await;
    let (revoked, revoked_record) = f.issue_record(access("acme", Expiry::Never)).await;
    let disabled = f
        .issue(NewToken::new(
            TokenKind::BearerToken,
            "legacy",
            Expiry::OneDay,
        ))
        .await;
    let unknown = TokenFormat::default()
        .generate(TokenKind::AccessToken)
        .expose_secret()
        .to_owned();
    let mut bad_checksum = at.clone().into_bytes();
    let last = bad_checksum.len() - 1;
    bad_checksum[last] = if bad_checksum[last] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let bad_checksum = String::from_utf8(bad_checksum).unwrap();
    let client_secret = f
        .issue(NewToken::new(
            TokenKind::ClientSecret,
            "acme",
            Expiry::OneDay,
        ))
        .await;

    f.store
        .inner
        .revoke(&revoked_record.id, f.clock.now())
        .await
        .unwrap();
    f.verifier
        .policy()
        .set_tenant("legacy", TokenTypes::only(TokenType::AccessToken));
    f.clock.advance(Duration::minutes(2));

    let long = "a".repeat(4097);
    let no_credentials = Expected {
        status: StatusCode::UNAUTHORIZED,
        error: None,
        challenge: &["Bearer realm=\"m2m\"", "ApiKey realm=\"m2m\""],
        detail: None,
    };
    let rows: Vec<(&str, HeaderMap, Expected, &str)> = vec![
        ("no credentials", HeaderMap::new(), no_credentials, ""),
        (
            "another scheme",
            headers(&[("authorization", b"Basic dXNlcjpwYXNz")]),
            Expected {
                status: StatusCode::UNAUTHORIZED,
                error: None,
                challenge: &["Bearer realm=\"m2m\"", "ApiKey realm=\"m2m\""],
                detail: None,
            },
            "",
        ),
        (
            "both headers",
            headers(&[
                ("x-api-key", at.as_bytes()),
                ("authorization", format!("Bearer {cc}").as_bytes()),
            ]),
            bad_request("not both"),
            &at,
        ),
        (
            "repeated X-API-KEY",
            headers(&[("x-api-key", at.as_bytes()), ("x-api-key", at.as_bytes())]),
            bad_request("more than once"),
            &at,
        ),
        (
            "repeated Authorization",
            headers(&[
                ("authorization", format!("Bearer {cc}").as_bytes()),
                ("authorization", format!("Bearer {cc}").as_bytes()),
            ]),
            bad_request("more than once"),
            &cc,
        ),
        (
            "empty X-API-KEY",
            headers(&[("x-api-key", b"")]),
            bad_request("empty"),
            "",
        ),
        (
            "Bearer with nothing after",
            headers(&[("authorization", b"Bearer ")]),
            bad_request("empty"),
            "",
        ),
        (
            "not visible ASCII",
            headers(&[("x-api-key", b"m2m_at_\xff\xfe")]),
            bad_request("visible ASCII"),
            "",
        ),
        (
            "over the length bound",
            headers(&[("x-api-key", long.as_bytes())]),
            bad_request("longer than allowed"),
            "",
        ),
        (
            "access token as Bearer",
            bearer(&at),
            bad_request("X-API-KEY"),
            &at,
        ),
        (
            "bearer token in X-API-KEY",
            api_key(&cc),
            bad_request("Authorization"),
            &cc,
        ),
        (
            "bad checksum",
            api_key(&bad_checksum),
            invalid_token("the token is not valid"),
            &bad_checksum,
        ),
        (
            "unknown token",
            api_key(&unknown),
            invalid_token("the token is not valid"),
            &unknown,
        ),
        (
            "revoked token",
            api_key(&revoked),
            invalid_token("the token is not valid"),
            &revoked,
        ),
        (
            "client secret presented",
            bearer(&client_secret),
            invalid_token("the token is not valid"),
            &client_secret,
        ),
        (
            "expired token",
            api_key(&expired),
            invalid_token("the token expired"),
            &expired,
        ),
        (
            "type not enabled",
            bearer(&disabled),
            invalid_token("not enabled"),
            &disabled,
        ),
    ];
    for (case, headers, expected, token) in &rows {
        check(case, f.verify(headers, &[]).await, expected, token);
    }

    check(
        "missing scope",
        f.verify(&bearer(&cc), &["reports:read"]).await,
        &Expected {
            status: StatusCode::FORBIDDEN,
            error: Some("insufficient_scope"),
            challenge: &[
                "Bearer realm=\"m2m\"",
                "error=\"insufficient_scope\"",
                "scope=\"reports:read\"",
            ],
            detail: None,
        },
        &cc,
    );

    assert_eq!(
        f.verify(&api_key(&at), &["reports:read"])
            .await
            .unwrap()
            .tenant(),
        "acme"
    );
    assert_eq!(
        f.verify(&bearer(&cc), &[]).await.unwrap().token_type(),
        TokenType::ClientCredentials
    );

    let unknown_after = TokenFormat::default().generate(TokenKind::BearerToken);
    f.store.fail(true);
    check(
        "store unavailable",
        f.verify(&bearer(unknown_after.expose_secret()), &[]).await,
        &Expected {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: None,
            challenge: &[],
            detail: None,
        },
        unknown_after.expose_secret(),
    );
}

#[tokio::test]
async fn a_challenge_per_enabled_type_only() {
    let f = Fixture::new(CacheSettings::default());
    f.verifier
        .policy()
        .set_default(TokenTypes::only(TokenType::ClientCredentials));
    let rejection = f.verify(&HeaderMap::new(), &[]).await.unwrap_err();
    assert_eq!(
        rejection.www_authenticate().unwrap(),
        "Bearer realm=\"m2m\""
    );
}

#[tokio::test]
async fn malformed_tokens_never_reach_the_store() {
    let f = Fixture::new(CacheSettings::default());
    let at = f.issue(access("acme", Expiry::Never)).await;
    let mut changed = at.clone().into_bytes();
    changed[10] = if changed[10] == b'x' { b'y' } else { b'x' };
    let changed = String::from_utf8(changed).unwrap();
    for headers in [
        api_key("m2m_at_short"),
        api_key("not-a-token"),
        api_key(&changed),
        bearer(&at),
        HeaderMap::new(),
    ] {
        assert!(f.verify(&headers, &[]).await.is_err());
    }
    assert_eq!(f.store.finds(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_store_call() {
    let f = Arc::new(Fixture::with_store(
        CountingStore::slow(StdDuration::from_millis(50)),
        CacheSettings::default(),
    ));
    let valid = f.issue(access("acme", Expiry::Never)).await;
    let unknown = TokenFormat::default().generate(TokenKind::AccessToken);

    for (token, should_pass) in [(valid.as_str(), true), (unknown.expose_secret(), false)] {
        let before = f.store.finds();
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let f = Arc::clone(&f);
                let headers = api_key(token);
                tokio::spawn(async move { f.verify(&headers, &[]).await.is_ok() })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), should_pass);
        }
        assert_eq!(
            f.store.finds() - before,
            1,
            "one store call for 1,000 requests"
        );
        // Served from the cache afterwards (the negative cache for the unknown token).
        assert_eq!(f.verify(&api_key(token), &[]).await.is_ok(), should_pass);
        assert_eq!(f.store.finds() - before, 1);
    }
}

#[tokio::test]
async fn expiry_is_exact_even_when_cached() {
    let f = Fixture::new(CacheSettings {
        ttl: StdDuration::from_secs(3600),
        ..CacheSettings::default()
    });
    let token = f.issue(access("acme", Expiry::Minutes(10))).await;
    let expires_at = T0 + Duration::minutes(10);

    assert!(f.verify(&api_key(&token), &[]).await.is_ok());
    f.clock.set(expires_at - Duration::seconds(1));
    assert!(
        f.verify(&api_key(&token), &[]).await.is_ok(),
        "valid 1 s before expiry"
    );
    assert_eq!(f.store.finds(), 1, "served from the cache");

    for at in [
        expires_at,
        expires_at + Duration::seconds(1),
        expires_at + Duration::days(1),
    ] {
        f.clock.set(at);
        let rejection = f.verify(&api_key(&token), &[]).await.unwrap_err();
        assert_eq!(rejection.kind(), RejectionKind::ExpiredToken, "at {at}");
    }
}

#[tokio::test]
async fn cache_ttl_is_capped_by_expiry() {
    let f = Fixture::new(CacheSettings {
        ttl: StdDuration::from_secs(60),
        ..CacheSettings::default()
    });
    let short = f.issue(access("acme", Expiry::Minutes(1))).await;
    f.clock.set(T0 + Duration::seconds(50));
    assert!(f.verify(&api_key(&short), &[]).await.is_ok());
    assert_eq!(f.store.finds(), 1);
    f.clock.set(T0 + Duration::seconds(59));
    assert!(f.verify(&api_key(&short), &[]).await.is_ok());
    assert_eq!(f.store.finds(), 1, "fresh within the capped TTL");
    f.clock.set(T0 + Duration::seconds(60));
    let rejection = f.verify(&api_key(&short), &[]).await.unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::ExpiredToken);
    assert_eq!(
        f.store.finds(),
        2,
        "the entry ended at the token's expiry, not 60 s after caching"
    );
}

#[tokio::test]
async fn revocation_evicts_the_cached_entry_at_once() {
    let f = Fixture::new(CacheSettings {
        ttl: StdDuration::from_secs(3600),
        ..CacheSettings::default()
    });
    let (token, record) = f.issue_record(access("acme", Expiry::Never)).await;
    assert!(f.verify(&api_key(&token), &[]).await.is_ok());
    assert_eq!(f.verifier.cached_entries(), 1);

    f.store
        .inner
        .revoke(&record.id, f.clock.now())
        .await
        .unwrap();
    let rejection = f.verify(&api_key(&token), &[]).await.unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::InvalidToken);
    assert_eq!(
        f.store.finds(),
        1,
        "refused from the revocation event, without asking the store"
    );
    // The event is remembered for as long as an entry loaded before it may live; past that,
    // the store answers.
    f.clock.set(T0 + Duration::hours(2));
    let rejection = f.verify(&api_key(&token), &[]).await.unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::InvalidToken);
    assert_eq!(f.store.finds(), 2);
}

#[tokio::test]
async fn explicit_invalidation_by_token_id() {
    let f = Fixture::new(CacheSettings::default());
    let (token, record) = f.issue_record(access("acme", Expiry::Never)).await;
    assert!(f.verify(&api_key(&token), &[]).await.is_ok());
    f.verifier.invalidate(&record.id);
    assert_eq!(f.verifier.cached_entries(), 0);
    assert!(f.verify(&api_key(&token), &[]).await.is_ok());
    assert_eq!(f.store.finds(), 2, "asked the store again");
}

#[tokio::test]
async fn policy_changes_apply_to_cached_tokens() {
    let f = Fixture::new(CacheSettings::default());
    let token = f.issue(access("acme", Expiry::Never)).await;
    assert!(f.verify(&api_key(&token), &[]).await.is_ok());
    f.verifier
        .policy()
        .set_tenant("acme", TokenTypes::only(TokenType::ClientCredentials));
    let rejection = f.verify(&api_key(&token), &[]).await.unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::TokenTypeDisabled);
}

#[tokio::test]
async fn cache_size_bound_holds_while_tokens_churn() {
    let capacity = 1_000;
    let negative_capacity = 500;
    let f = Fixture::new(CacheSettings {
        capacity,
        negative_capacity,
        ..CacheSettings::default()
    });
    let format = TokenFormat::default();
    let mut most = 0;
    for i in 0..100_000 {
        // Half known tokens (positive entries), half unknown ones (negative entries).
        let token = if i % 2 == 0 {
            f.issue(access("acme", Expiry::Never)).await
        } else {
            format
                .generate(TokenKind::AccessToken)
                .expose_secret()
                .to_owned()
        };
        let _ = f.verify(&api_key(&token), &[]).await;
        most = most.max(f.verifier.cached_entries());
        assert!(
            most <= capacity + negative_capacity,
            "{most} entries after {i} tokens"
        );
    }
    assert!(
        most > capacity / 2,
        "the cache was used: at most {most} entries"
    );
}

#[tokio::test]
async fn store_failure_is_503_and_grace_serves_cached_entries() {
    let no_grace = Fixture::new(CacheSettings::default());
    let token = no_grace.issue(access("acme", Expiry::Never)).await;
    assert!(no_grace.verify(&api_key(&token), &[]).await.is_ok());
    no_grace.store.fail(true);
    no_grace.clock.advance(Duration::seconds(11));
    let rejection = no_grace.verify(&api_key(&token), &[]).await.unwrap_err();
    assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(rejection.retry_after(), Some(5));

    let graced = Fixture::new(CacheSettings {
        ttl: StdDuration::from_secs(10),
        grace: StdDuration::from_secs(60),
        ..CacheSettings::default()
    });
    let token = graced.issue(access("acme", Expiry::Never)).await;
    let other = graced.issue(access("acme", Expiry::Never)).await;
    assert!(graced.verify(&api_key(&token), &[]).await.is_ok());
    graced.store.fail(true);
    graced.clock.advance(Duration::seconds(30));
    assert!(
        graced.verify(&api_key(&token), &[]).await.is_ok(),
        "served from the cache within the grace period"
    );
    let uncached = graced.verify(&api_key(&other), &[]).await.unwrap_err();
    assert_eq!(
        uncached.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "nothing cached for it"
    );
    graced.clock.advance(Duration::seconds(41));
    let rejection = graced.verify(&api_key(&token), &[]).await.unwrap_err();
    assert_eq!(
        rejection.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "grace over"
    );

    graced.store.fail(false);
    assert!(
        graced.verify(&api_key(&token), &[]).await.is_ok(),
        "recovers with the store"
    );
}

#[tokio::test]
async fn custom_prefix_realm_and_header_bound() {
    let store = Arc::new(MemoryStore::new());
    let format = TokenFormat::new("acme").unwrap();
    let verifier = Verifier::builder(store.clone())
        .format(format.clone())
        .realm("api \"v1\"")
        .max_header_len(100)
        .retry_after(StdDuration::from_secs(30))
        .policy(Policy::new(TokenTypes::all()))
        .build();
    let issued = store
        .issue(&format, access("acme", Expiry::Never), verifier.now())
        .await
        .unwrap();
    let token = issued.token.expose_secret();
    assert!(token.starts_with("acme_at_"));
    assert!(verifier.verify(&api_key(token), &[]).await.is_ok());
    let default_prefixed = TokenFormat::default().generate(TokenKind::AccessToken);
    let rejection = verifier
        .verify(&api_key(default_prefixed.expose_secret()), &[])
        .await
        .unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::InvalidToken);
    assert!(
        rejection
            .www_authenticate()
            .unwrap()
            .contains(r#"realm="api \"v1\"""#)
    );
    let long = "x".repeat(101);
    let rejection = verifier.verify(&api_key(&long), &[]).await.unwrap_err();
    assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn uses_are_noted_in_memory_and_handed_to_the_store_in_batches() {
    let f = Fixture::new(CacheSettings::default());
    let (token, record) = f.issue_record(access("acme", Expiry::Never)).await;
    assert!(f.verifier.drain_usage().is_empty());
    assert!(f.verify(&api_key(&token), &[]).await.is_ok());
    f.clock.advance(Duration::seconds(5));
    assert!(f.verify(&api_key(&token), &[]).await.is_ok());

    let uses = f.verifier.drain_usage();
    assert_eq!(uses, vec![(record.id.clone(), T0 + Duration::seconds(5))]);
    assert!(
        f.verifier.drain_usage().is_empty(),
        "each use is handed over once"
    );

    f.store.record_usage(&uses).await.unwrap();
    let stored = f.store.inner.get(&record.id).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, Some(T0 + Duration::seconds(5)));
}

#[tokio::test]
async fn verify_cached_decides_without_the_store_or_says_it_cannot() {
    let f = Fixture::new(CacheSettings::default());
    let token = f.issue(access("acme", Expiry::Never)).await;
    let headers = api_key(&token);

    assert!(
        f.verifier.verify_cached(&headers, &[]).is_none(),
        "not cached yet: the store must answer"
    );
    assert_eq!(f.store.finds(), 0);
    assert!(f.verify(&headers, &[]).await.is_ok());

    let principal = f
        .verifier
        .verify_cached(&headers, &["reports:read"])
        .unwrap()
        .unwrap();
    assert_eq!(principal.tenant(), "acme");
    let missing = f
        .verifier
        .verify_cached(&headers, &["reports:write"])
        .unwrap()
        .unwrap_err();
    assert_eq!(missing.kind(), RejectionKind::InsufficientScope);
    let malformed = f
        .verifier
        .verify_cached(&api_key("m2m_at_x"), &[])
        .unwrap()
        .unwrap_err();
    assert_eq!(malformed.kind(), RejectionKind::InvalidToken);
    assert_eq!(
        f.store.finds(),
        1,
        "only the first verification asked the store"
    );

    f.clock.advance(Duration::seconds(11));
    assert!(
        f.verifier.verify_cached(&headers, &[]).is_none(),
        "stale after the TTL"
    );
}

/// How long a test waits for what must happen before it calls the run hung: a guard against
/// hanging, not a speed requirement.
const HANG_GUARD: StdDuration = StdDuration::from_secs(30);

async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let happened = async {
        while !done().await {
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(HANG_GUARD, happened)
        .await
        .unwrap_or_else(|_| panic!("{what} never happened"));
}

fn fixture_with_usage_interval(interval: StdDuration) -> Fixture {
    let store = Arc::new(CountingStore::default());
    let clock = ManualClock::new(T0);
    let verifier = Verifier::builder(store.clone())
        .clock(clock.clone())
        .usage_interval(interval)
        .build();
    Fixture {
        store,
        clock,
        verifier,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_records_uses_in_the_background_in_batches() {
    let f = fixture_with_usage_interval(StdDuration::from_millis(20));
    let (first, first_record) = f.issue_record(access("acme", Expiry::Never)).await;
    let (second, second_record) = f.issue_record(access("acme", Expiry::Never)).await;
    assert!(f.verify(&api_key(&first), &[]).await.is_ok());
    assert!(f.verify(&api_key(&second), &[]).await.is_ok());

    eventually("both uses recorded", async || {
        let a = f.store.inner.get(&first_record.id).await.unwrap().unwrap();
        let b = f.store.inner.get(&second_record.id).await.unwrap().unwrap();
        a.last_used_at.is_some() && b.last_used_at.is_some()
    })
    .await;
    let stored = f.store.inner.get(&first_record.id).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, Some(T0));
    let batches = f.store.usage_batches.lock().unwrap().clone();
    assert_eq!(
        batches.iter().map(Vec::len).sum::<usize>(),
        2,
        "{batches:?}"
    );
    assert!(f.verifier.drain_usage().is_empty(), "the task drained them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_is_dropped_and_later_batches_are_recorded() {
    let f = fixture_with_usage_interval(StdDuration::from_millis(20));
    let (token, record) = f.issue_record(access("acme", Expiry::Never)).await;
    assert!(f.verify(&api_key(&token), &[]).await.is_ok());
    f.store.fail(true);
    eventually("a batch tried while the store fails", async || {
        !f.store.usage_batches.lock().unwrap().is_empty()
    })
    .await;
    f.store.fail(false);
    let stored = f.store.inner.get(&record.id).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, None, "the failed batch wrote nothing");

    f.clock.advance(Duration::seconds(2));
    assert!(f.verify(&api_key(&token), &[]).await.is_ok());
    eventually("the next use recorded", async || {
        let stored = f.store.inner.get(&record.id).await.unwrap().unwrap();
        stored.last_used_at == Some(T0 + Duration::seconds(2))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_verifier_records_what_remains_and_ends_the_task() {
    let f = fixture_with_usage_interval(StdDuration::from_secs(3600));
    let (token, record) = f.issue_record(access("acme", Expiry::Never)).await;
    let (other, other_record) = f.issue_record(access("acme", Expiry::Never)).await;
    let clone = f.verifier.clone();
    assert!(clone.verify(&api_key(&token), &[]).await.is_ok());
    assert!(clone.verify(&api_key(&other), &[]).await.is_ok());
    let Fixture {
        store, verifier, ..
    } = f;
    drop(verifier);
    tokio::time::sleep(StdDuration::from_millis(50)).await;
    assert_eq!(
        store
            .inner
            .get(&record.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        None,
        "a clone is alive: nothing is flushed before the interval"
    );
    drop(clone);
    eventually("the remaining use recorded", async || {
        let stored = store.inner.get(&record.id).await.unwrap().unwrap();
        stored.last_used_at == Some(T0)
    })
    .await;
    let batches = store.usage_batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 1, "one batch on the way out: {batches:?}");
    let mut ids: Vec<&TokenId> = batches[0].iter().map(|(id, _)| id).collect();
    ids.sort();
    let mut expected = vec![&record.id, &other_record.id];
    expected.sort();
    assert_eq!(ids, expected);
    eventually("the task to let go of the store", async || {
        Arc::strong_count(&store) == 1
    })
    .await;
}

#[test]
fn outside_a_runtime_nothing_is_spawned_and_uses_are_drained_by_hand() {
    let store = Arc::new(CountingStore::default());
    let clock = ManualClock::new(T0);
    let verifier = Verifier::builder(store.clone())
        .clock(clock.clone())
        .usage_interval(StdDuration::from_millis(1))
        .build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let issued = store
            .inner
            .issue(&TokenFormat::default(), access("acme", Expiry::Never), T0)
            .await
            .unwrap();
        let headers = api_key(issued.token.expose_secret());
        assert!(verifier.verify(&headers, &[]).await.is_ok());
        tokio::time::sleep(StdDuration::from_millis(50)).await;
        assert!(store.usage_batches.lock().unwrap().is_empty(), "no task");
        assert_eq!(verifier.drain_usage(), vec![(issued.record.id, T0)]);
        assert_eq!(verifier.record_usage().await.unwrap(), 0);
    });
    drop(verifier);
    assert_eq!(Arc::strong_count(&store), 1);
}

#[tokio::test]
async fn unknown_tokens_never_push_known_ones_out_of_the_cache() {
    let f = Fixture::new(CacheSettings {
        capacity: 100,
        negative_capacity: 20,
        ttl: StdDuration::from_secs(3600),
        negative_ttl: StdDuration::from_secs(3600),
        ..CacheSettings::default()
    });
    let mut known = Vec::new();
    for _ in 0..50 {
        let token = f.issue(access("acme", Expiry::Never)).await;
        assert!(f.verify(&api_key(&token), &[]).await.is_ok());
        known.push(token);
    }
    let before = f.store.finds();
    // Ten thousand made-up tokens, each well formed.
    for _ in 0..10_000 {
        let forged = TokenFormat::default().generate(TokenKind::AccessToken);
        assert!(
            f.verify(&api_key(forged.expose_secret()), &[])
                .await
                .is_err()
        );
    }
    assert_eq!(
        f.store.finds() - before,
        10_000,
        "each forged token asked once"
    );
    assert!(
        f.verifier.cached_entries() <= 50 + 20,
        "both rooms bounded: {}",
        f.verifier.cached_entries()
    );
    let before = f.store.finds();
    for token in &known {
        assert!(f.verify(&api_key(token), &[]).await.is_ok());
    }
    assert_eq!(f.store.finds(), before, "every known token still cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_lookup_leaves_nothing_behind() {
    let f = Fixture::with_store(
        CountingStore::slow(StdDuration::from_secs(3600)),
        CacheSettings::default(),
    );
    for _ in 0..100 {
        let forged = TokenFormat::default().generate(TokenKind::AccessToken);
        let headers = api_key(forged.expose_secret());
        // Two requests share the lookup; both are dropped before the store answers.
        let first = f.verifier.verify(&headers, &[]);
        let second = f.verifier.verify(&headers, &[]);
        let both = async { tokio::join!(first, second) };
        assert!(
            tokio::time::timeout(StdDuration::from_millis(5), both)
                .await
                .is_err(),
            "the store never answers"
        );
    }
    assert_eq!(f.verifier.lookups_in_flight(), 0);
    // A lookup that completes leaves nothing either.
    let quick = Fixture::new(CacheSettings::default());
    let token = quick.issue(access("acme", Expiry::Never)).await;
    assert!(quick.verify(&api_key(&token), &[]).await.is_ok());
    assert_eq!(quick.verifier.lookups_in_flight(), 0);
}

#[tokio::test]
async fn a_rate_limit_counts_every_request_and_survives_cache_reloads() {
    let f = Fixture::new(CacheSettings::default());
    let limit = RateLimit::new(3, 30).unwrap();
    let token = f
        .issue(access("acme", Expiry::Never).rate_limit(limit))
        .await;
    let headers = api_key(&token);
    for _ in 0..3 {
        f.verify(&headers, &[]).await.unwrap();
    }
    let refused = f
        .verifier
        .verify_cached(&headers, &[])
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.retry_after(), Some(10));
    // Past the cache's lifetime the record is loaded again; the budget is the same one.
    f.clock.advance(Duration::seconds(11));
    assert!(f.verifier.verify_cached(&headers, &[]).is_none());
    f.verify(&headers, &[]).await.unwrap();
    assert_eq!(f.store.finds(), 2);

    let refused = f.verify(&headers, &[]).await.unwrap_err();
    assert_eq!(refused.kind(), RejectionKind::RateLimited);
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // One request per ten seconds comes back; the first came back a second ago.
    assert_eq!(refused.retry_after(), Some(9));
    let state = refused.rate_limit().unwrap();
    assert_eq!((state.remaining, state.reset_seconds), (0, 9));
    let headers_sent: Vec<(String, String)> = refused
        .headers()
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    for expected in [
        ("retry-after", "9"),
        ("ratelimit-policy", "\"token\";q=3;w=30"),
        ("ratelimit", "\"token\";r=0;t=9"),
    ] {
        assert!(
            headers_sent
                .iter()
                .any(|(n, v)| (n.as_str(), v.as_str()) == expected),
            "{expected:?} in {headers_sent:?}"
        );
    }
    assert_eq!(refused.www_authenticate(), None);
    assert_eq!(
        refused.token_id(),
        Some(&f.store.inner.list("acme").await.unwrap()[0].id)
    );
    assert!(!format!("{refused:?}").contains(&token));

    // A refused request is not admitted, and the scopes are not even looked at.
    let under_scoped = f.verify(&headers, &["reports:write"]).await.unwrap_err();
    assert_eq!(under_scoped.kind(), RejectionKind::RateLimited);

    f.clock.advance(Duration::seconds(9));
    f.verify(&headers, &[]).await.unwrap();
    assert_eq!(
        f.verify(&headers, &[]).await.unwrap_err().kind(),
        RejectionKind::RateLimited
    );
}

#[tokio::test]
async fn bearer_tokens_of_one_credential_share_its_budget() {
    let f = Fixture::new(CacheSettings::default());
    let limit = RateLimit::new(2, 60).unwrap();
    let (_, credential) = f
        .issue_record(
            NewToken::new(TokenKind::ClientSecret, "acme", Expiry::Never).rate_limit(limit),
        )
        .await;
    let minted = |n: u32| {
        let mut request = NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60))
            .description(format!("bearer {n}"))
            .rate_limit(limit);
        request.credential = Some((credential.id.clone(), "m2m_ci_x".to_owned()));
        request
    };
    let first = f.issue(minted(1)).await;
    let second = f.issue(minted(2)).await;
    f.verify(&bearer(&first), &[]).await.unwrap();
    f.verify(&bearer(&second), &[]).await.unwrap();
    for token in [&first, &second] {
        let refused = f.verify(&bearer(token), &[]).await.unwrap_err();
        assert_eq!(refused.kind(), RejectionKind::RateLimited);
    }

    // Another token without a limit is not counted at all.
    let free = f.issue(access("acme", Expiry::Never)).await;
    for _ in 0..100 {
        f.verify(&api_key(&free), &[]).await.unwrap();
    }
}

#[tokio::test]
async fn a_cached_token_altered_or_misplaced_is_still_refused() {
    let f = Fixture::new(CacheSettings::default());
    let token = f.issue(access("acme", Expiry::Never)).await;
    f.verify(&api_key(&token), &[]).await.unwrap();
    assert_eq!(f.store.finds(), 1);

    // The checksum is checked for any text the cache does not hold, however close to one it
    // holds.
    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for outcome in [
        f.verify(&api_key(&altered), &[]).await,
        f.verifier.verify_cached(&api_key(&altered), &[]).unwrap(),
    ] {
        assert_eq!(outcome.unwrap_err().kind(), RejectionKind::InvalidToken);
    }
    // The cached token in the other header is refused for its header, cached or not.
    for outcome in [
        f.verify(&bearer(&token), &[]).await,
        f.verifier.verify_cached(&bearer(&token), &[]).unwrap(),
    ] {
        assert_eq!(outcome.unwrap_err().status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(f.store.finds(), 1, "none of them reached the store");
}

/// A store whose revocation events a test sends itself.
#[derive(Debug, Default)]
struct Announcing {
    inner: MemoryStore,
    listener: std::sync::Mutex<Option<Listener>>,
}

struct Listener(Arc<dyn RevocationListener>);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

#[async_trait]
impl TokenLookup for Announcing {
    async fn find_token(
        &self,
        token: &str,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.find_token(token, digest).await
    }

    fn subscribe(&self, listener: Arc<dyn RevocationListener>) -> bool {
        *self.listener.lock().unwrap() = Some(Listener(listener));
        true
    }

    async fn record_usage(&self, _: &[(TokenId, OffsetDateTime)]) -> Result<(), StoreError> {
        Ok(())
    }
}

#[tokio::test]
async fn an_event_naming_a_credential_refuses_its_cached_bearer_tokens() {
    let store = Arc::new(Announcing::default());
    let clock = ManualClock::new(T0);
    let verifier = Verifier::builder(store.clone())
        .clock(clock.clone())
        .cache(CacheSettings {
            ttl: StdDuration::from_secs(60),
            ..CacheSettings::default()
        })
        .build();
    let format = TokenFormat::default();
    let credential = store
        .inner
        .issue(
            &format,
            NewToken::new(TokenKind::ClientSecret, "acme", Expiry::Never),
            T0,
        )
        .await
        .unwrap()
        .record;
    let mut request = NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60));
    request.credential = Some((credential.id.clone(), "m2m_ci_x".to_owned()));
    let minted = store.inner.issue(&format, request, T0).await.unwrap();
    let headers = bearer(minted.token.expose_secret());
    verifier.verify(&headers, &[]).await.unwrap();

    // Only the credential is named, as a follower that replays credential revocations does.
    let listener = store.listener.lock().unwrap().as_ref().unwrap().0.clone();
    listener.revoked(&m2m_core::RevocationEvent {
        token_id: credential.id.clone(),
        digest: None,
    });
    let refused = verifier.verify(&headers, &[]).await.unwrap_err();
    assert_eq!(refused.kind(), RejectionKind::InvalidToken);
    assert!(
        verifier.verify_cached(&headers, &[]).unwrap().is_err(),
        "refused from the cache as well"
    );

    // Another credential's tokens are untouched.
    let other = store
        .inner
        .issue(
            &format,
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
            T0,
        )
        .await
        .unwrap();
    verifier
        .verify(&api_key(other.token.expose_secret()), &[])
        .await
        .unwrap();
}
