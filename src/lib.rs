//! Machine-to-machine token authentication for Rust web services.
//!
//! Your customers' machines call your API with tokens; your handlers receive who is calling.
//! Access tokens (`m2m_at_…`) travel in `X-API-KEY`; client credentials are exchanged for
//! bearer tokens (`m2m_cc_…`) that travel as `Authorization: Bearer`. This facade re-exports
//! [`m2m_core`] (the rules, the token format, the cache, the [`Verifier`] and the
//! [`Admission`] decision every adapter translates) and, behind one feature each, the framework
//! adapters and the stores.
//!
//! # Features
//!
//! | feature | module | what |
//! |---|---|---|
//! | `tower` (alias `axum`) | [`tower`] | the tower layer and axum extractors (`m2m-tower`) |
//! | `actix` | [`actix`] | the actix-web middleware and extractor (`m2m-actix`) |
//! | `rocket` | [`rocket`] | the Rocket fairing, request guards and catchers (`m2m-rocket`) |
//! | `sql` | [`sql`] | the SQLite and PostgreSQL store (`m2m-sql`) |
//! | `remote` | [`remote`] | the store that asks the token service over introspection (`m2m-remote`) |
//! | `wire` | [`wire`] | the introspection answer and revocation event shared by the service and `remote` |
//! | `openapi` | [`openapi`] | the OpenAPI 3.1 security schemes of both token types, as a `utoipa::Modify` |
//!
//! No feature is on by default: the core alone verifies tokens against a [`MemoryStore`] or
//! any [`TokenLookup`].
//!
//! ```
//! use m2m::{MemoryStore, Verifier};
//! let verifier = Verifier::builder(MemoryStore::new()).build();
//! assert_eq!(verifier.cached_entries(), 0);
//! ```

#[doc(inline)]
pub use m2m_core::*;

/// The tower layer and axum extractors (feature `tower`).
#[cfg(feature = "tower")]
#[doc(inline)]
pub use m2m_tower as tower;

/// The actix-web middleware and extractors (feature `actix`).
#[cfg(feature = "actix")]
#[doc(inline)]
pub use m2m_actix as actix;

/// The Rocket fairing, request guards and catchers (feature `rocket`).
#[cfg(feature = "rocket")]
#[doc(inline)]
pub use m2m_rocket as rocket;

/// The SQL store on SQLite and PostgreSQL (feature `sql`).
#[cfg(feature = "sql")]
#[doc(inline)]
pub use m2m_sql as sql;

/// The remote store: the token service over RFC 7662 introspection (feature `remote`).
#[cfg(feature = "remote")]
#[doc(inline)]
pub use m2m_remote as remote;
