//! Machine-to-machine token authentication for Rust web services.
//!
//! This facade re-exports [`m2m_core`] and, behind one feature each, the framework adapters and
//! stores.
//!
//! ```
//! use m2m::{MemoryStore, Verifier};
//! let verifier = Verifier::builder(MemoryStore::new()).build();
//! assert_eq!(verifier.cached_entries(), 0);
//! ```

pub use m2m_core::*;

/// The tower layer and axum extractors (feature `tower`).
#[cfg(feature = "tower")]
pub use m2m_tower as tower;

/// The actix-web middleware and extractors (feature `actix`).
#[cfg(feature = "actix")]
pub use m2m_actix as actix;

/// The Rocket fairing, request guards and catchers (feature `rocket`).
#[cfg(feature = "rocket")]
pub use m2m_rocket as rocket;

/// The SQL store on SQLite and PostgreSQL (feature `sql`).
#[cfg(feature = "sql")]
pub use m2m_sql as sql;

/// The remote store: the token service over RFC 7662 introspection (feature `remote`).
#[cfg(feature = "remote")]
pub use m2m_remote as remote;
