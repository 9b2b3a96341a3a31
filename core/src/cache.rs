//! The verifier's in-process cache of lookups, keyed by a keyed hash of the token.
//!
//! Reads are lock-free in the common case (dashmap shards). The rules:
//! - the key is a 128-bit SipHash of the token under a secret drawn when the cache is made: a
//!   hit costs a fraction of a SHA-256, and nobody who does not know the secret can make two
//!   tokens share a key. Stores still see only SHA-256 digests, computed on a miss;
//! - an entry is fresh for the configured TTL, never past the token's expiry, and expiry is
//!   re-checked on every hit by the verifier;
//! - unknown tokens are cached as negative entries for a shorter TTL, in a room of their own:
//!   made-up tokens, however many, never push out the entries of tokens that exist;
//! - both rooms are sized for their bound and never exceed it: past it, expired entries are
//!   swept and then arbitrary ones of that room dropped until a tenth of it is free again;
//! - a revocation event takes effect at once: its token id (and a credential's id, for the
//!   bearer tokens issued from it) is remembered for as long as an entry loaded before it may
//!   live, and a cached principal named there is refused;
//! - with a grace period, a stale entry may still be served while the store is failing.

use std::collections::HashSet;
use std::hash::Hasher;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dashmap::DashMap;
use siphasher::sip128::{Hasher128 as _, SipHasher13};

use crate::expiry::Clock;
use crate::record::{Grant, Principal};
use crate::store::{RevocationEvent, RevocationListener};
use crate::token::{DigestHasher, TokenId};

/// Bounds and lifetimes of the verifier's cache.
///
/// ```
/// use std::time::Duration;
/// use m2m_core::CacheSettings;
///
/// let settings = CacheSettings {
///     grace: Duration::from_secs(300),
///     ..CacheSettings::default()
/// };
/// assert_eq!(settings.ttl, Duration::from_secs(10));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// Most entries of tokens the store knows kept at once (default 100,000).
    pub capacity: usize,
    /// Most entries of unknown tokens kept at once (default 10,000), apart from `capacity`.
    pub negative_capacity: usize,
    /// How long a found token is trusted without asking the store again (default 10 s). With a
    /// store that cannot announce revocations, this bounds how long a revoked token still passes.
    pub ttl: Duration,
    /// How long an unknown token is remembered as unknown (default 5 s).
    pub negative_ttl: Duration,
    /// How long past its TTL an entry may still be served while the store is failing
    /// (default zero: no grace).
    pub grace: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            negative_capacity: 10_000,
            ttl: Duration::from_secs(10),
            negative_ttl: Duration::from_secs(5),
            grace: Duration::ZERO,
        }
    }
}

/// What a lookup found.
#[derive(Clone, Debug)]
pub(crate) enum Lookup {
    Active(Principal),
    Expired,
    Revoked,
    Unknown,
}

/// The cache's key for a token: a keyed 128-bit hash of its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CacheKey([u64; 2]);

impl std::hash::Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already uniformly spread: the map needs one word of it, which `DigestHasher` keeps.
        state.write_u64(self.0[0]);
    }
}

/// Hashes tokens into [`CacheKey`]s with SipHash-1-3 (128-bit output) under a secret key
/// drawn from the operating system when the cache is made.
#[derive(Clone, Copy)]
pub(crate) struct Keyer {
    k0: u64,
    k1: u64,
}

impl std::fmt::Debug for Keyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyer(..)")
    }
}

impl Keyer {
    /// A keyer with a fresh secret.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random bytes: a predictable key would let
    /// anyone craft tokens that share a cache entry.
    fn new() -> Self {
        let secret = || {
            getrandom::u64().expect("the operating system's random number generator is unavailable")
        };
        Self {
            k0: secret(),
            k1: secret(),
        }
    }

    pub(crate) fn key(&self, token: &[u8]) -> CacheKey {
        let mut hasher = SipHasher13::new_with_keys(self.k0, self.k1);
        hasher.write(token);
        let hash = hasher.finish128();
        CacheKey([hash.h1, hash.h2])
    }
}

/// How a lookup is kept: 16 bytes. The principal of an active token, and a stamp: the Unix
/// nanoseconds until which the entry is fresh, with its two lowest bits replaced by what the
/// lookup found (a freshness rounded down by at most 3 ns).
#[derive(Debug)]
struct Entry {
    principal: Option<Principal>,
    stamp: i64,
}

const ACTIVE: i64 = 0;
const EXPIRED: i64 = 1;
const REVOKED: i64 = 2;
const UNKNOWN: i64 = 3;

impl Entry {
    fn new(lookup: &Lookup, fresh_until: i64) -> Self {
        let (principal, found) = match lookup {
            Lookup::Active(principal) => (Some(principal.clone()), ACTIVE),
            Lookup::Expired => (None, EXPIRED),
            Lookup::Revoked => (None, REVOKED),
            Lookup::Unknown => (None, UNKNOWN),
        };
        Self {
            principal,
            stamp: (fresh_until & !3) | found,
        }
    }

    fn fresh_until(&self) -> i64 {
        self.stamp & !3
    }

    fn lookup(&self) -> Lookup {
        match (&self.principal, self.stamp & 3) {
            (Some(principal), _) => Lookup::Active(principal.clone()),
            (None, EXPIRED) => Lookup::Expired,
            (None, REVOKED) => Lookup::Revoked,
            (None, _) => Lookup::Unknown,
        }
    }

    /// Until when the entry may be served while the store fails: `grace` past its freshness,
    /// never past the token's expiry, and never for an unknown token.
    fn keep_until(&self, grace: i64) -> i64 {
        let fresh_until = self.fresh_until();
        match (&self.principal, self.stamp & 3) {
            (Some(principal), _) => fresh_until
                .saturating_add(grace)
                .min(principal.expires_at_nanos()),
            (None, UNKNOWN) => fresh_until,
            (None, _) => fresh_until.saturating_add(grace),
        }
    }
}

/// A cached answer, fresh or stale.
pub(crate) enum Hit {
    Fresh(Lookup),
    Stale { lookup: Lookup, keep_until: i64 },
}

/// Shards of the cache map (a power of two).
const SHARDS: usize = 128;

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

type Room = DashMap<CacheKey, Entry, DigestHasher>;

#[derive(Debug)]
pub(crate) struct Cache {
    keyer: Keyer,
    /// Tokens the store knows: active, expired or revoked.
    entries: Room,
    /// Tokens the store does not know.
    unknown: Room,
    settings: CacheSettings,
    sweeping: Mutex<()>,
    /// Bumped by every revocation so that a lookup started before it does not cache its answer.
    revocations: AtomicU64,
    /// The ids revocation events named, while a cached principal may still carry them.
    revoked: RevokedIds,
    /// The grants of cached principals, each kept once however many tokens share it.
    grants: Grants,
    /// Entries dropped to stay within the bounds, for metrics.
    evictions: AtomicU64,
    /// Times the whole cache was dropped, for metrics.
    flushes: AtomicU64,
}

/// Ids named by revocation events, each remembered for a while: a cached principal naming one,
/// as its own id or its credential's, is refused without asking anyone.
#[derive(Debug)]
struct RevokedIds {
    /// Id → Unix nanoseconds until which it is remembered.
    ids: DashMap<TokenId, i64>,
    /// How long an id is remembered.
    memory: i64,
    clock: Arc<dyn Clock>,
    /// The latest time until which any id is remembered: past it, the hot path skips the map.
    live_until: AtomicI64,
    /// Size above which the next insertion first forgets the ids past their time.
    prune_above: AtomicUsize,
}

/// Revoked ids kept before those past their time are forgotten.
const PRUNE_REVOKED_ABOVE: usize = 10_000;

impl RevokedIds {
    fn insert(&self, id: &TokenId) {
        let now = self.clock.unix_nanos();
        if self.ids.len() > self.prune_above.load(Ordering::Relaxed) {
            self.ids.retain(|_, until| now < *until);
            self.prune_above.store(
                (2 * self.ids.len()).max(PRUNE_REVOKED_ABOVE),
                Ordering::Relaxed,
            );
        }
        let until = now.saturating_add(self.memory);
        self.ids.insert(id.clone(), until);
        self.live_until.fetch_max(until, Ordering::AcqRel);
    }

    /// Whether any id may be remembered at `now`: one atomic load on the hot path.
    fn any(&self, now: i64) -> bool {
        now < self.live_until.load(Ordering::Acquire)
    }

    fn contains(&self, id: &TokenId, now: i64) -> bool {
        self.ids.get(id).is_some_and(|until| now < *until)
    }
}

/// The grants of cached principals, interned: tokens of one tenant with the same scopes (and
/// the bearer tokens of one credential) share one allocation of their strings.
#[derive(Debug, Default)]
struct Grants {
    set: Mutex<HashSet<Arc<Grant>>>,
}

/// Grants kept before those no cached principal holds any more are forgotten.
const PRUNE_GRANTS_ABOVE: usize = 1_024;

impl Grants {
    fn intern(&self, principal: Principal) -> Principal {
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = set.get(principal.grant()) {
            return principal.with_grant(Arc::clone(shared));
        }
        if set.len() >= PRUNE_GRANTS_ABOVE && set.len().is_power_of_two() {
            set.retain(|grant| Arc::strong_count(grant) > 1);
        }
        set.insert(principal.grant_arc());
        principal
    }
}

impl Cache {
    pub(crate) fn new(settings: CacheSettings, clock: Arc<dyn Clock>) -> Self {
        // Sized for the bound, so that the maps never grow (and never hold two tables at once);
        // more shards than dashmap's default (4 × cores) so that threads verifying different
        // tokens rarely share a shard's lock word.
        let room = |capacity: usize| {
            Room::with_capacity_and_hasher_and_shard_amount(capacity, DigestHasher, SHARDS)
        };
        // An entry loaded before a revocation lives at most TTL and grace; a second more covers
        // one inserted just as the revocation arrived.
        let memory = nanos(settings.ttl)
            .saturating_add(nanos(settings.grace))
            .saturating_add(nanos(Duration::from_secs(1)));
        Self {
            keyer: Keyer::new(),
            entries: room(settings.capacity),
            unknown: room(settings.negative_capacity),
            settings,
            sweeping: Mutex::new(()),
            revocations: AtomicU64::new(0),
            revoked: RevokedIds {
                ids: DashMap::new(),
                memory,
                clock,
                live_until: AtomicI64::new(i64::MIN),
                prune_above: AtomicUsize::new(PRUNE_REVOKED_ABOVE),
            },
            grants: Grants::default(),
            evictions: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    /// The key of `token`.
    pub(crate) fn key(&self, token: &[u8]) -> CacheKey {
        self.keyer.key(token)
    }

    #[cfg(feature = "jwt")]
    /// Remembers the ids of revocation events for at least `memory`: a verified JWT is cached
    /// until it expires, and its id must be refused for as long.
    pub(crate) fn remember_revoked_ids(&mut self, memory: Duration) {
        self.revoked.memory = self.revoked.memory.max(nanos(memory));
    }

    /// Whether `principal`, or the credential it was issued from, was named by a revocation
    /// event still remembered at `now`.
    pub(crate) fn is_revoked(&self, principal: &Principal, now: i64) -> bool {
        self.revoked.any(now)
            && (self.revoked.contains(principal.token_id(), now)
                || principal
                    .credential_id()
                    .is_some_and(|id| self.revoked.contains(id, now)))
    }

    /// The cached answer for `key`; whether a revocation event named its principal since is
    /// the verifier's to ask ([`is_revoked`](Self::is_revoked)), on every decision.
    pub(crate) fn get(&self, key: &CacheKey, now: i64) -> Option<Hit> {
        let entry = match self.entries.get(key) {
            Some(entry) => entry,
            None => self.unknown.get(key)?,
        };
        Some(if now < entry.fresh_until() {
            Hit::Fresh(entry.lookup())
        } else {
            Hit::Stale {
                lookup: entry.lookup(),
                keep_until: entry.keep_until(nanos(self.settings.grace)),
            }
        })
    }

    pub(crate) fn revocation_epoch(&self) -> u64 {
        self.revocations.load(Ordering::Acquire)
    }

    /// The principal a store's record stands for, its grant shared with the cached principals
    /// that have the same one.
    pub(crate) fn share_grant(&self, principal: Principal) -> Principal {
        self.grants.intern(principal)
    }

    /// Caches `lookup`, unless a revocation happened since `epoch` was read.
    pub(crate) fn insert(&self, key: CacheKey, lookup: &Lookup, now: i64, epoch: u64) {
        self.insert_for(key, lookup, now, epoch, None);
    }

    /// As [`insert`](Self::insert); an active self-contained token (a verified JWT) stays fresh
    /// until it expires instead of for the TTL: nothing but a revocation event changes it.
    #[cfg(feature = "jwt")]
    pub(crate) fn insert_verified(&self, key: CacheKey, lookup: &Lookup, now: i64, epoch: u64) {
        self.insert_for(key, lookup, now, epoch, Some(i64::MAX));
    }

    fn insert_for(
        &self,
        key: CacheKey,
        lookup: &Lookup,
        now: i64,
        epoch: u64,
        fresh_for: Option<i64>,
    ) {
        let (room, capacity) = match lookup {
            Lookup::Unknown => (&self.unknown, self.settings.negative_capacity),
            _ => (&self.entries, self.settings.capacity),
        };
        if capacity == 0 || self.revocation_epoch() != epoch {
            return;
        }
        let ttl = match (lookup, fresh_for) {
            (Lookup::Unknown, _) => nanos(self.settings.negative_ttl),
            (_, Some(fresh_for)) => fresh_for,
            (_, None) => nanos(self.settings.ttl),
        };
        let mut fresh_until = now.saturating_add(ttl);
        if let Lookup::Active(principal) = lookup {
            fresh_until = fresh_until.min(principal.expires_at_nanos());
        }
        // Make room first, so that the map never grows past the bound it was sized for.
        if room.len() >= capacity {
            self.evict(room, capacity, now);
        }
        room.insert(key, Entry::new(lookup, fresh_until));
    }

    /// Brings `room` back under its `capacity`: the expired entries, then arbitrary ones.
    fn evict(&self, room: &Room, capacity: usize, now: i64) {
        let Ok(_guard) = self.sweeping.try_lock() else {
            return;
        };
        let grace = nanos(self.settings.grace);
        let before = room.len();
        room.retain(|_, e| now < e.keep_until(grace));
        let target = capacity - (capacity / 10).max(1);
        let excess = room.len().saturating_sub(target);
        if excess > 0 {
            let victims: Vec<CacheKey> = room.iter().take(excess).map(|e| *e.key()).collect();
            for key in victims {
                room.remove(&key);
            }
        }
        let evicted = before.saturating_sub(room.len());
        self.evictions.fetch_add(
            u64::try_from(evicted).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Entries dropped so far to stay within the bounds.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Times the whole cache was dropped so far.
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Entries of tokens the store knows, and of unknown tokens.
    pub(crate) fn room_sizes(&self) -> (usize, usize) {
        (self.entries.len(), self.unknown.len())
    }

    /// Drops every cached entry of the token with this id (or of the bearer tokens of the
    /// credential with this id): their next request asks the store. A scan of the cache, for
    /// an application's explicit call; revocation events take the path of [`revoked`].
    ///
    /// [`revoked`]: RevocationListener::revoked
    pub(crate) fn invalidate(&self, id: &TokenId) {
        self.revocations.fetch_add(1, Ordering::AcqRel);
        self.entries.retain(|_, e| {
            e.principal
                .as_ref()
                .is_none_or(|p| p.token_id() != id && p.credential_id() != Some(id))
        });
    }

    /// Every cached token's last use not yet reported.
    pub(crate) fn drain_usage(&self) -> Vec<(TokenId, i64)> {
        self.entries
            .iter()
            .filter_map(|entry| match &entry.principal {
                // A JWT has no row whose last use a store could record.
                Some(principal) if principal.issuer().is_some() => None,
                Some(principal) => principal
                    .take_unreported_use()
                    .map(|at| (principal.token_id().clone(), at)),
                None => None,
            })
            .collect()
    }

    /// Entries in both rooms.
    pub(crate) fn len(&self) -> usize {
        self.entries.len() + self.unknown.len()
    }
}

impl RevocationListener for Cache {
    fn revoked(&self, event: &RevocationEvent) {
        self.revocations.fetch_add(1, Ordering::AcqRel);
        self.revoked.insert(&event.token_id);
    }

    fn lost_track(&self) {
        self.revocations.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
        self.unknown.clear();
        self.flushes.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            target: "m2m::verifier",
            "revocations may have been missed: the whole cache was dropped"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiry::SystemClock;
    use crate::{Expiry, NewToken, TokenFormat, TokenKind};

    fn principal(tenant: &str, scope: &str) -> Principal {
        NewToken::new(TokenKind::AccessToken, tenant, Expiry::Never)
            .scope(scope)
            .generate(&TokenFormat::default(), time::OffsetDateTime::now_utc())
            .record
            .principal()
    }

    #[test]
    fn equal_grants_are_kept_once() {
        let cache = Cache::new(CacheSettings::default(), Arc::new(SystemClock));
        let a = cache.share_grant(principal("acme", "reports:read"));
        let b = cache.share_grant(principal("acme", "reports:read"));
        let c = cache.share_grant(principal("acme", "reports:write"));
        assert_ne!(a.token_id(), b.token_id());
        assert!(std::ptr::eq(a.grant(), b.grant()), "one grant for both");
        assert!(!std::ptr::eq(a.grant(), c.grant()));
        assert_eq!(b.tenant(), "acme");
        assert!(b.has_scope("reports:read"));
    }

    #[test]
    fn keys_depend_on_every_byte_and_on_the_secret() {
        let cache = Cache::new(CacheSettings::default(), Arc::new(SystemClock));
        let other = Cache::new(CacheSettings::default(), Arc::new(SystemClock));
        let token = TokenFormat::default().generate(TokenKind::AccessToken);
        let text = token.expose_secret().as_bytes();
        assert_eq!(cache.key(text), cache.key(text));
        assert_ne!(cache.key(text), other.key(text), "a secret key per cache");
        for i in 0..text.len() {
            let mut changed = text.to_vec();
            changed[i] ^= 1;
            assert_ne!(cache.key(text), cache.key(&changed), "byte {i}");
        }
    }
}
