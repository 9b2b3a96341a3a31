//! [`SqlStore`]: the [`TokenLookup`] and [`TokenStore`] on SQLite or PostgreSQL.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use m2m_core::{
    AuditEntry, BearerFormat, PageCursor, PortalRole, PortalSession, PortalSettings, RateLimit,
    RevocationEvent, RevocationListener, SigningKey, StoreError, TokenDigest, TokenId, TokenKind,
    TokenLookup, TokenRecord, TokenStore, TokenType, TypeSettings,
};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
};
use sqlx::{ColumnIndex, Decode, QueryBuilder, Row, Type};
use time::OffsetDateTime;

use crate::error::SqlError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL channel a revocation is announced on, payload `<token id> <digest hex>`.
pub const REVOCATION_CHANNEL: &str = "m2m_revocations";

/// The columns of a token row, in the order [`record_from_row`] reads them.
const TOKEN_COLUMNS: &str = "id, digest, stub, kind, tenant, user_id, description, scopes, \
     created_at, expires_at, revoked_at, last_used_at, client_id, credential_id, created_by, \
     rate_limit, rate_window";

/// The client credentials revoked after `$1` (Unix nanoseconds), oldest first: id and digest.
pub(crate) const REVOKED_CREDENTIALS_SQL: &str = "SELECT id, digest FROM tokens \
     WHERE kind = 'cs' AND revoked_at IS NOT NULL AND revoked_at > $1 \
     ORDER BY revoked_at, id";

/// The client credential of client id `$1` (the oldest, should two share it): read through the
/// partial index `tokens_client_secret`, never through the bearer tokens minted from it.
const FIND_CLIENT_FROM: &str =
    "FROM tokens WHERE client_id = $1 AND kind = 'cs' ORDER BY created_at, id LIMIT 1";

/// The columns of a portal session row, in the order [`session_from_row`] reads them.
const SESSION_COLUMNS: &str = "id, tenant, user_id, display_name, role, permissions, created_at, \
     expires_at, revoked_at";

/// Usage entries written per statement by [`SqlStore::record_usage`] (two parameters each).
const USAGE_CHUNK: usize = 500;

/// A [`TokenLookup`] and [`TokenStore`] in a SQL database: SQLite (one file, or memory) or
/// PostgreSQL.
///
/// Cheap to clone: clones share the connection pool and the revocation listeners.
///
/// Timestamps are stored as 64-bit Unix nanoseconds (UTC), so every [`OffsetDateTime`] between
/// the years 1677 and 2262 round-trips exactly, on both backends; the offset comes back as UTC.
/// Revocations made through this value (or a clone) are announced at once to its subscribers;
/// on PostgreSQL each one is also sent with `NOTIFY` on [`REVOCATION_CHANNEL`], in the revoking
/// transaction.
#[derive(Clone)]
pub struct SqlStore {
    backend: Backend,
    /// Where the store points, without any password.
    location: Arc<str>,
    listeners: Arc<Listeners>,
    /// Names this store (and its clones) in its notifications, so that its own listener skips
    /// the revocations it already announced in-process.
    origin: Arc<str>,
}

/// The revocation listeners subscribed to a store and its clones.
pub(crate) type Listeners = RwLock<Vec<Weak<dyn RevocationListener>>>;

/// Calls every live listener for each event, forgetting the dropped ones.
pub(crate) fn announce_to(listeners: &Listeners, events: &[RevocationEvent]) {
    if events.is_empty() {
        return;
    }
    let mut listeners = listeners.write().unwrap_or_else(PoisonError::into_inner);
    listeners.retain(|weak| match weak.upgrade() {
        Some(listener) => {
            events.iter().for_each(|event| listener.revoked(event));
            true
        }
        None => false,
    });
}

/// Whose records a listing pages through.
#[derive(Clone, Copy)]
enum Owner<'a> {
    /// Every record of the tenant.
    Any,
    /// The tenant's API tokens: no user, no minted bearer tokens.
    Tenant,
    /// One user's.
    User(&'a str),
}

/// Where a listing's page starts.
#[derive(Clone, Copy)]
enum Start<'a> {
    /// After skipping this many records (which the database reads).
    Offset(u64),
    /// After this position, sought in the index the listing is read through.
    After(&'a PageCursor),
}

/// The statement of a page of [`SqlStore::page`]: the tenant, then the user for
/// [`Owner::User`], then the cursor's time and id for [`Start::After`], then the limit, then
/// the offset for [`Start::Offset`]. Each listing is read in the order of its index
/// (`tokens_tenant_created`, `tokens_tenant_user`, `tokens_tenant_api`, all ending in
/// `created_at, id`), which a cursor seeks in with a row comparison.
fn page_sql(owner: Owner<'_>, start: Start<'_>) -> String {
    let mut sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant = $1");
    let mut next = 2;
    match owner {
        Owner::Any => {}
        Owner::Tenant => sql.push_str(" AND user_id IS NULL AND kind <> 'cc'"),
        Owner::User(_) => {
            sql.push_str(" AND user_id = $2");
            next = 3;
        }
    }
    if let Start::After(_) = start {
        sql.push_str(&format!(" AND (created_at, id) > (${next}, ${})", next + 1));
        next += 2;
    }
    sql.push_str(&format!(" ORDER BY created_at, id LIMIT ${next}"));
    if let Start::Offset(_) = start {
        sql.push_str(&format!(" OFFSET ${}", next + 1));
    }
    sql
}

/// Tells every live listener that revocations may have been missed.
pub(crate) fn lost_track_to(listeners: &Listeners) {
    let listeners = listeners.read().unwrap_or_else(PoisonError::into_inner);
    for listener in listeners.iter().filter_map(Weak::upgrade) {
        listener.lost_track();
    }
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the pool of whichever backend `$store` uses: the same
/// source serves both, since sqlx's query API is generic over the database.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

impl SqlStore {
    /// One page of a tenant's records (all, its API tokens, or one user's), oldest first,
    /// from an offset or after a cursor.
    async fn page(
        &self,
        tenant: &str,
        owner: Owner<'_>,
        start: Start<'_>,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let sql = page_sql(owner, start);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after = match start {
            Start::Offset(_) => None,
            Start::After(cursor) => match i64::try_from(cursor.unix_nanos()) {
                Ok(nanos) => Some((nanos, cursor.id.as_str())),
                // Every stored time is a 64-bit nanosecond count: nothing comes after a later
                // cursor, everything after an earlier one.
                Err(_) if cursor.unix_nanos() > 0 => return Ok(Vec::new()),
                Err(_) => Some((i64::MIN, "")),
            },
        };
        with_pool!(self, |pool| {
            // Bound in the order the placeholders appear.
            let mut query = sqlx::query(&sql).bind(tenant);
            if let Owner::User(user) = owner {
                query = query.bind(user);
            }
            if let Some((nanos, id)) = after {
                query = query.bind(nanos).bind(id);
            }
            query = query.bind(limit);
            if let Start::Offset(offset) = start {
                query = query.bind(i64::try_from(offset).unwrap_or(i64::MAX));
            }
            let rows = query.fetch_all(pool).await.map_err(store_error)?;
            rows.iter().map(record_from_row).collect()
        })
    }

    /// Writes `record` as a row, `condition` (a `WHERE` on the parameters, or nothing) allowing;
    /// returns the rows written. Parameter `$14` is the credential id.
    async fn insert_row(&self, record: &TokenRecord, condition: &str) -> Result<u64, StoreError> {
        let sql = format!(
            "INSERT INTO tokens ({TOKEN_COLUMNS}) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17 {condition}"
        );
        let scopes = serde_json::to_string(&record.scopes)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let created_at = to_nanos(record.created_at)?;
        let expires_at = option_to_nanos(record.expires_at)?;
        let revoked_at = option_to_nanos(record.revoked_at)?;
        let last_used_at = option_to_nanos(record.last_used_at)?;
        with_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(record.id.as_str())
                .bind(record.digest.as_bytes().as_slice())
                .bind(&record.stub)
                .bind(record.kind.code())
                .bind(&record.tenant)
                .bind(record.user.as_deref())
                .bind(&record.description)
                .bind(&scopes)
                .bind(created_at)
                .bind(expires_at)
                .bind(revoked_at)
                .bind(last_used_at)
                .bind(record.client_id.as_deref())
                .bind(record.credential_id.as_ref().map(TokenId::as_str))
                .bind(record.created_by.as_deref())
                .bind(record.rate_limit.map(|r| i64::from(r.limit())))
                .bind(record.rate_limit.map(|r| i64::from(r.window_seconds())))
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
                .map_err(store_error)
        })
    }

    /// Opens the token database at `url` and brings its schema up to date.
    ///
    /// - `sqlite://path/to/tokens.db` (or `sqlite:path`): a file, created if absent, in WAL mode
    ///   with foreign keys on;
    /// - `sqlite::memory:`: a private database in memory, gone when the last clone is dropped;
    /// - `postgres://…` or `postgresql://…`: a PostgreSQL database, over TLS (rustls) as its
    ///   `sslmode` says: `prefer` by default, `require` to refuse a plain connection,
    ///   `verify-full` to check the server's certificate against the web's root authorities or
    ///   `sslrootcert=FILE`, and its host name.
    ///
    /// # Errors
    ///
    /// [`SqlError::UnsupportedUrl`] for another scheme, [`SqlError::Connect`] when the URL is
    /// malformed or the database unreachable, [`SqlError::Migrate`] when the schema cannot be
    /// created or updated.
    pub async fn connect(url: &str) -> Result<SqlStore, SqlError> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme);
        match scheme {
            Some("sqlite") => Self::connect_sqlite(url).await,
            Some("postgres" | "postgresql") => Self::connect_postgres(url).await,
            _ => Err(SqlError::UnsupportedUrl {
                scheme: scheme.unwrap_or_default().to_owned(),
            }),
        }
    }

    async fn connect_sqlite(url: &str) -> Result<SqlStore, SqlError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(SqlError::Connect)?
            .create_if_missing(true)
            .foreign_keys(true);
        let in_memory = is_sqlite_memory(url);
        let (options, pool) = if in_memory {
            // Every connection to a shared in-memory database sees the same tables, and the
            // database lives as long as one connection does: keep exactly one, forever.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
            (options, pool)
        } else {
            let options = options
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5));
            (options, SqlitePoolOptions::new().max_connections(4))
        };
        let location = if in_memory {
            "sqlite::memory:".to_owned()
        } else {
            format!("sqlite://{}", options.get_filename().display())
        };
        let pool = pool
            .connect_with(options)
            .await
            .map_err(SqlError::Connect)?;
        SQLITE_MIGRATIONS
            .run(&pool)
            .await
            .map_err(SqlError::Migrate)?;
        Ok(Self::new(Backend::Sqlite(pool), location))
    }

    async fn connect_postgres(url: &str) -> Result<SqlStore, SqlError> {
        let options = PgConnectOptions::from_str(url).map_err(SqlError::Connect)?;
        let location = format!(
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(SqlError::Connect)?;
        POSTGRES_MIGRATIONS
            .run(&pool)
            .await
            .map_err(SqlError::Migrate)?;
        Ok(Self::new(Backend::Postgres(pool), location))
    }

    fn new(backend: Backend, location: String) -> Self {
        Self {
            backend,
            location: location.into(),
            origin: m2m_core::TokenId::generate().as_str().into(),
            listeners: Arc::default(),
        }
    }

    /// Closes the connections of this store and of all its clones; later calls fail with
    /// [`StoreError::Unavailable`].
    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await);
    }

    fn announce(&self, events: &[RevocationEvent]) {
        announce_to(&self.listeners, events);
    }
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("database", &self.location)
            .finish_non_exhaustive()
    }
}

/// Whether a `sqlite:` URL names an in-memory database.
fn is_sqlite_memory(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory")
}

/// A database failure as the verifier sees it: a duplicate is a conflict, anything else makes
/// the store unavailable.
/// Logged at warn with its cause (never a token: the database only ever sees digests).
fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => {
            tracing::warn!(%error, "the token database failed");
            StoreError::Unavailable(error.to_string())
        }
    }
}

/// A row the store cannot read back: the database holds something this code never writes.
/// Logged at error.
fn corrupt(what: &str) -> StoreError {
    tracing::error!(
        what,
        "the token database holds a value this store cannot read"
    );
    StoreError::Unavailable(format!("the token database holds an invalid {what}"))
}

fn to_nanos(at: OffsetDateTime) -> Result<i64, StoreError> {
    i64::try_from(at.unix_timestamp_nanos()).map_err(|_| {
        StoreError::Unavailable(format!(
            "the timestamp {at} is outside the years 1677 to 2262 the token database can hold"
        ))
    })
}

fn option_to_nanos(at: Option<OffsetDateTime>) -> Result<Option<i64>, StoreError> {
    at.map(to_nanos).transpose()
}

fn from_nanos(nanos: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).map_err(|_| corrupt("timestamp"))
}

fn option_from_nanos(nanos: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    nanos.map(from_nanos).transpose()
}

fn digest_from_bytes(bytes: Vec<u8>) -> Result<TokenDigest, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(TokenDigest::from_bytes)
        .map_err(|_| corrupt("digest"))
}

/// Reads a row selected with [`TOKEN_COLUMNS`], on either backend.
fn record_from_row<'r, R>(row: &'r R) -> Result<TokenRecord, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let kind: String = row.try_get("kind").map_err(store_error)?;
    let scopes: String = row.try_get("scopes").map_err(store_error)?;
    Ok(TokenRecord {
        id: TokenId::new(row.try_get::<String, _>("id").map_err(store_error)?),
        digest: digest_from_bytes(row.try_get("digest").map_err(store_error)?)?,
        stub: row.try_get("stub").map_err(store_error)?,
        kind: TokenKind::from_code(&kind).ok_or_else(|| corrupt("token kind"))?,
        tenant: row.try_get("tenant").map_err(store_error)?,
        user: row.try_get("user_id").map_err(store_error)?,
        description: row.try_get("description").map_err(store_error)?,
        scopes: serde_json::from_str(&scopes).map_err(|_| corrupt("scope list"))?,
        created_at: from_nanos(row.try_get("created_at").map_err(store_error)?)?,
        expires_at: option_from_nanos(row.try_get("expires_at").map_err(store_error)?)?,
        revoked_at: option_from_nanos(row.try_get("revoked_at").map_err(store_error)?)?,
        last_used_at: option_from_nanos(row.try_get("last_used_at").map_err(store_error)?)?,
        client_id: row.try_get("client_id").map_err(store_error)?,
        credential_id: row
            .try_get::<Option<String>, _>("credential_id")
            .map_err(store_error)?
            .map(TokenId::new),
        created_by: row.try_get("created_by").map_err(store_error)?,
        rate_limit: rate_limit_from(
            row.try_get("rate_limit").map_err(store_error)?,
            row.try_get("rate_window").map_err(store_error)?,
        )?,
    })
}

/// The rate limit of a row: both columns or neither.
fn rate_limit_from(
    limit: Option<i64>,
    window: Option<i64>,
) -> Result<Option<RateLimit>, StoreError> {
    match (limit, window) {
        (None, None) => Ok(None),
        (Some(limit), Some(window)) => {
            let part = |n: i64| u32::try_from(n).map_err(|_| corrupt("rate limit"));
            RateLimit::new(part(limit)?, part(window)?)
                .map(Some)
                .map_err(|_| corrupt("rate limit"))
        }
        _ => Err(corrupt("rate limit")),
    }
}

/// Reads a row selected with [`SESSION_COLUMNS`], on either backend.
fn session_from_row<'r, R>(row: &'r R) -> Result<PortalSession, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let role: String = row.try_get("role").map_err(store_error)?;
    let permissions: String = row.try_get("permissions").map_err(store_error)?;
    Ok(PortalSession {
        id: row.try_get("id").map_err(store_error)?,
        tenant: row.try_get("tenant").map_err(store_error)?,
        user: row.try_get("user_id").map_err(store_error)?,
        display_name: row.try_get("display_name").map_err(store_error)?,
        role: PortalRole::from_name(&role).ok_or_else(|| corrupt("portal role"))?,
        permissions: serde_json::from_str(&permissions).map_err(|_| corrupt("permission list"))?,
        created_at: from_nanos(row.try_get("created_at").map_err(store_error)?)?,
        expires_at: from_nanos(row.try_get("expires_at").map_err(store_error)?)?,
        revoked_at: option_from_nanos(row.try_get("revoked_at").map_err(store_error)?)?,
    })
}

/// Reads the `(id, digest)` rows a revoking `UPDATE … RETURNING` produced.
fn revocation_events<'r, R>(rows: &'r [R]) -> Result<Vec<RevocationEvent>, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    rows.iter()
        .map(|row| {
            Ok(RevocationEvent {
                token_id: TokenId::new(row.try_get::<String, _>("id").map_err(store_error)?),
                digest: Some(digest_from_bytes(
                    row.try_get("digest").map_err(store_error)?,
                )?),
            })
        })
        .collect()
}

/// Tells other processes, inside the revoking transaction, which tokens were revoked.
trait AnnounceRevocations {
    fn announce_revocations<'a>(
        &'a mut self,
        events: &'a [RevocationEvent],
        origin: &'a str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;
}

impl AnnounceRevocations for SqliteConnection {
    /// SQLite has no channel between processes; subscribers in this process are told after
    /// the commit.
    async fn announce_revocations(
        &mut self,
        _: &[RevocationEvent],
        _: &str,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl AnnounceRevocations for PgConnection {
    async fn announce_revocations(
        &mut self,
        events: &[RevocationEvent],
        origin: &str,
    ) -> Result<(), sqlx::Error> {
        for event in events {
            // `pg_notify` is `NOTIFY` with a bindable payload; delivered on commit.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(REVOCATION_CHANNEL)
                .bind(crate::listen::payload(event, origin))
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }
}

fn token_type_from(name: &str) -> Result<TokenType, StoreError> {
    name.parse().map_err(|_| corrupt("token type"))
}

#[async_trait]
impl TokenLookup for SqlStore {
    /// The record by digest: the database never sees the token.
    async fn find_token(
        &self,
        _token: &str,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.find(digest).await
    }

    async fn record_usage(&self, uses: &[(TokenId, OffsetDateTime)]) -> Result<(), StoreError> {
        // One entry per token, its latest use: an UPDATE … FROM must match each row once.
        let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
        for (id, at) in uses {
            let at = to_nanos(*at)?;
            let entry = latest.entry(id.as_str()).or_insert(at);
            *entry = (*entry).max(at);
        }
        let latest: Vec<(&str, i64)> = latest.into_iter().collect();
        for chunk in latest.chunks(USAGE_CHUNK) {
            with_pool!(self, |pool| {
                let mut query =
                    QueryBuilder::new("UPDATE tokens SET last_used_at = used.column2 FROM (");
                query.push_values(chunk, |mut row, (id, at)| {
                    row.push_bind(*id).push_bind(*at);
                });
                query.push(
                    ") AS used WHERE tokens.id = used.column1 \
                     AND (tokens.last_used_at IS NULL OR tokens.last_used_at < used.column2)",
                );
                query
                    .build()
                    .execute(pool)
                    .await
                    .map(drop)
                    .map_err(store_error)
            })?;
        }
        Ok(())
    }

    fn subscribe(&self, listener: Arc<dyn RevocationListener>) -> bool {
        let first = {
            let mut listeners = self
                .listeners
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            listeners.push(Arc::downgrade(&listener));
            listeners.len() == 1
        };
        if first && let Backend::Postgres(pool) = &self.backend {
            crate::listen::follow_revocations(
                pool.clone(),
                Arc::downgrade(&self.listeners),
                Arc::clone(&self.origin),
            );
        }
        true
    }
}

#[async_trait]
impl TokenStore for SqlStore {
    async fn find(&self, digest: &TokenDigest) -> Result<Option<TokenRecord>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE digest = $1");
        with_pool!(self, |pool| {
            let row = sqlx::query(&sql)
                .bind(digest.as_bytes().as_slice())
                .fetch_optional(pool)
                .await
                .map_err(store_error)?;
            row.as_ref().map(record_from_row).transpose()
        })
    }

    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError> {
        self.insert_row(&record, "").await.map(drop)
    }

    /// The insert of [`insert`](TokenStore::insert) under one condition: only while the
    /// credential is unrevoked. On SQLite a writing statement holds the database's write lock
    /// from its start, so a revocation is wholly before or after it; on PostgreSQL the
    /// credential's row is share-locked, so the insert waits for a revocation in progress and
    /// then sees it.
    async fn insert_derived(&self, record: TokenRecord) -> Result<bool, StoreError> {
        if record.credential_id.is_none() {
            return Ok(false);
        }
        let lock = match self.backend {
            Backend::Sqlite(_) => "",
            Backend::Postgres(_) => " FOR SHARE",
        };
        let condition = format!(
            "WHERE EXISTS (SELECT 1 FROM tokens AS credential \
             WHERE credential.id = $14 AND credential.kind = 'cs' \
             AND credential.revoked_at IS NULL{lock})"
        );
        Ok(self.insert_row(&record, &condition).await? > 0)
    }

    async fn list(&self, tenant: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let sql =
            format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant = $1 ORDER BY created_at, id");
        with_pool!(self, |pool| {
            let rows = sqlx::query(&sql)
                .bind(tenant)
                .fetch_all(pool)
                .await
                .map_err(store_error)?;
            rows.iter().map(record_from_row).collect()
        })
    }

    async fn list_page(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.page(tenant, Owner::Any, Start::Offset(offset), limit)
            .await
    }

    async fn list_user_page(
        &self,
        tenant: &str,
        user: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.page(tenant, Owner::User(user), Start::Offset(offset), limit)
            .await
    }

    async fn revoke(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        let at = to_nanos(at)?;
        let (revoked, events) = with_pool!(self, |pool| {
            // Writes first, so a SQLite transaction takes the write lock at once.
            let mut tx = pool.begin().await.map_err(store_error)?;
            let own = sqlx::query(
                "UPDATE tokens SET revoked_at = $1 \
                 WHERE id = $2 AND revoked_at IS NULL RETURNING id, digest",
            )
            .bind(at)
            .bind(id.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
            let derived = sqlx::query(
                "UPDATE tokens SET revoked_at = $1 \
                 WHERE credential_id = $2 AND revoked_at IS NULL \
                 AND EXISTS (SELECT 1 FROM tokens AS credential \
                             WHERE credential.id = $2 AND credential.kind = 'cs') \
                 RETURNING id, digest",
            )
            .bind(at)
            .bind(id.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
            let mut events = revocation_events(&own)?;
            let revoked = !events.is_empty();
            events.extend(revocation_events(&derived)?);
            tx.announce_revocations(&events, &self.origin)
                .await
                .map_err(store_error)?;
            tx.commit().await.map_err(store_error)?;
            (revoked, events)
        });
        self.announce(&events);
        Ok(revoked)
    }

    async fn revoke_user(
        &self,
        tenant: &str,
        user: &str,
        at: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let at = to_nanos(at)?;
        let events = with_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(store_error)?;
            // The bearer tokens of the user's credentials first, while the credentials still
            // read as the user's; then the user's own tokens.
            let derived = sqlx::query(
                "UPDATE tokens SET revoked_at = $1 \
                 WHERE revoked_at IS NULL AND credential_id IN \
                   (SELECT id FROM tokens WHERE tenant = $2 AND user_id = $3 AND kind = 'cs') \
                 RETURNING id, digest",
            )
            .bind(at)
            .bind(tenant)
            .bind(user)
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
            let own = sqlx::query(
                "UPDATE tokens SET revoked_at = $1 \
                 WHERE tenant = $2 AND user_id = $3 AND revoked_at IS NULL RETURNING id, digest",
            )
            .bind(at)
            .bind(tenant)
            .bind(user)
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
            let mut events = revocation_events(&own)?;
            events.extend(revocation_events(&derived)?);
            tx.announce_revocations(&events, &self.origin)
                .await
                .map_err(store_error)?;
            tx.commit().await.map_err(store_error)?;
            events
        });
        self.announce(&events);
        Ok(events.len())
    }

    async fn get(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1");
        with_pool!(self, |pool| {
            let row = sqlx::query(&sql)
                .bind(id.as_str())
                .fetch_optional(pool)
                .await
                .map_err(store_error)?;
            row.as_ref().map(record_from_row).transpose()
        })
    }

    async fn find_client(&self, client_id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} {FIND_CLIENT_FROM}");
        with_pool!(self, |pool| {
            let row = sqlx::query(&sql)
                .bind(client_id)
                .fetch_optional(pool)
                .await
                .map_err(store_error)?;
            row.as_ref().map(record_from_row).transpose()
        })
    }

    async fn load_settings(&self) -> Result<TypeSettings, StoreError> {
        let sql = "SELECT level, tenant, token_type FROM token_type_settings";
        let rows: Vec<(String, String, String)> = with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .fetch_all(pool)
                .await
                .map_err(store_error)?
        });
        let mut settings = TypeSettings::default();
        for (level, tenant, token_type) in rows {
            let token_type = token_type_from(&token_type)?;
            match level.as_str() {
                "environment" => settings.default = Some(token_type),
                "tenant" => settings.tenants.push((tenant, token_type)),
                _ => return Err(corrupt("settings level")),
            }
        }
        settings.tenants.sort();
        let format: Option<(String,)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT value FROM environment_settings WHERE name = 'bearer_format'")
                .fetch_optional(pool)
                .await
                .map_err(store_error)?
        });
        settings.bearer_format = format
            .map(|(value,)| value.parse().map_err(|_| corrupt("bearer format")))
            .transpose()?;
        Ok(settings)
    }

    async fn save_bearer_format(&self, format: BearerFormat) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO environment_settings (name, value) VALUES ('bearer_format', $1) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(format.name())
            .execute(pool)
            .await
            .map(drop)
            .map_err(store_error)
        })
    }

    async fn save_token_type(
        &self,
        tenant: Option<&str>,
        token_type: TokenType,
    ) -> Result<(), StoreError> {
        let (level, tenant) = match tenant {
            None => ("environment", ""),
            Some(tenant) => ("tenant", tenant),
        };
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO token_type_settings (level, tenant, token_type) VALUES ($1, $2, $3) \
                 ON CONFLICT (level, tenant) DO UPDATE SET token_type = excluded.token_type",
            )
            .bind(level)
            .bind(tenant)
            .bind(token_type.name())
            .execute(pool)
            .await
            .map(drop)
            .map_err(store_error)
        })?;
        Ok(())
    }

    async fn load_portal_settings(&self) -> Result<PortalSettings, StoreError> {
        let sql = "SELECT document FROM portal_settings WHERE id = 1";
        let document: Option<(String,)> = with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .fetch_optional(pool)
                .await
                .map_err(store_error)?
        });
        match document {
            None => Ok(PortalSettings::default()),
            Some((document,)) => {
                serde_json::from_str(&document).map_err(|_| corrupt("portal settings"))
            }
        }
    }

    async fn save_portal_settings(&self, settings: &PortalSettings) -> Result<(), StoreError> {
        let document = serde_json::to_string(settings).map_err(|_| corrupt("portal settings"))?;
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO portal_settings (id, document) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET document = excluded.document",
            )
            .bind(&document)
            .execute(pool)
            .await
            .map(drop)
            .map_err(store_error)
        })?;
        Ok(())
    }

    async fn list_api_page(
        &self,
        tenant: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.page(tenant, Owner::Tenant, Start::Offset(offset), limit)
            .await
    }

    async fn list_page_after(
        &self,
        tenant: &str,
        after: &PageCursor,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.page(tenant, Owner::Any, Start::After(after), limit)
            .await
    }

    async fn list_user_page_after(
        &self,
        tenant: &str,
        user: &str,
        after: &PageCursor,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.page(tenant, Owner::User(user), Start::After(after), limit)
            .await
    }

    async fn list_api_page_after(
        &self,
        tenant: &str,
        after: &PageCursor,
        limit: u64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.page(tenant, Owner::Tenant, Start::After(after), limit)
            .await
    }

    async fn insert_portal_session(
        &self,
        session: &PortalSession,
        code: &TokenDigest,
        code_expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let permissions = serde_json::to_string(&session.permissions)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let created_at = to_nanos(session.created_at)?;
        let expires_at = to_nanos(session.expires_at)?;
        let revoked_at = option_to_nanos(session.revoked_at)?;
        let code_expires_at = to_nanos(code_expires_at)?;
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO portal_sessions (id, tenant, user_id, display_name, role, \
                 permissions, created_at, expires_at, revoked_at, code_digest, code_expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&session.id)
            .bind(&session.tenant)
            .bind(&session.user)
            .bind(&session.display_name)
            .bind(session.role.name())
            .bind(&permissions)
            .bind(created_at)
            .bind(expires_at)
            .bind(revoked_at)
            .bind(code.as_bytes().as_slice())
            .bind(code_expires_at)
            .execute(pool)
            .await
            .map(drop)
            .map_err(store_error)
        })
    }

    async fn redeem_portal_code(
        &self,
        code: &TokenDigest,
        secret: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<Option<PortalSession>, StoreError> {
        let now = to_nanos(now)?;
        // One statement spends the code: of two concurrent redemptions, one updates the row and
        // the other finds no code left. A late or revoked code is spent all the same.
        let sql = format!(
            "UPDATE portal_sessions SET code_digest = NULL, \
             secret_digest = CASE WHEN code_expires_at > $3 AND expires_at > $3 \
                                  AND revoked_at IS NULL THEN $2 ELSE NULL END \
             WHERE code_digest = $1 RETURNING {SESSION_COLUMNS}, secret_digest"
        );
        with_pool!(self, |pool| {
            let row = sqlx::query(&sql)
                .bind(code.as_bytes().as_slice())
                .bind(secret.as_bytes().as_slice())
                .bind(now)
                .fetch_optional(pool)
                .await
                .map_err(store_error)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let granted: Option<Vec<u8>> = row.try_get("secret_digest").map_err(store_error)?;
            if granted.is_none() {
                return Ok(None);
            }
            session_from_row(&row).map(Some)
        })
    }

    async fn find_portal_session(
        &self,
        secret: &TokenDigest,
    ) -> Result<Option<PortalSession>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM portal_sessions WHERE secret_digest = $1");
        with_pool!(self, |pool| {
            let row = sqlx::query(&sql)
                .bind(secret.as_bytes().as_slice())
                .fetch_optional(pool)
                .await
                .map_err(store_error)?;
            row.as_ref().map(session_from_row).transpose()
        })
    }

    async fn revoke_portal_session(
        &self,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let at = to_nanos(at)?;
        let revoked = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE portal_sessions SET revoked_at = $1, code_digest = NULL \
                 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(store_error)
        })?;
        Ok(revoked > 0)
    }

    async fn revoke_user_portal_sessions(
        &self,
        tenant: &str,
        user: &str,
        at: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let at = to_nanos(at)?;
        let revoked = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE portal_sessions SET revoked_at = $1, code_digest = NULL \
                 WHERE tenant = $2 AND user_id = $3 AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(tenant)
            .bind(user)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(store_error)
        })?;
        Ok(usize::try_from(revoked).unwrap_or(usize::MAX))
    }

    async fn revoked_credentials(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        let since = to_nanos(since)?;
        let rows: Vec<(String, Vec<u8>)> = with_pool!(self, |pool| {
            sqlx::query_as(REVOKED_CREDENTIALS_SQL)
                .bind(since)
                .fetch_all(pool)
                .await
                .map_err(store_error)?
        });
        rows.into_iter()
            .map(|(id, digest)| {
                Ok(RevocationEvent {
                    token_id: TokenId::new(id),
                    digest: Some(digest_from_bytes(digest)?),
                })
            })
            .collect()
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        let created_at = to_nanos(key.created_at)?;
        let retired_at = option_to_nanos(key.retired_at)?;
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO signing_keys \
                 (kid, algorithm, private_key, public_jwk, created_at, retired_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&key.kid)
            .bind(&key.algorithm)
            .bind(key.private_key.as_slice())
            .bind(&key.public_jwk)
            .bind(created_at)
            .bind(retired_at)
            .execute(pool)
            .await
            .map(drop)
            .map_err(store_error)
        })
    }

    async fn retire_signing_keys(&self, kid: &str, at: OffsetDateTime) -> Result<u64, StoreError> {
        let at = to_nanos(at)?;
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE signing_keys SET retired_at = $1 WHERE kid <> $2 AND retired_at IS NULL",
            )
            .bind(at)
            .bind(kid)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(store_error)
        })
    }

    async fn signing_keys(&self, since: OffsetDateTime) -> Result<Vec<SigningKey>, StoreError> {
        let since = to_nanos(since)?;
        type Row = (String, String, Vec<u8>, String, i64, Option<i64>);
        let rows: Vec<Row> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT kid, algorithm, private_key, public_jwk, created_at, retired_at \
                 FROM signing_keys WHERE retired_at IS NULL OR retired_at > $1 \
                 ORDER BY created_at DESC, kid DESC",
            )
            .bind(since)
            .fetch_all(pool)
            .await
            .map_err(store_error)?
        });
        rows.into_iter()
            .map(
                |(kid, algorithm, private_key, public_jwk, created_at, retired_at)| {
                    Ok(SigningKey {
                        kid,
                        algorithm,
                        private_key,
                        public_jwk,
                        created_at: from_nanos(created_at)?,
                        retired_at: option_from_nanos(retired_at)?,
                    })
                },
            )
            .collect()
    }

    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let at = to_nanos(entry.at)?;
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, tenant, target, source) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(at)
            .bind(&entry.actor)
            .bind(&entry.action)
            .bind(entry.tenant.as_deref())
            .bind(entry.target.as_deref())
            .bind(entry.source.as_deref())
            .execute(pool)
            .await
            .map(drop)
            .map_err(store_error)
        })
    }

    async fn list_audit(
        &self,
        tenant: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        const COLUMNS: &str = "at, actor, action, tenant, target, source";
        let sql = match tenant {
            None => format!("SELECT {COLUMNS} FROM audit_log ORDER BY id DESC LIMIT $1 OFFSET $2"),
            Some(_) => format!(
                "SELECT {COLUMNS} FROM audit_log WHERE tenant = $3 \
                 ORDER BY id DESC LIMIT $1 OFFSET $2"
            ),
        };
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        type Row = (
            i64,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = with_pool!(self, |pool| {
            let mut query = sqlx::query_as(&sql).bind(limit).bind(offset);
            if let Some(tenant) = tenant {
                query = query.bind(tenant);
            }
            query.fetch_all(pool).await.map_err(store_error)?
        });
        rows.into_iter()
            .map(|(at, actor, action, tenant, target, source)| {
                Ok(AuditEntry {
                    at: from_nanos(at)?,
                    actor,
                    action,
                    tenant,
                    target,
                    source,
                })
            })
            .collect()
    }

    async fn clear_token_type(&self, tenant: &str) -> Result<bool, StoreError> {
        let removed = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM token_type_settings WHERE level = 'tenant' AND tenant = $1")
                .bind(tenant)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
                .map_err(store_error)
        })?;
        Ok(removed > 0)
    }
}

/// The test databases of the integration tests, for the plan tests below.
#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod test_databases;

#[cfg(test)]
mod plan_tests {
    use m2m_core::{Expiry, NewToken, PageCursor, TokenFormat};

    use super::*;

    /// Bearer tokens minted from the credential: each carries its client id.
    const BEARER_TOKENS: usize = 300;

    /// A client credential that minted [`BEARER_TOKENS`] bearer tokens; its client id.
    async fn used_credential(store: &SqlStore) -> String {
        let format = TokenFormat::default();
        let now = OffsetDateTime::now_utc();
        let request = NewToken::new(TokenKind::ClientSecret, "acme", Expiry::NinetyDays);
        let credential = store.issue(&format, request, now).await.unwrap().record;
        let client_id = credential.client_id.clone().unwrap();
        for _ in 0..BEARER_TOKENS {
            let mut request = NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60));
            request.credential = Some((credential.id.clone(), client_id.clone()));
            store.issue(&format, request, now).await.unwrap();
        }
        assert_eq!(
            store.find_client(&client_id).await.unwrap(),
            Some(credential)
        );
        client_id
    }

    /// The statement of [`SqlStore::find_client`] for this client id (base62: no quoting).
    fn find_client_sql(client_id: &str) -> String {
        format!("SELECT {TOKEN_COLUMNS} {FIND_CLIENT_FROM}")
            .replace("$1", &format!("'{client_id}'"))
    }

    #[tokio::test]
    async fn sqlite_finds_a_client_without_reading_its_bearer_tokens() {
        let store = SqlStore::connect("sqlite::memory:").await.unwrap();
        let client_id = used_credential(&store).await;
        let Backend::Sqlite(pool) = &store.backend else {
            unreachable!("a SQLite store")
        };
        sqlx::query("ANALYZE").execute(pool).await.unwrap();
        let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!(
            "EXPLAIN QUERY PLAN {}",
            find_client_sql(&client_id)
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        let plan: Vec<String> = rows.into_iter().map(|row| row.3).collect();
        store.close().await;
        // The partial index holds credentials only: whether SQLite then sorts the one it
        // finds or reads it in order, it never reads a bearer token.
        assert!(
            plan.iter()
                .any(|line| line.contains("USING INDEX tokens_client_secret")),
            "{plan:?}"
        );
    }

    #[tokio::test]
    async fn postgres_finds_a_client_without_reading_its_bearer_tokens() {
        let (url, name) = test_databases::create_database().await;
        let store = SqlStore::connect(&url).await.unwrap();
        let client_id = used_credential(&store).await;
        let Backend::Postgres(pool) = &store.backend else {
            unreachable!("a PostgreSQL store")
        };
        sqlx::query("ANALYZE tokens").execute(pool).await.unwrap();
        let rows: Vec<(String,)> = sqlx::query_as(&format!(
            "EXPLAIN (ANALYZE, COSTS OFF) {}",
            find_client_sql(&client_id)
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        let plan: Vec<String> = rows.into_iter().map(|row| row.0).collect();
        store.close().await;
        test_databases::drop_database(&name).await;
        assert!(
            plan.iter()
                .any(|line| line.contains("tokens_client_secret")),
            "{plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|line| line.contains("Rows Removed by Filter")),
            "{plan:?}"
        );
    }

    /// Tokens of the keyset plan tests: a tenant's, a fifth of them alice's, a fifth minted
    /// bearer tokens, among another tenant's.
    const LISTED_TOKENS: i64 = 1500;

    /// A store holding [`LISTED_TOKENS`]; the cursor of an early token of `acme`, so that many
    /// records follow it.
    async fn listed_tokens(store: &SqlStore) -> PageCursor {
        let t0 = OffsetDateTime::now_utc();
        let format = TokenFormat::default();
        let credential = NewToken::new(TokenKind::ClientSecret, "acme", Expiry::NinetyDays);
        let credential = store.issue(&format, credential, t0).await.unwrap().record;
        let mut middle = None;
        for n in 0..LISTED_TOKENS {
            let tenant = if n % 2 == 0 { "acme" } else { "globex" };
            let mut request = NewToken::new(TokenKind::AccessToken, tenant, Expiry::NinetyDays);
            match n % 5 {
                0 => request.user = Some("alice".to_owned()),
                1 => {
                    request.kind = TokenKind::BearerToken;
                    request.credential =
                        Some((credential.id.clone(), credential.client_id.clone().unwrap()));
                }
                _ => {}
            }
            let at = t0 + time::Duration::milliseconds(n);
            let record = store.issue(&format, request, at).await.unwrap().record;
            if n == LISTED_TOKENS / 10 {
                middle = Some(PageCursor::of(&record));
            }
        }
        middle.unwrap()
    }

    /// The keyset statement of each listing, its values written in (none needs quoting), and
    /// the index it must be read through.
    fn keyset_statements(cursor: &PageCursor) -> Vec<(String, &'static str)> {
        [
            (Owner::Any, "tokens_tenant_created"),
            (Owner::User("alice"), "tokens_tenant_user"),
            (Owner::Tenant, "tokens_tenant_api"),
        ]
        .into_iter()
        .map(|(owner, index)| {
            let mut values = vec!["'acme'".to_owned()];
            if let Owner::User(user) = owner {
                values.push(format!("'{user}'"));
            }
            values.push(cursor.unix_nanos().to_string());
            values.push(format!("'{}'", cursor.id));
            values.push("50".to_owned());
            let mut sql = page_sql(owner, Start::After(cursor));
            for (n, value) in values.iter().enumerate().rev() {
                sql = sql.replace(&format!("${}", n + 1), value);
            }
            (sql, index)
        })
        .collect()
    }

    #[tokio::test]
    async fn sqlite_seeks_keyset_pages_in_the_listing_indexes() {
        let store = SqlStore::connect("sqlite::memory:").await.unwrap();
        let cursor = listed_tokens(&store).await;
        let Backend::Sqlite(pool) = &store.backend else {
            unreachable!("a SQLite store")
        };
        sqlx::query("ANALYZE").execute(pool).await.unwrap();
        for (sql, index) in keyset_statements(&cursor) {
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .fetch_all(pool)
                    .await
                    .unwrap();
            let plan: Vec<String> = rows.into_iter().map(|row| row.3).collect();
            // Sought by the row comparison in the index, read in its order: no skipped
            // records, no sort. For the API tokens SQLite may prefer the user index with
            // `user_id IS NULL` as its equality: also in order, also sought.
            let seek = |index: &str| {
                plan.iter().any(|line| {
                    line.contains(&format!("USING INDEX {index} "))
                        && line.contains("(created_at,id)>(?,?)")
                })
            };
            assert!(
                seek(index) || (index == "tokens_tenant_api" && seek("tokens_tenant_user")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|line| line.contains("TEMP B-TREE")),
                "{sql}: {plan:?}"
            );
        }
        store.close().await;
    }

    #[tokio::test]
    async fn postgres_seeks_keyset_pages_in_the_listing_indexes() {
        let (url, name) = test_databases::create_database().await;
        let store = SqlStore::connect(&url).await.unwrap();
        let cursor = listed_tokens(&store).await;
        let Backend::Postgres(pool) = &store.backend else {
            unreachable!("a PostgreSQL store")
        };
        sqlx::query("ANALYZE tokens").execute(pool).await.unwrap();
        let mut plans = Vec::new();
        for (sql, index) in keyset_statements(&cursor) {
            let rows: Vec<(String,)> =
                sqlx::query_as(&format!("EXPLAIN (ANALYZE, COSTS OFF) {sql}"))
                    .fetch_all(pool)
                    .await
                    .unwrap();
            plans.push((
                sql,
                index,
                rows.into_iter().map(|row| row.0).collect::<Vec<_>>(),
            ));
        }
        store.close().await;
        test_databases::drop_database(&name).await;
        for (sql, index, plan) in plans {
            assert!(
                plan.iter().any(|line| line.contains(index)),
                "{sql}: {plan:?}"
            );
            assert!(
                plan.iter()
                    .any(|line| line.contains("Index Cond")
                        && line.contains("ROW(created_at, id) >")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|line| line.contains("Sort") || line.contains("Rows Removed by Filter")),
                "{sql}: {plan:?}"
            );
        }
    }
}
