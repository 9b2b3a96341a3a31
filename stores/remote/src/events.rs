//! Following the token service's revocation events (server-sent events) and handing them to
//! every subscribed cache.
//!
//! The event data is [`RevokedEventData`], the shape the service writes. A connection that
//! fails, is refused or breaks is logged at warn level with its cause before the next attempt,
//! which sends the last event id seen (`Last-Event-ID`) so that the service replays what was
//! missed; when it cannot, it sends a reset event and every subscribed cache is dropped.
//! Reconnects, gaps (reset events), revocation events and the open stream are counted
//! ([`metrics`](crate::metrics)).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use m2m_core::wire::{RESET_EVENT, REVOKED_EVENT, RevokedEventData};
use m2m_core::{RevocationEvent, RevocationListener};
use reqwest::header::{ACCEPT, CACHE_CONTROL, HeaderValue};
use reqwest::{Client, StatusCode, Url};

use crate::credential::Authorization;
use crate::metrics::{StreamEvent, count};

/// The first wait before reconnecting to the event stream.
pub(crate) const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// The longest wait before reconnecting to the event stream.
pub(crate) const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// The longest line accepted in the event stream; a longer one drops the connection.
const MAX_LINE_LEN: usize = 64 * 1024;

/// The listeners and the state of the stream, shared by the store and its follower task.
#[derive(Default)]
pub(crate) struct Subscribers {
    listeners: RwLock<Vec<Weak<dyn RevocationListener>>>,
    connected: AtomicBool,
}

impl Subscribers {
    pub(crate) fn add(&self, listener: &Arc<dyn RevocationListener>) {
        self.listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(listener));
    }

    pub(crate) fn count(&self) -> usize {
        self.listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Tells every live listener that revocations may have been missed.
    fn lost_track(&self) {
        let listeners = self
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for listener in listeners.iter().filter_map(Weak::upgrade) {
            listener.lost_track();
        }
    }

    /// Hands `event` to every live listener and forgets the dropped ones.
    fn announce(&self, event: &RevocationEvent) {
        let mut listeners = self
            .listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        listeners.retain(|weak| match weak.upgrade() {
            Some(listener) => {
                listener.revoked(event);
                true
            }
            None => false,
        });
    }
}

/// Everything the follower task needs; it holds no reference to the store itself, so dropping
/// the store (which aborts the task) is never delayed by it.
pub(crate) struct Follower {
    pub(crate) client: Client,
    pub(crate) url: Url,
    pub(crate) authorization: Authorization,
    pub(crate) request_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) subscribers: Arc<Subscribers>,
}

impl Follower {
    /// Follows the stream forever, reconnecting with a capped, doubling delay.
    pub(crate) async fn run(self) {
        let mut delay = FIRST_RECONNECT_DELAY;
        let mut last_event_id: Option<String> = None;
        loop {
            if self.follow_once(&mut last_event_id).await {
                delay = FIRST_RECONNECT_DELAY;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RECONNECT_DELAY);
            count(StreamEvent::Reconnect);
        }
    }

    /// One connection, until it ends or fails. Returns whether the service accepted it.
    async fn follow_once(&self, last_event_id: &mut Option<String>) -> bool {
        let mut request = self
            .client
            .get(self.url.clone())
            .header(ACCEPT, "text/event-stream")
            .header(CACHE_CONTROL, "no-cache");
        if let Some(id) = last_event_id.as_deref() {
            if let Ok(value) = HeaderValue::from_str(id) {
                request = request.header("last-event-id", value);
            }
        }
        let request = self.authorization.apply(request);
        let mut response = match tokio::time::timeout(self.request_timeout, request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                tracing::warn!(
                    url = %self.url,
                    error = %error.without_url(),
                    "cannot open the revocation event stream"
                );
                return false;
            }
            Err(_) => {
                tracing::warn!(url = %self.url, "opening the revocation event stream timed out");
                return false;
            }
        };
        if response.status() != StatusCode::OK {
            tracing::warn!(
                url = %self.url,
                status = response.status().as_u16(),
                "the token service refused the revocation event stream"
            );
            return false;
        }
        let _open = OpenStream::new(&self.subscribers);
        tracing::debug!(url = %self.url, "revocation event stream open");
        let mut parser = EventStreamParser::default();
        let ended = loop {
            let chunk = match tokio::time::timeout(self.idle_timeout, response.chunk()).await {
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) => break "the service ended it".to_owned(),
                Ok(Err(error)) => break error.without_url().to_string(),
                Err(_) => break "nothing arrived within the idle timeout".to_owned(),
            };
            let Ok(events) = parser.feed(&chunk) else {
                break "a line exceeded the length bound".to_owned();
            };
            for event in events {
                if let Some(id) = event.id {
                    *last_event_id = Some(id);
                }
                if event.kind == REVOKED_EVENT {
                    if let Some(revocation) = revocation(&event.data) {
                        count(StreamEvent::Revocation);
                        self.subscribers.announce(&revocation);
                    }
                } else if event.kind == RESET_EVENT {
                    // The service cannot replay what this follower may have missed.
                    tracing::warn!(
                        url = %self.url,
                        "the revocation stream could not resume where it left off; caches \
                         drop what they hold"
                    );
                    count(StreamEvent::Gap);
                    self.subscribers.lost_track();
                }
            }
        };
        tracing::warn!(url = %self.url, cause = %ended, "the revocation event stream closed; reconnecting");
        true
    }
}

/// The stream is open while this lives: [`Subscribers::is_connected`] and the
/// connected-streams gauge say so, until the connection ends or the follower task is aborted.
struct OpenStream<'a>(&'a Subscribers);

impl<'a> OpenStream<'a> {
    fn new(subscribers: &'a Subscribers) -> Self {
        subscribers.connected.store(true, Ordering::Release);
        count(StreamEvent::Opened);
        Self(subscribers)
    }
}

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        self.0.connected.store(false, Ordering::Release);
        count(StreamEvent::Closed);
    }
}

/// The revocation an event's data describes; `None` when it is not one. A digest that does not
/// parse is dropped (the cache then evicts by id).
fn revocation(data: &str) -> Option<RevocationEvent> {
    serde_json::from_str::<RevokedEventData>(data)
        .ok()?
        .to_event()
}

/// One dispatched server-sent event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ServerSentEvent {
    /// The event type (`message` when the stream names none).
    pub(crate) kind: String,
    /// The data lines joined with `\n`.
    pub(crate) data: String,
    /// The `id` field, when this event carried one.
    pub(crate) id: Option<String>,
}

/// A line longer than the bound: the connection is dropped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LineTooLong;

/// Incremental parser of the `text/event-stream` format (WHATWG HTML, "Server-sent events"):
/// lines end in CRLF, LF or CR, possibly split across chunks; `:` starts a comment; a blank
/// line dispatches the event.
#[derive(Debug, Default)]
pub(crate) struct EventStreamParser {
    line: Vec<u8>,
    after_cr: bool,
    started: bool,
    kind: String,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl EventStreamParser {
    /// Feeds bytes; returns the events completed by them.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<Vec<ServerSentEvent>, LineTooLong> {
        let mut events = Vec::new();
        if !self.started && !bytes.is_empty() {
            self.started = true;
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        for &byte in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, false);
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    events.extend(self.line_ended(&line));
                }
                _ => {
                    if self.line.len() >= MAX_LINE_LEN {
                        return Err(LineTooLong);
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(events)
    }

    fn line_ended(&mut self, line: &[u8]) -> Option<ServerSentEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.kind),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<ServerSentEvent> {
        let kind = std::mem::take(&mut self.kind);
        let id = self.id.take();
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(ServerSentEvent {
            kind: if kind.is_empty() {
                "message".to_owned()
            } else {
                kind
            },
            data: std::mem::take(&mut self.data),
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use m2m_core::{TokenDigest, TokenId};

    fn revoked(data: &str) -> ServerSentEvent {
        ServerSentEvent {
            kind: "revoked".into(),
            data: data.into(),
            id: None,
        }
    }

    #[test]
    fn events_comments_and_line_endings() {
        let stream = b"\xEF\xBB\xBF: keepalive\n\nevent: revoked\ndata: {\"a\":1}\n\n\
            : keepalive\r\nevent:revoked\r\ndata:x\r\ndata: y\r\n\r\n\
            data: plain\r\rid: 7\nevent: revoked\ndata: z\n\n";
        let events = EventStreamParser::default().feed(stream).unwrap();
        assert_eq!(
            events,
            [
                revoked("{\"a\":1}"),
                revoked("x\ny"),
                ServerSentEvent {
                    kind: "message".into(),
                    data: "plain".into(),
                    id: None
                },
                ServerSentEvent {
                    kind: "revoked".into(),
                    data: "z".into(),
                    id: Some("7".into())
                },
            ]
        );
    }

    #[test]
    fn any_split_into_chunks_gives_the_same_events() {
        let stream: &[u8] =
            b": hi\r\nevent: revoked\r\ndata: {\"token_id\":\"tok_1\"}\r\n\r\nevent: revoked\rdata: b\r\r";
        let whole = EventStreamParser::default().feed(stream).unwrap();
        assert_eq!(whole.len(), 2);
        for size in 1..stream.len() {
            let mut parser = EventStreamParser::default();
            let mut events = Vec::new();
            for chunk in stream.chunks(size) {
                events.extend(parser.feed(chunk).unwrap());
            }
            assert_eq!(events, whole, "chunks of {size}");
        }
    }

    #[test]
    fn an_event_without_data_or_blank_line_is_not_dispatched() {
        let mut parser = EventStreamParser::default();
        assert!(parser.feed(b"event: revoked\n\n").unwrap().is_empty());
        assert!(
            parser
                .feed(b"event: revoked\ndata: x\n")
                .unwrap()
                .is_empty()
        );
        assert_eq!(parser.feed(b"\n").unwrap(), [revoked("x")]);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut parser = EventStreamParser::default();
        let long = vec![b'a'; MAX_LINE_LEN + 1];
        assert_eq!(parser.feed(&long), Err(LineTooLong));
    }

    #[test]
    fn revocation_data() {
        let digest = TokenDigest::of("x");
        let with = format!(
            r#"{{"token_id": "tok_1", "digest": "{}"}}"#,
            digest.to_hex()
        );
        assert_eq!(
            revocation(&with),
            Some(RevocationEvent {
                token_id: TokenId::new("tok_1"),
                digest: Some(digest)
            })
        );
        assert_eq!(
            revocation(r#"{"token_id": "tok_2", "digest": "nothex"}"#),
            Some(RevocationEvent {
                token_id: TokenId::new("tok_2"),
                digest: None
            })
        );
        assert_eq!(revocation(r#"{"token_id": "tok_3"}"#).unwrap().digest, None);
        assert_eq!(revocation("garbage"), None);
        assert_eq!(revocation(r#"{"token_id": ""}"#), None);
    }

    proptest::proptest! {
        /// Any bytes, in any chunks: the same events as in one piece, never a panic.
        #[test]
        fn any_bytes_in_any_chunks_give_the_same_events(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            cut in proptest::prelude::any::<usize>(),
        ) {
            let whole = EventStreamParser::default().feed(&bytes);
            let cut = if bytes.is_empty() { 0 } else { cut % bytes.len() };
            let mut parser = EventStreamParser::default();
            let split = parser.feed(&bytes[..cut]).and_then(|mut first| {
                first.extend(parser.feed(&bytes[cut..])?);
                Ok(first)
            });
            proptest::prop_assert_eq!(whole.ok(), split.ok());
        }
    }
}
