//! The m2m [`TokenLookup`](m2m_core::TokenLookup) and [`TokenStore`](m2m_core::TokenStore) in
//! a SQL database: SQLite (one file, the embedded default) or PostgreSQL (many app and
//! token-service instances on one database).
//!
//! [`SqlStore`] behaves exactly as [`MemoryStore`](m2m_core::MemoryStore), but survives
//! restarts: it keeps each token's SHA-256 digest (never the token), public id, display stub,
//! kind, tenant, user, description, scopes and timestamps, and the token-type settings
//! (environment default and per-tenant overrides). The schema is created and migrated by
//! [`SqlStore::connect`] from migrations embedded in the binary.
//!
//! # Schema
//!
//! One migration directory per backend (`migrations/sqlite`, `migrations/postgres`), the same
//! tables on both:
//!
//! - `tokens`: `id` (primary key), `digest` (32 bytes, unique), `stub`, `kind` (`at`, `cc`,
//!   `ci`, `cs`), `tenant`, `user_id`, `description`, `scopes` (a JSON array of strings),
//!   `created_at`, `expires_at` (NULL: never), `revoked_at`, `last_used_at`, `client_id` and
//!   `credential_id` (both indexed; client credentials also by `(client_id, created_at, id)`,
//!   apart from the bearer tokens minted from them); listings use the index on
//!   `(tenant, created_at, id)`.
//! - `token_type_settings`: which token type users may generate, one `environment` row and one
//!   `tenant` row per tenant that overrides it.
//!
//! Timestamps are 64-bit Unix nanoseconds (UTC) on both backends, so every
//! [`OffsetDateTime`](time::OffsetDateTime) from 1677 to 2262 round-trips exactly.
//!
//! A [`Verifier`](m2m_core::Verifier) over a [`SqlStore`] records each token's `last_used_at`
//! by itself, in batches, in the background; the token service's listing shows it.
//!
//! # Failures
//!
//! A query that fails makes the operation a [`StoreError::Unavailable`](m2m_core::StoreError)
//! (the verifier answers 503, never 401) and is logged through `tracing` at warn with its
//! cause; a value the store cannot read back is logged at error. Losing the `LISTEN` connection
//! is logged at warn, and the store reconnects by itself. Tokens are never logged: the database
//! only sees their digests.
//!
//! # Revocation events
//!
//! Subscribers of a store (and of its clones) hear at once of revocations made through it. On
//! PostgreSQL each revoked token is also sent with `NOTIFY` on [`REVOCATION_CHANNEL`] (payload
//! `<token id> <digest hex>`) inside the revoking transaction, for other processes to listen to.
//!
//! # Example
//!
//! ```
//! use m2m_core::{Expiry, NewToken, TokenFormat, TokenKind, TokenStore};
//! use m2m_sql::SqlStore;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = SqlStore::connect("sqlite::memory:").await.unwrap();
//! let now = time::OffsetDateTime::now_utc();
//! let request = NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays).scope("reports:read");
//! let issued = store.issue(&TokenFormat::default(), request, now).await.unwrap();
//!
//! let found = store.find(&issued.token.digest()).await.unwrap().unwrap();
//! assert_eq!(found, issued.record);
//! assert_eq!(found.created_at, now);
//!
//! assert!(store.revoke(&found.id, now).await.unwrap());
//! assert!(!store.revoke(&found.id, now).await.unwrap());
//! assert_eq!(store.get(&found.id).await.unwrap().unwrap().revoked_at, Some(now));
//! store.close().await;
//! # });
//! ```

mod error;
mod listen;
mod store;

pub use error::SqlError;
pub use store::{REVOCATION_CHANNEL, SqlStore};
