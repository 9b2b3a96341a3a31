//! `GET /v1/revocations`: every revocation the service learns of, as server-sent events, for
//! resource servers to evict revoked tokens from their caches (`m2m-remote` follows it).
//!
//! The feed subscribes a [`RevocationListener`] to the store, so it carries every revocation
//! the store announces: `DELETE /v1/tenants/{tenant}/tokens/{id}` and the bearer tokens revoked
//! with their credential, revocations by the CLI or other service instances that the store
//! hears of (on PostgreSQL, through `LISTEN`), whatever made them.
//!
//! Nothing is lost silently:
//!
//! - every event has an id, `<instance>-<number>`; the last [`BUFFERED_EVENTS`] are kept, and a
//!   follower that reconnects with `Last-Event-ID` gets what it missed replayed first;
//! - when that cannot be done — no `Last-Event-ID` (a first connection), an id of another
//!   instance or of before a restart, an id older than what is kept, or a stream that fell
//!   behind the live events — the stream sends a [`RESET_EVENT`] instead, and the follower
//!   drops its whole cache rather than serve a token that might be revoked;
//! - the stream belongs to the resource server's credential: it closes as soon as that
//!   credential is revoked, or, checked every [`KEEP_ALIVE`], has expired.
//!
//! The caller authenticates as for introspection (scope `m2m:introspect`). A comment is sent
//! every [`KEEP_ALIVE`] so that idle connections stay open and a dead one is noticed:
//!
//! ```text
//! event: reset
//! id: 3q9ZfQ-41
//! data: {}
//!
//! event: revoked
//! id: 3q9ZfQ-42
//! data: {"token_id":"tok_…","digest":"<64 hex characters of SHA-256>"}
//!
//! : keepalive
//!
//! ```
//!
//! The data of a revocation is an [`m2m_core::wire::RevokedEventData`], the shape `m2m-remote`
//! reads.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use m2m_core::wire::{RESET_EVENT, REVOKED_EVENT, RevokedEventData};
use m2m_core::{RevocationEvent, RevocationListener, TokenId, TokenStore};
use tokio::sync::broadcast;

use crate::client_auth::authenticate_resource_server;
use crate::introspect::Introspection;

/// Events kept for replay to followers that reconnect, and for streams that are slow to read.
pub const BUFFERED_EVENTS: usize = 4096;

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
    /// Names this feed in event ids: an id of another instance, or of before a restart, is not
    /// this feed's to replay from.
    instance: String,
    log: Mutex<Log>,
    sender: broadcast::Sender<Numbered>,
    open_streams: AtomicUsize,
    events_sent: AtomicU64,
}

/// A revocation with its number in this feed.
type Numbered = (u64, RevocationEvent);

/// The last events, for replay.
#[derive(Debug, Default)]
struct Log {
    /// The number of the latest event; 0 before the first.
    last: u64,
    kept: VecDeque<Numbered>,
}

/// Hands the store's revocation events to the log and the broadcast channel.
struct Forward(Arc<Shared>);

impl RevocationListener for Forward {
    fn revoked(&self, event: &RevocationEvent) {
        let mut log = self.0.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.last += 1;
        let numbered = (log.last, event.clone());
        if log.kept.len() == BUFFERED_EVENTS {
            log.kept.pop_front();
        }
        log.kept.push_back(numbered.clone());
        // Sent under the lock, so that a stream opening now sees each event once: in its replay
        // or live. No open stream is not an error: nobody needs the event.
        let _ = self.0.sender.send(numbered);
    }
}

/// Where a follower resumes: the events to replay, or a reset.
enum Resume {
    Replay(Vec<Numbered>),
    Reset { at: u64 },
}

impl Shared {
    /// The id of event `number`.
    fn id(&self, number: u64) -> String {
        format!("{}-{number}", self.instance)
    }

    /// Opens a stream for a follower that last saw `last_event_id`: what to send first, and
    /// the live events after it.
    fn open(&self, last_event_id: Option<&str>) -> (Resume, broadcast::Receiver<Numbered>) {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let receiver = self.sender.subscribe();
        let seen = last_event_id
            .and_then(|id| id.rsplit_once('-'))
            .filter(|(instance, _)| *instance == self.instance)
            .and_then(|(_, number)| number.parse::<u64>().ok())
            .filter(|seen| *seen <= log.last);
        let oldest_kept = log.kept.front().map_or(log.last + 1, |(number, _)| *number);
        let resume = match seen {
            // Everything after `seen` is still kept.
            Some(seen) if seen + 1 >= oldest_kept => Resume::Replay(
                log.kept
                    .iter()
                    .filter(|(number, _)| *number > seen)
                    .cloned()
                    .collect(),
            ),
            _ => Resume::Reset { at: log.last },
        };
        (resume, receiver)
    }
}

impl RevocationFeed {
    /// A feed subscribed to `store`'s revocation events.
    pub(crate) fn new(store: &dyn TokenStore) -> Self {
        let (sender, _) = broadcast::channel(BUFFERED_EVENTS);
        let instance = TokenId::generate()
            .as_str()
            .trim_start_matches("tok_")
            .to_owned();
        let shared = Arc::new(Shared {
            instance,
            log: Mutex::default(),
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

/// A `revoked` event.
fn revoked_event(shared: &Shared, (number, event): &Numbered) -> Event {
    shared.events_sent.fetch_add(1, Ordering::Relaxed);
    Event::default()
        .event(REVOKED_EVENT)
        .id(shared.id(*number))
        .data(data(event))
}

/// A `reset` event: whatever the follower cached may be stale; resume after `at`.
fn reset_event(shared: &Shared, at: u64) -> Event {
    Event::default()
        .event(RESET_EVENT)
        .id(shared.id(at))
        .data("{}")
}

/// What the stream task carries from one event to the next.
struct Streaming {
    state: Introspection,
    caller: TokenId,
    pending: VecDeque<Event>,
    receiver: broadcast::Receiver<Numbered>,
    check: tokio::time::Interval,
    shutting_down: tokio::sync::watch::Receiver<bool>,
    _open: OpenStream,
}

/// `GET /v1/revocations`.
#[utoipa::path(
    get,
    path = "/v1/revocations",
    operation_id = "follow_revocations",
    tag = "resource servers",
    summary = "Revocations as server-sent events (`revoked`, `reset`)",
    params(("Last-Event-ID" = Option<String>, Header,
            description = "The id of the last event seen: what came after it is replayed, or a \
                           `reset` event is sent when that cannot be done")),
    security(
        ("api_key" = ["m2m:introspect"]), ("client_credentials" = ["m2m:introspect"]),
        ("basic" = []),
    ),
    responses((
        status = 200,
        description = "The event stream: `event: revoked` with `{\"token_id\", \"digest\"}`, \
                       `event: reset` (drop the whole cache), and keep-alive comments",
        content_type = "text/event-stream",
        body = String,
    )),
)]
pub(crate) async fn stream(State(state): State<Introspection>, headers: HeaderMap) -> Response {
    let caller = match authenticate_resource_server(state.app().admin_verifier(), &headers).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok());
    let shared = Arc::clone(&state.feed().shared);
    let (resume, receiver) = shared.open(last_event_id);
    let pending: VecDeque<Event> = match resume {
        Resume::Replay(events) => {
            tracing::debug!(caller = %caller, replayed = events.len(), "revocation stream resumed");
            events.iter().map(|e| revoked_event(&shared, e)).collect()
        }
        Resume::Reset { at } => {
            tracing::debug!(caller = %caller, "revocation stream opened from a reset");
            let mut pending = VecDeque::from([reset_event(&shared, at)]);
            pending.extend(recent_credential_revocations(&state).await);
            pending
        }
    };
    let mut check = tokio::time::interval(KEEP_ALIVE);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.reset();
    let shutting_down = state.app().shutting_down();
    let streaming = Streaming {
        shutting_down,
        state,
        caller,
        pending,
        receiver,
        check,
        _open: OpenStream::new(&shared),
    };
    let events = futures_util::stream::unfold(streaming, |mut s| async move {
        loop {
            if let Some(event) = s.pending.pop_front() {
                return Some((Ok::<_, Infallible>(event), s));
            }
            let shared = Arc::clone(&s.state.feed().shared);
            if *s.shutting_down.borrow_and_update() {
                return None;
            }
            tokio::select! {
                _ = s.shutting_down.changed() => return None,
                received = s.receiver.recv() => match received {
                    Ok(numbered) => {
                        if numbered.1.token_id == s.caller {
                            tracing::info!(caller = %s.caller, "revocation stream closed: its credential was revoked");
                            return None;
                        }
                        s.pending.push_back(revoked_event(&shared, &numbered));
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            caller = %s.caller,
                            missed,
                            "a revocation stream fell behind; it is told to drop its cache"
                        );
                        let at = shared.log.lock().unwrap_or_else(PoisonError::into_inner).last;
                        s.pending.push_back(reset_event(&shared, at));
                        let again = recent_credential_revocations(&s.state).await;
                        s.pending.extend(again);
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = s.check.tick() => {
                    if !credential_is_active(&s.state, &s.caller).await {
                        tracing::info!(caller = %s.caller, "revocation stream closed: its credential is no longer active");
                        return None;
                    }
                }
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keepalive"))
        .into_response()
}

/// The revocations of the client credentials revoked within the longest bearer lifetime, as
/// events without ids, sent after a reset: a follower that dropped its cache still refuses the
/// JWTs minted from them, which only their credential's revocation names. A store that cannot
/// answer sends none (logged); the follower then relies on what it remembered.
async fn recent_credential_revocations(state: &Introspection) -> Vec<Event> {
    let app = state.app();
    let window = crate::jwt::longest_lifetime(app.options());
    match app.store().revoked_credentials(app.now() - window).await {
        Ok(events) => events
            .iter()
            .map(|event| Event::default().event(REVOKED_EVENT).data(data(event)))
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the recent credential revocations after a reset");
            Vec::new()
        }
    }
}

/// Whether the stream's credential may still follow it; a store that cannot answer keeps the
/// stream (the next check asks again).
async fn credential_is_active(state: &Introspection, caller: &TokenId) -> bool {
    match state.app().store().get(caller).await {
        Ok(Some(record)) => record.is_active(state.app().now()),
        Ok(None) => false,
        Err(error) => {
            tracing::warn!(%error, "cannot re-check a revocation stream's credential");
            true
        }
    }
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
