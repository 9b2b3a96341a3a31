//! A token service for the tests: the introspection endpoint, the revocation event stream and
//! the usage reports over a `MemoryStore`, on 127.0.0.1, able to misbehave on purpose.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Form;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use m2m_core::{
    Expiry, IssuedToken, MemoryStore, NewToken, RevocationEvent, RevocationListener, TokenDigest,
    TokenFormat, TokenId, TokenKind, TokenLookup, TokenRecord, TokenStore,
};
use m2m_remote::IntrospectionCredential;
use time::OffsetDateTime;
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;

/// How the introspection endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Mode {
    /// As the protocol says.
    Normal = 0,
    /// 500 Internal Server Error.
    ServerError = 1,
    /// 503 Service Unavailable.
    Unavailable = 2,
    /// 200 with a body that is not JSON.
    Garbage = 3,
    /// 401 to whatever credential the caller sends.
    RefuseCredential = 4,
    /// 200 with JSON that lacks required fields.
    MissingFields = 5,
    /// 307 to another URL, which would resend the token there.
    Redirect = 6,
    /// 429 with `Retry-After: 1`.
    TooManyRequests = 7,
}

pub(crate) struct ServiceState {
    store: Arc<MemoryStore>,
    mode: AtomicU8,
    delay_ms: AtomicU64,
    introspections: AtomicUsize,
    events: broadcast::Sender<RevocationEvent>,
    cut: watch::Sender<u64>,
    resets: watch::Sender<u64>,
    events_down: AtomicBool,
    omit_digests: AtomicBool,
    silent_streams: AtomicBool,
    stream_connections: AtomicUsize,
    open_streams: AtomicUsize,
    usage_reports: Mutex<Vec<serde_json::Value>>,
}

/// Forwards the memory store's revocations to the event stream.
struct Forward(broadcast::Sender<RevocationEvent>);

impl RevocationListener for Forward {
    fn revoked(&self, event: &RevocationEvent) {
        let _ = self.0.send(event.clone());
    }
}

struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

pub(crate) struct TokenService {
    pub(crate) store: Arc<MemoryStore>,
    state: Arc<ServiceState>,
    addr: SocketAddr,
    running: Mutex<Option<Running>>,
    _forward: Arc<dyn RevocationListener>,
    credentials: Credentials,
}

/// The resource server's credentials, all with the scope `m2m:introspect`.
pub(crate) struct Credentials {
    pub(crate) access_token: IssuedToken,
    pub(crate) bearer_token: IssuedToken,
    pub(crate) client_secret: IssuedToken,
}

pub(crate) const INTROSPECT_SCOPE: &str = "m2m:introspect";

impl TokenService {
    /// A service on an ephemeral port, running.
    pub(crate) async fn start() -> Self {
        let store = Arc::new(MemoryStore::new());
        let (events, _) = broadcast::channel(1024);
        let forward: Arc<dyn RevocationListener> = Arc::new(Forward(events.clone()));
        assert!(store.subscribe(Arc::clone(&forward)));
        let state = Arc::new(ServiceState {
            store: Arc::clone(&store),
            mode: AtomicU8::new(Mode::Normal as u8),
            delay_ms: AtomicU64::new(0),
            introspections: AtomicUsize::new(0),
            events,
            cut: watch::Sender::new(0),
            resets: watch::Sender::new(0),
            events_down: AtomicBool::new(false),
            omit_digests: AtomicBool::new(false),
            silent_streams: AtomicBool::new(false),
            stream_connections: AtomicUsize::new(0),
            open_streams: AtomicUsize::new(0),
            usage_reports: Mutex::new(Vec::new()),
        });
        let now = OffsetDateTime::now_utc();
        let format = TokenFormat::default();
        let issue = |request: NewToken| {
            let store = Arc::clone(&store);
            let format = format.clone();
            async move { store.issue(&format, request, now).await.unwrap() }
        };
        let access_token = issue(
            NewToken::new(TokenKind::AccessToken, "platform", Expiry::Never)
                .scope(INTROSPECT_SCOPE),
        )
        .await;
        let client_secret = issue(
            NewToken::new(TokenKind::ClientSecret, "platform", Expiry::Never)
                .scope(INTROSPECT_SCOPE),
        )
        .await;
        let mut bearer = NewToken::new(TokenKind::BearerToken, "platform", Expiry::Minutes(60))
            .scope(INTROSPECT_SCOPE);
        bearer.credential = Some((
            client_secret.record.id.clone(),
            client_secret.record.client_id.clone().unwrap(),
        ));
        let bearer_token = issue(bearer).await;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = Self {
            store,
            state,
            addr,
            running: Mutex::new(None),
            _forward: forward,
            credentials: Credentials {
                access_token,
                bearer_token,
                client_secret,
            },
        };
        service.serve(listener);
        service
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let router = Router::new()
            .route("/oauth/introspect", post(introspect))
            .route("/v1/revocations", get(revocations))
            .route("/v1/usage", post(usage))
            .with_state(Arc::clone(&self.state));
        let (shutdown, signal) = oneshot::channel();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = signal.await;
                })
                .await
                .unwrap();
        });
        *self.running.lock().unwrap() = Some(Running { shutdown, task });
    }

    /// Stops listening and closes every connection: connections are then refused.
    pub(crate) async fn stop(&self) {
        let running = self.running.lock().unwrap().take();
        if let Some(mut running) = running {
            let _ = running.shutdown.send(());
            // A graceful shutdown waits for open responses, and an event stream accepted just
            // before the signal may subscribe to the cut after one was sent: cut until the
            // server has ended.
            loop {
                self.cut_streams();
                match tokio::time::timeout(Duration::from_millis(50), &mut running.task).await {
                    Ok(ended) => break ended.unwrap(),
                    Err(_) => continue,
                }
            }
        }
    }

    /// Listens again on the same address.
    pub(crate) async fn restart(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub(crate) fn api_key(&self) -> IntrospectionCredential {
        IntrospectionCredential::ApiKey(
            self.credentials
                .access_token
                .token
                .expose_secret()
                .to_owned(),
        )
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        self.state.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Answers introspection after this long.
    pub(crate) fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap();
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Introspection requests received so far, whatever they were answered.
    pub(crate) fn introspections(&self) -> usize {
        self.state.introspections.load(Ordering::SeqCst)
    }

    /// Event-stream connections accepted so far.
    pub(crate) fn stream_connections(&self) -> usize {
        self.state.stream_connections.load(Ordering::SeqCst)
    }

    /// Event-stream responses still open.
    pub(crate) fn open_streams(&self) -> usize {
        self.state.open_streams.load(Ordering::SeqCst)
    }

    /// Sends a reset event on every open stream: followers may have missed revocations.
    pub(crate) fn send_reset(&self) {
        self.state.resets.send_modify(|generation| *generation += 1);
    }

    /// Ends every open event stream from the server side.
    pub(crate) fn cut_streams(&self) {
        self.state.cut.send_modify(|generation| *generation += 1);
    }

    /// While down, the event-stream endpoint answers 503 and open streams are cut.
    pub(crate) fn set_events_down(&self, down: bool) {
        self.state.events_down.store(down, Ordering::SeqCst);
        if down {
            self.cut_streams();
        }
    }

    /// Sends revocation events with the token id only.
    pub(crate) fn set_omit_digests(&self, omit: bool) {
        self.state.omit_digests.store(omit, Ordering::SeqCst);
    }

    /// Event streams opened from now on send no keepalive comments.
    pub(crate) fn set_silent_streams(&self, silent: bool) {
        self.state.silent_streams.store(silent, Ordering::SeqCst);
    }

    /// The bodies of the usage reports accepted so far.
    pub(crate) fn usage_reports(&self) -> Vec<serde_json::Value> {
        self.state.usage_reports.lock().unwrap().clone()
    }

    /// Sends an event on the stream, as a revocation elsewhere would.
    pub(crate) fn publish(&self, event: RevocationEvent) {
        let _ = self.state.events.send(event);
    }

    /// Issues a token to a tenant's client.
    pub(crate) async fn issue(&self, request: NewToken, now: OffsetDateTime) -> IssuedToken {
        self.store
            .issue(&TokenFormat::default(), request, now)
            .await
            .unwrap()
    }

    pub(crate) async fn revoke(&self, record: &TokenRecord) {
        assert!(
            self.store
                .revoke(&record.id, OffsetDateTime::now_utc())
                .await
                .unwrap()
        );
    }
}

/// The active record of `token`, if it is one of `kind`.
async fn active(store: &MemoryStore, token: &str, kind: TokenKind) -> Option<TokenRecord> {
    let record = store.find(&TokenDigest::of(token)).await.unwrap()?;
    (record.kind == kind && record.is_active(OffsetDateTime::now_utc())).then_some(record)
}

/// Whether the caller is a resource server allowed to introspect.
async fn may_introspect(store: &MemoryStore, headers: &HeaderMap) -> bool {
    let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let record = match (api_key, authorization) {
        (Some(token), None) => active(store, token, TokenKind::AccessToken).await,
        (None, Some(value)) => {
            if let Some(token) = value.strip_prefix("Bearer ") {
                active(store, token, TokenKind::BearerToken).await
            } else if let Some(encoded) = value.strip_prefix("Basic ") {
                let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
                    return false;
                };
                let Some((client_id, secret)) = String::from_utf8(decoded).ok().and_then(|pair| {
                    pair.split_once(':')
                        .map(|(a, b)| (a.to_owned(), b.to_owned()))
                }) else {
                    return false;
                };
                let record = active(store, &secret, TokenKind::ClientSecret).await;
                record.filter(|r| r.client_id.as_deref() == Some(client_id.as_str()))
            } else {
                None
            }
        }
        _ => None,
    };
    record.is_some_and(|r| r.scopes.iter().any(|s| s == INTROSPECT_SCOPE))
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn introspect(
    State(state): State<Arc<ServiceState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    state.introspections.fetch_add(1, Ordering::SeqCst);
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match state.mode.load(Ordering::SeqCst) {
        m if m == Mode::ServerError as u8 => {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        m if m == Mode::Unavailable as u8 => {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        m if m == Mode::Garbage as u8 => return json("{\"active\": tru".to_owned()),
        m if m == Mode::RefuseCredential as u8 => return StatusCode::UNAUTHORIZED.into_response(),
        m if m == Mode::Redirect as u8 => {
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, "http://127.0.0.1:9/collect")],
            )
                .into_response();
        }
        m if m == Mode::MissingFields as u8 => {
            return json(r#"{"active": true, "jti": "tok_x"}"#.to_owned());
        }
        m if m == Mode::TooManyRequests as u8 => {
            return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")]).into_response();
        }
        _ => {}
    }
    if !may_introspect(&state.store, &headers).await {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if form.get("token_type_hint").map(String::as_str) != Some("access_token") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let Some(token) = form.get("token") else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let found = state.store.find(&TokenDigest::of(token)).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let body = match found {
        Some(record)
            if record.is_active(now)
                && matches!(record.kind, TokenKind::AccessToken | TokenKind::BearerToken) =>
        {
            serde_json::json!({
                "active": true,
                "jti": record.id.as_str(),
                "kind": if record.kind == TokenKind::AccessToken { "access_token" } else { "bearer_token" },
                "tenant_id": record.tenant,
                "sub": record.user,
                "client_id": record.client_id,
                "scope": record.scopes.join(" "),
                "exp": record.expires_at.map(OffsetDateTime::unix_timestamp),
                "iat": record.created_at.unix_timestamp(),
            })
        }
        _ => serde_json::json!({ "active": false }),
    };
    json(body.to_string())
}

/// Counts an open event stream until the stream is dropped.
struct OpenStream(Arc<ServiceState>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn revocations(State(state): State<Arc<ServiceState>>, headers: HeaderMap) -> Response {
    if state.events_down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if !may_introspect(&state.store, &headers).await {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) != Some("text/event-stream") {
        return StatusCode::NOT_ACCEPTABLE.into_response();
    }
    state.stream_connections.fetch_add(1, Ordering::SeqCst);
    state.open_streams.fetch_add(1, Ordering::SeqCst);
    let open = OpenStream(Arc::clone(&state));
    let events = state.events.subscribe();
    let cut = state.cut.subscribe();
    let resets = state.resets.subscribe();
    let stream = futures_util::stream::unfold(
        (events, cut, resets, open),
        |(mut events, mut cut, mut resets, open)| async move {
            let omit_digests = open.0.omit_digests.load(Ordering::SeqCst);
            loop {
                tokio::select! {
                    _ = cut.changed() => return None,
                    _ = resets.changed() => {
                        let event = Event::default().event("reset").id("reset-1").data("{}");
                        return Some((Ok::<_, Infallible>(event), (events, cut, resets, open)));
                    }
                    received = events.recv() => match received {
                        Ok(event) => {
                            let data = serde_json::json!({
                                "token_id": event.token_id.as_str(),
                                "digest": event.digest.filter(|_| !omit_digests).map(|d| d.to_hex()),
                            });
                            let event = Event::default().event("revoked").data(data.to_string());
                            return Some((Ok::<_, Infallible>(event), (events, cut, resets, open)));
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                }
            }
        },
    );
    let keepalive = if state.silent_streams.load(Ordering::SeqCst) {
        Duration::from_secs(3600)
    } else {
        Duration::from_millis(100)
    };
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(keepalive).text("keepalive"))
        .into_response()
}

/// `POST /v1/usage`: records the reported uses in the store, as the token service does; 500 in
/// the failing modes, 401 to a caller that may not introspect.
async fn usage(
    State(state): State<Arc<ServiceState>>,
    headers: HeaderMap,
    Json(report): Json<serde_json::Value>,
) -> Response {
    let mode = state.mode.load(Ordering::SeqCst);
    if mode == Mode::ServerError as u8 || mode == Mode::Unavailable as u8 {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if !may_introspect(&state.store, &headers).await {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some("application/json")
    {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let Some(entries) = report["uses"].as_array() else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    let mut uses = Vec::new();
    for entry in entries {
        let (Some(id), Some(at)) = (entry["token_id"].as_str(), entry["used_at"].as_i64()) else {
            return StatusCode::UNPROCESSABLE_ENTITY.into_response();
        };
        let Ok(at) = OffsetDateTime::from_unix_timestamp(at) else {
            return StatusCode::UNPROCESSABLE_ENTITY.into_response();
        };
        uses.push((TokenId::new(id), at));
    }
    state.store.record_usage(&uses).await.unwrap();
    state.usage_reports.lock().unwrap().push(report);
    StatusCode::NO_CONTENT.into_response()
}
