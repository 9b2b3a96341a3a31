//! The store traits and [`MemoryStore`], the store that lives in the process.
//!
//! A store has two faces: [`TokenLookup`], what every verifier needs (find a presented token,
//! subscribe to revocations, record use), and [`TokenStore`], the admin part of the stores that
//! hold tokens (issue, find, list, revoke, settings). A store that can announce revocations
//! (the memory store at once, the SQL store through `LISTEN`/`NOTIFY`, the remote store through
//! an event stream) passes them to every subscribed [`RevocationListener`], which is how
//! verifier caches evict revoked tokens.
//!
//! # Example
//!
//! ```
//! use m2m_core::{Expiry, MemoryStore, NewToken, TokenFormat, TokenKind, TokenStore};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let now = time::OffsetDateTime::now_utc();
//! let issued = store
//!     .issue(&TokenFormat::default(), NewToken::new(TokenKind::AccessToken, "acme", Expiry::SevenDays), now)
//!     .await
//!     .unwrap();
//! let found = store.find(&issued.token.digest()).await.unwrap().unwrap();
//! assert_eq!(found.id, issued.record.id);
//!
//! assert!(store.revoke(&found.id, now).await.unwrap());
//! assert!(store.find(&issued.token.digest()).await.unwrap().unwrap().revoked_at.is_some());
//! # });
//! ```

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, Weak};

use async_trait::async_trait;
use dashmap::DashMap;
use time::OffsetDateTime;

use crate::audit::AuditEntry;
use crate::page::PageCursor;
use crate::policy::{Policy, TokenType, TokenTypes};
use crate::portal::PortalSession;
use crate::record::{IssuedToken, NewToken, TokenRecord};
use crate::signing_key::SigningKey;
use crate::token::{DigestHasher, TokenDigest, TokenFormat, TokenId, TokenKind};

/// A store could not answer. Always turned into a 503, never a 401.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store is unreachable or failed (connection, timeout, server error…).
    #[error("the token store is unavailable: {0}")]
    Unavailable(String),
    /// A token with the same digest or id exists already.
    #[error("a token with this digest or id exists already")]
    Conflict,
}

/// A token was revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationEvent {
    /// The revoked token's public id.
    pub token_id: TokenId,
    /// Its digest, when the store knows it.
    pub digest: Option<TokenDigest>,
}

/// Receives revocation events from a store.
pub trait RevocationListener: Send + Sync + 'static {
    /// Called once per revoked token, as soon as the store learns of it.
    fn revoked(&self, event: &RevocationEvent);

    /// Called when the store may have missed revocations (its event stream had a gap it
    /// cannot replay, its `LISTEN` connection was lost): a cache drops everything it holds
    /// rather than serve a token that might be revoked. Does nothing by default.
    fn lost_track(&self) {}
}

/// What every verifier needs from a store: look a presented token up, hear of revocations, and
/// record when tokens were used.
///
/// [`MemoryStore`], the SQL store and the remote store (which asks a token service) implement
/// it; the stores that hold tokens also implement the admin part, [`TokenStore`].
///
/// Object-safe: a [`Verifier`](crate::Verifier) holds an `Arc<dyn TokenLookup>`, and an
/// `Arc<dyn TokenStore>` is a `TokenLookup` too.
///
/// # Example
///
/// A lookup that knows no token, as a verifier sees it:
///
/// ```
/// use async_trait::async_trait;
/// use http::{HeaderMap, HeaderValue, StatusCode};
/// use m2m_core::{StoreError, TokenDigest, TokenId, TokenLookup, TokenRecord, Verifier};
/// use time::OffsetDateTime;
///
/// #[derive(Debug)]
/// struct Nobody;
///
/// #[async_trait]
/// impl TokenLookup for Nobody {
///     async fn find_token(&self, _: &str, _: &TokenDigest) -> Result<Option<TokenRecord>, StoreError> {
///         Ok(None)
///     }
///
///     async fn record_usage(&self, _: &[(TokenId, OffsetDateTime)]) -> Result<(), StoreError> {
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let verifier = Verifier::builder(Nobody).build();
/// let token = m2m_core::TokenFormat::default().generate(m2m_core::TokenKind::AccessToken);
/// let mut headers = HeaderMap::new();
/// headers.insert("x-api-key", HeaderValue::from_str(token.expose_secret()).unwrap());
/// let rejection = verifier.verify(&headers, &[]).await.unwrap_err();
/// assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
/// # });
/// ```
#[async_trait]
pub trait TokenLookup: Send + Sync + fmt::Debug + 'static {
    /// The record of a presented token, whether active, expired or revoked.
    ///
    /// The verifier calls this on a cache miss. Stores that keep digests need only the digest;
    /// a store that asks a token service over RFC 7662 introspection needs the token itself,
    /// and must never log or keep it.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn find_token(
        &self,
        token: &str,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError>;

    /// Subscribes `listener` to revocation events; returns whether this store emits them.
    ///
    /// Stores hold listeners weakly: a dropped listener is forgotten. The default emits
    /// nothing, and then only the cache TTL bounds how long a revoked token may still pass.
    fn subscribe(&self, listener: Arc<dyn RevocationListener>) -> bool {
        let _ = listener;
        false
    }

    /// Records when tokens were last used (`last_used_at`), keeping the latest time per token;
    /// unknown ids are skipped.
    ///
    /// A [`Verifier`](crate::Verifier) built inside a Tokio runtime calls this in the
    /// background, in batches (see
    /// [`VerifierBuilder::usage_interval`](crate::VerifierBuilder::usage_interval)).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn record_usage(&self, uses: &[(TokenId, OffsetDateTime)]) -> Result<(), StoreError>;
}

/// The admin part of a store that holds tokens: issue, find, list, revoke, and the token-type
/// settings. [`MemoryStore`] and the SQL store implement it; a token service builds on it.
///
/// Token generation is the core's ([`NewToken::generate`]); [`issue`](TokenStore::issue)
/// generates and [`insert`](TokenStore::insert)s.
///
/// Object-safe: the token service holds an `Arc<dyn TokenStore>`, which a
/// [`Verifier`](crate::Verifier) takes as its lookup.
///
/// # Example
///
/// ```
/// use m2m_core::{Expiry, MemoryStore, NewToken, TokenFormat, TokenKind, TokenStore, Verifier};
/// use std::sync::Arc;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
/// let verifier = Verifier::builder(Arc::clone(&store)).build();
/// let now = verifier.now();
/// let issued = store
///     .issue(verifier.format(), NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never), now)
///     .await
///     .unwrap();
/// let page = store.list_page("acme", 0, 10).await.unwrap();
/// assert_eq!(page[0].id, issued.record.id);
/// assert!(store.revoke(&issued.record.id, now).await.unwrap());
/// # });
/// ```
#[async_trait]
pub trait TokenStore: TokenLookup {
    /// The record whose digest is `digest`, whether active, expired or revoked.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn find(&self, digest: &TokenDigest) -> Result<Option<TokenRecord>, StoreError>;

    /// The record with this public id.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn get(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError>;

    /// The client-credential record (a [`TokenKind::ClientSecret`]) whose public client id is
    /// `client_id`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn find_client(&self, client_id: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Stores a new record.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] for a duplicate, or another [`StoreError`].
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError>;

    /// Stores a bearer token issued from a client credential (`record.credential_id`) only if
    /// that credential exists and is not revoked, serialised with the credential's revocation:
    /// whatever the interleaving, no bearer token outlives its credential's revocation.
    /// Returns whether the record was stored.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] for a duplicate, or another [`StoreError`].
    async fn insert_derived(&self, record: TokenRecord) -> Result<bool, StoreError>;

    /// The records of one tenant, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn list(&self, tenant: &str) -> Result<Vec<TokenRecord>, StoreError>;

    /// One page of a tenant's records, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn list_page(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError>;

    /// One page of the records of `user` in `tenant` (the user's personal tokens), oldest
    /// first.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn list_user_page(
        &self,
        tenant: &str,
        user: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError>;

    /// One page of a tenant's API tokens: the tokens of no user, without the bearer tokens
    /// minted from client credentials (they belong to their credential), oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn list_api_page(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError>;

    /// One page of a tenant's records that sort after `after` (the last record of the previous
    /// page), oldest first, as [`list_page`](TokenStore::list_page) orders them: a keyset page,
    /// which a store reads without the records before the cursor.
    ///
    /// The default reads offset pages from the start and drops the records up to the cursor:
    /// right on every store, but as slow as an offset page. [`MemoryStore`] and the SQL store
    /// seek instead; a store that holds many tokens should too.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    ///
    /// # Example
    ///
    /// ```
    /// use m2m_core::{Expiry, MemoryStore, NewToken, PageCursor, TokenFormat, TokenKind, TokenStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let now = time::OffsetDateTime::now_utc();
    /// for _ in 0..3 {
    ///     let request = NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never);
    ///     store.issue(&TokenFormat::default(), request, now).await.unwrap();
    /// }
    /// let first = store.list_page("acme", 0, 2).await.unwrap();
    /// let cursor = PageCursor::of(first.last().unwrap());
    /// let second = store.list_page_after("acme", &cursor, 2).await.unwrap();
    /// assert_eq!(second, store.list_page("acme", 2, 2).await.unwrap());
    /// # });
    /// ```
    async fn list_page_after(
        &self,
        tenant: &str,
        after: &PageCursor,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        seek_by_offset(after, limit, |offset, chunk| {
            self.list_page(tenant, offset, chunk)
        })
        .await
    }

    /// One page of the records of `user` in `tenant` that sort after `after`, oldest first:
    /// the keyset form of [`list_user_page`](TokenStore::list_user_page). The default is as
    /// slow as an offset page (see [`list_page_after`](TokenStore::list_page_after)).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    ///
    /// # Example
    ///
    /// ```
    /// use m2m_core::{Expiry, MemoryStore, NewToken, PageCursor, TokenFormat, TokenKind, TokenStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let now = time::OffsetDateTime::now_utc();
    /// let mut request = NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never);
    /// request.user = Some("alice".to_owned());
    /// let issued = store.issue(&TokenFormat::default(), request, now).await.unwrap();
    /// let start = PageCursor::new(now - time::Duration::SECOND, issued.record.id.clone());
    /// let page = store.list_user_page_after("acme", "alice", &start, 10).await.unwrap();
    /// assert_eq!(page, [issued.record.clone()]);
    /// let after = PageCursor::of(&issued.record);
    /// assert!(store.list_user_page_after("acme", "alice", &after, 10).await.unwrap().is_empty());
    /// # });
    /// ```
    async fn list_user_page_after(
        &self,
        tenant: &str,
        user: &str,
        after: &PageCursor,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        seek_by_offset(after, limit, |offset, chunk| {
            self.list_user_page(tenant, user, offset, chunk)
        })
        .await
    }

    /// One page of a tenant's API tokens that sort after `after`, oldest first: the keyset
    /// form of [`list_api_page`](TokenStore::list_api_page). The default is as slow as an
    /// offset page (see [`list_page_after`](TokenStore::list_page_after)).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    ///
    /// # Example
    ///
    /// ```
    /// use m2m_core::{Expiry, MemoryStore, NewToken, PageCursor, TokenFormat, TokenKind, TokenStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let now = time::OffsetDateTime::now_utc();
    /// let request = NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never);
    /// let issued = store.issue(&TokenFormat::default(), request, now).await.unwrap();
    /// let after = PageCursor::of(&issued.record);
    /// assert!(store.list_api_page_after("acme", &after, 10).await.unwrap().is_empty());
    /// # });
    /// ```
    async fn list_api_page_after(
        &self,
        tenant: &str,
        after: &PageCursor,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        seek_by_offset(after, limit, |offset, chunk| {
            self.list_api_page(tenant, offset, chunk)
        })
        .await
    }

    /// Revokes a token, and for a client credential every bearer token issued from it, and
    /// announces each to the subscribers. Returns whether a token with that id existed and was
    /// not revoked before.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn revoke(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError>;

    /// Revokes every token of `user` in `tenant` (the user's personal tokens, and the bearer
    /// tokens issued from the user's client credentials) and announces each to the
    /// subscribers, as when the user leaves the tenant. Returns how many tokens it revoked.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn revoke_user(
        &self,
        tenant: &str,
        user: &str,
        at: OffsetDateTime,
    ) -> Result<usize, StoreError>;

    /// The stored token-type settings: environment default and per-tenant overrides.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn load_settings(&self) -> Result<TypeSettings, StoreError>;

    /// Stores which token type users may generate, for the environment (`tenant` `None`) or
    /// one tenant.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn save_token_type(
        &self,
        tenant: Option<&str>,
        token_type: TokenType,
    ) -> Result<(), StoreError>;

    /// Removes a tenant's own token type, so that it follows the environment again; returns
    /// whether the tenant had one.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn clear_token_type(&self, tenant: &str) -> Result<bool, StoreError>;

    /// Sets the environment's bearer format.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn save_bearer_format(&self, format: BearerFormat) -> Result<(), StoreError>;

    /// The portal settings: grantable scopes and the two section switches (their defaults
    /// when never saved).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn load_portal_settings(&self) -> Result<PortalSettings, StoreError>;

    /// Replaces the portal settings.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn save_portal_settings(&self, settings: &PortalSettings) -> Result<(), StoreError>;

    /// Stores a new portal session, with the digest of its one-time code and when the code
    /// expires.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] for a duplicate id or code, or another [`StoreError`].
    async fn insert_portal_session(
        &self,
        session: &PortalSession,
        code: &TokenDigest,
        code_expires_at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Trades a one-time code for a session secret, once: when `code` belongs to an active
    /// session, was never redeemed and has not expired at `now`, the code is spent, `secret`
    /// becomes the session's secret and the session is returned. Two concurrent redemptions of
    /// one code never both succeed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn redeem_portal_code(
        &self,
        code: &TokenDigest,
        secret: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<Option<PortalSession>, StoreError>;

    /// The session whose secret has this digest, active or not.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn find_portal_session(
        &self,
        secret: &TokenDigest,
    ) -> Result<Option<PortalSession>, StoreError>;

    /// Revokes a portal session; returns whether an unrevoked session had that id.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn revoke_portal_session(&self, id: &str, at: OffsetDateTime)
    -> Result<bool, StoreError>;

    /// Revokes every portal session of `user` in `tenant`, as when the user leaves the tenant;
    /// returns how many it revoked.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn revoke_user_portal_sessions(
        &self,
        tenant: &str,
        user: &str,
        at: OffsetDateTime,
    ) -> Result<usize, StoreError>;

    /// Appends an entry to the audit log.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// One page of the audit log, newest first; with `tenant`, only that tenant's entries.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn list_audit(
        &self,
        tenant: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// The revocations of client credentials (client secrets) made after `since`, oldest
    /// first: what a follower that lost track of revocations must hear again, since the JWTs
    /// minted from those credentials are refused only by their credential's revocation.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn revoked_credentials(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<RevocationEvent>, StoreError>;

    /// Stores a new JWT signing key.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when its `kid` exists; [`StoreError`] when the store fails.
    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError>;

    /// Retires, at `at`, every signing key other than `kid` not retired yet; returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn retire_signing_keys(&self, kid: &str, at: OffsetDateTime) -> Result<u64, StoreError>;

    /// Every signing key retired after `since` or not retired, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    async fn signing_keys(&self, since: OffsetDateTime) -> Result<Vec<SigningKey>, StoreError>;

    /// Generates a token with [`NewToken::generate`], stores its record and returns the secret
    /// once.
    ///
    /// # Errors
    ///
    /// [`StoreError`] from [`insert`](TokenStore::insert).
    async fn issue(
        &self,
        format: &TokenFormat,
        request: NewToken,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, StoreError> {
        let issued = request.generate(format, now);
        self.insert(issued.record.clone()).await?;
        Ok(issued)
    }
}

#[async_trait]
impl<S: TokenLookup + ?Sized> TokenLookup for Arc<S> {
    async fn find_token(
        &self,
        token: &str,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        (**self).find_token(token, digest).await
    }

    fn subscribe(&self, listener: Arc<dyn RevocationListener>) -> bool {
        (**self).subscribe(listener)
    }

    async fn record_usage(&self, uses: &[(TokenId, OffsetDateTime)]) -> Result<(), StoreError> {
        (**self).record_usage(uses).await
    }
}

#[async_trait]
impl<S: TokenStore + ?Sized> TokenStore for Arc<S> {
    async fn find(&self, digest: &TokenDigest) -> Result<Option<TokenRecord>, StoreError> {
        (**self).find(digest).await
    }

    async fn get(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        (**self).get(id).await
    }

    async fn find_client(&self, client_id: &str) -> Result<Option<TokenRecord>, StoreError> {
        (**self).find_client(client_id).await
    }

    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError> {
        (**self).insert(record).await
    }

    async fn insert_derived(&self, record: TokenRecord) -> Result<bool, StoreError> {
        (**self).insert_derived(record).await
    }

    async fn list(&self, tenant: &str) -> Result<Vec<TokenRecord>, StoreError> {
        (**self).list(tenant).await
    }

    async fn list_page(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        (**self).list_page(tenant, offset, limit).await
    }

    async fn revoke(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        (**self).revoke(id, at).await
    }

    async fn revoke_user(
        &self,
        tenant: &str,
        user: &str,
        at: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        (**self).revoke_user(tenant, user, at).await
    }

    async fn list_user_page(
        &self,
        tenant: &str,
        user: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        (**self).list_user_page(tenant, user, offset, limit).await
    }

    async fn load_settings(&self) -> Result<TypeSettings, StoreError> {
        (**self).load_settings().await
    }

    async fn save_token_type(
        &self,
        tenant: Option<&str>,
        token_type: TokenType,
    ) -> Result<(), StoreError> {
        (**self).save_token_type(tenant, token_type).await
    }

    async fn clear_token_type(&self, tenant: &str) -> Result<bool, StoreError> {
        (**self).clear_token_type(tenant).await
    }

    async fn save_bearer_format(&self, format: BearerFormat) -> Result<(), StoreError> {
        (**self).save_bearer_format(format).await
    }

    async fn load_portal_settings(&self) -> Result<PortalSettings, StoreError> {
        (**self).load_portal_settings().await
    }

    async fn save_portal_settings(&self, settings: &PortalSettings) -> Result<(), StoreError> {
        (**self).save_portal_settings(settings).await
    }

    async fn list_api_page(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        (**self).list_api_page(tenant, offset, limit).await
    }

    async fn list_page_after(
        &self,
        tenant: &str,
        after: &PageCursor,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        (**self).list_page_after(tenant, after, limit).await
    }

    async fn list_user_page_after(
        &self,
        tenant: &str,
        user: &str,
        after: &PageCursor,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        (**self)
            .list_user_page_after(tenant, user, after, limit)
            .await
    }

    async fn list_api_page_after(
        &self,
        tenant: &str,
        after: &PageCursor,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        (**self).list_api_page_after(tenant, after, limit).await
    }

    async fn insert_portal_session(
        &self,
        session: &PortalSession,
        code: &TokenDigest,
        code_expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        (**self)
            .insert_portal_session(session, code, code_expires_at)
            .await
    }

    async fn redeem_portal_code(
        &self,
        code: &TokenDigest,
        secret: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<Option<PortalSession>, StoreError> {
        (**self).redeem_portal_code(code, secret, now).await
    }

    async fn find_portal_session(
        &self,
        secret: &TokenDigest,
    ) -> Result<Option<PortalSession>, StoreError> {
        (**self).find_portal_session(secret).await
    }

    async fn revoke_portal_session(
        &self,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        (**self).revoke_portal_session(id, at).await
    }

    async fn revoke_user_portal_sessions(
        &self,
        tenant: &str,
        user: &str,
        at: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        (**self).revoke_user_portal_sessions(tenant, user, at).await
    }

    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        (**self).record_audit(entry).await
    }

    async fn list_audit(
        &self,
        tenant: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        (**self).list_audit(tenant, offset, limit).await
    }

    async fn issue(
        &self,
        format: &TokenFormat,
        request: NewToken,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, StoreError> {
        (**self).issue(format, request, now).await
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        (**self).insert_signing_key(key).await
    }

    async fn revoked_credentials(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        (**self).revoked_credentials(since).await
    }

    async fn retire_signing_keys(&self, kid: &str, at: OffsetDateTime) -> Result<u64, StoreError> {
        (**self).retire_signing_keys(kid, at).await
    }

    async fn signing_keys(&self, since: OffsetDateTime) -> Result<Vec<SigningKey>, StoreError> {
        (**self).signing_keys(since).await
    }
}

/// What the environment lets its tenants' users see and grant, as a store keeps it.
///
/// ```
/// use m2m_core::{GrantableScope, PortalSettings};
///
/// let settings = PortalSettings {
///     grantable_scopes: vec![GrantableScope::new("reports:read", "Read the reports")],
///     ..PortalSettings::default()
/// };
/// assert!(settings.is_grantable("reports:read"));
/// assert!(!settings.is_grantable("reports:write"));
/// assert!(settings.api_tokens_visible && settings.personal_tokens_visible);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalSettings {
    /// The scopes tenant users may grant to the tokens they create (besides the rights they
    /// hold themselves), each with what it allows.
    #[serde(default)]
    pub grantable_scopes: Vec<GrantableScope>,
    /// Whether tenant users see and create the tenant's API tokens (default: yes).
    #[serde(default = "yes")]
    pub api_tokens_visible: bool,
    /// Whether tenant users see and create their personal tokens (default: yes).
    #[serde(default = "yes")]
    pub personal_tokens_visible: bool,
}

fn yes() -> bool {
    true
}

impl Default for PortalSettings {
    fn default() -> Self {
        Self {
            grantable_scopes: Vec::new(),
            api_tokens_visible: true,
            personal_tokens_visible: true,
        }
    }
}

impl PortalSettings {
    /// Whether `scope` is in the catalogue of grantable scopes.
    pub fn is_grantable(&self, scope: &str) -> bool {
        self.grantable_scopes.iter().any(|s| s.name == scope)
    }
}

/// A scope of the catalogue: its name and what it allows, as the portal shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantableScope {
    /// The scope, as tokens carry it.
    pub name: String,
    /// What it allows, for people.
    #[serde(default)]
    pub description: String,
}

impl GrantableScope {
    /// A scope of the catalogue.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
        }
    }
}

/// Which token type users may generate: the environment default and per-tenant overrides, as
/// a store keeps them; and which bearer tokens the client-credentials grant hands out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeSettings {
    /// The environment default; `None` when never set (both types are then accepted).
    pub default: Option<TokenType>,
    /// Tenants that chose differently, sorted by tenant.
    pub tenants: Vec<(String, TokenType)>,
    /// The bearer format chosen for the environment; `None` when never set (the service's own
    /// default then applies).
    pub bearer_format: Option<BearerFormat>,
}

/// What the client-credentials grant hands out: opaque tokens, stored and introspected, or
/// signed JWTs (RFC 9068), verified offline and never stored.
///
/// ```
/// use m2m_core::BearerFormat;
/// assert_eq!("jwt".parse::<BearerFormat>(), Ok(BearerFormat::Jwt));
/// assert_eq!(BearerFormat::default().name(), "opaque");
/// assert_eq!(serde_json::to_string(&BearerFormat::Jwt).unwrap(), "\"jwt\"");
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BearerFormat {
    /// Opaque `…_cc_…` tokens (the default).
    #[default]
    Opaque,
    /// Signed JWTs.
    Jwt,
}

impl BearerFormat {
    /// `opaque` or `jwt`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Opaque => "opaque",
            Self::Jwt => "jwt",
        }
    }
}

impl std::str::FromStr for BearerFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "opaque" => Ok(Self::Opaque),
            "jwt" => Ok(Self::Jwt),
            other => Err(format!(
                "unknown bearer format {other:?}: expected opaque or jwt"
            )),
        }
    }
}

impl TypeSettings {
    /// The type users of `tenant` may generate: its override, else the default.
    pub fn token_type_for(&self, tenant: &str) -> Option<TokenType> {
        self.tenants
            .iter()
            .find(|(t, _)| t == tenant)
            .map(|(_, ty)| *ty)
            .or(self.default)
    }

    /// Makes `policy` accept exactly what these settings allow; overrides no longer in the
    /// settings are dropped.
    pub fn apply_to(&self, policy: &Policy) {
        policy.replace(
            self.default.map_or(TokenTypes::all(), TokenTypes::only),
            self.tenants
                .iter()
                .map(|(tenant, token_type)| (tenant.as_str(), TokenTypes::only(*token_type))),
        );
    }
}

/// A store in the process's memory, on a concurrent map; revocations reach subscribers at once.
#[derive(Default)]
pub struct MemoryStore {
    by_digest: DashMap<TokenDigest, TokenRecord, DigestHasher>,
    by_id: DashMap<TokenId, TokenDigest>,
    settings: RwLock<TypeSettings>,
    portal: RwLock<PortalSettings>,
    sessions: RwLock<Vec<StoredSession>>,
    audit: RwLock<Vec<AuditEntry>>,
    signing_keys: RwLock<Vec<SigningKey>>,
    listeners: RwLock<Vec<Weak<dyn RevocationListener>>>,
    /// Held for writing by revocations and for reading by [`TokenStore::insert_derived`], so
    /// that a bearer token is never stored between a credential's revocation and its cascade.
    revocations: RwLock<()>,
}

/// A portal session as the memory store keeps it: the digests of its code (until redeemed) and
/// of its secret (once redeemed).
struct StoredSession {
    session: PortalSession,
    code: Option<(TokenDigest, OffsetDateTime)>,
    secret: Option<TokenDigest>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records, revoked ones included.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Stores a record whose id and digest are new.
    fn insert_record(&self, record: TokenRecord) -> Result<(), StoreError> {
        use dashmap::mapref::entry::Entry;
        let Entry::Vacant(id_slot) = self.by_id.entry(record.id.clone()) else {
            return Err(StoreError::Conflict);
        };
        match self.by_digest.entry(record.digest) {
            Entry::Occupied(_) => Err(StoreError::Conflict),
            Entry::Vacant(slot) => {
                id_slot.insert(record.digest);
                slot.insert(record);
                Ok(())
            }
        }
    }

    fn revoke_one(&self, digest: &TokenDigest, at: OffsetDateTime) -> Option<RevocationEvent> {
        let mut record = self.by_digest.get_mut(digest)?;
        if record.revoked_at.is_some() {
            return None;
        }
        record.revoked_at = Some(at);
        Some(RevocationEvent {
            token_id: record.id.clone(),
            digest: Some(*digest),
        })
    }

    fn announce(&self, events: &[RevocationEvent]) {
        let mut listeners = self
            .listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        listeners.retain(|weak| match weak.upgrade() {
            Some(listener) => {
                events.iter().for_each(|e| listener.revoked(e));
                true
            }
            None => false,
        });
    }
}

/// The records from `offset`, at most `limit` of them.
fn page(records: Vec<TokenRecord>, offset: u64, limit: u64) -> Vec<TokenRecord> {
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    records.into_iter().skip(skip).take(take).collect()
}

/// The records (sorted as the listings are) that sort after `after`, at most `limit` of them.
fn page_after(records: Vec<TokenRecord>, after: &PageCursor, limit: u64) -> Vec<TokenRecord> {
    let start = records.partition_point(|r| !after.precedes(r));
    page(records, start as u64, limit)
}

/// Offset pages read per call of `fetch` by [`seek_by_offset`].
const SEEK_CHUNK: u64 = 500;

/// The records after `after`, at most `limit` of them, from the offset pages `fetch` returns
/// (`fetch(offset, limit)`, ordered as the listings are): the default keyset page of a store
/// that does not seek, which reads every record before the cursor.
async fn seek_by_offset<F, Fut>(
    after: &PageCursor,
    limit: u64,
    mut fetch: F,
) -> Result<Vec<TokenRecord>, StoreError>
where
    F: FnMut(u64, u64) -> Fut,
    Fut: Future<Output = Result<Vec<TokenRecord>, StoreError>>,
{
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut found = Vec::new();
    let mut offset = 0_u64;
    while found.len() < take {
        let chunk = fetch(offset, SEEK_CHUNK).await?;
        let read = chunk.len() as u64;
        let room = take - found.len();
        found.extend(chunk.into_iter().filter(|r| after.precedes(r)).take(room));
        if read < SEEK_CHUNK {
            break;
        }
        offset = offset.saturating_add(read);
    }
    Ok(found)
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tokens", &self.by_digest.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenLookup for MemoryStore {
    async fn find_token(
        &self,
        _token: &str,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.find(digest).await
    }

    fn subscribe(&self, listener: Arc<dyn RevocationListener>) -> bool {
        self.listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(&listener));
        true
    }

    async fn record_usage(&self, uses: &[(TokenId, OffsetDateTime)]) -> Result<(), StoreError> {
        for (id, at) in uses {
            let Some(digest) = self.by_id.get(id).map(|d| *d) else {
                continue;
            };
            if let Some(mut record) = self.by_digest.get_mut(&digest) {
                record.last_used_at = record.last_used_at.max(Some(*at));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn find(&self, digest: &TokenDigest) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.by_digest.get(digest).map(|r| r.value().clone()))
    }

    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError> {
        self.insert_record(record)
    }

    async fn insert_derived(&self, record: TokenRecord) -> Result<bool, StoreError> {
        let _revocations = self
            .revocations
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let credential_active = record.credential_id.as_ref().is_some_and(|id| {
            self.by_id
                .get(id)
                .map(|digest| *digest)
                .and_then(|digest| self.by_digest.get(&digest).map(|r| r.revoked_at.is_none()))
                .unwrap_or(false)
        });
        if !credential_active {
            return Ok(false);
        }
        self.insert_record(record).map(|()| true)
    }

    async fn list(&self, tenant: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let mut records: Vec<TokenRecord> = self
            .by_digest
            .iter()
            .filter(|r| r.tenant == tenant)
            .map(|r| r.value().clone())
            .collect();
        records.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(records)
    }

    async fn list_page(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(page(self.list(tenant).await?, offset, limit))
    }

    async fn revoke(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        let revocations = self
            .revocations
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(digest) = self.by_id.get(id).map(|d| *d) else {
            return Ok(false);
        };
        let mut events: Vec<RevocationEvent> = self.revoke_one(&digest, at).into_iter().collect();
        let revoked = !events.is_empty();
        let is_credential = self
            .by_digest
            .get(&digest)
            .is_some_and(|r| r.kind == TokenKind::ClientSecret);
        if is_credential {
            let derived: Vec<TokenDigest> = self
                .by_digest
                .iter()
                .filter(|r| r.credential_id.as_ref() == Some(id))
                .map(|r| r.digest)
                .collect();
            events.extend(derived.iter().filter_map(|d| self.revoke_one(d, at)));
        }
        drop(revocations);
        self.announce(&events);
        Ok(revoked)
    }

    async fn list_user_page(
        &self,
        tenant: &str,
        user: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let mut records = self.list(tenant).await?;
        records.retain(|r| r.user.as_deref() == Some(user));
        Ok(page(records, offset, limit))
    }

    async fn revoke_user(
        &self,
        tenant: &str,
        user: &str,
        at: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let revocations = self
            .revocations
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let own: Vec<(TokenDigest, TokenId)> = self
            .by_digest
            .iter()
            .filter(|r| r.tenant == tenant && r.user.as_deref() == Some(user))
            .map(|r| (r.digest, r.id.clone()))
            .collect();
        let credentials: Vec<&TokenId> = own.iter().map(|(_, id)| id).collect();
        let derived: Vec<TokenDigest> = self
            .by_digest
            .iter()
            .filter(|r| {
                r.credential_id
                    .as_ref()
                    .is_some_and(|credential| credentials.contains(&credential))
            })
            .map(|r| r.digest)
            .collect();
        let events: Vec<RevocationEvent> = own
            .iter()
            .map(|(digest, _)| *digest)
            .chain(derived)
            .filter_map(|digest| self.revoke_one(&digest, at))
            .collect();
        drop(revocations);
        self.announce(&events);
        Ok(events.len())
    }

    async fn get(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let Some(digest) = self.by_id.get(id).map(|d| *d) else {
            return Ok(None);
        };
        self.find(&digest).await
    }

    async fn find_client(&self, client_id: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self
            .by_digest
            .iter()
            .find(|r| {
                r.kind == TokenKind::ClientSecret && r.client_id.as_deref() == Some(client_id)
            })
            .map(|r| r.value().clone()))
    }

    async fn load_settings(&self) -> Result<TypeSettings, StoreError> {
        Ok(self
            .settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    async fn save_bearer_format(&self, format: BearerFormat) -> Result<(), StoreError> {
        self.settings
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .bearer_format = Some(format);
        Ok(())
    }

    async fn save_token_type(
        &self,
        tenant: Option<&str>,
        token_type: TokenType,
    ) -> Result<(), StoreError> {
        let mut settings = self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match tenant {
            None => settings.default = Some(token_type),
            Some(tenant) => {
                settings.tenants.retain(|(t, _)| t != tenant);
                settings.tenants.push((tenant.to_owned(), token_type));
                settings.tenants.sort();
            }
        }
        Ok(())
    }

    async fn clear_token_type(&self, tenant: &str) -> Result<bool, StoreError> {
        let mut settings = self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let before = settings.tenants.len();
        settings.tenants.retain(|(t, _)| t != tenant);
        Ok(settings.tenants.len() != before)
    }

    async fn load_portal_settings(&self) -> Result<PortalSettings, StoreError> {
        Ok(self
            .portal
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    async fn save_portal_settings(&self, settings: &PortalSettings) -> Result<(), StoreError> {
        *self.portal.write().unwrap_or_else(PoisonError::into_inner) = settings.clone();
        Ok(())
    }

    async fn list_api_page(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let mut records = self.list(tenant).await?;
        records.retain(|r| r.user.is_none() && r.kind != TokenKind::BearerToken);
        Ok(page(records, offset, limit))
    }

    async fn list_page_after(
        &self,
        tenant: &str,
        after: &PageCursor,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(page_after(self.list(tenant).await?, after, limit))
    }

    async fn list_user_page_after(
        &self,
        tenant: &str,
        user: &str,
        after: &PageCursor,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let mut records = self.list(tenant).await?;
        records.retain(|r| r.user.as_deref() == Some(user));
        Ok(page_after(records, after, limit))
    }

    async fn list_api_page_after(
        &self,
        tenant: &str,
        after: &PageCursor,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let mut records = self.list(tenant).await?;
        records.retain(|r| r.user.is_none() && r.kind != TokenKind::BearerToken);
        Ok(page_after(records, after, limit))
    }

    async fn insert_portal_session(
        &self,
        session: &PortalSession,
        code: &TokenDigest,
        code_expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut sessions = self
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let taken = sessions.iter().any(|stored| {
            stored.session.id == session.id || stored.code.is_some_and(|(c, _)| c == *code)
        });
        if taken {
            return Err(StoreError::Conflict);
        }
        sessions.push(StoredSession {
            session: session.clone(),
            code: Some((*code, code_expires_at)),
            secret: None,
        });
        Ok(())
    }

    async fn redeem_portal_code(
        &self,
        code: &TokenDigest,
        secret: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<Option<PortalSession>, StoreError> {
        let mut sessions = self
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(stored) = sessions
            .iter_mut()
            .find(|stored| stored.code.is_some_and(|(c, _)| c == *code))
        else {
            return Ok(None);
        };
        let fresh = stored.code.is_some_and(|(_, until)| now < until);
        // A code is spent by its first use, even a late one.
        stored.code = None;
        if !fresh || !stored.session.is_active(now) {
            return Ok(None);
        }
        stored.secret = Some(*secret);
        Ok(Some(stored.session.clone()))
    }

    async fn find_portal_session(
        &self,
        secret: &TokenDigest,
    ) -> Result<Option<PortalSession>, StoreError> {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        Ok(sessions
            .iter()
            .find(|stored| stored.secret.as_ref() == Some(secret))
            .map(|stored| stored.session.clone()))
    }

    async fn revoke_portal_session(
        &self,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut sessions = self
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let revoked = sessions
            .iter_mut()
            .filter(|stored| stored.session.id == id && stored.session.revoked_at.is_none())
            .map(|stored| stored.session.revoked_at = Some(at))
            .count();
        Ok(revoked > 0)
    }

    async fn revoke_user_portal_sessions(
        &self,
        tenant: &str,
        user: &str,
        at: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let mut sessions = self
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(sessions
            .iter_mut()
            .filter(|stored| {
                let session = &stored.session;
                session.tenant == tenant && session.user == user && session.revoked_at.is_none()
            })
            .map(|stored| stored.session.revoked_at = Some(at))
            .count())
    }

    async fn revoked_credentials(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        let mut revoked: Vec<(OffsetDateTime, RevocationEvent)> = self
            .by_digest
            .iter()
            .filter(|r| r.kind == TokenKind::ClientSecret)
            .filter_map(|r| {
                let at = r.revoked_at.filter(|at| *at > since)?;
                Some((
                    at,
                    RevocationEvent {
                        token_id: r.id.clone(),
                        digest: Some(r.digest),
                    },
                ))
            })
            .collect();
        revoked.sort_by_key(|a| a.0);
        Ok(revoked.into_iter().map(|(_, event)| event).collect())
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        let mut keys = self
            .signing_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if keys.iter().any(|k| k.kid == key.kid) {
            return Err(StoreError::Conflict);
        }
        keys.push(key.clone());
        Ok(())
    }

    async fn retire_signing_keys(&self, kid: &str, at: OffsetDateTime) -> Result<u64, StoreError> {
        let mut keys = self
            .signing_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut retired = 0;
        for key in keys.iter_mut() {
            if key.kid != kid && key.retired_at.is_none() {
                key.retired_at = Some(at);
                retired += 1;
            }
        }
        Ok(retired)
    }

    async fn signing_keys(&self, since: OffsetDateTime) -> Result<Vec<SigningKey>, StoreError> {
        let mut keys: Vec<SigningKey> = self
            .signing_keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|k| k.retired_at.is_none_or(|at| at > since))
            .cloned()
            .collect();
        keys.sort_by(|a, b| (b.created_at, &b.kid).cmp(&(a.created_at, &a.kid)));
        Ok(keys)
    }

    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.audit
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry.clone());
        Ok(())
    }

    async fn list_audit(
        &self,
        tenant: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let audit = self.audit.read().unwrap_or_else(PoisonError::into_inner);
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(audit
            .iter()
            .rev()
            .filter(|entry| tenant.is_none_or(|t| entry.tenant.as_deref() == Some(t)))
            .skip(skip)
            .take(take)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiry::Expiry;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<TokenId>>);

    impl RevocationListener for Recorder {
        fn revoked(&self, event: &RevocationEvent) {
            self.0.lock().unwrap().push(event.token_id.clone());
        }
    }

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-05-01 10:00 UTC)
    }

    #[tokio::test]
    async fn issue_find_list_revoke() {
        let store = MemoryStore::new();
        let format = TokenFormat::default();
        let a = store
            .issue(
                &format,
                NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
                now(),
            )
            .await
            .unwrap();
        store
            .issue(
                &format,
                NewToken::new(TokenKind::AccessToken, "other", Expiry::OneDay),
                now(),
            )
            .await
            .unwrap();
        assert_eq!(store.list("acme").await.unwrap().len(), 1);
        assert_eq!(
            store.find(&a.token.digest()).await.unwrap().unwrap().id,
            a.record.id
        );
        assert!(store.revoke(&a.record.id, now()).await.unwrap());
        assert!(
            !store.revoke(&a.record.id, now()).await.unwrap(),
            "second revoke is a no-op"
        );
        assert!(
            !store
                .revoke(&TokenId::new("tok_missing"), now())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn duplicate_insert_conflicts() {
        let store = MemoryStore::new();
        let issued = NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never)
            .generate(&TokenFormat::default(), now());
        store.insert(issued.record.clone()).await.unwrap();
        assert!(matches!(
            store.insert(issued.record).await,
            Err(StoreError::Conflict)
        ));
    }

    #[tokio::test]
    async fn revoking_a_credential_revokes_its_bearer_tokens_and_announces_all() {
        let store = MemoryStore::new();
        let recorder = Arc::new(Recorder::default());
        assert!(store.subscribe(recorder.clone()));
        let format = TokenFormat::default();
        let credential = store
            .issue(
                &format,
                NewToken::new(TokenKind::ClientSecret, "acme", Expiry::ThirtyDays),
                now(),
            )
            .await
            .unwrap();
        let client_id = credential.record.client_id.clone().unwrap();
        assert!(client_id.starts_with("m2m_ci_"));
        let mut bearer = NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60));
        bearer.credential = Some((credential.record.id.clone(), client_id));
        let bearer = store.issue(&format, bearer, now()).await.unwrap();

        store.revoke(&credential.record.id, now()).await.unwrap();
        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(seen, vec![credential.record.id, bearer.record.id.clone()]);
        let found = store.find(&bearer.token.digest()).await.unwrap().unwrap();
        assert_eq!(found.revoked_at, Some(now()));
    }

    #[tokio::test]
    async fn get_find_client_and_pages() {
        let store = MemoryStore::new();
        let format = TokenFormat::default();
        let mut ids = Vec::new();
        for minute in 0..5 {
            let at = now() + time::Duration::minutes(minute);
            let issued = store
                .issue(
                    &format,
                    NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
                    at,
                )
                .await
                .unwrap();
            ids.push(issued.record.id);
        }
        let page: Vec<TokenId> = store
            .list_page("acme", 1, 2)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(page, ids[1..3]);
        assert_eq!(store.get(&ids[4]).await.unwrap().unwrap().id, ids[4]);
        assert!(
            store
                .get(&TokenId::new("tok_none"))
                .await
                .unwrap()
                .is_none()
        );

        let credential = store
            .issue(
                &format,
                NewToken::new(TokenKind::ClientSecret, "acme", Expiry::OneDay),
                now(),
            )
            .await
            .unwrap();
        let client_id = credential.record.client_id.clone().unwrap();
        let found = store.find_client(&client_id).await.unwrap().unwrap();
        assert_eq!(found.id, credential.record.id);
        assert!(store.find_client("m2m_ci_unknown").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn settings_round_trip_and_apply_to_a_policy() {
        let store = MemoryStore::new();
        assert_eq!(
            store.load_settings().await.unwrap(),
            TypeSettings::default()
        );
        store
            .save_token_type(None, TokenType::AccessToken)
            .await
            .unwrap();
        store
            .save_token_type(Some("acme"), TokenType::ClientCredentials)
            .await
            .unwrap();
        store
            .save_token_type(Some("acme"), TokenType::AccessToken)
            .await
            .unwrap();
        store
            .save_token_type(Some("globex"), TokenType::ClientCredentials)
            .await
            .unwrap();
        let settings = store.load_settings().await.unwrap();
        assert_eq!(settings.default, Some(TokenType::AccessToken));
        assert_eq!(
            settings.token_type_for("globex"),
            Some(TokenType::ClientCredentials)
        );
        assert_eq!(
            settings.token_type_for("acme"),
            Some(TokenType::AccessToken)
        );
        assert_eq!(
            settings.token_type_for("initech"),
            Some(TokenType::AccessToken)
        );

        let policy = Policy::default();
        settings.apply_to(&policy);
        assert!(!policy.is_enabled("initech", TokenType::ClientCredentials));
        assert!(policy.is_enabled("globex", TokenType::ClientCredentials));
        assert!(!policy.is_enabled("globex", TokenType::AccessToken));

        assert!(store.clear_token_type("globex").await.unwrap());
        assert!(!store.clear_token_type("globex").await.unwrap());
        let settings = store.load_settings().await.unwrap();
        assert_eq!(
            settings.token_type_for("globex"),
            Some(TokenType::AccessToken)
        );
        settings.apply_to(&policy);
        assert!(
            policy.is_enabled("globex", TokenType::AccessToken),
            "override dropped"
        );
    }
}

#[cfg(test)]
mod keyset_tests {
    use super::*;
    use crate::expiry::Expiry;

    /// The default keyset page of a store that only pages by offset: the same records, read
    /// in offset pages across chunk boundaries.
    #[tokio::test]
    async fn the_default_seeks_through_offset_pages() {
        let t0 = time::macros::datetime!(2026-05-01 10:00 UTC);
        let records: Vec<TokenRecord> = (0..1234_i64)
            .map(|n| {
                let mut record = NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never)
                    .generate(&TokenFormat::default(), t0 + time::Duration::seconds(n / 3))
                    .record;
                record.id = TokenId::new(format!("tok_{n:05}"));
                record
            })
            .collect();
        let fetch = |offset: u64, limit: u64| {
            let records = &records;
            async move { Ok(page(records.clone(), offset, limit)) }
        };
        for (from, limit) in [(0, 1), (499, 2), (500, 700), (1000, 1000), (1233, 5)] {
            let after = PageCursor::of(&records[from]);
            let found = seek_by_offset(&after, limit, fetch).await.unwrap();
            let end = (from + 1 + limit as usize).min(records.len());
            assert_eq!(found, records[from + 1..end], "{from} {limit}");
        }
    }
}
