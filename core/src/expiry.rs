//! Expiry choices, the clock, and the "Expires in" text.
//!
//! A token is created with one of the expiry choices an admin portal offers (Never, after 1, 7,
//! 30, 90 or 365 days) or, as vendor APIs that take `expiresInMinutes` allow, a number of minutes.
//! A token is valid while `now < expires_at`. Time comes from a [`Clock`] so that tests, and
//! anything else that must control "now", can inject their own.
//!
//! # Example
//!
//! ```
//! use m2m_core::{ExpiresIn, Expiry};
//! use time::macros::datetime;
//!
//! let created = datetime!(2026-01-01 12:00 UTC);
//! let expires_at = Expiry::SevenDays.expires_at(created);
//! assert_eq!(expires_at, Some(datetime!(2026-01-08 12:00 UTC)));
//!
//! let later = datetime!(2026-01-01 12:05 UTC);
//! assert_eq!(ExpiresIn::at(expires_at, later).to_string(), "in 7 days");
//! let two_days_later = datetime!(2026-01-03 12:05 UTC);
//! assert_eq!(ExpiresIn::at(expires_at, two_days_later).to_string(), "in 5 days");
//! assert_eq!(ExpiresIn::at(None, later).to_string(), "Never");
//! assert_eq!(ExpiresIn::at(expires_at, datetime!(2026-01-08 12:00 UTC)).to_string(), "Expired");
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

/// The longest custom lifetime, in minutes: as long as the longest fixed choice.
pub const MAX_EXPIRY_MINUTES: u32 = 365 * 24 * 60;

/// When a token expires, chosen at creation.
///
/// Serde and [`FromStr`] use the names `never`, `1d`, `7d`, `30d`, `90d`, `365d`, and `<N>m` for
/// a custom number of minutes.
///
/// ```
/// use m2m_core::Expiry;
/// assert_eq!("30d".parse::<Expiry>(), Ok(Expiry::ThirtyDays));
/// assert_eq!("90m".parse::<Expiry>(), Ok(Expiry::Minutes(90)));
/// assert!("2d".parse::<Expiry>().is_err());
/// assert_eq!(Expiry::OneYear.to_string(), "365d");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expiry {
    /// The token never expires.
    Never,
    /// After 1 day.
    OneDay,
    /// After 7 days.
    SevenDays,
    /// After 30 days.
    ThirtyDays,
    /// After 90 days.
    NinetyDays,
    /// After 365 days.
    OneYear,
    /// After a custom number of minutes (1 to [`MAX_EXPIRY_MINUTES`]); build it with
    /// [`Expiry::minutes`] to have the bounds checked.
    Minutes(u32),
}

/// A text that names no expiry choice, or minutes out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown expiry: expected never, 1d, 7d, 30d, 90d, 365d, or 1 to {MAX_EXPIRY_MINUTES} minutes"
)]
pub struct InvalidExpiry;

impl Expiry {
    /// The fixed choices an admin offers, in order.
    pub const CHOICES: [Expiry; 6] = [
        Expiry::Never,
        Expiry::OneDay,
        Expiry::SevenDays,
        Expiry::ThirtyDays,
        Expiry::NinetyDays,
        Expiry::OneYear,
    ];

    /// A custom lifetime in minutes.
    ///
    /// # Errors
    ///
    /// [`InvalidExpiry`] when `minutes` is 0 or more than [`MAX_EXPIRY_MINUTES`].
    ///
    /// ```
    /// use m2m_core::Expiry;
    /// assert_eq!(Expiry::minutes(15), Ok(Expiry::Minutes(15)));
    /// assert!(Expiry::minutes(0).is_err());
    /// ```
    pub fn minutes(minutes: i64) -> Result<Self, InvalidExpiry> {
        match u32::try_from(minutes) {
            Ok(m) if (1..=MAX_EXPIRY_MINUTES).contains(&m) => Ok(Expiry::Minutes(m)),
            _ => Err(InvalidExpiry),
        }
    }

    /// How long a token lives, `None` for never.
    pub fn lifetime(self) -> Option<Duration> {
        match self {
            Expiry::Never => None,
            Expiry::OneDay => Some(Duration::days(1)),
            Expiry::SevenDays => Some(Duration::days(7)),
            Expiry::ThirtyDays => Some(Duration::days(30)),
            Expiry::NinetyDays => Some(Duration::days(90)),
            Expiry::OneYear => Some(Duration::days(365)),
            Expiry::Minutes(m) => Some(Duration::minutes(i64::from(m))),
        }
    }

    /// When a token created at `created` expires, `None` for never.
    pub fn expires_at(self, created: OffsetDateTime) -> Option<OffsetDateTime> {
        self.lifetime().map(|lifetime| created + lifetime)
    }

    /// The serde and command-line name of a fixed choice.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Expiry::Never => Some("never"),
            Expiry::OneDay => Some("1d"),
            Expiry::SevenDays => Some("7d"),
            Expiry::ThirtyDays => Some("30d"),
            Expiry::NinetyDays => Some("90d"),
            Expiry::OneYear => Some("365d"),
            Expiry::Minutes(_) => None,
        }
    }

    /// The label an admin page shows: "Never", "After 7 days", "After 90 minutes".
    ///
    /// ```
    /// assert_eq!(m2m_core::Expiry::OneDay.label(), "After 1 day");
    /// ```
    pub fn label(self) -> String {
        match self {
            Expiry::Never => "Never".to_owned(),
            Expiry::OneDay => "After 1 day".to_owned(),
            Expiry::Minutes(m) => format!("After {m} minute{}", plural(u64::from(m))),
            other => {
                let days = other.lifetime().map_or(0, |d| d.whole_days());
                format!("After {days} days")
            }
        }
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), self) {
            (Some(name), _) => f.write_str(name),
            (None, Expiry::Minutes(m)) => write!(f, "{m}m"),
            (None, _) => unreachable!("every fixed choice has a name"),
        }
    }
}

impl FromStr for Expiry {
    type Err = InvalidExpiry;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(choice) = Expiry::CHOICES.into_iter().find(|c| c.name() == Some(s)) {
            return Ok(choice);
        }
        match s.strip_suffix('m') {
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Expiry::minutes(digits.parse().map_err(|_| InvalidExpiry)?)
            }
            _ => Err(InvalidExpiry),
        }
    }
}

impl serde::Serialize for Expiry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Expiry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Time left until a token expires, as a listing shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiresIn {
    /// The token never expires.
    Never,
    /// The token expires after this much time (always positive).
    Remaining(Duration),
    /// The token has expired.
    Expired,
}

impl ExpiresIn {
    /// The time left at `now` for a token expiring at `expires_at`.
    pub fn at(expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> Self {
        match expires_at {
            None => ExpiresIn::Never,
            Some(at) if now < at => ExpiresIn::Remaining(at - now),
            Some(_) => ExpiresIn::Expired,
        }
    }

    /// Whole seconds left: `None` for never, 0 once expired.
    pub fn seconds(self) -> Option<i64> {
        match self {
            ExpiresIn::Never => None,
            ExpiresIn::Remaining(left) => Some(left.whole_seconds()),
            ExpiresIn::Expired => Some(0),
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl fmt::Display for ExpiresIn {
    /// "Never", "in 30 days", "in 3 hours", "in 12 minutes", "in 40 seconds", "Expired": the
    /// largest unit that fits, rounded to the nearest (half up), so that a token created a
    /// moment ago for 30 days says "in 30 days". A day is shown from 23 hours 30 minutes on,
    /// an hour from 59 minutes 30 seconds on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MINUTE: i64 = 60;
        const HOUR: i64 = 60 * MINUTE;
        const DAY: i64 = 24 * HOUR;
        let left = match self {
            ExpiresIn::Never => return f.write_str("Never"),
            ExpiresIn::Expired => return f.write_str("Expired"),
            ExpiresIn::Remaining(left) => left.whole_seconds().max(1),
        };
        let nearest = |unit: i64| left.saturating_add(unit / 2) / unit;
        let (n, unit) = if left >= DAY - HOUR / 2 {
            (nearest(DAY), "day")
        } else if left >= HOUR - MINUTE / 2 {
            (nearest(HOUR), "hour")
        } else if left >= MINUTE {
            (nearest(MINUTE), "minute")
        } else {
            (left, "second")
        };
        let n = n.unsigned_abs();
        write!(f, "in {n} {unit}{}", plural(n))
    }
}

/// Where "now" comes from.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time, in UTC.
    fn now(&self) -> OffsetDateTime;

    /// The current time as nanoseconds since the Unix epoch (saturating to the years 1677 to
    /// 2262). The verifier's hot path reads this one; override it when it can be had cheaper
    /// than through [`now`](Clock::now).
    fn unix_nanos(&self) -> i64 {
        to_nanos(self.now())
    }
}

/// The system's wall clock.
///
/// [`now`](Clock::now) reads it precisely. [`unix_nanos`](Clock::unix_nanos), which the
/// verifier reads on every request, reads the coarse wall clock where the system has one
/// (Linux's `CLOCK_REALTIME_COARSE`, a few milliseconds of resolution for a fraction of the
/// cost): ample for expiry, cache lifetimes and rate-limit windows.
///
/// ```
/// use m2m_core::{Clock, SystemClock};
/// let precise = SystemClock.now().unix_timestamp_nanos();
/// let coarse = i128::from(SystemClock.unix_nanos());
/// assert!((precise - coarse).abs() < 1_000_000_000);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn unix_nanos(&self) -> i64 {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        now.tv_sec
            .saturating_mul(1_000_000_000)
            .saturating_add(now.tv_nsec)
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn unix_nanos(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_nanos()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
        }
    }
}

/// A clock that stands still until told to move; clones share the same time.
///
/// ```
/// use m2m_core::{Clock, ManualClock};
/// use time::{Duration, macros::datetime};
///
/// let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
/// clock.advance(Duration::hours(2));
/// assert_eq!(clock.now(), datetime!(2026-01-01 2:00 UTC));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    unix_nanos: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: OffsetDateTime) -> Self {
        Self {
            unix_nanos: Arc::new(AtomicI64::new(to_nanos(now))),
        }
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: OffsetDateTime) {
        self.unix_nanos.store(to_nanos(now), Ordering::SeqCst);
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.whole_nanoseconds()).unwrap_or(i64::MAX);
        self.unix_nanos.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        from_nanos(self.unix_nanos.load(Ordering::SeqCst))
    }

    fn unix_nanos(&self) -> i64 {
        self.unix_nanos.load(Ordering::SeqCst)
    }
}

/// Nanoseconds since the Unix epoch, saturating (the range covers years 1677 to 2262).
pub(crate) fn to_nanos(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos()).unwrap_or(if at.year() < 1970 {
        i64::MIN
    } else {
        i64::MAX
    })
}

pub(crate) fn from_nanos(nanos: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .expect("an i64 of nanoseconds is always a valid time")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-03-01 09:30 UTC);

    #[test]
    fn each_choice_has_its_lifetime() {
        let days = [None, Some(1), Some(7), Some(30), Some(90), Some(365)];
        for (choice, days) in Expiry::CHOICES.into_iter().zip(days) {
            assert_eq!(
                choice.expires_at(T0),
                days.map(|d| T0 + Duration::days(d)),
                "{choice}"
            );
        }
        assert_eq!(
            Expiry::Minutes(90).expires_at(T0),
            Some(T0 + Duration::minutes(90))
        );
    }

    #[test]
    fn serde_names_round_trip() {
        for choice in Expiry::CHOICES.into_iter().chain([Expiry::Minutes(45)]) {
            let json = serde_json::to_string(&choice).unwrap();
            assert_eq!(serde_json::from_str::<Expiry>(&json).unwrap(), choice);
        }
        assert_eq!(serde_json::to_string(&Expiry::Never).unwrap(), "\"never\"");
        assert_eq!(serde_json::to_string(&Expiry::OneYear).unwrap(), "\"365d\"");
        assert!(serde_json::from_str::<Expiry>("\"14d\"").is_err());
        assert!(serde_json::from_str::<Expiry>("\"0m\"").is_err());
        assert!(serde_json::from_str::<Expiry>("\"-5m\"").is_err());
    }

    #[test]
    fn minutes_are_bounded() {
        assert!(Expiry::minutes(-1).is_err());
        assert!(Expiry::minutes(0).is_err());
        assert!(Expiry::minutes(i64::from(MAX_EXPIRY_MINUTES) + 1).is_err());
        assert_eq!(
            Expiry::minutes(i64::from(MAX_EXPIRY_MINUTES)),
            Ok(Expiry::Minutes(MAX_EXPIRY_MINUTES))
        );
    }

    #[test]
    fn expires_in_text_rounds_to_the_nearest_largest_unit() {
        let text = |left: Duration| ExpiresIn::at(Some(T0 + left), T0).to_string();
        assert_eq!(
            text(Duration::days(30) - Duration::seconds(5)),
            "in 30 days"
        );
        assert_eq!(text(Duration::days(7)), "in 7 days");
        assert_eq!(text(Duration::days(7) - Duration::seconds(1)), "in 7 days");
        assert_eq!(text(Duration::days(6) + Duration::hours(12)), "in 7 days");
        assert_eq!(
            text(Duration::days(6) + Duration::hours(11) + Duration::minutes(59)),
            "in 6 days"
        );
        assert_eq!(text(Duration::days(1)), "in 1 day");
        assert_eq!(
            text(Duration::hours(23) + Duration::minutes(30)),
            "in 1 day"
        );
        assert_eq!(
            text(Duration::hours(23) + Duration::minutes(29)),
            "in 23 hours"
        );
        assert_eq!(
            text(Duration::hours(3) + Duration::minutes(29)),
            "in 3 hours"
        );
        assert_eq!(
            text(Duration::hours(3) + Duration::minutes(30)),
            "in 4 hours"
        );
        assert_eq!(text(Duration::hours(1)), "in 1 hour");
        assert_eq!(
            text(Duration::minutes(59) + Duration::seconds(30)),
            "in 1 hour"
        );
        assert_eq!(text(Duration::minutes(12)), "in 12 minutes");
        assert_eq!(text(Duration::seconds(90)), "in 2 minutes");
        assert_eq!(text(Duration::seconds(60)), "in 1 minute");
        assert_eq!(text(Duration::seconds(40)), "in 40 seconds");
        assert_eq!(text(Duration::milliseconds(300)), "in 1 second");
        assert_eq!(ExpiresIn::at(None, T0).to_string(), "Never");
        assert_eq!(ExpiresIn::at(Some(T0), T0).to_string(), "Expired");
        assert_eq!(
            ExpiresIn::at(Some(T0 - Duration::days(2)), T0),
            ExpiresIn::Expired
        );
    }

    #[test]
    fn expires_in_seconds() {
        assert_eq!(ExpiresIn::at(None, T0).seconds(), None);
        assert_eq!(
            ExpiresIn::at(Some(T0 + Duration::hours(1)), T0).seconds(),
            Some(3600)
        );
        assert_eq!(ExpiresIn::at(Some(T0), T0).seconds(), Some(0));
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(T0);
        let shared = clock.clone();
        assert_eq!(clock.now(), T0);
        shared.advance(Duration::seconds(5));
        assert_eq!(clock.now(), T0 + Duration::seconds(5));
        clock.set(T0);
        assert_eq!(shared.now(), T0);
    }
}
