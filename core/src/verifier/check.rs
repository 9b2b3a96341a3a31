//! Deciding a bare token or a client credential: what a token service's introspection and
//! token endpoints need, on the same path as [`Verifier::verify`].
//!
//! A token service receives tokens outside the credential headers: introspection (RFC 7662)
//! gets one in a form field, and the token endpoint (RFC 6749 §4.4) a client id and secret. Both
//! go through the verifier's format check, cache, single-flight store call and decision (expiry,
//! token-type policy), so a service never holds a second copy of the rules and a revoked
//! token's cached entry is evicted for them as for any request.

use std::time::Duration;

use subtle::ConstantTimeEq as _;

use super::{Presented, StoreDown, Verifier};
use crate::metrics::{Check, Event};
use crate::record::Principal;
use crate::token::{ParsedToken, TokenKind};

/// Why a token or client credential is not active. Carries no part of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum InactiveReason {
    /// Not in the token format, or the checksum does not match.
    #[error("the token is malformed")]
    Malformed,
    /// A well-formed token of a kind not accepted here: a client id or secret introspected,
    /// or anything but a client secret presented as one.
    #[error("a token of this kind is not accepted here")]
    WrongKind,
    /// No such token.
    #[error("the token is unknown")]
    Unknown,
    /// The token was revoked.
    #[error("the token was revoked")]
    Revoked,
    /// The token expired.
    #[error("the token expired")]
    Expired,
    /// The token's type is not enabled for its tenant.
    #[error("the token type is not enabled for the token's tenant")]
    TypeDisabled,
    /// The client secret is valid but belongs to another client id.
    #[error("the client id does not match the client secret")]
    ClientMismatch,
}

impl InactiveReason {
    /// A short snake_case name, for logs and metrics.
    ///
    /// ```
    /// assert_eq!(m2m_core::InactiveReason::TypeDisabled.as_str(), "type_disabled");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            InactiveReason::Malformed => "malformed",
            InactiveReason::WrongKind => "wrong_kind",
            InactiveReason::Unknown => "unknown",
            InactiveReason::Revoked => "revoked",
            InactiveReason::Expired => "expired",
            InactiveReason::TypeDisabled => "type_disabled",
            InactiveReason::ClientMismatch => "client_mismatch",
        }
    }
}

/// Why [`Verifier::check_token`] or [`Verifier::check_client`] gave no [`Principal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenCheckError {
    /// The token or credential cannot be used; a service answers "inactive" or
    /// `invalid_client`.
    #[error("{0}")]
    Inactive(InactiveReason),
    /// The store could not answer and nothing usable is cached: a service answers 503 with
    /// `Retry-After`, never "inactive".
    #[error("the token store is unavailable")]
    StoreUnavailable {
        /// How long the caller should wait, as configured on the verifier.
        retry_after: Duration,
    },
}

impl From<InactiveReason> for TokenCheckError {
    fn from(reason: InactiveReason) -> Self {
        TokenCheckError::Inactive(reason)
    }
}

impl Verifier {
    /// Decides a bare token, as introspection receives it: the [`Principal`] of an active
    /// access token or bearer token.
    ///
    /// The same path as [`verify`](Self::verify) without the header rules: format and checksum
    /// (a malformed token never reaches the cache or the store), the cache, the store on a
    /// miss with one call per digest however many checks miss at once, then expiry and the
    /// token-type policy. Scopes are not checked. A client id or secret is never active here.
    ///
    /// # Errors
    ///
    /// [`TokenCheckError::Inactive`] with the reason, or
    /// [`TokenCheckError::StoreUnavailable`] when the store cannot answer and nothing usable
    /// is cached.
    ///
    /// # Example
    ///
    /// ```
    /// use m2m_core::{
    ///     Expiry, InactiveReason, MemoryStore, NewToken, TokenCheckError, TokenKind, TokenStore,
    ///     Verifier,
    /// };
    /// use std::sync::Arc;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = Arc::new(MemoryStore::new());
    /// let verifier = Verifier::builder(store.clone()).build();
    /// let request = NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never);
    /// let issued = store.issue(verifier.format(), request, verifier.now()).await.unwrap();
    ///
    /// let principal = verifier.check_token(issued.token.expose_secret()).await.unwrap();
    /// assert_eq!(principal.tenant(), "acme");
    /// assert_eq!(principal.kind(), TokenKind::AccessToken);
    ///
    /// let refused = verifier.check_token("m2m_at_guessed").await.unwrap_err();
    /// assert_eq!(refused, TokenCheckError::Inactive(InactiveReason::Malformed));
    /// # });
    /// ```
    pub async fn check_token(&self, token: &str) -> Result<Principal, TokenCheckError> {
        let outcome = self.check_token_uncounted(token).await;
        self.count(Event::checked(Check::Token, &outcome));
        outcome
    }

    async fn check_token_uncounted(&self, token: &str) -> Result<Principal, TokenCheckError> {
        let parsed = self
            .inner
            .format
            .parse(token)
            .map_err(|_| InactiveReason::Malformed)?;
        if !matches!(
            parsed.kind(),
            TokenKind::AccessToken | TokenKind::BearerToken
        ) {
            return Err(InactiveReason::WrongKind.into());
        }
        let (principal, now) = self.checked(&parsed).await?;
        principal.note_use(now);
        Ok(principal)
    }

    /// Checks a client credential, as the OAuth token endpoint and HTTP Basic client
    /// authentication receive it: the [`Principal`] of the client secret when it is active and
    /// belongs to `client_id`.
    ///
    /// The secret is decided like [`check_token`](Self::check_token) (cached by its digest,
    /// single-flight, expiry and type policy); the client id is then compared with the one
    /// the secret was issued with, in constant time. Unknown, revoked, expired and mismatched
    /// credentials are told apart only by [`InactiveReason`], for logs: a service gives them
    /// one answer.
    ///
    /// # Errors
    ///
    /// [`TokenCheckError::Inactive`] with the reason, or
    /// [`TokenCheckError::StoreUnavailable`] when the store cannot answer and nothing usable
    /// is cached.
    ///
    /// # Example
    ///
    /// ```
    /// use m2m_core::{
    ///     Expiry, InactiveReason, MemoryStore, NewToken, TokenCheckError, TokenKind, TokenStore,
    ///     Verifier,
    /// };
    /// use std::sync::Arc;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = Arc::new(MemoryStore::new());
    /// let verifier = Verifier::builder(store.clone()).build();
    /// let request = NewToken::new(TokenKind::ClientSecret, "acme", Expiry::ThirtyDays);
    /// let issued = store.issue(verifier.format(), request, verifier.now()).await.unwrap();
    /// let client_id = issued.record.client_id.clone().unwrap();
    /// let secret = issued.token.expose_secret();
    ///
    /// let credential = verifier.check_client(&client_id, secret).await.unwrap();
    /// assert_eq!(credential.token_id(), &issued.record.id);
    ///
    /// let refused = verifier.check_client("m2m_ci_someone-else", secret).await.unwrap_err();
    /// assert_eq!(refused, TokenCheckError::Inactive(InactiveReason::ClientMismatch));
    /// # });
    /// ```
    pub async fn check_client(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Principal, TokenCheckError> {
        let outcome = self.check_client_uncounted(client_id, client_secret).await;
        self.count(Event::checked(Check::Client, &outcome));
        outcome
    }

    async fn check_client_uncounted(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Principal, TokenCheckError> {
        let parsed = self
            .inner
            .format
            .parse(client_secret)
            .map_err(|_| InactiveReason::Malformed)?;
        if parsed.kind() != TokenKind::ClientSecret {
            return Err(InactiveReason::WrongKind.into());
        }
        let (principal, now) = self.checked(&parsed).await?;
        let issued_to = principal.client_id().unwrap_or_default().as_bytes();
        let matches = issued_to.ct_eq(client_id.as_bytes());
        if issued_to.is_empty() || !bool::from(matches) {
            return Err(InactiveReason::ClientMismatch.into());
        }
        principal.note_use(now);
        Ok(principal)
    }

    /// Cache, single-flight store call and [`judge`](Verifier::judge) for a well-formed token;
    /// the principal and the time of the decision (Unix nanoseconds).
    async fn checked(&self, parsed: &ParsedToken<'_>) -> Result<(Principal, i64), TokenCheckError> {
        let inner = &*self.inner;
        let now = inner.clock.unix_nanos();
        let presented =
            Presented::opaque(parsed, parsed.kind().token_type().placement(), &inner.cache);
        let cached = inner.cache.get(&presented.key, now);
        let lookup = self
            .lookup(&presented, now, cached)
            .await
            .map_err(|StoreDown| TokenCheckError::StoreUnavailable {
                retry_after: Duration::from_secs(u64::from(inner.retry_after)),
            })?;
        let principal = self
            .judge(lookup, parsed.kind(), now)
            .map_err(|(reason, _)| reason)?;
        Ok((principal, now))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use time::OffsetDateTime;

    use super::*;
    use crate::{
        Expiry, ManualClock, MemoryStore, NewToken, Policy, StoreError, TokenDigest, TokenId,
        TokenLookup, TokenRecord, TokenStore, TokenType, TokenTypes,
    };

    /// A memory store that counts lookups and can be switched off.
    #[derive(Debug, Default)]
    struct Counting {
        store: MemoryStore,
        finds: AtomicUsize,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl TokenLookup for Counting {
        async fn find_token(
            &self,
            token: &str,
            digest: &TokenDigest,
        ) -> Result<Option<TokenRecord>, StoreError> {
            self.finds.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("switched off".into()));
            }
            tokio::task::yield_now().await;
            self.store.find_token(token, digest).await
        }
        async fn record_usage(&self, uses: &[(TokenId, OffsetDateTime)]) -> Result<(), StoreError> {
            self.store.record_usage(uses).await
        }
        fn subscribe(&self, listener: Arc<dyn crate::RevocationListener>) -> bool {
            self.store.subscribe(listener)
        }
    }

    async fn issue(store: &Counting, verifier: &Verifier, request: NewToken) -> crate::IssuedToken {
        store
            .store
            .issue(verifier.format(), request, verifier.now())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn check_token_decides_like_verify() {
        let store = Arc::new(Counting::default());
        let policy = Policy::default();
        let clock = ManualClock::new(OffsetDateTime::now_utc());
        let verifier = Verifier::builder(store.clone())
            .policy(policy.clone())
            .clock(clock.clone())
            .build();
        let access = issue(
            &store,
            &verifier,
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::OneDay),
        )
        .await;
        let secret = issue(
            &store,
            &verifier,
            NewToken::new(TokenKind::ClientSecret, "acme", Expiry::Never),
        )
        .await;
        let token = access.token.expose_secret();

        let principal = verifier.check_token(token).await.unwrap();
        assert_eq!(principal.token_id(), &access.record.id);
        assert_eq!(verifier.check_token(token).await.unwrap(), principal);
        assert_eq!(
            store.finds.load(Ordering::SeqCst),
            1,
            "the second was cached"
        );

        let inactive = |reason| Err(TokenCheckError::Inactive(reason));
        assert_eq!(
            verifier.check_token(secret.token.expose_secret()).await,
            inactive(InactiveReason::WrongKind)
        );
        let mut garbled = token.to_owned();
        garbled.replace_range(10..11, if &token[10..11] == "A" { "B" } else { "A" });
        assert_eq!(
            verifier.check_token(&garbled).await,
            inactive(InactiveReason::Malformed)
        );
        assert_eq!(
            store.finds.load(Ordering::SeqCst),
            1,
            "refused before the store"
        );

        policy.set_tenant("acme", TokenTypes::only(TokenType::ClientCredentials));
        assert_eq!(
            verifier.check_token(token).await,
            inactive(InactiveReason::TypeDisabled)
        );
        policy.clear_tenant("acme");

        clock.advance(time::Duration::days(2));
        assert_eq!(
            verifier.check_token(token).await,
            inactive(InactiveReason::Expired)
        );

        let unknown = verifier.format().generate(TokenKind::BearerToken);
        assert_eq!(
            verifier.check_token(unknown.expose_secret()).await,
            inactive(InactiveReason::Unknown)
        );
    }

    #[tokio::test]
    async fn a_revoked_token_is_evicted_and_a_failing_store_is_not_inactive() {
        let store = Arc::new(Counting::default());
        let verifier = Verifier::builder(store.clone()).build();
        let access = issue(
            &store,
            &verifier,
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
        )
        .await;
        let token = access.token.expose_secret();
        verifier.check_token(token).await.unwrap();
        store
            .store
            .revoke(&access.record.id, verifier.now())
            .await
            .unwrap();
        assert_eq!(
            verifier.check_token(token).await,
            Err(TokenCheckError::Inactive(InactiveReason::Revoked))
        );

        store.down.store(true, Ordering::SeqCst);
        let other = verifier.format().generate(TokenKind::AccessToken);
        assert!(matches!(
            verifier.check_token(other.expose_secret()).await,
            Err(TokenCheckError::StoreUnavailable { retry_after }) if !retry_after.is_zero()
        ));
    }

    #[tokio::test]
    async fn check_client_wants_the_secret_and_its_own_client_id() {
        let store = Arc::new(Counting::default());
        let verifier = Verifier::builder(store.clone()).build();
        let credential = issue(
            &store,
            &verifier,
            NewToken::new(TokenKind::ClientSecret, "acme", Expiry::Never).scope("a"),
        )
        .await;
        let access = issue(
            &store,
            &verifier,
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
        )
        .await;
        let client_id = credential.record.client_id.clone().unwrap();
        let secret = credential.token.expose_secret();

        let principal = verifier.check_client(&client_id, secret).await.unwrap();
        assert_eq!(principal.kind(), TokenKind::ClientSecret);
        assert!(principal.has_scope("a"));
        verifier.check_client(&client_id, secret).await.unwrap();
        assert_eq!(
            store.finds.load(Ordering::SeqCst),
            1,
            "the second was cached"
        );

        let inactive = |reason| Err(TokenCheckError::Inactive(reason));
        assert_eq!(
            verifier.check_client(&client_id[1..], secret).await,
            inactive(InactiveReason::ClientMismatch)
        );
        assert_eq!(
            verifier.check_client("", secret).await,
            inactive(InactiveReason::ClientMismatch)
        );
        assert_eq!(
            verifier
                .check_client(&client_id, access.token.expose_secret())
                .await,
            inactive(InactiveReason::WrongKind)
        );
        assert_eq!(
            verifier.check_client(&client_id, "m2m_cs_guess").await,
            inactive(InactiveReason::Malformed)
        );
        store
            .store
            .revoke(&credential.record.id, verifier.now())
            .await
            .unwrap();
        assert_eq!(
            verifier.check_client(&client_id, secret).await,
            inactive(InactiveReason::Revoked)
        );
    }
}
