//! The revocation event stream on 127.0.0.1: event ids, replay from `Last-Event-ID`, a reset
//! whenever the service cannot replay (first connection, another instance's id, a stream that
//! fell behind), and a stream that ends when its own credential is revoked.

mod support;

use std::sync::Arc;
use std::time::Duration;

use m2m_core::{Expiry, MemoryStore, NewToken, TokenId, TokenKind, TokenStore};
use m2m_server::{AppState, INTROSPECT_SCOPE, ServiceOptions};

/// How long a test waits for what must happen before it calls the run hung.
const HANG_GUARD: Duration = Duration::from_secs(30);

struct Service {
    base: String,
    state: AppState,
    resource_server: String,
    resource_server_id: TokenId,
    http: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

impl Service {
    async fn start() -> Self {
        let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
        let state = AppState::new(store, ServiceOptions::default())
            .await
            .unwrap();
        let resource_server = state
            .store()
            .issue(
                state.format(),
                NewToken::new(TokenKind::AccessToken, "m2m", Expiry::OneDay)
                    .scope(INTROSPECT_SCOPE),
                state.now(),
            )
            .await
            .unwrap();
        let (base, server) = support::serve_in_process(state.clone()).await;
        Self {
            base,
            state,
            resource_server: resource_server.token.expose_secret().to_owned(),
            resource_server_id: resource_server.record.id,
            http: reqwest::Client::new(),
            _server: server,
        }
    }

    /// A token of `acme`, and its id.
    async fn token(&self) -> TokenId {
        self.state
            .store()
            .issue(
                self.state.format(),
                NewToken::new(TokenKind::AccessToken, "acme", Expiry::OneDay),
                self.state.now(),
            )
            .await
            .unwrap()
            .record
            .id
    }

    async fn revoke(&self, id: &TokenId) {
        assert!(
            self.state
                .store()
                .revoke(id, self.state.now())
                .await
                .unwrap()
        );
    }

    /// Opens the stream, resuming after `last_event_id` when given.
    async fn follow(&self, last_event_id: Option<&str>) -> Stream {
        let mut request = self
            .http
            .get(format!("{}/v1/revocations", self.base))
            .header("x-api-key", &self.resource_server);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        Stream {
            response,
            buffer: String::new(),
        }
    }
}

/// One server-sent event: its type, id and data.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    kind: String,
    id: String,
    data: String,
}

struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    /// The next event (comments skipped); `None` when the service ended the stream.
    async fn next(&mut self) -> Option<Event> {
        let read = async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut event = Event {
                        kind: String::new(),
                        id: String::new(),
                        data: String::new(),
                    };
                    for line in block.lines() {
                        if let Some(value) = line.strip_prefix("event:") {
                            event.kind = value.trim().to_owned();
                        } else if let Some(value) = line.strip_prefix("id:") {
                            event.id = value.trim().to_owned();
                        } else if let Some(value) = line.strip_prefix("data:") {
                            event.data = value.trim().to_owned();
                        }
                    }
                    if !event.kind.is_empty() {
                        return Some(event);
                    }
                    continue;
                }
                match self.response.chunk().await {
                    Ok(Some(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                    _ => return None,
                }
            }
        };
        tokio::time::timeout(HANG_GUARD, read)
            .await
            .expect("an event or the end of the stream")
    }
}

fn revoked_id(event: &Event) -> String {
    assert_eq!(event.kind, "revoked", "{event:?}");
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    data["token_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_resumes_from_its_last_event_id_and_a_gap_is_a_reset() {
    let service = Service::start().await;
    // A first connection cannot know what it missed before: a reset, with where to resume.
    let mut stream = service.follow(None).await;
    let first = stream.next().await.unwrap();
    assert_eq!(first.kind, "reset");
    assert!(!first.id.is_empty());
    let a = service.token().await;
    service.revoke(&a).await;
    let live = stream.next().await.unwrap();
    assert_eq!(revoked_id(&live), a.as_str());
    drop(stream);

    // Revoked while nobody followed: replayed, in order, to the follower that comes back.
    let (b, c) = (service.token().await, service.token().await);
    service.revoke(&b).await;
    service.revoke(&c).await;
    let mut resumed = service.follow(Some(&live.id)).await;
    let replayed = [resumed.next().await.unwrap(), resumed.next().await.unwrap()];
    assert_eq!(revoked_id(&replayed[0]), b.as_str());
    assert_eq!(revoked_id(&replayed[1]), c.as_str());
    assert_ne!(replayed[0].id, replayed[1].id);
    let d = service.token().await;
    service.revoke(&d).await;
    assert_eq!(revoked_id(&resumed.next().await.unwrap()), d.as_str());

    // Ids this instance cannot resume from: a reset, never a silent gap.
    let (instance, number) = live.id.rsplit_once('-').unwrap();
    for id in [
        "another-instance-3".to_owned(),
        format!("{instance}-{}", number.parse::<u64>().unwrap() + 1000),
        "garbage".to_owned(),
    ] {
        let mut stream = service.follow(Some(&id)).await;
        assert_eq!(stream.next().await.unwrap().kind, "reset", "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_falls_behind_is_told_to_reset() {
    let service = Service::start().await;
    let mut stream = service.follow(None).await;
    assert_eq!(stream.next().await.unwrap().kind, "reset");
    // Not read meanwhile: far more revocations than the feed keeps and the sockets hold.
    for _ in 0..60_000 {
        let id = service.token().await;
        service.revoke(&id).await;
    }
    let mut revoked = 0;
    loop {
        let event = stream.next().await.expect("the stream stays open");
        match event.kind.as_str() {
            "revoked" => revoked += 1,
            "reset" => break,
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(
        revoked < 60_000,
        "events were skipped, and the reset says so"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_when_its_credential_is_revoked() {
    let service = Service::start().await;
    let mut stream = service.follow(None).await;
    assert_eq!(stream.next().await.unwrap().kind, "reset");
    let other = service.token().await;
    service.revoke(&other).await;
    assert_eq!(revoked_id(&stream.next().await.unwrap()), other.as_str());
    service.revoke(&service.resource_server_id).await;
    assert_eq!(stream.next().await, None, "the stream ended");
    let refused = service
        .http
        .get(format!("{}/v1/revocations", service.base))
        .header("x-api-key", &service.resource_server)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}
