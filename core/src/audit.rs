//! The audit log: who changed what, when and from where, as a store keeps it.
//!
//! ```
//! use m2m_core::AuditEntry;
//!
//! let at = time::OffsetDateTime::now_utc();
//! let entry = AuditEntry::new(at, "token tok_1", "token.revoke")
//!     .tenant("acme")
//!     .target("tok_2")
//!     .source("203.0.113.7");
//! assert_eq!(entry.tenant.as_deref(), Some("acme"));
//! ```

use time::OffsetDateTime;

/// One change: issuing or revoking a token, a settings change, a user's removal, a portal
/// session's creation or end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When it happened.
    pub at: OffsetDateTime,
    /// Who did it: `token tok_…`, `session ps_… (display name)`, `cli`.
    pub actor: String,
    /// What was done, as `thing.verb`: `token.create`, `token.revoke`, `settings.update`, …
    pub action: String,
    /// The tenant it concerned, if one.
    pub tenant: Option<String>,
    /// What it was done to (a token id, a user id, a session id), if anything.
    pub target: Option<String>,
    /// The address the request came from, if it came over the network.
    pub source: Option<String>,
}

impl AuditEntry {
    /// An entry without tenant, target or source.
    pub fn new(at: OffsetDateTime, actor: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            at,
            actor: actor.into(),
            action: action.into(),
            tenant: None,
            target: None,
            source: None,
        }
    }

    /// Sets the tenant.
    #[must_use]
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets the target.
    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Sets the source address.
    #[must_use]
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }
}
