//! Memory per cached entry at one million entries (budget: ≤ 200 bytes).
//!
//! Run with `cargo bench --bench cache_memory`. A store that makes up a record for any digest
//! keeps the store itself out of the measurement; the figure is the growth of the process's
//! resident memory while the verifier caches one million distinct tokens, divided by their
//! number.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use http::{HeaderMap, HeaderValue};
use m2m::{
    CacheSettings, StoreError, TokenDigest, TokenFormat, TokenId, TokenKind, TokenLookup,
    TokenRecord, Verifier,
};
use time::OffsetDateTime;

const ENTRIES: usize = 1_000_000;

/// Answers every lookup with an active access token of tenant `acme` and two scopes.
#[derive(Debug)]
struct GeneratedStore;

#[async_trait]
impl TokenLookup for GeneratedStore {
    async fn find_token(
        &self,
        _: &str,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        Ok(Some(TokenRecord {
            id: TokenId::generate(),
            digest: *digest,
            stub: String::new(),
            kind: TokenKind::AccessToken,
            tenant: "acme".to_owned(),
            user: None,
            description: String::new(),
            scopes: vec!["reports:read".to_owned(), "reports:write".to_owned()],
            created_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            client_id: None,
            credential_id: None,
            created_by: None,
            rate_limit: None,
        }))
    }

    async fn record_usage(&self, _: &[(TokenId, OffsetDateTime)]) -> Result<(), StoreError> {
        Ok(())
    }
}

fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the generated store never waits"),
    }
}

/// Resident memory of this process, in bytes.
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux)");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("resident pages");
    pages * 4096
}

fn main() {
    let verifier = Verifier::builder(Arc::new(GeneratedStore))
        .cache(CacheSettings {
            capacity: ENTRIES,
            ttl: std::time::Duration::from_secs(3600),
            ..CacheSettings::default()
        })
        .build();
    let format = TokenFormat::default();
    let before = resident_bytes();
    let mut headers = HeaderMap::new();
    for _ in 0..ENTRIES {
        let token = format.generate(TokenKind::AccessToken);
        headers.insert(
            "x-api-key",
            HeaderValue::from_str(token.expose_secret()).expect("visible ASCII"),
        );
        ready(verifier.verify(&headers, &[])).expect("a generated token verifies");
    }
    let after = resident_bytes();
    let entries = verifier.cached_entries();
    assert_eq!(entries, ENTRIES);
    println!(
        "cache memory: {entries} entries, {} MiB resident growth, {} bytes per entry",
        (after - before) / (1 << 20),
        (after - before) / entries
    );
}
