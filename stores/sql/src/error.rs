//! Why a [`SqlStore`](crate::SqlStore) could not be opened.

/// The database URL could not be opened as a token store.
///
/// Errors of the store's operations, once open, are [`m2m_core::StoreError`]s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The URL names a database this crate does not speak.
    #[error(
        "unsupported database URL scheme `{scheme}`: expected sqlite://, sqlite::memory:, \
         postgres:// or postgresql://"
    )]
    UnsupportedUrl {
        /// The part of the URL before the first `:` (never the rest, which may hold a password).
        scheme: String,
    },
    /// The URL is malformed, or the database is unreachable or refused the connection.
    #[error("cannot connect to the token database: {0}")]
    Connect(#[source] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("cannot migrate the token database: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}
