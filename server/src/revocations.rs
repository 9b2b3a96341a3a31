//! `GET /v1/revocations`: every revocation the service learns of, as server-sent events, for
//! resource servers to evict revoked tokens from their caches (`m2m-remote` follows it).
//!
//! The feed subscribes a [`RevocationListener`] to the store, so it carries every revocation
//! the store announces: `DELETE /v1/tenants/{tenant}/tokens/{id}` and the bearer tokens revoked
//! with their credential, revocations by the CLI or other service instances that the store
//! hears of (on PostgreSQL, through `LISTEN`), whatever made them. Events are fanned out to
//! every open stream through a broadcast channel; a stream that falls behind by more than
//! [`BUFFERED_EVENTS`] skips the events it missed (its cache TTL then bounds how long those
//! tokens may still pass), and nothing is replayed to a stream opened later.
//!
//! The caller authenticates as for introspection (scope `m2m:introspect`). Each revocation is
//! one event, and a comment is sent every [`KEEP_ALIVE`] so that idle connections stay open and
//! a dead one is noticed:
//!
//! ```text
//! event: revoked
//! data: {"token_id":"tok_…","digest":"<64 hex characters of SHA-256>"}
//!
//! : keepalive
//!
//! ```
//!
//! The data is an [`m2m_core::wire::RevokedEventData`], the shape `m2m-remote` reads.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use m2m_core::wire::{REVOKED_EVENT, RevokedEventData};
use m2m_core::{RevocationEvent, RevocationListener, TokenStore};
use tokio::sync::broadcast;

use crate::client_auth::authenticate_resource_server;
use crate::introspect::Introspection;

/// Events kept for streams that are slow to read.
pub const BUFFERED_EVENTS: usize = 1024;

/// How often an idle stream receives a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The revocations of one store, fanned out to the open streams.
pub(crate) struct RevocationFeed {
    shared: Arc<Shared>,
    /// Keeps the subscription alive: stores hold their listeners weakly.
    _subscription: Arc<dyn RevocationListener>,
}

impl std::fmt::Debug for RevocationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationFeed")
            .field("open_streams", &self.open_streams())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Shared {
    sender: broadcast::Sender<RevocationEvent>,
    open_streams: AtomicUsize,
    events_sent: AtomicU64,
}

/// Hands the store's revocation events to the broadcast channel.
struct Forward(Arc<Shared>);

impl RevocationListener for Forward {
    fn revoked(&self, event: &RevocationEvent) {
        // No open stream is not an error: nobody needs the event.
        let _ = self.0.sender.send(event.clone());
    }
}

impl RevocationFeed {
    /// A feed subscribed to `store`'s revocation events.
    pub(crate) fn new(store: &dyn TokenStore) -> Self {
        let (sender, _) = broadcast::channel(BUFFERED_EVENTS);
        let shared = Arc::new(Shared {
            sender,
            open_streams: AtomicUsize::new(0),
            events_sent: AtomicU64::new(0),
        });
        let subscription: Arc<dyn RevocationListener> = Arc::new(Forward(Arc::clone(&shared)));
        if !store.subscribe(Arc::clone(&subscription)) {
            tracing::warn!(
                "the token store announces no revocations; GET /v1/revocations stays silent"
            );
        }
        Self {
            shared,
            _subscription: subscription,
        }
    }

    /// Streams open now.
    pub(crate) fn open_streams(&self) -> usize {
        self.shared.open_streams.load(Ordering::Relaxed)
    }

    /// Events written to streams so far (one per stream and event).
    pub(crate) fn events_sent(&self) -> u64 {
        self.shared.events_sent.load(Ordering::Relaxed)
    }
}

/// Counts a stream as open until it is dropped.
struct OpenStream(Arc<Shared>);

impl OpenStream {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.open_streams.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(shared))
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The `data` of a `revoked` event.
fn data(event: &RevocationEvent) -> String {
    // A token id and a hex digest always serialize; an empty event would be ignored.
    serde_json::to_string(&RevokedEventData::from(event)).unwrap_or_default()
}

/// `GET /v1/revocations`.
pub(crate) async fn stream(State(state): State<Introspection>, headers: HeaderMap) -> Response {
    let caller = match authenticate_resource_server(state.app().admin_verifier(), &headers).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    tracing::debug!(caller = %caller, "revocation stream opened");
    let shared = &state.feed().shared;
    let receiver = shared.sender.subscribe();
    let open = OpenStream::new(shared);
    let events =
        futures_util::stream::unfold((receiver, open), |(mut receiver, open)| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => {
                        open.0.events_sent.fetch_add(1, Ordering::Relaxed);
                        let event = Event::default().event(REVOKED_EVENT).data(data(&event));
                        return Some((Ok::<_, Infallible>(event), (receiver, open)));
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "a revocation stream fell behind and skipped events"
                        );
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keepalive"))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use m2m_core::{TokenDigest, TokenId};

    #[test]
    fn event_data_is_what_the_remote_store_reads() {
        let digest = TokenDigest::of("m2m_at_x");
        let event = RevocationEvent {
            token_id: TokenId::new("tok_1"),
            digest: Some(digest),
        };
        let value: serde_json::Value = serde_json::from_str(&data(&event)).unwrap();
        assert_eq!(value["token_id"], "tok_1");
        assert_eq!(value["digest"], digest.to_hex());
        let read: RevokedEventData = serde_json::from_str(&data(&event)).unwrap();
        assert_eq!(read.to_event(), Some(event));
    }
}
