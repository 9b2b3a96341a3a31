//! Limits on failed client authentications at `POST /oauth/token`, so that a client secret
//! cannot be guessed at volume.
//!
//! Failures are counted per client id and per source address, each with its own quota (the
//! GCRA of the `governor` crate): [`CLIENT_FAILURE_BURST`] failures for one client id, then one
//! more every [`CLIENT_FAILURE_PERIOD`]; [`SOURCE_FAILURE_BURST`] from one address, then one
//! more every [`SOURCE_FAILURE_PERIOD`]. Past its quota a key is refused with 429 and
//! `Retry-After` before any secret is checked, until the quota allows one more attempt: the
//! right secret is refused meanwhile, and never longer than that. Successful authentications
//! count for nothing. The limits live in this process: with several instances, each counts on
//! its own.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Failed authentications one client id may have at once.
pub const CLIENT_FAILURE_BURST: u32 = 10;
/// After the burst, one more failed authentication per client id per this long.
pub const CLIENT_FAILURE_PERIOD: Duration = Duration::from_secs(6);
/// Failed authentications one source address may have at once.
pub const SOURCE_FAILURE_BURST: u32 = 50;
/// After the burst, one more failed authentication per source address per this long.
pub const SOURCE_FAILURE_PERIOD: Duration = Duration::from_secs(1);

/// Keys remembered before those whose quota is whole again are forgotten.
const MAX_REMEMBERED_KEYS: usize = 100_000;

/// What a limit is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Client(String),
    Source(IpAddr),
}

/// The failure limits of the token endpoint. Cheap to share behind the service's state.
pub(crate) struct FailureLimits {
    clients: DefaultKeyedRateLimiter<String>,
    sources: DefaultKeyedRateLimiter<IpAddr>,
    /// Keys past their quota, and until when.
    blocked: DashMap<Key, Instant>,
    clock: DefaultClock,
}

impl std::fmt::Debug for FailureLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureLimits")
            .field("blocked", &self.blocked.len())
            .finish_non_exhaustive()
    }
}

fn quota(burst: u32, period: Duration) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl Default for FailureLimits {
    fn default() -> Self {
        Self {
            clients: RateLimiter::keyed(quota(CLIENT_FAILURE_BURST, CLIENT_FAILURE_PERIOD)),
            sources: RateLimiter::keyed(quota(SOURCE_FAILURE_BURST, SOURCE_FAILURE_PERIOD)),
            blocked: DashMap::new(),
            clock: DefaultClock::default(),
        }
    }
}

impl FailureLimits {
    /// How long `client_id` (or `source`) must still wait, when either is past its quota.
    pub(crate) fn wait(&self, client_id: Option<&str>, source: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let left = |key: Key| {
            self.blocked
                .get(&key)
                .and_then(|until| until.checked_duration_since(now))
        };
        let client = client_id.and_then(|id| left(Key::Client(id.to_owned())));
        let source = source.and_then(|address| left(Key::Source(address)));
        client.max(source)
    }

    /// Counts one failed authentication of `client_id` from `source`.
    pub(crate) fn note_failure(&self, client_id: Option<&str>, source: Option<IpAddr>) {
        if self.blocked.len() > MAX_REMEMBERED_KEYS {
            let now = Instant::now();
            self.blocked.retain(|_, until| *until > now);
        }
        if self.clients.len() > MAX_REMEMBERED_KEYS {
            self.clients.retain_recent();
        }
        if self.sources.len() > MAX_REMEMBERED_KEYS {
            self.sources.retain_recent();
        }
        if let Some(id) = client_id
            && let Err(not_until) = self.clients.check_key(&id.to_owned())
        {
            self.block(
                Key::Client(id.to_owned()),
                not_until.wait_time_from(self.clock.now()),
            );
        }
        if let Some(address) = source
            && let Err(not_until) = self.sources.check_key(&address)
        {
            self.block(
                Key::Source(address),
                not_until.wait_time_from(self.clock.now()),
            );
        }
    }

    fn block(&self, key: Key, wait: Duration) {
        tracing::info!(
            ?key,
            wait_ms = wait.as_millis(),
            "too many failed client authentications"
        );
        self.blocked.insert(key, Instant::now() + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_past_its_failures_waits_and_others_do_not() {
        let limits = FailureLimits::default();
        for _ in 0..CLIENT_FAILURE_BURST {
            assert_eq!(limits.wait(Some("a"), None), None);
            limits.note_failure(Some("a"), None);
        }
        assert_eq!(limits.wait(Some("a"), None), None, "the burst is allowed");
        limits.note_failure(Some("a"), None);
        let wait = limits.wait(Some("a"), None).expect("past the burst");
        assert!(wait <= CLIENT_FAILURE_PERIOD, "{wait:?}");
        assert_eq!(limits.wait(Some("b"), None), None);
    }
}
