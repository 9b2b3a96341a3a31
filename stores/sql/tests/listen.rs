//! Revocations reach every process on one PostgreSQL database through `LISTEN`/`NOTIFY`,
//! also after the listening connection was killed.

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
    loop {
        match verifier.verify(&headers, &[]).await {
            Err(rejection) => {
                assert_eq!(rejection.kind(), RejectionKind::InvalidToken);
                return start.elapsed();
            }
            Ok(_) if start.elapsed() > Duration::from_secs(10) => {
                panic!("the revoked token still passes after 10 s")
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
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
            // Let the listener connect before the first revocation.
            tokio::time::sleep(Duration::from_millis(300)).await;

            let delay = revocation_delay(&admin, &verifier).await;
            eprintln!("revocation seen by the other instance after {delay:?}");
            assert!(delay < Duration::from_secs(1), "took {delay:?}");

            let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
            let killed: i64 = sqlx::query_scalar(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
            )
            .fetch_one(&mut connection)
            .await
            .unwrap();
            assert_eq!(killed, 1, "one listening connection");
            connection.close().await.ok();
            tokio::time::sleep(Duration::from_millis(300)).await;

            let delay = revocation_delay(&admin, &verifier).await;
            eprintln!("revocation seen after the listener was killed: {delay:?}");
            assert!(delay < Duration::from_secs(2), "took {delay:?}");
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
