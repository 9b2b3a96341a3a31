//! Revocations from other processes: `LISTEN` on PostgreSQL.
//!
//! Every process that verifies with a [`SqlStore`](crate::SqlStore) on PostgreSQL follows the
//! [`REVOCATION_CHANNEL`](crate::REVOCATION_CHANNEL) on a connection of its own and hands each
//! notification to the store's subscribers, so a token revoked through any instance is evicted
//! from every instance's cache within moments. The listener reconnects by itself after the
//! database restarts or its connection is killed; notifications sent while it was away are lost,
//! so once it is back it tells every subscriber it lost track
//! ([`RevocationListener::lost_track`](m2m_core::RevocationListener::lost_track)), and caches
//! drop what they hold rather than serve a token that might have been revoked meanwhile. It
//! then announces again the client credentials revoked since the gap began (and a minute
//! before), so that JWTs minted from them, which no cache entry or row names, stay refused.

use std::sync::{Arc, Weak};
use std::time::Duration;

use m2m_core::{RevocationEvent, TokenDigest, TokenId};
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::store::{Listeners, REVOCATION_CHANNEL, announce_to, lost_track_to};

/// The longest pause between two attempts to reach the database.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The notification payload: `"<token id> <digest hex> <origin>"`, the digest possibly empty.
pub(crate) fn payload(event: &RevocationEvent, origin: &str) -> String {
    let digest = event.digest.map(|d| d.to_hex()).unwrap_or_default();
    format!("{} {digest} {origin}", event.token_id)
}

/// Reads a payload back into the event and the origin that sent it.
pub(crate) fn parse_payload(payload: &str) -> Option<(RevocationEvent, &str)> {
    let mut parts = payload.split(' ');
    let id = parts.next().filter(|id| !id.is_empty())?;
    let digest = parts.next().unwrap_or_default();
    let origin = parts.next().unwrap_or_default();
    Some((
        RevocationEvent {
            token_id: TokenId::new(id),
            digest: TokenDigest::from_hex(digest),
        },
        origin,
    ))
}

/// Spawns the task that follows the channel for as long as the store's listeners exist.
///
/// Without a tokio runtime nothing is spawned: revocations made in this process still reach the
/// subscribers, others only through the cache TTL.
pub(crate) fn follow_revocations(pool: PgPool, listeners: Weak<Listeners>, origin: Arc<str>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut listener: Option<PgListener> = None;
        // Since when notifications may have been missed, if they may.
        let mut gap: Option<time::OffsetDateTime> = None;
        while listeners.strong_count() > 0 && !pool.is_closed() {
            let current = match listener.as_mut() {
                Some(current) => current,
                None => match subscribe(&pool).await {
                    Ok(fresh) => {
                        tracing::debug!(channel = REVOCATION_CHANNEL, "listening for revocations");
                        if let Some(since) = gap.take()
                            && let Some(listeners) = listeners.upgrade()
                        {
                            lost_track_to(&listeners);
                            match revoked_credentials(&pool, since - GAP_MARGIN).await {
                                Ok(events) => announce_to(&listeners, &events),
                                Err(error) => tracing::warn!(
                                    %error,
                                    "cannot read the credentials revoked during the gap"
                                ),
                            }
                        }
                        listener.insert(fresh)
                    }
                    Err(error) => {
                        tracing::warn!(
                            %error,
                            retry_in = ?backoff,
                            "cannot LISTEN for revocations; a revoked token may pass until its \
                             cache entry expires"
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            // Wake now and then to notice that the store was dropped.
            match tokio::time::timeout(Duration::from_secs(1), current.try_recv()).await {
                Err(_elapsed) => {}
                Ok(Ok(Some(notification))) => {
                    backoff = Duration::from_millis(100);
                    let Some(listeners) = listeners.upgrade() else {
                        break;
                    };
                    // This store's own revocations were announced when they were made.
                    match parse_payload(notification.payload()) {
                        Some((event, from)) if from != &*origin => {
                            announce_to(&listeners, &[event]);
                        }
                        Some(_) => {}
                        None => tracing::warn!(
                            channel = REVOCATION_CHANNEL,
                            "ignored a revocation notification without a token id"
                        ),
                    }
                }
                // The connection was lost; the next call reconnects and listens again.
                Ok(Ok(None)) => {
                    tracing::warn!(
                        "the LISTEN connection for revocations was lost; reconnecting, and \
                         caches drop what they hold"
                    );
                    // Dropped at once, and again once listening anew: what was sent in
                    // between is lost, and so is anything cached meanwhile.
                    if let Some(listeners) = listeners.upgrade() {
                        lost_track_to(&listeners);
                    }
                    listener = None;
                    gap.get_or_insert_with(time::OffsetDateTime::now_utc);
                }
                Ok(Err(error)) => {
                    tracing::warn!(
                        %error,
                        "following revocations failed; reconnecting, and caches drop what \
                         they hold once back"
                    );
                    listener = None;
                    gap.get_or_insert_with(time::OffsetDateTime::now_utc);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    });
}

/// How far before a gap began the credential revocations are announced again (clocks of the
/// instances that revoke may differ a little).
const GAP_MARGIN: time::Duration = time::Duration::minutes(1);

/// The client credentials revoked after `since`, oldest first.
async fn revoked_credentials(
    pool: &PgPool,
    since: time::OffsetDateTime,
) -> Result<Vec<RevocationEvent>, sqlx::Error> {
    let since = i64::try_from(since.unix_timestamp_nanos()).unwrap_or(i64::MIN);
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(crate::store::REVOKED_CREDENTIALS_SQL)
        .bind(since)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, digest)| RevocationEvent {
            token_id: TokenId::new(id),
            digest: <[u8; 32]>::try_from(digest.as_slice())
                .ok()
                .map(TokenDigest::from_bytes),
        })
        .collect())
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(REVOCATION_CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let event = RevocationEvent {
            token_id: TokenId::new("tok_1"),
            digest: Some(TokenDigest::of("x")),
        };
        let text = payload(&event, "tok_origin");
        assert_eq!(parse_payload(&text), Some((event, "tok_origin")));
        let (without, origin) = parse_payload("tok_2  tok_origin").unwrap();
        assert_eq!((without.digest, origin), (None, "tok_origin"));
        assert_eq!(parse_payload("tok_3").unwrap().0.token_id.as_str(), "tok_3");
        assert!(parse_payload("").is_none());
    }
}
