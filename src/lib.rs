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
