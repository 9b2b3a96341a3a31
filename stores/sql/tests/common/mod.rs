//! PostgreSQL databases for the tests: one fresh database per test, dropped afterwards.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection as _;
use time::OffsetDateTime;

/// The local PostgreSQL of a development machine, used when no URL is given outside CI.
pub(crate) const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A name no other test of any run uses.
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{nanos}_{n}", std::process::id())
}

/// The PostgreSQL admin URL the tests create their databases from.
pub(crate) fn postgres_admin_url() -> String {
    match std::env::var("M2M_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var_os("CI").is_some() => panic!(
            "M2M_TEST_POSTGRES_URL is not set while CI is: the PostgreSQL store tests must run \
             in CI, set it to an admin URL such as {LOCAL_POSTGRES}"
        ),
        _ => LOCAL_POSTGRES.to_owned(),
    }
}

/// `url` with its database name replaced by `database`.
pub(crate) fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    format!("{scheme}://{authority}/{database}{query}")
}

/// A fresh PostgreSQL database, dropped by [`drop_database`].
pub(crate) async fn create_database() -> (String, String) {
    let admin = postgres_admin_url();
    let mut connection = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|error| {
        panic!(
            "\n\n*** PostgreSQL is unreachable ({error}).\n*** The PostgreSQL store tests never \
             skip: start PostgreSQL or set M2M_TEST_POSTGRES_URL to an admin URL.\n\n"
        )
    });
    let name = unique_name("m2m_test");
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.ok();
    (with_database(&admin, &name), name)
}

pub(crate) async fn drop_database(name: &str) {
    if let Ok(mut connection) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut connection)
            .await;
        connection.close().await.ok();
    }
}
