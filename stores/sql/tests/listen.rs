//! Revocations reach every process on one PostgreSQL database through `LISTEN`/`NOTIFY`,
//! also after the listening connection was killed, and a cache that may have missed some while
//! it was away is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};
use m2m_core::{
    CacheSettings, Expiry, NewToken, RejectionKind, TokenFormat, TokenKind, TokenStore, Verifier,
};
use m2m_sql::SqlStore;
use sqlx::Connection as _;

#[allow(dead_code)]
mod common;

/// How long the test waits for what must happen before it calls the run hung. A guard against
/// hanging, not a speed requirement: the delays are printed for the report.
const HANG_GUARD: Duration = Duration::from_secs(30);

fn api_key(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_str(token).unwrap());
    headers
}

/// Issues a token through `admin`, has `verifier` cache it, revokes it through `admin`, and
/// returns how long `verifier` took to refuse it.
async fn revocation_delay(admin: &SqlStore, verifier: &Verifier) -> Duration {
    let now = time::OffsetDateTime::now_utc();
    let issued = admin
        .issue(
            &TokenFormat::default(),
            NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
            now,
        )
        .await
        .unwrap();
    let headers = api_key(issued.token.expose_secret());
    let cached = verifier.cached_entries();
    assert!(verifier.verify(&headers, &[]).await.is_ok());
    assert_eq!(verifier.cached_entries(), cached + 1, "the token is cached");

    let start = Instant::now();
    assert!(admin.revoke(&issued.record.id, now).await.unwrap());
    let refused = async {
        loop {
            match verifier.verify(&headers, &[]).await {
                Err(rejection) => return rejection,
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    };
    let rejection = tokio::time::timeout(HANG_GUARD, refused)
        .await
        .expect("the revocation never reached the other instance");
    assert_eq!(rejection.kind(), RejectionKind::InvalidToken);
    start.elapsed()
}

/// The process ids of the connections listening on this database.
async fn listeners(connection: &mut sqlx::PgConnection) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(connection)
    .await
    .unwrap()
}

/// Waits until a listening connection other than `except` exists; returns its process id.
async fn listening(connection: &mut sqlx::PgConnection, except: Option<i32>) -> i32 {
    let found = async {
        loop {
            if let Some(pid) = listeners(connection)
                .await
                .into_iter()
                .find(|pid| Some(*pid) != except)
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(HANG_GUARD, found)
        .await
        .expect("the listener never connected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_another_instance_and_survive_a_killed_listener() {
    let (url, name) = common::create_database().await;
    let outcome = tokio::spawn({
        let url = url.clone();
        async move {
            // Two stores with their own pools: what two processes on one database have.
            let admin = SqlStore::connect(&url).await.unwrap();
            let instance = SqlStore::connect(&url).await.unwrap();
            let verifier = Verifier::builder(Arc::new(instance.clone()))
                .cache(CacheSettings {
                    // Only the event can evict within the test's time.
                    ttl: Duration::from_secs(3600),
                    ..CacheSettings::default()
                })
                .build();
            // The listener connects in the background; a notification sent before is lost.
            let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
            let first = listening(&mut connection, None).await;
            assert_eq!(listeners(&mut connection).await, [first], "one listener");

            let delay = revocation_delay(&admin, &verifier).await;
            eprintln!("revocation seen by the other instance after {delay:?}");

            // A token cached before the listener dies: a revocation sent while it is away
            // would be missed, so the cache must not keep it.
            let now = time::OffsetDateTime::now_utc();
            let kept = admin
                .issue(
                    &TokenFormat::default(),
                    NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never),
                    now,
                )
                .await
                .unwrap();
            let kept = api_key(kept.token.expose_secret());
            assert!(verifier.verify(&kept, &[]).await.is_ok());
            assert!(verifier.cached_entries() >= 1);

            let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(first)
                .fetch_one(&mut connection)
                .await
                .unwrap();
            assert!(killed, "the listening connection was killed");
            listening(&mut connection, Some(first)).await;
            let dropped = async {
                while verifier.cached_entries() > 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            tokio::time::timeout(HANG_GUARD, dropped)
                .await
                .expect("the cache was dropped after the gap");
            connection.close().await.ok();

            let delay = revocation_delay(&admin, &verifier).await;
            eprintln!("revocation seen after the listener was killed: {delay:?}");
            admin.close().await;
            instance.close().await;
        }
    })
    .await;
    common::drop_database(&name).await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}
