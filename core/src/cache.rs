//! The verifier's in-process cache of lookups, keyed by token digest.
//!
//! Reads are lock-free in the common case (dashmap shards). The rules:
//! - an entry is fresh for the configured TTL, never past the token's expiry, and expiry is
//!   re-checked on every hit by the verifier;
//! - unknown tokens are cached as negative entries for a shorter TTL, in a room of their own:
//!   made-up tokens, however many, never push out the entries of tokens that exist;
//! - both rooms are bounded: past a bound, expired entries are swept and then arbitrary ones
//!   of that room dropped until a tenth of it is free again;
//! - a revocation event evicts at once, by digest or by token id;
//! - with a grace period, a stale entry may still be served while the store is failing.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;

use crate::expiry::Clock;
use crate::record::Principal;
use crate::store::{RevocationEvent, RevocationListener};
use crate::token::{DigestHasher, TokenDigest, TokenId};

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

#[derive(Debug)]
struct Entry {
    lookup: Lookup,
    /// Unix nanoseconds until which the entry is served without asking the store.
    fresh_until: i64,
    /// Unix nanoseconds until which the entry may be served while the store fails.
    keep_until: i64,
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

#[derive(Debug)]
pub(crate) struct Cache {
    /// Tokens the store knows: active, expired or revoked.
    entries: DashMap<TokenDigest, Entry, DigestHasher>,
    /// Tokens the store does not know.
    unknown: DashMap<TokenDigest, Entry, DigestHasher>,
    settings: CacheSettings,
    sweeping: Mutex<()>,
    /// Bumped by every revocation so that a lookup started before it does not cache its answer.
    revocations: AtomicU64,
    /// The ids revocation events named, when self-contained tokens must be checked against them.
    revoked_ids: Option<RevokedIds>,
}

/// Ids named by revocation events, each remembered for a while: a self-contained token (a JWT)
/// naming one, as its own id or its credential's, is refused without asking anyone.
#[derive(Debug)]
struct RevokedIds {
    /// Id → Unix nanoseconds until which it is remembered.
    ids: DashMap<TokenId, i64>,
    memory: i64,
    clock: Arc<dyn Clock>,
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
        self.ids.insert(id.clone(), now.saturating_add(self.memory));
    }

    fn contains(&self, id: &TokenId, now: i64) -> bool {
        self.ids.get(id).is_some_and(|until| now < *until)
    }
}

impl Cache {
    pub(crate) fn new(settings: CacheSettings) -> Self {
        Self {
            // More shards than dashmap's default (4 × cores) so that threads verifying different
            // tokens rarely share a shard's lock word.
            entries: DashMap::with_hasher_and_shard_amount(DigestHasher, SHARDS),
            unknown: DashMap::with_hasher_and_shard_amount(DigestHasher, SHARDS),
            settings,
            sweeping: Mutex::new(()),
            revocations: AtomicU64::new(0),
            revoked_ids: None,
        }
    }

    #[cfg(feature = "jwt")]
    /// Remembers the ids of revocation events for `memory`, for [`is_revoked_id`](Self::is_revoked_id).
    pub(crate) fn remember_revoked_ids(&mut self, clock: Arc<dyn Clock>, memory: Duration) {
        self.revoked_ids = Some(RevokedIds {
            ids: DashMap::new(),
            memory: nanos(memory),
            clock,
            prune_above: AtomicUsize::new(PRUNE_REVOKED_ABOVE),
        });
    }

    /// Whether a revocation event named `id` within the memory.
    pub(crate) fn is_revoked_id(&self, id: &TokenId, now: i64) -> bool {
        self.revoked_ids
            .as_ref()
            .is_some_and(|revoked| revoked.contains(id, now))
    }

    pub(crate) fn get(&self, digest: &TokenDigest, now: i64) -> Option<Hit> {
        let entry = match self.entries.get(digest) {
            Some(entry) => entry,
            None => self.unknown.get(digest)?,
        };
        Some(if now < entry.fresh_until {
            Hit::Fresh(entry.lookup.clone())
        } else {
            Hit::Stale {
                lookup: entry.lookup.clone(),
                keep_until: entry.keep_until,
            }
        })
    }

    pub(crate) fn revocation_epoch(&self) -> u64 {
        self.revocations.load(Ordering::Acquire)
    }

    /// Caches `lookup`, unless a revocation happened since `epoch` was read.
    pub(crate) fn insert(&self, digest: TokenDigest, lookup: &Lookup, now: i64, epoch: u64) {
        self.insert_for(digest, lookup, now, epoch, None);
    }

    /// As [`insert`](Self::insert); an active self-contained token (a verified JWT) stays fresh
    /// until it expires instead of for the TTL: nothing but a revocation event changes it.
    #[cfg(feature = "jwt")]
    pub(crate) fn insert_verified(
        &self,
        digest: TokenDigest,
        lookup: &Lookup,
        now: i64,
        epoch: u64,
    ) {
        self.insert_for(digest, lookup, now, epoch, Some(i64::MAX));
    }

    fn insert_for(
        &self,
        digest: TokenDigest,
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
        let mut keep_until = match lookup {
            Lookup::Unknown => fresh_until,
            _ => fresh_until.saturating_add(nanos(self.settings.grace)),
        };
        if let Lookup::Active(principal) = lookup {
            fresh_until = fresh_until.min(principal.expires_at_nanos());
            keep_until = keep_until.min(principal.expires_at_nanos());
        }
        room.insert(
            digest,
            Entry {
                lookup: lookup.clone(),
                fresh_until,
                keep_until,
            },
        );
        if room.len() > capacity {
            self.evict(room, capacity, now);
        }
    }

    /// Brings `room` back under its `capacity`: the expired entries, then arbitrary ones.
    fn evict(&self, room: &DashMap<TokenDigest, Entry, DigestHasher>, capacity: usize, now: i64) {
        let Ok(_guard) = self.sweeping.try_lock() else {
            return;
        };
        room.retain(|_, e| now < e.keep_until);
        let target = capacity - (capacity / 10).max(1);
        let excess = room.len().saturating_sub(target);
        if excess > 0 {
            let victims: Vec<TokenDigest> = room.iter().take(excess).map(|e| *e.key()).collect();
            for digest in victims {
                room.remove(&digest);
            }
        }
    }

    pub(crate) fn remove(&self, digest: &TokenDigest) {
        self.revocations.fetch_add(1, Ordering::AcqRel);
        self.entries.remove(digest);
        self.unknown.remove(digest);
    }

    pub(crate) fn invalidate(&self, id: &TokenId) {
        self.revocations.fetch_add(1, Ordering::AcqRel);
        self.entries
            .retain(|_, e| !matches!(&e.lookup, Lookup::Active(p) if p.token_id() == id));
    }

    /// Every cached token's last use not yet reported.
    pub(crate) fn drain_usage(&self) -> Vec<(TokenId, i64)> {
        self.entries
            .iter()
            .filter_map(|entry| match &entry.lookup {
                // A JWT has no row whose last use a store could record.
                Lookup::Active(principal) if principal.issuer().is_some() => None,
                Lookup::Active(principal) => principal
                    .take_unreported_use()
                    .map(|at| (principal.token_id().clone(), at)),
                _ => None,
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
        if let Some(revoked) = &self.revoked_ids {
            revoked.insert(&event.token_id);
        }
        match &event.digest {
            Some(digest) => self.remove(digest),
            None => self.invalidate(&event.token_id),
        }
    }

    fn lost_track(&self) {
        self.revocations.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
        self.unknown.clear();
        tracing::warn!(
            target: "m2m::verifier",
            "revocations may have been missed: the whole cache was dropped"
        );
    }
}
