//! Portal sessions: a user of a customer tenant signed in to the tenant portal.
//!
//! The vendor's backend creates a session for `{tenant, user, display name, role, permissions}`
//! and hands the user a single-use link carrying a [`PortalSecret`] (the one-time code). Opening
//! the link trades the code for a second secret, the session secret, kept in a cookie. A store
//! keeps only the SHA-256 digests of both secrets, never the secrets themselves.
//!
//! ```
//! use m2m_core::{PortalRole, PortalSecret, PortalSession};
//!
//! let now = time::OffsetDateTime::now_utc();
//! let session = PortalSession::new("acme", "alice", "Alice", PortalRole::Member, now, time::Duration::hours(1));
//! assert!(session.id.starts_with("ps_"));
//! assert!(session.is_active(now));
//! assert!(!session.is_active(now + time::Duration::hours(1)));
//!
//! let code = PortalSecret::generate();
//! assert_eq!(format!("{code:?}"), "PortalSecret(..)");
//! assert_eq!(code.digest(), m2m_core::TokenDigest::of(code.expose_secret()));
//! ```

use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::token::{TokenDigest, push_random_base62};

/// Base62 characters in a portal secret: about 238 bits.
const SECRET_LEN: usize = 40;
/// Base62 characters in a session id.
const ID_LEN: usize = 22;

/// What a portal user may do in the tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortalRole {
    /// Reads and manages the tenant's API tokens, and its own personal tokens.
    Admin,
    /// Reads the tenant's API tokens and manages only its own personal tokens.
    Member,
}

impl PortalRole {
    /// The role's name in JSON and in the store: `admin` or `member`.
    ///
    /// ```
    /// assert_eq!(m2m_core::PortalRole::Member.name(), "member");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            PortalRole::Admin => "admin",
            PortalRole::Member => "member",
        }
    }

    /// The role named `name`.
    ///
    /// ```
    /// use m2m_core::PortalRole;
    /// assert_eq!(PortalRole::from_name("admin"), Some(PortalRole::Admin));
    /// assert_eq!(PortalRole::from_name("owner"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "admin" => Some(PortalRole::Admin),
            "member" => Some(PortalRole::Member),
            _ => None,
        }
    }
}

/// A portal session as a store keeps it: who, in which tenant, with which rights, until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortalSession {
    /// Public id (`ps_` and 22 base62 characters), to revoke the session.
    pub id: String,
    /// The tenant; the session never sees another.
    pub tenant: String,
    /// The user's id in the vendor's system; personal tokens carry it.
    pub user: String,
    /// The name the portal shows, and records as the creator of tokens.
    pub display_name: String,
    /// Admin or member.
    pub role: PortalRole,
    /// The scopes the user holds, and so may grant.
    pub permissions: Vec<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it ends, whatever happens.
    pub expires_at: OffsetDateTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
}

impl PortalSession {
    /// A new session with a random id, no permissions, lasting `lifetime` from `now`.
    pub fn new(
        tenant: impl Into<String>,
        user: impl Into<String>,
        display_name: impl Into<String>,
        role: PortalRole,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Self {
        let mut id = String::with_capacity(3 + ID_LEN);
        id.push_str("ps_");
        push_random_base62(&mut id, ID_LEN);
        Self {
            id,
            tenant: tenant.into(),
            user: user.into(),
            display_name: display_name.into(),
            role,
            permissions: Vec::new(),
            created_at: now,
            expires_at: now + lifetime,
            revoked_at: None,
        }
    }

    /// Whether the session may act at `now`: not revoked and `now < expires_at`.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A one-time code or a session secret: random, shown once, stored only as its digest.
/// `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct PortalSecret(String);

impl PortalSecret {
    /// A new secret from the operating system's random number generator.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random bytes.
    pub fn generate() -> Self {
        let mut text = String::with_capacity(SECRET_LEN);
        push_random_base62(&mut text, SECRET_LEN);
        Self(text)
    }

    /// A secret as presented (in a link or a cookie).
    pub fn from_presented(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret's text, to put in a link or a cookie.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The SHA-256 digest a store keeps.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(&self.0)
    }
}

impl fmt::Debug for PortalSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PortalSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_differ() {
        let a = PortalSecret::generate();
        let b = PortalSecret::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose_secret().len(), SECRET_LEN);
        assert!(a.expose_secret().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(!format!("{a:?}").contains(a.expose_secret()));
    }

    #[test]
    fn a_session_ends_when_revoked_or_expired() {
        let now = OffsetDateTime::now_utc();
        let mut session = PortalSession::new(
            "acme",
            "u",
            "U",
            PortalRole::Admin,
            now,
            Duration::minutes(5),
        );
        assert!(session.is_active(now + Duration::minutes(4)));
        assert!(!session.is_active(now + Duration::minutes(5)));
        session.revoked_at = Some(now);
        assert!(!session.is_active(now));
        assert_eq!(session.id.len(), 3 + ID_LEN);
    }
}
