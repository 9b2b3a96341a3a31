//! Criterion benches of the core verification paths.
//!
//! Run with `cargo bench --bench verify`. Budgets (DESIGN.md): a cache hit, headers in →
//! `Principal` out, in ≤ 100 ns single-thread and ≥ 1.8× that throughput on two threads; a
//! malformed or bad-checksum token rejected in ≤ 40 ns with zero store calls. The
//! `hit_pipeline` group runs a hit by hand (placement rules, format and checksum, SHA-256,
//! dashmap or `moka`): the reference the verifier's hit is compared with in the same run, and
//! the measurement behind the choice of cache.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use m2m::{
    CacheSettings, Expiry, MemoryStore, NewToken, Principal, TokenDigest, TokenFormat, TokenKind,
    TokenStore, Verifier, extract,
};

/// Polls a future that completes without waiting (every path here does, the memory store
/// included), so the figures hold the verification and not an executor.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benched path waited"),
    }
}

/// The map type the verifier's cache uses, for the side-by-side with moka.
type DigestMap<V> = dashmap::DashMap<TokenDigest, V, m2m::DigestHasher>;

fn api_key(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_str(token).unwrap());
    headers
}

fn issue(store: &MemoryStore) -> String {
    let request =
        NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays).scope("reports:read");
    ready(store.issue(
        &TokenFormat::default(),
        request,
        time::OffsetDateTime::now_utc(),
    ))
    .unwrap()
    .token
    .expose_secret()
    .to_owned()
}

fn verifier_paths(c: &mut Criterion) {
    let store = Arc::new(MemoryStore::new());
    let verifier = Verifier::builder(store.clone())
        .cache(CacheSettings {
            ttl: Duration::from_secs(3600),
            ..CacheSettings::default()
        })
        .build();
    let token = issue(&store);
    let hit = api_key(&token);
    ready(verifier.verify(&hit, &["reports:read"])).unwrap();

    let mut group = c.benchmark_group("verify");
    group.bench_function("cache_hit", |b| {
        b.iter(|| ready(verifier.verify(black_box(&hit), &["reports:read"])).unwrap())
    });

    // What middleware runs first: the same hit, decided without a future.
    group.bench_function("cache_hit_sync", |b| {
        b.iter(|| {
            verifier
                .verify_cached(black_box(&hit), &["reports:read"])
                .unwrap()
                .unwrap()
        })
    });

    let malformed = api_key("m2m_at_not-a-token");
    group.bench_function("malformed", |b| {
        b.iter(|| ready(verifier.verify(black_box(&malformed), &[])).unwrap_err())
    });

    let mut changed = token.clone().into_bytes();
    let last = changed.len() - 1;
    changed[last] = if changed[last] == b'A' { b'B' } else { b'A' };
    let bad_checksum = api_key(std::str::from_utf8(&changed).unwrap());
    group.bench_function("bad_checksum", |b| {
        b.iter(|| ready(verifier.verify(black_box(&bad_checksum), &[])).unwrap_err())
    });

    let uncached = Verifier::builder(store.clone())
        .cache(CacheSettings {
            capacity: 0,
            ..CacheSettings::default()
        })
        .build();
    group.bench_function("miss_memory_store", |b| {
        b.iter(|| ready(uncached.verify(black_box(&hit), &["reports:read"])).unwrap())
    });

    // Two threads verifying at once, each its own token: time per pair of verifications.
    let second = api_key(&issue(&store));
    ready(verifier.verify(&second, &[])).unwrap();
    group.bench_function("cache_hit_2_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for headers in [&hit, &second] {
                    let verifier = &verifier;
                    s.spawn(move || {
                        for _ in 0..iters {
                            ready(verifier.verify(black_box(headers), &[])).unwrap();
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    group.finish();
}

/// The hit path by hand: placement rules, format and checksum, digest, cache lookup, scope.
fn hit_pipeline(c: &mut Criterion) {
    let store = MemoryStore::new();
    let token = issue(&store);
    let headers = api_key(&token);
    let format = TokenFormat::default();
    let digest = TokenDigest::of(&token);
    let principal = ready(store.find(&digest)).unwrap().unwrap().principal();

    let lookup = |headers: &HeaderMap, get: &dyn Fn(&TokenDigest) -> Option<Principal>| {
        let credential = extract(headers, 4096).unwrap();
        let parsed = format.parse(credential.expose_secret()).unwrap();
        let principal = get(&parsed.digest()).unwrap();
        assert!(principal.has_scope("reports:read"));
        principal
    };

    let dashmap: DigestMap<Principal> = DigestMap::with_hasher(m2m::DigestHasher);
    dashmap.insert(digest, principal.clone());
    let moka: moka::sync::Cache<TokenDigest, Principal> = moka::sync::Cache::new(100_000);
    moka.insert(digest, principal);

    let mut group = c.benchmark_group("hit_pipeline");
    group.bench_function("dashmap", |b| {
        b.iter(|| lookup(black_box(&headers), &|d| dashmap.get(d).map(|p| p.clone())))
    });
    group.bench_function("moka", |b| {
        b.iter(|| lookup(black_box(&headers), &|d| moka.get(d)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = verifier_paths, hit_pipeline
}
criterion_main!(benches);
