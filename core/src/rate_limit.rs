//! Per-token rate limits: a [`RateLimit`] is set when a token is issued (none by default) and
//! enforced by the [`Verifier`](crate::Verifier) on every request the token authenticates.
//!
//! A limit of `limit` requests per `window_seconds` is a generic cell rate (GCRA, from the
//! `governor` crate): up to `limit` requests at once, then one more every
//! `window_seconds / limit`. Past it the request is refused with 429, `Retry-After` and the
//! `RateLimit-Policy` / `RateLimit` fields of the IETF HTTP rate-limit draft
//! ([`RejectionKind::RateLimited`](crate::RejectionKind::RateLimited)).
//!
//! Bearer tokens minted from a client credential share the credential's limit and count
//! against one budget with it, so minting more tokens buys no more requests. Budgets live in
//! the verifier's process: with several instances, each counts on its own.
//!
//! # Example
//!
//! ```
//! use m2m_core::RateLimit;
//!
//! let limit: RateLimit = "100/60".parse().unwrap();
//! assert_eq!((limit.limit(), limit.window_seconds()), (100, 60));
//! assert_eq!(limit.to_string(), "100/60");
//! assert_eq!(serde_json::to_string(&limit).unwrap(), r#"{"limit":100,"window_seconds":60}"#);
//! assert!("0/60".parse::<RateLimit>().is_err());
//! ```

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::expiry::Clock;
use crate::token::TokenId;

/// The most requests a limit may allow per window.
pub const MAX_RATE_LIMIT: u32 = 1_000_000;
/// The longest window a limit may have, in seconds (one day).
pub const MAX_RATE_WINDOW_SECONDS: u32 = 86_400;

/// At most `limit` requests per `window_seconds`, for one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RateLimitFields", into = "RateLimitFields")]
pub struct RateLimit {
    limit: NonZeroU32,
    window_seconds: NonZeroU32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitFields {
    limit: u32,
    window_seconds: u32,
}

impl TryFrom<RateLimitFields> for RateLimit {
    type Error = InvalidRateLimit;

    fn try_from(fields: RateLimitFields) -> Result<Self, Self::Error> {
        Self::new(fields.limit, fields.window_seconds)
    }
}

impl From<RateLimit> for RateLimitFields {
    fn from(limit: RateLimit) -> Self {
        Self {
            limit: limit.limit(),
            window_seconds: limit.window_seconds(),
        }
    }
}

/// A rate limit out of bounds or not written `N/S`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a rate limit is 1 to {MAX_RATE_LIMIT} requests per window of 1 to \
     {MAX_RATE_WINDOW_SECONDS} seconds, written as limit/window_seconds"
)]
pub struct InvalidRateLimit;

impl RateLimit {
    /// `limit` requests per `window_seconds`.
    ///
    /// # Errors
    ///
    /// [`InvalidRateLimit`] unless `1 ≤ limit ≤` [`MAX_RATE_LIMIT`] and
    /// `1 ≤ window_seconds ≤` [`MAX_RATE_WINDOW_SECONDS`].
    ///
    /// ```
    /// use m2m_core::RateLimit;
    /// assert!(RateLimit::new(10, 1).is_ok());
    /// assert!(RateLimit::new(10, 0).is_err());
    /// assert!(RateLimit::new(10, 86_401).is_err());
    /// ```
    pub fn new(limit: u32, window_seconds: u32) -> Result<Self, InvalidRateLimit> {
        if limit > MAX_RATE_LIMIT || window_seconds > MAX_RATE_WINDOW_SECONDS {
            return Err(InvalidRateLimit);
        }
        Ok(Self {
            limit: NonZeroU32::new(limit).ok_or(InvalidRateLimit)?,
            window_seconds: NonZeroU32::new(window_seconds).ok_or(InvalidRateLimit)?,
        })
    }

    /// Requests allowed per window.
    pub fn limit(self) -> u32 {
        self.limit.get()
    }

    /// The window, in seconds.
    pub fn window_seconds(self) -> u32 {
        self.window_seconds.get()
    }

    fn quota(self) -> Quota {
        let window = Duration::from_secs(u64::from(self.window_seconds()));
        // A window of at least one second over at most a million requests: never zero.
        Quota::with_period(window / self.limit())
            .unwrap_or_else(|| Quota::per_second(self.limit))
            .allow_burst(self.limit)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.limit, self.window_seconds)
    }
}

impl FromStr for RateLimit {
    type Err = InvalidRateLimit;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (limit, window) = text.split_once('/').ok_or(InvalidRateLimit)?;
        let number = |part: &str| part.trim().parse::<u32>().map_err(|_| InvalidRateLimit);
        Self::new(number(limit)?, number(window)?)
    }
}

/// Where a token stands against its limit after a request: what the `RateLimit-Policy` and
/// `RateLimit` fields say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitState {
    /// The token's limit.
    pub policy: RateLimit,
    /// Requests left before the next refusal.
    pub remaining: u32,
    /// Seconds until the whole limit is available again (after a refusal: until the next
    /// request may pass).
    pub reset_seconds: u32,
}

/// The name of the one policy the fields describe.
const POLICY_NAME: &str = "token";

impl RateLimitState {
    /// The `RateLimit-Policy` field value: `"token";q=<limit>;w=<window>`.
    ///
    /// ```
    /// use m2m_core::{RateLimit, RateLimitState};
    /// let state = RateLimitState { policy: RateLimit::new(100, 60).unwrap(), remaining: 0, reset_seconds: 1 };
    /// assert_eq!(state.policy_field(), r#""token";q=100;w=60"#);
    /// assert_eq!(state.field(), r#""token";r=0;t=1"#);
    /// ```
    pub fn policy_field(&self) -> String {
        format!(
            "\"{POLICY_NAME}\";q={};w={}",
            self.policy.limit(),
            self.policy.window_seconds()
        )
    }

    /// The `RateLimit` field value: `"token";r=<remaining>;t=<seconds to reset>`.
    pub fn field(&self) -> String {
        format!(
            "\"{POLICY_NAME}\";r={};t={}",
            self.remaining, self.reset_seconds
        )
    }
}

/// Reads the verifier's clock for `governor`, as time since the Unix epoch.
#[derive(Clone)]
struct LimiterClock(Arc<dyn Clock>);

impl governor::clock::Clock for LimiterClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_nanos(u64::try_from(self.0.unix_nanos()).unwrap_or(0))
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, LimiterClock, StateInformationMiddleware>;

struct Budget {
    limit: RateLimit,
    limiter: Limiter,
    /// When it was last asked, Unix nanoseconds: a budget unused for a whole window is full
    /// again, and forgetting it loses nothing.
    last_checked: AtomicI64,
}

/// Budgets kept before those that are whole again are forgotten.
const PRUNE_ABOVE: usize = 10_000;

/// The budgets of the rate-limited tokens one verifier has seen, keyed by the token (or, for
/// bearer tokens, the credential) the limit was set on.
pub(crate) struct Budgets {
    budgets: DashMap<TokenId, Arc<Budget>>,
    clock: Arc<dyn Clock>,
    /// Size above which the next new budget first forgets the whole ones.
    prune_above: AtomicI64,
}

fn ceil_seconds(wait: Duration) -> u32 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(seconds).unwrap_or(u32::MAX)
}

impl Budgets {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            budgets: DashMap::new(),
            clock,
            prune_above: AtomicI64::new(PRUNE_ABOVE as i64),
        }
    }

    /// Counts one request against `limit` for `key` at `now` (Unix nanoseconds).
    ///
    /// # Errors
    ///
    /// The state to report when the budget is used up.
    pub(crate) fn check(
        &self,
        key: &TokenId,
        limit: RateLimit,
        now: i64,
    ) -> Result<RateLimitState, RateLimitState> {
        let budget = match self.budgets.get(key) {
            Some(budget) if budget.limit == limit => Arc::clone(&budget),
            _ => self.insert(key, limit, now),
        };
        budget.last_checked.store(now, Ordering::Relaxed);
        let interval = limit.quota().replenish_interval();
        match budget.limiter.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = limit.limit().saturating_sub(remaining);
                Ok(RateLimitState {
                    policy: limit,
                    remaining,
                    reset_seconds: ceil_seconds(interval.saturating_mul(used)),
                })
            }
            Err(not_until) => {
                let now = Duration::from_nanos(u64::try_from(now).unwrap_or(0));
                let wait = not_until.wait_time_from(now);
                Err(RateLimitState {
                    policy: limit,
                    remaining: 0,
                    reset_seconds: ceil_seconds(wait).max(1),
                })
            }
        }
    }

    fn insert(&self, key: &TokenId, limit: RateLimit, now: i64) -> Arc<Budget> {
        if self.budgets.len() as i64 > self.prune_above.load(Ordering::Relaxed) {
            self.prune(now);
        }
        let fresh = || {
            Arc::new(Budget {
                limit,
                limiter: RateLimiter::direct_with_clock(
                    limit.quota(),
                    LimiterClock(Arc::clone(&self.clock)),
                )
                .with_middleware::<StateInformationMiddleware>(),
                last_checked: AtomicI64::new(now),
            })
        };
        let mut entry = self.budgets.entry(key.clone()).or_insert_with(fresh);
        if entry.limit != limit {
            // The limit changed (a record reissued with another one): start on the new one.
            *entry = fresh();
        }
        Arc::clone(&entry)
    }

    /// Forgets every budget unused for a whole window (it is full again), and raises the
    /// threshold of the next pruning to twice what is left, so pruning stays linear overall.
    fn prune(&self, now: i64) {
        self.budgets.retain(|_, budget| {
            let window = i64::from(budget.limit.window_seconds()) * 1_000_000_000;
            now.saturating_sub(budget.last_checked.load(Ordering::Relaxed)) < window
        });
        let left = self.budgets.len() as i64;
        self.prune_above
            .store((2 * left).max(PRUNE_ABOVE as i64), Ordering::Relaxed);
    }

    /// Budgets kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.budgets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiry::ManualClock;

    fn budgets() -> (Budgets, ManualClock) {
        let clock = ManualClock::new(time::macros::datetime!(2026-01-01 00:00 UTC));
        (Budgets::new(Arc::new(clock.clone())), clock)
    }

    #[test]
    fn a_burst_of_the_limit_then_one_per_interval() {
        let (budgets, clock) = budgets();
        let key = TokenId::new("tok_a");
        let limit = RateLimit::new(3, 60).unwrap();
        let now = || clock.unix_nanos();
        let remaining: Vec<u32> = (0..3)
            .map(|_| budgets.check(&key, limit, now()).unwrap().remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = budgets.check(&key, limit, now()).unwrap_err();
        assert_eq!((refused.remaining, refused.reset_seconds), (0, 20));
        clock.advance(time::Duration::seconds(20));
        let admitted = budgets.check(&key, limit, now()).unwrap();
        assert_eq!((admitted.remaining, admitted.reset_seconds), (0, 60));
        assert!(budgets.check(&key, limit, now()).is_err());
    }

    #[test]
    fn keys_count_apart() {
        let (budgets, clock) = budgets();
        let limit = RateLimit::new(1, 60).unwrap();
        let now = clock.unix_nanos();
        assert!(budgets.check(&TokenId::new("tok_a"), limit, now).is_ok());
        assert!(budgets.check(&TokenId::new("tok_a"), limit, now).is_err());
        assert!(budgets.check(&TokenId::new("tok_b"), limit, now).is_ok());
    }

    #[test]
    fn whole_budgets_are_forgotten_and_used_ones_kept() {
        let (budgets, clock) = budgets();
        let limit = RateLimit::new(5, 1).unwrap();
        for n in 0..=PRUNE_ABOVE {
            budgets
                .check(&TokenId::new(format!("tok_{n}")), limit, clock.unix_nanos())
                .unwrap();
        }
        assert_eq!(budgets.len(), PRUNE_ABOVE + 1);
        clock.advance(time::Duration::seconds(2));
        budgets
            .check(&TokenId::new("tok_fresh"), limit, clock.unix_nanos())
            .unwrap();
        assert_eq!(budgets.len(), 1);
    }

    #[test]
    fn parses_and_bounds() {
        assert_eq!("5/1".parse::<RateLimit>(), RateLimit::new(5, 1));
        for bad in [
            "",
            "5",
            "5/",
            "/5",
            "a/1",
            "0/1",
            "1/0",
            "1000001/1",
            "1/86401",
            "-1/5",
        ] {
            assert_eq!(bad.parse::<RateLimit>(), Err(InvalidRateLimit), "{bad}");
        }
        assert!(serde_json::from_str::<RateLimit>(r#"{"limit":0,"window_seconds":1}"#).is_err());
        assert!(
            serde_json::from_str::<RateLimit>(r#"{"limit":1,"window_seconds":1,"x":1}"#).is_err()
        );
    }
}
