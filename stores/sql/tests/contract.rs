//! The store contract: one suite of cases, each run against `MemoryStore` (the reference),
//! a SQLite file and a fresh PostgreSQL database.
//!
//! PostgreSQL comes from `M2M_TEST_POSTGRES_URL` (an admin URL: each test creates its own
//! database there and drops it afterwards). Without the variable the tests use
//! `postgres://postgres@127.0.0.1:5432/postgres`, unless `CI` is set; they fail, never skip,
//! when PostgreSQL cannot be reached.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use m2m_core::{
    AuditEntry, BearerFormat, Expiry, NewToken, PageCursor, PortalRole, PortalSecret,
    PortalSession, RateLimit, RevocationEvent, RevocationListener, SigningKey, StoreError,
    TokenDigest, TokenFormat, TokenId, TokenKind, TokenLookup, TokenRecord, TokenStore, TokenType,
    TypeSettings,
};
use m2m_sql::{REVOCATION_CHANNEL, SqlError, SqlStore};

mod common;
use common::{create_database, drop_database, unique_name};
use time::macros::{datetime, offset};
use time::{Duration, OffsetDateTime};

/// A time with nanoseconds, to show timestamps round-trip exactly.
const T0: OffsetDateTime = datetime!(2026-05-01 10:00:00.123456789 UTC);

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A record with every optional field empty; its digest is derived from its id.
fn record(id: &str, kind: TokenKind, tenant: &str, created_at: OffsetDateTime) -> TokenRecord {
    TokenRecord {
        id: TokenId::new(id),
        digest: TokenDigest::of(&format!("secret of {id}")),
        stub: format!("m2m_{}_{}", kind.code(), &id[..4.min(id.len())]),
        kind,
        tenant: tenant.to_owned(),
        user: None,
        description: String::new(),
        scopes: Vec::new(),
        created_at,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
        client_id: None,
        credential_id: None,
        created_by: None,
        rate_limit: None,
    }
}

/// A bearer token issued from `credential`.
fn bearer_from(id: &str, credential: &TokenRecord, created_at: OffsetDateTime) -> TokenRecord {
    TokenRecord {
        client_id: credential.client_id.clone(),
        credential_id: Some(credential.id.clone()),
        expires_at: Some(created_at + Duration::hours(1)),
        ..record(id, TokenKind::BearerToken, &credential.tenant, created_at)
    }
}

fn ids(records: &[TokenRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

#[derive(Default)]
struct Recorder(Mutex<Vec<RevocationEvent>>);

impl RevocationListener for Recorder {
    fn revoked(&self, event: &RevocationEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn take_sorted(&self) -> Vec<RevocationEvent> {
        let mut events = std::mem::take(&mut *self.0.lock().unwrap());
        events.sort_by(|a, b| a.token_id.cmp(&b.token_id));
        events
    }
}

// ---------------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------------

/// Issued tokens are found by digest and by id, with every field as issued.
async fn issue_find_and_get(store: Arc<dyn TokenStore>) {
    let format = TokenFormat::default();
    let request = NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays)
        .scope("reports:read")
        .scope("reports:write")
        .user("ada")
        .description("nightly export — ünïcode");
    let issued = store.issue(&format, request, T0).await.unwrap();
    let found = store.find(&issued.token.digest()).await.unwrap().unwrap();
    assert_eq!(found, issued.record);
    assert_eq!(found.scopes, ["reports:read", "reports:write"]);
    assert_eq!(found.user.as_deref(), Some("ada"));
    assert_eq!(found.created_at, T0);
    assert_eq!(found.expires_at, Some(T0 + Duration::days(30)));
    assert_eq!(store.get(&issued.record.id).await.unwrap(), Some(found));

    let never = store
        .issue(
            &format,
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
            T0,
        )
        .await
        .unwrap();
    let found = store.find(&never.token.digest()).await.unwrap().unwrap();
    assert_eq!(found.expires_at, None);
    assert!(found.scopes.is_empty());
    assert_eq!(found.user, None);

    assert_eq!(
        store
            .find(&TokenDigest::of("m2m_at_unknown"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get(&TokenId::new("tok_unknown")).await.unwrap(), None);
}

/// Every field of a record, timestamps to the nanosecond, comes back as stored.
async fn every_field_round_trips(store: Arc<dyn TokenStore>) {
    let credential = TokenRecord {
        user: Some("grace".to_owned()),
        description: "billing integration".to_owned(),
        scopes: vec!["billing:read".to_owned(), "a \"quoted\" scope".to_owned()],
        expires_at: Some(T0 + Duration::days(365)),
        revoked_at: Some(T0 + Duration::nanoseconds(1)),
        last_used_at: Some(T0 + Duration::seconds(59) + Duration::nanoseconds(999_999_999)),
        client_id: Some("m2m_ci_roundtrip".to_owned()),
        created_by: Some("Grace Hopper".to_owned()),
        rate_limit: Some(RateLimit::new(1_000_000, 86_400).unwrap()),
        ..record("tok_roundtripcs", TokenKind::ClientSecret, "initech", T0)
    };
    let bearer = TokenRecord {
        rate_limit: credential.rate_limit,
        ..bearer_from("tok_roundtripcc", &credential, T0 + Duration::minutes(1))
    };
    store.insert(credential.clone()).await.unwrap();
    store.insert(bearer.clone()).await.unwrap();
    assert_eq!(
        store.find(&credential.digest).await.unwrap(),
        Some(credential.clone())
    );
    assert_eq!(store.get(&bearer.id).await.unwrap(), Some(bearer.clone()));

    // An offset other than UTC is the same instant once read back.
    let paris = T0.to_offset(offset!(+2));
    let local = TokenRecord {
        expires_at: Some(paris + Duration::days(1)),
        ..record("tok_roundtripat", TokenKind::AccessToken, "initech", paris)
    };
    store.insert(local.clone()).await.unwrap();
    let found = store.get(&local.id).await.unwrap().unwrap();
    assert_eq!(found.created_at, T0);
    assert_eq!(found.expires_at, Some(T0 + Duration::days(1)));

    // Before the Unix epoch, too.
    let old = record(
        "tok_roundtripold",
        TokenKind::AccessToken,
        "initech",
        datetime!(1969-07-20 20:17:40.000000001 UTC),
    );
    store.insert(old.clone()).await.unwrap();
    assert_eq!(store.get(&old.id).await.unwrap(), Some(old));
}

/// A duplicate id or digest is a conflict and changes nothing.
async fn duplicates_conflict(store: Arc<dyn TokenStore>) {
    let original = record("tok_conflict1", TokenKind::AccessToken, "acme", T0);
    store.insert(original.clone()).await.unwrap();

    let same_id = TokenRecord {
        digest: TokenDigest::of("another secret"),
        tenant: "globex".to_owned(),
        ..original.clone()
    };
    assert!(matches!(
        store.insert(same_id.clone()).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.find(&same_id.digest).await.unwrap(), None);

    let same_digest = TokenRecord {
        id: TokenId::new("tok_conflict2"),
        ..original.clone()
    };
    assert!(matches!(
        store.insert(same_digest.clone()).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get(&same_digest.id).await.unwrap(), None);
    assert_eq!(
        store.find(&original.digest).await.unwrap(),
        Some(original.clone())
    );
    assert_eq!(ids(&store.list("acme").await.unwrap()), ["tok_conflict1"]);
    assert!(store.list("globex").await.unwrap().is_empty());
}

/// Listings hold one tenant's records, oldest first, ties broken by id byte by byte.
async fn list_and_pages(store: Arc<dyn TokenStore>) {
    let at = |minute: i64| T0 + Duration::minutes(minute);
    // Inserted out of order; "tok_B" sorts before "tok_a" byte by byte.
    let records = [
        record("tok_d", TokenKind::AccessToken, "acme", at(3)),
        record("tok_a", TokenKind::AccessToken, "acme", at(1)),
        record("tok_c", TokenKind::ClientSecret, "acme", at(2)),
        record("tok_B", TokenKind::AccessToken, "acme", at(1)),
        record("tok_e", TokenKind::BearerToken, "acme", at(4)),
        record("tok_z", TokenKind::AccessToken, "acme", at(0)),
        record("tok_g1", TokenKind::AccessToken, "globex", at(0)),
        record("tok_g2", TokenKind::AccessToken, "acme-2", at(0)),
    ];
    for r in &records {
        store.insert(r.clone()).await.unwrap();
    }
    let expected = ["tok_z", "tok_B", "tok_a", "tok_c", "tok_d", "tok_e"];
    let all = store.list("acme").await.unwrap();
    assert_eq!(ids(&all), expected);
    assert_eq!(ids(&store.list("globex").await.unwrap()), ["tok_g1"]);
    assert!(store.list("nobody").await.unwrap().is_empty());
    assert!(store.list("ACME").await.unwrap().is_empty());

    let page = |offset, limit| {
        let store = Arc::clone(&store);
        async move { store.list_page("acme", offset, limit).await.unwrap() }
    };
    assert_eq!(ids(&page(0, 2).await), expected[0..2]);
    assert_eq!(ids(&page(2, 2).await), expected[2..4]);
    assert_eq!(ids(&page(4, 2).await), expected[4..6]);
    assert_eq!(ids(&page(5, 10).await), expected[5..]);
    assert!(page(6, 10).await.is_empty());
    assert!(page(0, 0).await.is_empty());
    assert_eq!(ids(&page(1, u64::MAX).await), expected[1..]);
    assert!(page(u64::MAX, u64::MAX).await.is_empty());
    assert_eq!(page(0, 100).await, all);
}

/// Expired and revoked records are still found, with their fields: the verifier decides.
async fn expired_and_revoked_are_still_found(store: Arc<dyn TokenStore>) {
    let format = TokenFormat::default();
    let expired = store
        .issue(
            &format,
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::OneDay).scope("reports:read"),
            T0 - Duration::days(2),
        )
        .await
        .unwrap();
    let found = store.find(&expired.token.digest()).await.unwrap().unwrap();
    assert_eq!(found, expired.record);
    assert!(!found.is_active(T0));

    let revoked = store
        .issue(
            &format,
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never).description("old"),
            T0,
        )
        .await
        .unwrap();
    let at = T0 + Duration::seconds(5);
    assert!(store.revoke(&revoked.record.id, at).await.unwrap());
    let found = store.find(&revoked.token.digest()).await.unwrap().unwrap();
    assert_eq!(found.revoked_at, Some(at));
    assert_eq!(
        found,
        TokenRecord {
            revoked_at: Some(at),
            ..revoked.record.clone()
        }
    );
    assert!(!found.is_active(at));
    assert_eq!(store.list("acme").await.unwrap().len(), 2);
}

/// Revoking a client credential revokes the bearer tokens issued from it, and only those;
/// subscribers hear of every newly revoked token, with its digest.
async fn revoke_cascades_and_announces(store: Arc<dyn TokenStore>) {
    let recorder = Arc::new(Recorder::default());
    assert!(store.subscribe(recorder.clone()));

    let credential = TokenRecord {
        client_id: Some("m2m_ci_cascade".to_owned()),
        expires_at: Some(T0 + Duration::days(7)),
        ..record("tok_cred", TokenKind::ClientSecret, "acme", T0)
    };
    let other_credential = TokenRecord {
        client_id: Some("m2m_ci_other".to_owned()),
        ..record("tok_othercred", TokenKind::ClientSecret, "acme", T0)
    };
    let first = bearer_from("tok_bearer1", &credential, T0);
    let second = bearer_from("tok_bearer2", &credential, T0 + Duration::minutes(5));
    let unrelated = bearer_from("tok_bearer3", &other_credential, T0);
    // Only a client secret cascades, even if a record names an access token as credential.
    let access = record("tok_access", TokenKind::AccessToken, "acme", T0);
    let odd = TokenRecord {
        credential_id: Some(access.id.clone()),
        ..record("tok_odd", TokenKind::BearerToken, "acme", T0)
    };
    for r in [
        &credential,
        &other_credential,
        &first,
        &second,
        &unrelated,
        &access,
        &odd,
    ] {
        store.insert(r.clone()).await.unwrap();
    }
    let already = T0 + Duration::minutes(1);
    assert!(store.revoke(&first.id, already).await.unwrap());
    assert_eq!(
        recorder.take_sorted(),
        [RevocationEvent {
            token_id: first.id.clone(),
            digest: Some(first.digest)
        }]
    );

    let at = T0 + Duration::minutes(10);
    assert!(store.revoke(&credential.id, at).await.unwrap());
    let revoked_at = |id: TokenId| {
        let store = Arc::clone(&store);
        async move { store.get(&id).await.unwrap().unwrap().revoked_at }
    };
    assert_eq!(revoked_at(credential.id.clone()).await, Some(at));
    assert_eq!(revoked_at(first.id.clone()).await, Some(already));
    assert_eq!(revoked_at(second.id.clone()).await, Some(at));
    assert_eq!(revoked_at(unrelated.id.clone()).await, None);
    assert_eq!(revoked_at(other_credential.id.clone()).await, None);
    assert_eq!(
        recorder.take_sorted(),
        [
            RevocationEvent {
                token_id: second.id.clone(),
                digest: Some(second.digest)
            },
            RevocationEvent {
                token_id: credential.id.clone(),
                digest: Some(credential.digest)
            },
        ]
    );

    // A second revocation changes nothing and says so.
    assert!(
        !store
            .revoke(&credential.id, at + Duration::hours(1))
            .await
            .unwrap()
    );
    assert_eq!(revoked_at(credential.id.clone()).await, Some(at));
    assert!(recorder.take_sorted().is_empty());
    assert!(
        !store
            .revoke(&TokenId::new("tok_unknown"), at)
            .await
            .unwrap()
    );

    // A bearer token that reached the store after its credential was revoked goes too.
    let late = bearer_from("tok_bearer4", &credential, at + Duration::seconds(1));
    store.insert(late.clone()).await.unwrap();
    let later = at + Duration::hours(2);
    assert!(!store.revoke(&credential.id, later).await.unwrap());
    assert_eq!(revoked_at(late.id.clone()).await, Some(later));
    assert_eq!(
        recorder.take_sorted(),
        [RevocationEvent {
            token_id: late.id.clone(),
            digest: Some(late.digest)
        }]
    );

    assert!(store.revoke(&access.id, at).await.unwrap());
    assert_eq!(revoked_at(odd.id.clone()).await, None);
    assert_eq!(recorder.take_sorted().len(), 1);

    // A dropped listener is simply forgotten.
    drop(recorder);
    assert!(store.revoke(&unrelated.id, at).await.unwrap());
}

/// A client credential is found by its public client id; bearer tokens carrying the same
/// client id are not client credentials.
async fn find_client_by_client_id(store: Arc<dyn TokenStore>) {
    let format = TokenFormat::default();
    let credential = store
        .issue(
            &format,
            NewToken::new(TokenKind::ClientSecret, "acme", Expiry::NinetyDays).scope("a"),
            T0,
        )
        .await
        .unwrap();
    let client_id = credential.record.client_id.clone().unwrap();
    assert!(client_id.starts_with("m2m_ci_"));
    let mut request = NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60));
    request.credential = Some((credential.record.id.clone(), client_id.clone()));
    let bearer = store
        .issue(&format, request, T0 + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(bearer.record.client_id.as_deref(), Some(client_id.as_str()));
    assert_eq!(
        bearer.record.credential_id.as_ref(),
        Some(&credential.record.id)
    );

    assert_eq!(
        store.find_client(&client_id).await.unwrap(),
        Some(credential.record.clone())
    );
    assert_eq!(
        store.find(&bearer.token.digest()).await.unwrap(),
        Some(bearer.record)
    );
    assert_eq!(store.find_client("m2m_ci_unknown").await.unwrap(), None);

    // Still found once revoked: the token service decides what a revoked credential means.
    store.revoke(&credential.record.id, T0).await.unwrap();
    let found = store.find_client(&client_id).await.unwrap().unwrap();
    assert_eq!(found.revoked_at, Some(T0));
}

/// Usage is recorded in batches, keeping the latest time per token.
async fn record_usage_keeps_the_latest(store: Arc<dyn TokenStore>) {
    let a = record("tok_used_a", TokenKind::AccessToken, "acme", T0);
    let b = TokenRecord {
        last_used_at: Some(T0 + Duration::hours(5)),
        ..record("tok_used_b", TokenKind::AccessToken, "acme", T0)
    };
    let c = record("tok_used_c", TokenKind::AccessToken, "acme", T0);
    for r in [&a, &b, &c] {
        store.insert(r.clone()).await.unwrap();
    }
    store.record_usage(&[]).await.unwrap();

    let mut uses = vec![
        (a.id.clone(), T0 + Duration::minutes(3)),
        (a.id.clone(), T0 + Duration::minutes(7)),
        (a.id.clone(), T0 + Duration::minutes(5)),
        (b.id.clone(), T0 + Duration::hours(1)),
    ];
    // More distinct tokens than one statement takes: unknown ones are ignored.
    uses.extend((0..1200).map(|i| (TokenId::new(format!("tok_unknown{i}")), T0)));
    store.record_usage(&uses).await.unwrap();

    let last_used = |id: TokenId| {
        let store = Arc::clone(&store);
        async move { store.get(&id).await.unwrap().unwrap().last_used_at }
    };
    assert_eq!(
        last_used(a.id.clone()).await,
        Some(T0 + Duration::minutes(7))
    );
    assert_eq!(last_used(b.id.clone()).await, Some(T0 + Duration::hours(5)));
    assert_eq!(last_used(c.id.clone()).await, None);
    assert_eq!(
        store.get(&TokenId::new("tok_unknown7")).await.unwrap(),
        None
    );

    // An older report never moves the time back; a newer one moves it forward.
    let fresh = T0 + Duration::days(1) + Duration::nanoseconds(42);
    store
        .record_usage(&[
            (a.id.clone(), T0 + Duration::minutes(1)),
            (c.id.clone(), fresh),
        ])
        .await
        .unwrap();
    assert_eq!(
        last_used(a.id.clone()).await,
        Some(T0 + Duration::minutes(7))
    );
    assert_eq!(last_used(c.id.clone()).await, Some(fresh));

    // Revoked tokens keep their usage history.
    store.revoke(&c.id, fresh).await.unwrap();
    let later = fresh + Duration::seconds(1);
    store.record_usage(&[(c.id.clone(), later)]).await.unwrap();
    assert_eq!(last_used(c.id.clone()).await, Some(later));
}

/// A verifier over the store records `last_used_at` by itself, in the background, with no
/// application code.
async fn a_verifier_records_usage_by_itself(store: Arc<dyn TokenStore>) {
    let verifier = m2m_core::Verifier::builder(Arc::clone(&store))
        .usage_interval(std::time::Duration::from_millis(20))
        .build();
    let issued = store
        .issue(
            &TokenFormat::default(),
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let mut headers = http::HeaderMap::new();
    let value = http::HeaderValue::from_str(issued.token.expose_secret()).unwrap();
    headers.insert("x-api-key", value);
    let principal = verifier.verify(&headers, &[]).await.unwrap();
    assert_eq!(principal.token_id(), &issued.record.id);

    // A hang guard, not a speed requirement.
    let recorded = async {
        loop {
            let stored = store.get(&issued.record.id).await.unwrap().unwrap();
            if let Some(at) = stored.last_used_at {
                return at;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let at = tokio::time::timeout(std::time::Duration::from_secs(30), recorded)
        .await
        .expect("the use never reached the store");
    assert!(at >= issued.record.created_at);
}

/// The token-type settings: an environment default and per-tenant overrides, sorted by tenant.
async fn token_type_settings(store: Arc<dyn TokenStore>) {
    assert_eq!(
        store.load_settings().await.unwrap(),
        TypeSettings::default()
    );
    store
        .save_token_type(Some("acme"), TokenType::ClientCredentials)
        .await
        .unwrap();
    assert_eq!(
        store.load_settings().await.unwrap(),
        TypeSettings {
            default: None,
            tenants: vec![("acme".to_owned(), TokenType::ClientCredentials)],
            bearer_format: None,
        }
    );
    store.save_bearer_format(BearerFormat::Jwt).await.unwrap();
    store
        .save_bearer_format(BearerFormat::Opaque)
        .await
        .unwrap();
    store.save_bearer_format(BearerFormat::Jwt).await.unwrap();
    store
        .save_token_type(None, TokenType::ClientCredentials)
        .await
        .unwrap();
    store
        .save_token_type(None, TokenType::AccessToken)
        .await
        .unwrap();
    store
        .save_token_type(Some("acme"), TokenType::AccessToken)
        .await
        .unwrap();
    store
        .save_token_type(Some("globex"), TokenType::ClientCredentials)
        .await
        .unwrap();
    store
        .save_token_type(Some("Initech"), TokenType::ClientCredentials)
        .await
        .unwrap();
    // An empty tenant name is a tenant, not the environment.
    store
        .save_token_type(Some(""), TokenType::ClientCredentials)
        .await
        .unwrap();
    let settings = store.load_settings().await.unwrap();
    assert_eq!(
        settings,
        TypeSettings {
            default: Some(TokenType::AccessToken),
            tenants: vec![
                (String::new(), TokenType::ClientCredentials),
                ("Initech".to_owned(), TokenType::ClientCredentials),
                ("acme".to_owned(), TokenType::AccessToken),
                ("globex".to_owned(), TokenType::ClientCredentials),
            ],
            bearer_format: Some(BearerFormat::Jwt),
        }
    );
    assert_eq!(
        settings.token_type_for("globex"),
        Some(TokenType::ClientCredentials)
    );
    assert_eq!(
        settings.token_type_for("hooli"),
        Some(TokenType::AccessToken)
    );

    // Clearing an override makes the tenant follow the environment again.
    assert!(store.clear_token_type("globex").await.unwrap());
    assert!(!store.clear_token_type("globex").await.unwrap());
    assert!(!store.clear_token_type("hooli").await.unwrap());
    let settings = store.load_settings().await.unwrap();
    assert_eq!(
        settings.token_type_for("globex"),
        Some(TokenType::AccessToken)
    );
    assert_eq!(settings.tenants.len(), 3);
}

/// Concurrent issuing, revoking and usage reports all succeed.
async fn concurrent_writes(store: Arc<dyn TokenStore>) {
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let request = NewToken::new(TokenKind::AccessToken, "busy", Expiry::OneDay);
                let at = T0 + Duration::seconds(i);
                let issued = store
                    .issue(&TokenFormat::default(), request, at)
                    .await
                    .unwrap();
                store
                    .record_usage(&[(issued.record.id.clone(), at)])
                    .await
                    .unwrap();
                if i % 2 == 0 {
                    assert!(store.revoke(&issued.record.id, at).await.unwrap());
                }
                store
                    .save_token_type(Some("busy"), TokenType::AccessToken)
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let records = store.list("busy").await.unwrap();
    assert_eq!(records.len(), 24);
    assert_eq!(
        records.iter().filter(|r| r.revoked_at.is_some()).count(),
        12
    );
    assert!(records.iter().all(|r| r.last_used_at == Some(r.created_at)));
}

/// Declares one test per contract case and store.
/// Removing a user revokes the user's tokens in that tenant, and the bearer tokens of the
/// user's client credentials, announcing each; nobody else's.
async fn revoke_user_revokes_the_users_tokens(store: Arc<dyn TokenStore>) {
    let recorder = Arc::new(Recorder::default());
    assert!(store.subscribe(recorder.clone()));
    let of = |id: &str, kind: TokenKind, tenant: &str, user: Option<&str>| TokenRecord {
        user: user.map(str::to_owned),
        client_id: (kind == TokenKind::ClientSecret).then(|| format!("m2m_ci_{id}")),
        ..record(id, kind, tenant, T0)
    };
    let personal = of("tok_alice", TokenKind::AccessToken, "acme", Some("alice"));
    let credential = of(
        "tok_alicecred",
        TokenKind::ClientSecret,
        "acme",
        Some("alice"),
    );
    let bearer = bearer_from("tok_alicebearer", &credential, T0);
    let untouched = [
        of("tok_bob", TokenKind::AccessToken, "acme", Some("bob")),
        of("tok_tenant", TokenKind::AccessToken, "acme", None),
        of(
            "tok_alice_globex",
            TokenKind::AccessToken,
            "globex",
            Some("alice"),
        ),
    ];
    for r in [&personal, &credential, &bearer]
        .into_iter()
        .chain(&untouched)
    {
        store.insert(r.clone()).await.unwrap();
    }
    let at = T0 + Duration::minutes(3);
    assert_eq!(store.revoke_user("acme", "alice", at).await.unwrap(), 3);
    let announced: Vec<String> = recorder
        .take_sorted()
        .into_iter()
        .map(|e| e.token_id.to_string())
        .collect();
    assert_eq!(announced, ["tok_alice", "tok_alicebearer", "tok_alicecred"]);
    for r in [&personal, &credential, &bearer] {
        let found = store.get(&r.id).await.unwrap().unwrap();
        assert_eq!(found.revoked_at, Some(at), "{}", r.id);
    }
    for r in &untouched {
        let found = store.get(&r.id).await.unwrap().unwrap();
        assert_eq!(found.revoked_at, None, "{}", r.id);
    }
    // Again: nothing left to revoke, nothing announced.
    assert_eq!(store.revoke_user("acme", "alice", at).await.unwrap(), 0);
    assert!(recorder.take_sorted().is_empty());
}

/// The portal settings round-trip, with their defaults before the first save.
async fn portal_settings(store: Arc<dyn TokenStore>) {
    assert_eq!(
        store.load_portal_settings().await.unwrap(),
        m2m_core::PortalSettings::default()
    );
    let settings = m2m_core::PortalSettings {
        grantable_scopes: vec![
            m2m_core::GrantableScope::new("reports:read", "Read the reports"),
            m2m_core::GrantableScope::new("reports:write", "Write \"quoted\" reports, é"),
        ],
        api_tokens_visible: false,
        personal_tokens_visible: true,
    };
    store.save_portal_settings(&settings).await.unwrap();
    assert_eq!(store.load_portal_settings().await.unwrap(), settings);
    let emptied = m2m_core::PortalSettings::default();
    store.save_portal_settings(&emptied).await.unwrap();
    assert_eq!(store.load_portal_settings().await.unwrap(), emptied);
}

/// A user's tokens in a tenant, paged, oldest first; nobody else's.
async fn list_user_pages(store: Arc<dyn TokenStore>) {
    let of = |id: &str, tenant: &str, user: Option<&str>, minutes: i64| TokenRecord {
        user: user.map(str::to_owned),
        ..record(
            id,
            TokenKind::AccessToken,
            tenant,
            T0 + Duration::minutes(minutes),
        )
    };
    for r in [
        of("tok_a3", "acme", Some("alice"), 3),
        of("tok_a1", "acme", Some("alice"), 1),
        of("tok_a2", "acme", Some("alice"), 2),
        of("tok_b1", "acme", Some("bob"), 1),
        of("tok_t1", "acme", None, 1),
        of("tok_g1", "globex", Some("alice"), 1),
    ] {
        store.insert(r).await.unwrap();
    }
    let page = |offset, limit| {
        let store = Arc::clone(&store);
        async move {
            let records = store
                .list_user_page("acme", "alice", offset, limit)
                .await
                .unwrap();
            records
                .into_iter()
                .map(|r| r.id.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page(0, 10).await, ["tok_a1", "tok_a2", "tok_a3"]);
    assert_eq!(page(1, 1).await, ["tok_a2"]);
    assert!(page(3, 10).await.is_empty());
    assert!(
        store
            .list_user_page("acme", "carol", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Pages `listing` (a first page, then the pages after a cursor) through, `limit` at a time.
async fn seek_all<F, Fut>(limit: u64, mut listing: F) -> Vec<TokenRecord>
where
    F: FnMut(Option<PageCursor>) -> Fut,
    Fut: Future<Output = Result<Vec<TokenRecord>, StoreError>>,
{
    let mut all: Vec<TokenRecord> = Vec::new();
    loop {
        let page = listing(all.last().map(PageCursor::of)).await.unwrap();
        assert!(page.len() as u64 <= limit, "a page longer than its limit");
        let last = (page.len() as u64) < limit;
        all.extend(page);
        if last {
            return all;
        }
    }
}

/// Keyset pages: each listing paged through after cursors holds every record of the offset
/// listing exactly once, in its order (creation time, ties broken by id byte by byte).
async fn keyset_pages(store: Arc<dyn TokenStore>) {
    let credential = record("tok_credential", TokenKind::ClientSecret, "acme", T0);
    let credential = TokenRecord {
        client_id: Some("m2m_ci_keyset".to_owned()),
        ..credential
    };
    store.insert(credential.clone()).await.unwrap();
    // Three records to a creation time; "tok_B.." sorts before "tok_a.." byte by byte.
    for n in 0..45_i64 {
        let at = T0 + Duration::seconds(n / 3);
        let id = format!("tok_{}{:02}", if n % 2 == 0 { 'a' } else { 'B' }, 44 - n);
        let mut r = record(&id, TokenKind::AccessToken, "acme", at);
        match n % 5 {
            0 => r.user = Some("alice".to_owned()),
            1 => r = bearer_from(&id, &credential, at),
            2 => r.user = Some("bob".to_owned()),
            _ => {}
        }
        store.insert(r).await.unwrap();
        let elsewhere = if n % 2 == 0 { "globex" } else { "acme-2" };
        store
            .insert(record(
                &format!("tok_x{n:02}"),
                TokenKind::AccessToken,
                elsewhere,
                at,
            ))
            .await
            .unwrap();
    }
    let mut expected = store.list("acme").await.unwrap();
    expected.sort_by(|a, b| {
        (a.created_at, a.id.as_str().as_bytes()).cmp(&(b.created_at, b.id.as_str().as_bytes()))
    });
    assert_eq!(store.list("acme").await.unwrap(), expected);
    let everything = store.list_page("acme", 0, 1000).await.unwrap();
    let alice = store
        .list_user_page("acme", "alice", 0, 1000)
        .await
        .unwrap();
    let api = store.list_api_page("acme", 0, 1000).await.unwrap();
    assert_eq!(everything, expected);
    assert_eq!((everything.len(), alice.len(), api.len()), (46, 9, 19));

    for limit in [1, 4, 9, 46, 50] {
        let seen = seek_all(limit, |after| {
            let store = Arc::clone(&store);
            async move {
                match after {
                    Some(after) => store.list_page_after("acme", &after, limit).await,
                    None => store.list_page("acme", 0, limit).await,
                }
            }
        })
        .await;
        assert_eq!(ids(&seen), ids(&everything), "limit {limit}");
        let seen = seek_all(limit, |after| {
            let store = Arc::clone(&store);
            async move {
                match after {
                    Some(after) => {
                        store
                            .list_user_page_after("acme", "alice", &after, limit)
                            .await
                    }
                    None => store.list_user_page("acme", "alice", 0, limit).await,
                }
            }
        })
        .await;
        assert_eq!(ids(&seen), ids(&alice), "limit {limit}");
        let seen = seek_all(limit, |after| {
            let store = Arc::clone(&store);
            async move {
                match after {
                    Some(after) => store.list_api_page_after("acme", &after, limit).await,
                    None => store.list_api_page("acme", 0, limit).await,
                }
            }
        })
        .await;
        assert_eq!(ids(&seen), ids(&api), "limit {limit}");
    }

    // A cursor is a position, not necessarily a record: between two ids of one time…
    let tie = &everything[5];
    let between = PageCursor::new(tie.created_at, TokenId::new(format!("{}", tie.id) + "0"));
    assert_eq!(
        store.list_page_after("acme", &between, 3).await.unwrap(),
        everything[6..9]
    );
    // …before every record, after every one, and beyond the times a database holds.
    let first = &everything[0];
    let before = PageCursor::new(first.created_at, TokenId::new(""));
    assert_eq!(
        store.list_page_after("acme", &before, 2).await.unwrap(),
        everything[..2]
    );
    let after = PageCursor::of(everything.last().unwrap());
    assert!(
        store
            .list_page_after("acme", &after, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_page_after("nobody", &before, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let far_past = PageCursor::new(datetime!(-9999-01-01 0:00 UTC), TokenId::new("tok_z"));
    let far_future = PageCursor::new(datetime!(9999-01-01 0:00 UTC), TokenId::new(""));
    assert_eq!(
        store.list_page_after("acme", &far_past, 2).await.unwrap(),
        everything[..2]
    );
    assert!(
        store
            .list_page_after("acme", &far_future, 2)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_page_after("acme", &before, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_user_page_after("acme", "carol", &before, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_api_page_after("nobody", &before, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The tenant's API tokens: no user's, no minted bearer tokens; and who created each.
async fn api_pages_and_creators(store: Arc<dyn TokenStore>) {
    let at = |minutes: i64| T0 + Duration::minutes(minutes);
    let api = TokenRecord {
        created_by: Some("Alice Admin — ünïcode".to_owned()),
        ..record("tok_a_api", TokenKind::AccessToken, "acme", at(1))
    };
    let credential = record("tok_b_credential", TokenKind::ClientSecret, "acme", at(2));
    let minted = bearer_from("tok_c_minted", &credential, at(3));
    let personal = TokenRecord {
        user: Some("bob".to_owned()),
        ..record("tok_d_personal", TokenKind::AccessToken, "acme", at(4))
    };
    let elsewhere = record("tok_e_globex", TokenKind::AccessToken, "globex", at(5));
    for r in [&api, &credential, &minted, &personal, &elsewhere] {
        store.insert(r.clone()).await.unwrap();
    }
    let page = store.list_api_page("acme", 0, 10).await.unwrap();
    assert_eq!(ids(&page), ["tok_a_api", "tok_b_credential"]);
    assert_eq!(page[0].created_by.as_deref(), Some("Alice Admin — ünïcode"));
    assert_eq!(page[1].created_by, None);
    assert_eq!(
        ids(&store.list_api_page("acme", 1, 1).await.unwrap()),
        ["tok_b_credential"]
    );
    assert!(
        store
            .list_api_page("nobody", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A portal session: its code is spent by the first redemption, a late or revoked one is
/// refused, and only the digest of the session secret finds it.
async fn portal_sessions(store: Arc<dyn TokenStore>) {
    let mut session = PortalSession::new(
        "acme",
        "alice",
        "Alice — ünïcode",
        PortalRole::Admin,
        T0,
        Duration::hours(1),
    );
    session.permissions = vec!["reports:read".to_owned()];
    let code = PortalSecret::generate();
    let secret = PortalSecret::generate();
    store
        .insert_portal_session(&session, &code.digest(), T0 + Duration::minutes(5))
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_portal_session(&session, &PortalSecret::generate().digest(), T0)
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.find_portal_session(&code.digest()).await.unwrap(),
        None,
        "a code is no secret"
    );

    let redeemed = store
        .redeem_portal_code(&code.digest(), &secret.digest(), T0 + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(redeemed.as_ref(), Some(&session), "every field round-trips");
    let again = store
        .redeem_portal_code(
            &code.digest(),
            &PortalSecret::generate().digest(),
            T0 + Duration::minutes(2),
        )
        .await
        .unwrap();
    assert_eq!(again, None, "single use");
    assert_eq!(
        store.find_portal_session(&secret.digest()).await.unwrap(),
        Some(session.clone())
    );

    // Too late: the code is spent all the same and grants nothing.
    let late = PortalSession::new(
        "acme",
        "bob",
        "Bob",
        PortalRole::Member,
        T0,
        Duration::hours(1),
    );
    let late_code = PortalSecret::generate();
    store
        .insert_portal_session(&late, &late_code.digest(), T0 + Duration::minutes(5))
        .await
        .unwrap();
    let late_secret = PortalSecret::generate();
    assert_eq!(
        store
            .redeem_portal_code(
                &late_code.digest(),
                &late_secret.digest(),
                T0 + Duration::minutes(5)
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_portal_session(&late_secret.digest())
            .await
            .unwrap(),
        None
    );

    // Revoked before its link was opened.
    let revoked = PortalSession::new(
        "acme",
        "carol",
        "Carol",
        PortalRole::Member,
        T0,
        Duration::hours(1),
    );
    let revoked_code = PortalSecret::generate();
    store
        .insert_portal_session(&revoked, &revoked_code.digest(), T0 + Duration::minutes(5))
        .await
        .unwrap();
    assert!(store.revoke_portal_session(&revoked.id, T0).await.unwrap());
    assert!(
        !store.revoke_portal_session(&revoked.id, T0).await.unwrap(),
        "once"
    );
    assert!(!store.revoke_portal_session("ps_unknown", T0).await.unwrap());
    assert_eq!(
        store
            .redeem_portal_code(
                &revoked_code.digest(),
                &PortalSecret::generate().digest(),
                T0
            )
            .await
            .unwrap(),
        None
    );

    // A user leaving the tenant ends the user's sessions there, and only there.
    let elsewhere = PortalSession::new(
        "globex",
        "alice",
        "Alice",
        PortalRole::Admin,
        T0,
        Duration::hours(1),
    );
    store
        .insert_portal_session(
            &elsewhere,
            &PortalSecret::generate().digest(),
            T0 + Duration::minutes(5),
        )
        .await
        .unwrap();
    let later = T0 + Duration::minutes(10);
    assert_eq!(
        store
            .revoke_user_portal_sessions("acme", "alice", later)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .revoke_user_portal_sessions("acme", "alice", later)
            .await
            .unwrap(),
        0
    );
    let ended = store
        .find_portal_session(&secret.digest())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.revoked_at, Some(later));
    assert!(!ended.is_active(later));
}

/// An exchange (a bearer token stored from a credential) racing the credential's revocation,
/// a thousand times: whatever the order, no bearer token survives the revocation.
async fn exchanges_never_outlive_a_racing_revocation(store: Arc<dyn TokenStore>) {
    let format = TokenFormat::default();
    let mut stored = 0;
    for round in 0..1000 {
        let credential = store
            .issue(
                &format,
                NewToken::new(TokenKind::ClientSecret, "acme", Expiry::OneDay),
                T0,
            )
            .await
            .unwrap()
            .record;
        let mut bearer = NewToken::new(TokenKind::BearerToken, "acme", Expiry::OneDay);
        bearer.credential = Some((credential.id.clone(), credential.client_id.clone().unwrap()));
        let bearer = bearer.generate(&format, T0).record;
        let exchange = {
            let store = Arc::clone(&store);
            let bearer = bearer.clone();
            tokio::spawn(async move { store.insert_derived(bearer).await.unwrap() })
        };
        let revocation = {
            let store = Arc::clone(&store);
            let id = credential.id.clone();
            tokio::spawn(async move { store.revoke(&id, T0).await.unwrap() })
        };
        let (inserted, revoked) = (exchange.await.unwrap(), revocation.await.unwrap());
        assert!(revoked, "round {round}");
        if inserted {
            stored += 1;
        }
        let found = store.get(&bearer.id).await.unwrap();
        assert_eq!(found.is_some(), inserted, "round {round}");
        if let Some(found) = found {
            assert!(
                found.revoked_at.is_some(),
                "round {round}: a bearer token survived"
            );
        }
    }
    // After the revocation, an exchange stores nothing.
    let credential = store
        .issue(
            &format,
            NewToken::new(TokenKind::ClientSecret, "acme", Expiry::OneDay),
            T0,
        )
        .await
        .unwrap()
        .record;
    assert!(store.revoke(&credential.id, T0).await.unwrap());
    let mut late = NewToken::new(TokenKind::BearerToken, "acme", Expiry::OneDay);
    late.credential = Some((credential.id.clone(), credential.client_id.clone().unwrap()));
    assert!(
        !store
            .insert_derived(late.generate(&format, T0).record)
            .await
            .unwrap()
    );
    let mut orphan = NewToken::new(TokenKind::BearerToken, "acme", Expiry::OneDay);
    orphan.credential = Some((TokenId::new("tok_unknown"), "m2m_ci_unknown".to_owned()));
    assert!(
        !store
            .insert_derived(orphan.generate(&format, T0).record)
            .await
            .unwrap()
    );
    println!("{stored} of 1000 exchanges were stored before their revocation");
}

/// The audit log: newest first, per tenant, paged, every field as written.
async fn audit_log(store: Arc<dyn TokenStore>) {
    let at = |minutes: i64| T0 + Duration::minutes(minutes);
    let entries = [
        AuditEntry::new(at(1), "token tok_admin", "settings.update").source("203.0.113.7"),
        AuditEntry::new(at(2), "session ps_1 (Alice — ü)", "token.create")
            .tenant("acme")
            .target("tok_a")
            .source("2001:db8::1"),
        AuditEntry::new(at(3), "cli", "token.revoke")
            .tenant("globex")
            .target("tok_g"),
        AuditEntry::new(at(4), "token tok_admin", "user.remove")
            .tenant("acme")
            .target("alice"),
    ];
    for entry in &entries {
        store.record_audit(entry).await.unwrap();
    }
    let all = store.list_audit(None, 0, 10).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0], entries[3], "newest first, every field");
    assert_eq!(all[3], entries[0]);
    let acme = store.list_audit(Some("acme"), 0, 10).await.unwrap();
    assert_eq!(acme, [entries[3].clone(), entries[1].clone()]);
    assert_eq!(
        store.list_audit(Some("acme"), 1, 1).await.unwrap(),
        [entries[1].clone()]
    );
    assert!(
        store
            .list_audit(Some("nobody"), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(std::sync::Arc::new(m2m_core::MemoryStore::new())).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::with_sqlite(|store| super::$case(store)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::with_postgres(|store| super::$case(store)).await;
                }
            )*
        }
    };
}

/// Signing keys: stored with their private key, retired all but one, listed newest first
/// while retired within the window asked for.
async fn signing_keys(store: Arc<dyn TokenStore>) {
    let key = |kid: &str, minutes: i64| SigningKey {
        kid: kid.to_owned(),
        algorithm: "EdDSA".to_owned(),
        private_key: vec![0, 1, 2, 255],
        public_jwk: format!(r#"{{"kty":"OKP","kid":"{kid}"}}"#),
        created_at: T0 + Duration::minutes(minutes),
        retired_at: None,
    };
    assert!(store.signing_keys(T0).await.unwrap().is_empty());
    store.insert_signing_key(&key("k1", 0)).await.unwrap();
    store.insert_signing_key(&key("k2", 10)).await.unwrap();
    assert!(matches!(
        store.insert_signing_key(&key("k1", 20)).await,
        Err(StoreError::Conflict)
    ));
    let kids = |keys: Vec<SigningKey>| keys.into_iter().map(|k| k.kid).collect::<Vec<_>>();
    assert_eq!(kids(store.signing_keys(T0).await.unwrap()), ["k2", "k1"]);
    assert_eq!(store.signing_keys(T0).await.unwrap()[1], key("k1", 0));

    let retired_at = T0 + Duration::minutes(11);
    assert_eq!(
        store.retire_signing_keys("k2", retired_at).await.unwrap(),
        1
    );
    assert_eq!(
        store.retire_signing_keys("k2", retired_at).await.unwrap(),
        0
    );
    let keys = store.signing_keys(T0).await.unwrap();
    assert_eq!(keys[1].retired_at, Some(retired_at));
    assert_eq!(keys[0].retired_at, None);
    // Retired before the window: no longer published.
    assert_eq!(kids(store.signing_keys(retired_at).await.unwrap()), ["k2"]);
}

/// Revoked client credentials since a time, oldest first, other kinds left out.
async fn revoked_credentials(store: Arc<dyn TokenStore>) {
    let credential = |id: &str| TokenRecord {
        client_id: Some(format!("m2m_ci_{id}")),
        ..record(id, TokenKind::ClientSecret, "acme", T0)
    };
    let (first, second) = (credential("tok_revokedcs1"), credential("tok_revokedcs2"));
    let access = record("tok_revokedat", TokenKind::AccessToken, "acme", T0);
    let live = credential("tok_livecs");
    for r in [&first, &second, &access, &live] {
        store.insert(r.clone()).await.unwrap();
    }
    store
        .revoke(&second.id, T0 + Duration::minutes(2))
        .await
        .unwrap();
    store
        .revoke(&first.id, T0 + Duration::minutes(3))
        .await
        .unwrap();
    store
        .revoke(&access.id, T0 + Duration::minutes(4))
        .await
        .unwrap();
    let ids = |events: Vec<RevocationEvent>| {
        events
            .into_iter()
            .map(|e| (e.token_id.to_string(), e.digest))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(store.revoked_credentials(T0).await.unwrap()),
        [
            (second.id.to_string(), Some(second.digest)),
            (first.id.to_string(), Some(first.digest))
        ]
    );
    assert_eq!(
        ids(store
            .revoked_credentials(T0 + Duration::minutes(2))
            .await
            .unwrap()),
        [(first.id.to_string(), Some(first.digest))]
    );
    assert!(
        store
            .revoked_credentials(T0 + Duration::minutes(3))
            .await
            .unwrap()
            .is_empty()
    );
}

contract!(
    revoked_credentials,
    signing_keys,
    issue_find_and_get,
    every_field_round_trips,
    duplicates_conflict,
    list_and_pages,
    list_user_pages,
    keyset_pages,
    expired_and_revoked_are_still_found,
    revoke_cascades_and_announces,
    revoke_user_revokes_the_users_tokens,
    find_client_by_client_id,
    record_usage_keeps_the_latest,
    a_verifier_records_usage_by_itself,
    token_type_settings,
    portal_settings,
    api_pages_and_creators,
    portal_sessions,
    exchanges_never_outlive_a_racing_revocation,
    audit_log,
    concurrent_writes,
);

// ---------------------------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------------------------

/// Runs `case` on its own task so that its panic is reported after the cleanup.
async fn run_case<F, Fut>(store: &SqlStore, case: F) -> Result<(), tokio::task::JoinError>
where
    F: FnOnce(Arc<dyn TokenStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(case(Arc::new(store.clone()))).await
}

fn resume(outcome: Result<(), tokio::task::JoinError>) {
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the contract case did not finish: {error}"),
        }
    }
}

/// A SQLite database file in the temporary directory, removed with its WAL files.
struct SqliteFile(PathBuf);

impl SqliteFile {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("{}.db", unique_name("m2m_contract"))))
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn with_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn TokenStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let file = SqliteFile::new();
    let store = SqlStore::connect(&file.url()).await.unwrap();
    let outcome = run_case(&store, case).await;
    store.close().await;
    resume(outcome);
}

async fn with_postgres<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn TokenStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (url, name) = create_database().await;
    let outcome = match SqlStore::connect(&url).await {
        Ok(store) => {
            let outcome = run_case(&store, case).await;
            store.close().await;
            outcome
        }
        Err(error) => {
            drop_database(&name).await;
            panic!("cannot open the test database {name}: {error}");
        }
    };
    drop_database(&name).await;
    resume(outcome);
}

// ---------------------------------------------------------------------------------------------
// What only the SQL stores do
// ---------------------------------------------------------------------------------------------

/// Reopening a SQLite file finds its tokens, the revoked one still revoked, and its settings.
#[tokio::test]
async fn sqlite_file_survives_reopening() {
    let file = SqliteFile::new();
    let format = TokenFormat::default();
    let store = SqlStore::connect(&file.url()).await.unwrap();
    let kept = store
        .issue(
            &format,
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::SevenDays).scope("x"),
            T0,
        )
        .await
        .unwrap();
    let revoked = store
        .issue(
            &format,
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
            T0 + Duration::seconds(1),
        )
        .await
        .unwrap();
    let at = T0 + Duration::minutes(1);
    assert!(store.revoke(&revoked.record.id, at).await.unwrap());
    store
        .record_usage(&[(kept.record.id.clone(), at)])
        .await
        .unwrap();
    store
        .save_token_type(Some("acme"), TokenType::AccessToken)
        .await
        .unwrap();
    let mut wal = file.0.clone().into_os_string();
    wal.push("-wal");
    assert!(PathBuf::from(wal).exists(), "the database is in WAL mode");
    store.close().await;
    drop(store);

    let reopened = SqlStore::connect(&file.url()).await.unwrap();
    let found = reopened.find(&kept.token.digest()).await.unwrap().unwrap();
    assert_eq!(
        found,
        TokenRecord {
            last_used_at: Some(at),
            ..kept.record.clone()
        }
    );
    let found = reopened
        .find(&revoked.token.digest())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.revoked_at, Some(at));
    assert!(!reopened.revoke(&revoked.record.id, at).await.unwrap());
    assert_eq!(
        ids(&reopened.list("acme").await.unwrap()),
        [kept.record.id.as_str(), revoked.record.id.as_str()]
    );
    assert_eq!(
        reopened
            .load_settings()
            .await
            .unwrap()
            .token_type_for("acme"),
        Some(TokenType::AccessToken)
    );
    reopened.close().await;
}

/// Two in-memory stores are two databases; clones of one share it.
#[tokio::test]
async fn sqlite_memory_stores_are_private_and_clones_share() {
    let one = SqlStore::connect("sqlite::memory:").await.unwrap();
    let two = SqlStore::connect("sqlite::memory:").await.unwrap();
    one.insert(record("tok_mem", TokenKind::AccessToken, "acme", T0))
        .await
        .unwrap();
    assert_eq!(one.clone().list("acme").await.unwrap().len(), 1);
    assert!(two.list("acme").await.unwrap().is_empty());
}

/// A closed store answers with `Unavailable`, never a panic.
#[tokio::test]
async fn closed_stores_are_unavailable() {
    let file = SqliteFile::new();
    let sqlite = SqlStore::connect(&file.url()).await.unwrap();
    sqlite.close().await;
    assert_unavailable(&sqlite).await;

    let (url, name) = create_database().await;
    let postgres = SqlStore::connect(&url).await.unwrap();
    postgres.close().await;
    assert_unavailable(&postgres).await;
    drop_database(&name).await;
}

async fn assert_unavailable(store: &SqlStore) {
    let unavailable = |result: Result<(), StoreError>| {
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    };
    let id = TokenId::new("tok_closed");
    unavailable(store.find(&TokenDigest::of("x")).await.map(drop));
    unavailable(store.get(&id).await.map(drop));
    unavailable(
        store
            .insert(record("tok_closed", TokenKind::AccessToken, "acme", T0))
            .await,
    );
    unavailable(store.list("acme").await.map(drop));
    unavailable(store.list_page("acme", 0, 10).await.map(drop));
    unavailable(store.revoke(&id, T0).await.map(drop));
    unavailable(store.find_client("m2m_ci_x").await.map(drop));
    unavailable(store.record_usage(&[(id.clone(), T0)]).await);
    unavailable(store.load_settings().await.map(drop));
    unavailable(store.save_token_type(None, TokenType::AccessToken).await);
}

/// On PostgreSQL every revocation is also sent on the revocation channel, on commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revocations_are_notified() {
    let (url, name) = create_database().await;
    let store = SqlStore::connect(&url).await.unwrap();
    let outcome = tokio::spawn({
        let store = store.clone();
        async move {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await.unwrap();
            listener.listen(REVOCATION_CHANNEL).await.unwrap();
            let credential = TokenRecord {
                client_id: Some("m2m_ci_notify".to_owned()),
                ..record("tok_notifycs", TokenKind::ClientSecret, "acme", T0)
            };
            let bearer = bearer_from("tok_notifycc", &credential, T0);
            store.insert(credential.clone()).await.unwrap();
            store.insert(bearer.clone()).await.unwrap();
            assert!(store.revoke(&credential.id, T0).await.unwrap());

            let mut payloads = Vec::new();
            for _ in 0..2 {
                let notification =
                    tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
                        .await
                        .expect("a notification within 10 s")
                        .unwrap();
                assert_eq!(notification.channel(), REVOCATION_CHANNEL);
                payloads.push(notification.payload().to_owned());
            }
            // Each payload ends with the revoking store's origin, which its own listener skips.
            let mut payloads: Vec<String> = payloads
                .iter()
                .map(|p| p.rsplit_once(' ').expect("an origin").0.to_owned())
                .collect();
            payloads.sort();
            assert_eq!(
                payloads,
                [
                    format!("{} {}", bearer.id, bearer.digest.to_hex()),
                    format!("{} {}", credential.id, credential.digest.to_hex()),
                ]
            );
            // Nothing more: a repeated revocation is not announced.
            assert!(!store.revoke(&credential.id, T0).await.unwrap());
            let quiet =
                tokio::time::timeout(std::time::Duration::from_millis(300), listener.recv()).await;
            assert!(quiet.is_err(), "unexpected notification {quiet:?}");
        }
    })
    .await;
    store.close().await;
    drop_database(&name).await;
    resume(outcome);
}

/// Neither `Debug` nor a connection error shows the password of the URL.
#[tokio::test]
async fn passwords_stay_out_of_debug_and_errors() {
    let (url, name) = create_database().await;
    // Trust authentication ignores the password; a password-checking server refuses it.
    let with_password = url.replacen("://", "://postgres:hunter2-secret@", 1);
    if !url.contains('@') {
        if let Ok(store) = SqlStore::connect(&with_password).await {
            let debug = format!("{store:?}");
            assert!(!debug.contains("hunter2"), "{debug}");
            assert!(debug.contains(&name), "{debug}");
            store.close().await;
        }
    }
    let store = SqlStore::connect(&url).await.unwrap();
    let debug = format!("{store:?}");
    assert!(debug.starts_with("SqlStore"), "{debug}");
    assert!(debug.contains(&name), "{debug}");
    store.close().await;
    drop_database(&name).await;

    let error = SqlStore::connect("postgres://m2m:hunter2-secret@127.0.0.1:1/m2m")
        .await
        .unwrap_err();
    assert!(matches!(error, SqlError::Connect(_)), "{error:?}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(!format!("{error:?}").contains("hunter2"), "{error:?}");
}

#[tokio::test]
async fn unknown_schemes_are_refused_clearly() {
    for url in [
        "mysql://root:hunter2@localhost/m2m",
        "m2m.db",
        "",
        "http://x",
    ] {
        let error = SqlStore::connect(url).await.unwrap_err();
        assert!(
            matches!(error, SqlError::UnsupportedUrl { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("sqlite://"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
    let file = SqliteFile::new();
    let store = SqlStore::connect(&file.url().replacen("sqlite://", "sqlite:", 1))
        .await
        .unwrap();
    assert!(format!("{store:?}").contains("m2m_contract"));
    store.close().await;
    assert!(file.0.exists());
}

/// The URL with `parameters` added to its query.
fn with_parameters(url: &str, parameters: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{parameters}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls() {
    use sqlx::Connection as _;
    let (url, name) = create_database().await;
    let outcome = async move {
        // `sslmode=require`: encrypted, whatever certificate the server shows.
        let required = with_parameters(&url, "sslmode=require");
        let store = SqlStore::connect(&required)
            .await
            .unwrap_or_else(|error| panic!("sslmode=require: {error}"));
        let issued = store
            .issue(
                &TokenFormat::default(),
                NewToken::new(TokenKind::AccessToken, "acme", Expiry::OneDay),
                T0,
            )
            .await
            .unwrap();
        assert!(store.find(&issued.token.digest()).await.unwrap().is_some());
        store.close().await;
        let mut connection = sqlx::PgConnection::connect(&required).await.unwrap();
        let (encrypted,): (bool,) =
            sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&mut connection)
                .await
                .unwrap();
        assert!(encrypted, "the connection is encrypted");
        connection.close().await.ok();

        // `sslmode=verify-full` checks the certificate: a server whose certificate no trusted
        // authority signed (a local cluster's self-signed one) is refused.
        let verified = with_parameters(&url, "sslmode=verify-full");
        let refused = SqlStore::connect(&verified).await;
        assert!(
            matches!(refused, Err(SqlError::Connect(_))),
            "an untrusted certificate is refused: {refused:?}"
        );
    };
    let outcome = tokio::spawn(outcome).await;
    drop_database(&name).await;
    resume(outcome);
}
