//! What a store keeps about a token ([`TokenRecord`]) and what a handler learns about its
//! caller ([`Principal`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

use crate::expiry::{ExpiresIn, Expiry};
use crate::policy::TokenType;
use crate::rate_limit::RateLimit;
use crate::token::{Token, TokenDigest, TokenFormat, TokenId, TokenKind};

/// Everything a store keeps about one token: never the token itself, only its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public id.
    pub id: TokenId,
    /// SHA-256 digest of the token; unique.
    pub digest: TokenDigest,
    /// Prefix, type and first four secret characters, for listings.
    pub stub: String,
    /// What the token is for.
    pub kind: TokenKind,
    /// The tenant the token belongs to.
    pub tenant: String,
    /// The user who created it, if any.
    pub user: Option<String>,
    /// Free text shown in listings.
    pub description: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it expires; `None` for never.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// When it was last used, as far as the store knows.
    pub last_used_at: Option<OffsetDateTime>,
    /// For a client secret, its public client id; for a bearer token, the client id of the
    /// credential it was issued from.
    pub client_id: Option<String>,
    /// For a bearer token, the id of the client credential it was issued from.
    pub credential_id: Option<TokenId>,
    /// Who created it, as listings show it (a portal user's display name), if known.
    pub created_by: Option<String>,
    /// Requests allowed per window, if limited. A bearer token carries its credential's limit
    /// and counts against the credential's budget.
    pub rate_limit: Option<RateLimit>,
}

impl TokenRecord {
    /// The token type (the policy-level choice) of this record.
    pub fn token_type(&self) -> TokenType {
        self.kind.token_type()
    }

    /// Time left at `now`.
    pub fn expires_in(&self, now: OffsetDateTime) -> ExpiresIn {
        ExpiresIn::at(self.expires_at, now)
    }

    /// Whether the token is usable at `now`: not revoked and `now < expires_at`.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }

    /// The principal this record authenticates.
    pub fn principal(&self) -> Principal {
        self.principal_of(None)
    }

    /// The principal of a self-contained token `issuer` signed (a JWT), which no store holds.
    pub(crate) fn principal_of(&self, issuer: Option<Arc<str>>) -> Principal {
        Principal(Arc::new(PrincipalData {
            grant: Arc::new(Grant {
                issuer,
                tenant: self.tenant.as_str().into(),
                user: self.user.as_deref().map(Into::into),
                client_id: self.client_id.as_deref().map(Into::into),
                credential_id: self.credential_id.clone(),
                rate_limit: self.rate_limit,
                scopes: self.scopes.iter().map(|s| s.as_str().into()).collect(),
            }),
            token_id: self.id.clone(),
            kind: self.kind,
            issued_at_nanos: crate::expiry::to_nanos(self.created_at),
            // `i64::MAX` stands for never; an expiry past 2262 saturates just below it.
            expires_at_nanos: self
                .expires_at
                .map_or(i64::MAX, |at| crate::expiry::to_nanos(at).min(i64::MAX - 1)),
            last_used: AtomicI64::new(0),
            reported: AtomicI64::new(0),
        }))
    }
}

/// What to issue: built with [`NewToken::new`] and its setters.
///
/// ```
/// use m2m_core::{Expiry, NewToken, TokenKind};
/// let request = NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays)
///     .scope("reports:read")
///     .description("nightly export");
/// assert_eq!(request.scopes, ["reports:read"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    /// What the token is for.
    pub kind: TokenKind,
    /// The tenant it belongs to.
    pub tenant: String,
    /// The user creating it, if any.
    pub user: Option<String>,
    /// Free text shown in listings.
    pub description: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// Lifetime.
    pub expiry: Expiry,
    /// For a bearer token, the credential it is issued from (id and client id).
    pub credential: Option<(TokenId, String)>,
    /// Who creates it, as listings show it.
    pub created_by: Option<String>,
    /// Requests allowed per window, if limited (none by default).
    pub rate_limit: Option<RateLimit>,
}

impl NewToken {
    /// A request for a token of `kind` in `tenant`, with no scopes, user or description.
    pub fn new(kind: TokenKind, tenant: impl Into<String>, expiry: Expiry) -> Self {
        Self {
            kind,
            tenant: tenant.into(),
            user: None,
            description: String::new(),
            scopes: Vec::new(),
            expiry,
            credential: None,
            created_by: None,
            rate_limit: None,
        }
    }

    /// Adds a scope.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Sets the user.
    #[must_use]
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Sets who creates it, as listings show it.
    #[must_use]
    pub fn created_by(mut self, created_by: impl Into<String>) -> Self {
        self.created_by = Some(created_by.into());
        self
    }

    /// Limits the requests the token may authenticate.
    ///
    /// ```
    /// use m2m_core::{Expiry, NewToken, RateLimit, TokenFormat, TokenKind};
    /// let limit = RateLimit::new(100, 60).unwrap();
    /// let issued = NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never)
    ///     .rate_limit(limit)
    ///     .generate(&TokenFormat::default(), time::OffsetDateTime::now_utc());
    /// assert_eq!(issued.record.principal().rate_limit(), Some(limit));
    /// ```
    #[must_use]
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Generates the token (and for a client secret, its client id) and the record to store.
    pub fn generate(self, format: &TokenFormat, now: OffsetDateTime) -> IssuedToken {
        let token = format.generate(self.kind);
        let (client_id, credential_id) = match (self.kind, self.credential) {
            (TokenKind::ClientSecret, _) => (
                Some(
                    format
                        .generate(TokenKind::ClientId)
                        .expose_secret()
                        .to_owned(),
                ),
                None,
            ),
            (_, Some((id, client_id))) => (Some(client_id), Some(id)),
            (_, None) => (None, None),
        };
        let record = TokenRecord {
            id: TokenId::generate(),
            digest: token.digest(),
            stub: token.stub(),
            kind: self.kind,
            tenant: self.tenant,
            user: self.user,
            description: self.description,
            scopes: self.scopes,
            created_at: now,
            expires_at: self.expiry.expires_at(now),
            revoked_at: None,
            last_used_at: None,
            client_id,
            credential_id,
            created_by: self.created_by,
            rate_limit: self.rate_limit,
        };
        IssuedToken { token, record }
    }
}

/// A freshly issued token: the secret, shown once, and its record.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The secret. `Debug` redacts it.
    pub token: Token,
    /// What the store keeps.
    pub record: TokenRecord,
}

/// What a token grants, apart from the token itself: the part many tokens share (those of
/// one tenant with the same scopes, the bearer tokens of one credential), kept once by the
/// verifier's cache however many of them it holds.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Grant {
    /// For a JWT, its `iss`; `None` for a token a store holds.
    issuer: Option<Arc<str>>,
    tenant: Box<str>,
    user: Option<Box<str>>,
    client_id: Option<Box<str>>,
    credential_id: Option<TokenId>,
    rate_limit: Option<RateLimit>,
    scopes: Box<[Box<str>]>,
}

/// One principal: 80 bytes and the token id beside the shared [`Grant`].
#[derive(Debug)]
struct PrincipalData {
    grant: Arc<Grant>,
    token_id: TokenId,
    kind: TokenKind,
    /// When the token was issued, Unix nanoseconds.
    issued_at_nanos: i64,
    /// Expiry in Unix nanoseconds, `i64::MAX` for never: compared on every request.
    expires_at_nanos: i64,
    /// Last verified use seen by this process, Unix nanoseconds (0: none yet).
    last_used: AtomicI64,
    /// The `last_used` value already handed to the store.
    reported: AtomicI64,
}

impl PartialEq for PrincipalData {
    fn eq(&self, other: &Self) -> bool {
        self.token_id == other.token_id
            && self.kind == other.kind
            && self.issued_at_nanos == other.issued_at_nanos
            && self.expires_at_nanos == other.expires_at_nanos
            && self.grant == other.grant
    }
}

impl Eq for PrincipalData {}

/// Uses closer together than this are recorded once.
const USE_RESOLUTION_NANOS: i64 = 1_000_000_000;

/// Who is calling: the authenticated token's id, type, tenant, user, scopes and expiry.
///
/// Cheap to clone (one reference count). Holds no secret.
///
/// ```
/// use m2m_core::{Expiry, NewToken, TokenFormat, TokenKind, TokenType};
/// let issued = NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never)
///     .scope("reports:read")
///     .generate(&TokenFormat::default(), time::OffsetDateTime::now_utc());
/// let principal = issued.record.principal();
/// assert_eq!(principal.tenant(), "acme");
/// assert_eq!(principal.token_type(), TokenType::AccessToken);
/// assert!(principal.has_scope("reports:read"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Principal(Arc<PrincipalData>);

impl Principal {
    /// The public id of the token used.
    pub fn token_id(&self) -> &TokenId {
        &self.0.token_id
    }

    /// The type of the token used.
    pub fn token_type(&self) -> TokenType {
        self.0.kind.token_type()
    }

    /// The kind of the token used: its format, as its type code says.
    ///
    /// ```
    /// use m2m_core::{Expiry, NewToken, TokenFormat, TokenKind};
    /// let issued = NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60))
    ///     .generate(&TokenFormat::default(), time::OffsetDateTime::now_utc());
    /// assert_eq!(issued.record.principal().kind(), TokenKind::BearerToken);
    /// ```
    pub fn kind(&self) -> TokenKind {
        self.0.kind
    }

    /// When the token was issued.
    ///
    /// ```
    /// use m2m_core::{Expiry, NewToken, TokenFormat, TokenKind};
    /// let now = time::macros::datetime!(2026-01-02 03:04:05 UTC);
    /// let issued = NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never)
    ///     .generate(&TokenFormat::default(), now);
    /// assert_eq!(issued.record.principal().issued_at(), now);
    /// ```
    pub fn issued_at(&self) -> OffsetDateTime {
        crate::expiry::from_nanos(self.0.issued_at_nanos)
    }

    /// The tenant the token belongs to.
    pub fn tenant(&self) -> &str {
        &self.0.grant.tenant
    }

    /// The user the token was created for, if any.
    pub fn user(&self) -> Option<&str> {
        self.0.grant.user.as_deref()
    }

    /// For a bearer token, the client id of the credential it came from.
    pub fn client_id(&self) -> Option<&str> {
        self.0.grant.client_id.as_deref()
    }

    /// For a bearer token, the id of the client credential it was issued from.
    pub fn credential_id(&self) -> Option<&TokenId> {
        self.0.grant.credential_id.as_ref()
    }

    /// For a signed JWT verified offline, the issuer (`iss`) that signed it; `None` for a
    /// token a store holds.
    pub fn issuer(&self) -> Option<&str> {
        self.0.grant.issuer.as_deref()
    }

    /// The token's rate limit, if it has one.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.0.grant.rate_limit
    }

    /// The token whose budget the token's requests count against: the credential of a bearer
    /// token, the token itself otherwise.
    pub(crate) fn budget_key(&self) -> &TokenId {
        self.0
            .grant
            .credential_id
            .as_ref()
            .unwrap_or(&self.0.token_id)
    }

    /// The scopes granted to the token.
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.grant.scopes.iter().map(|s| &**s)
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.grant.scopes.iter().any(|s| **s == *scope)
    }

    /// When the token expires; `None` for never.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        (self.0.expires_at_nanos != i64::MAX)
            .then(|| crate::expiry::from_nanos(self.0.expires_at_nanos))
    }

    /// Whether the token has expired at `now_nanos` (Unix nanoseconds).
    pub(crate) fn is_expired_at(&self, now_nanos: i64) -> bool {
        self.0.expires_at_nanos <= now_nanos
    }

    /// Expiry in Unix nanoseconds, `i64::MAX` for never.
    pub(crate) fn expires_at_nanos(&self) -> i64 {
        self.0.expires_at_nanos
    }

    /// Notes a verified use at `now_nanos`; writes at most once a second per token, so that
    /// threads verifying the same token do not contend.
    pub(crate) fn note_use(&self, now_nanos: i64) {
        let last = self.0.last_used.load(Ordering::Relaxed);
        if now_nanos - last >= USE_RESOLUTION_NANOS {
            self.0.last_used.store(now_nanos, Ordering::Relaxed);
        }
    }

    /// The last use not yet reported, marking it reported.
    pub(crate) fn take_unreported_use(&self) -> Option<i64> {
        let last = self.0.last_used.load(Ordering::Relaxed);
        let reported = self.0.reported.swap(last, Ordering::Relaxed);
        // The verifier's clock is coarse (milliseconds): a use noted just after the token was
        // issued may read a little earlier than its issue, which no use can precede.
        (last > reported).then_some(last.max(self.0.issued_at_nanos))
    }

    /// What the token grants, for the cache to share between principals.
    pub(crate) fn grant(&self) -> &Grant {
        &self.0.grant
    }

    pub(crate) fn grant_arc(&self) -> Arc<Grant> {
        Arc::clone(&self.0.grant)
    }

    /// The same principal holding `grant`, an equal grant shared with others. Called before
    /// the principal is handed out, so that nothing else holds it yet.
    pub(crate) fn with_grant(mut self, grant: Arc<Grant>) -> Principal {
        if let Some(data) = Arc::get_mut(&mut self.0) {
            data.grant = grant;
        }
        self
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("token_id", &self.0.token_id)
            .field("token_type", &self.token_type())
            .field("kind", &self.0.kind)
            .field("tenant", &self.0.grant.tenant)
            .field("user", &self.0.grant.user)
            .field("scopes", &self.0.grant.scopes)
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

impl serde::Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut s = serializer.serialize_struct("Principal", 6)?;
        s.serialize_field("token_id", &self.0.token_id)?;
        s.serialize_field("token_type", &self.token_type())?;
        s.serialize_field("tenant", &self.0.grant.tenant)?;
        s.serialize_field("user", &self.0.grant.user)?;
        s.serialize_field("scopes", &self.0.grant.scopes)?;
        s.serialize_field(
            "expires_at",
            &self.expires_at().map(|at| {
                at.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
        )?;
        s.end()
    }
}
