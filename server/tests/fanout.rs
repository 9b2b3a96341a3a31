//! Revocation fan-out end to end, with real processes on 127.0.0.1: the token service (`m2m
//! serve`) and the examples of the root package (axum, actix-web, Rocket), each verifying
//! through the remote store or on a shared PostgreSQL database. Usage too: a token used at an
//! example (on a SQLite file, or on the remote store) shows `last_used_at` in the service's
//! listing, with no code for it in the example.
//!
//! The examples are run from `target/<profile>/examples/`, next to this test's own directory;
//! `cargo test --workspace` builds them. When they are missing, the test builds them with
//! cargo first. The measured revocation delays are printed (run with `--nocapture`).

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection as _;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_m2m");

/// The cache TTL of the example that shows the TTL path: how long a revoked token may pass
/// without events.
const CACHE_TTL: Duration = Duration::from_secs(3);

/// A cache TTL far beyond any test's length: an example running with it refuses a revoked
/// token only because an event (or a notification) evicted it.
const ONLY_EVENTS_EVICT: Duration = Duration::from_secs(3600);

/// How often the examples record the uses they see (`M2M_USAGE_INTERVAL_MS`): short, so that
/// the usage tests wait little.
const USAGE_INTERVAL_MS: &str = "100";

/// How long a test waits for what must happen before it calls the run hung. A guard against
/// hanging, not a speed requirement: the delays are printed for the report.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Polls `done` until it holds, or panics after [`HANG_GUARD`] saying `what` never happened.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let happened = async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(HANG_GUARD, happened)
        .await
        .unwrap_or_else(|_| panic!("{what} never happened"));
}

/// A child process, killed when dropped.
struct Process {
    child: Child,
    name: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Process {
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early with {status}", self.name);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running token service.
struct Service {
    process: Process,
    base: String,
    admin: String,
    database_url: String,
    port: u16,
    /// The arguments `m2m serve` was started with besides the database and address.
    extra: Vec<String>,
    http: reqwest::Client,
}

impl Service {
    /// `m2m serve` on a fresh database; waits for its address and bootstrap admin token.
    fn start(database_url: &str) -> Service {
        Self::start_with(database_url, &[])
    }

    /// As [`start`](Self::start), with more arguments to `m2m serve`; `{port}` in them is
    /// the port it listens on.
    fn start_with(database_url: &str, extra: &[&str]) -> Service {
        let port = free_port();
        let extra: Vec<String> = extra
            .iter()
            .map(|arg| arg.replace("{port}", &port.to_string()))
            .collect();
        let (process, lines) = Self::spawn(database_url, port, &extra);
        let admin = lines
            .iter()
            .map(|line| line.trim())
            .find(|line| line.starts_with("m2m_at_"))
            .unwrap_or_else(|| panic!("no bootstrap admin token in {lines:?}"))
            .to_owned();
        Service {
            process,
            base: format!("http://127.0.0.1:{port}"),
            admin,
            database_url: database_url.to_owned(),
            port,
            extra,
            http: reqwest::Client::new(),
        }
    }

    fn spawn(database_url: &str, port: u16, extra: &[String]) -> (Process, Vec<String>) {
        let mut child = Command::new(BIN)
            .args(["serve", "--database-url", database_url, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the m2m binary starts");
        let stdout = child.stdout.take().unwrap();
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let process = Process {
            child,
            name: "m2m serve".to_owned(),
        };
        let mut lines = Vec::new();
        loop {
            let line = receive
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("m2m serve printed no address: {lines:?}"));
            let done = line.starts_with("m2m listening on ");
            lines.push(line);
            if done {
                return (process, lines);
            }
        }
    }

    /// Kills the service (no graceful shutdown: streams are cut, not closed).
    fn kill(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }

    /// Starts the service again on the same port and database.
    fn restart(&mut self) {
        let (process, _) = Self::spawn(&self.database_url, self.port, &self.extra);
        self.process = process;
    }

    async fn create_token(&self, tenant: &str, scopes: &[&str]) -> (String, String) {
        let response = self
            .http
            .post(format!("{}/v1/tenants/{tenant}/tokens", self.base))
            .header("x-api-key", &self.admin)
            .json(&json!({"expires": "30d", "scopes": scopes, "description": "fan-out test"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        (
            body["token"].as_str().unwrap().to_owned(),
            body["id"].as_str().unwrap().to_owned(),
        )
    }

    /// A client credential of `tenant`: its id, client id and secret.
    async fn create_credential(&self, tenant: &str) -> (String, String, String) {
        let response = self
            .http
            .post(format!("{}/v1/tenants/{tenant}/tokens", self.base))
            .header("x-api-key", &self.admin)
            .json(&json!({"type": "client_credentials", "expires": "30d"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        let field = |name: &str| body[name].as_str().unwrap().to_owned();
        (field("id"), field("client_id"), field("client_secret"))
    }

    /// A bearer token for the client credential, from `/oauth/token`.
    async fn exchange(&self, client_id: &str, secret: &str) -> String {
        let response = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .basic_auth(client_id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn revoke(&self, tenant: &str, id: &str) {
        let response = self
            .http
            .delete(format!("{}/v1/tenants/{tenant}/tokens/{id}", self.base))
            .header("x-api-key", &self.admin)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// Revokes with the CLI, straight in the database: no process hears of it.
    fn revoke_with_cli(&self, id: &str) {
        let output = Command::new(BIN)
            .args(["token", "revoke", id, "--database-url", &self.database_url])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }

    /// The listed record of the token `id` of `tenant`.
    async fn listed(&self, tenant: &str, id: &str) -> Value {
        let response = self
            .http
            .get(format!(
                "{}/v1/tenants/{tenant}/tokens?limit=200",
                self.base
            ))
            .header("x-api-key", &self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not listed"))
            .clone()
    }

    /// Waits until the listing shows `last_used_at` for the token `id`; returns it.
    async fn last_used_at(&self, tenant: &str, id: &str) -> String {
        let mut seen = Value::Null;
        eventually(
            &format!("last_used_at of {id} in the listing"),
            async || {
                seen = self.listed(tenant, id).await["last_used_at"].clone();
                seen.is_string()
            },
        )
        .await;
        seen.as_str().unwrap().to_owned()
    }

    async fn stats(&self) -> Value {
        let response = self
            .http
            .get(format!("{}/v1/stats", self.base))
            .header("x-api-key", &self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Waits until `streams` event streams are open.
    async fn wait_for_streams(&self, streams: u64) {
        eventually(&format!("{streams} open event stream(s)"), async || {
            self.stats().await["event_streams"].as_u64() == Some(streams)
        })
        .await;
    }
}

/// `target/<profile>`, from this test binary's place in `target/<profile>/deps`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_owned()
}

/// The example binary `name`; built with cargo once if it is not there.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<()>> = OnceLock::new();
    let dir = profile_dir();
    let path = dir.join("examples").join(name);
    let _once = BUILT.get_or_init(Mutex::default).lock().unwrap();
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut command = Command::new(cargo);
        command.args([
            "build",
            "-p",
            "m2m",
            "--example",
            "axum",
            "--example",
            "actix",
            "--example",
            "rocket",
        ]);
        if dir.file_name().is_some_and(|profile| profile == "release") {
            command.arg("--release");
        }
        let status = command.status().expect("cargo runs");
        assert!(status.success(), "building the examples failed");
    }
    assert!(
        path.exists(),
        "the example {name} is missing at {}: run `cargo build --examples` first",
        path.display()
    );
    path
}

/// A running example.
struct Example {
    _process: Process,
    base: String,
    http: reqwest::Client,
}

impl Example {
    /// Starts the example `name` with `M2M_STORE=store` and the cache TTL `ttl`, and waits
    /// until `/health` answers.
    async fn start(
        name: &str,
        store: &str,
        introspect_token: Option<&str>,
        ttl: Duration,
    ) -> Example {
        let port = free_port();
        let mut command = Command::new(example(name));
        command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("M2M_STORE", store)
            .env("M2M_CACHE_TTL_SECS", ttl.as_secs().to_string())
            .env("M2M_USAGE_INTERVAL_MS", USAGE_INTERVAL_MS)
            .env("ROCKET_CLI_COLORS", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(token) = introspect_token {
            command.env("M2M_INTROSPECT_TOKEN", token);
        }
        let mut process = Process {
            child: command.spawn().expect("the example starts"),
            name: format!("example {name}"),
        };
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually(&format!("example {name} answering /health"), async || {
            process.assert_running();
            match http.get(format!("{base}/health")).send().await {
                Ok(response) => response.status() == 200,
                Err(_) => false,
            }
        })
        .await;
        Example {
            _process: process,
            base,
            http,
        }
    }

    async fn whoami(&self, token: &str) -> u16 {
        self.http
            .get(format!("{}/v1/whoami", self.base))
            .header("x-api-key", token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn whoami_bearer(&self, token: &str) -> u16 {
        self.http
            .get(format!("{}/v1/whoami", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Polls until the bearer `token` is refused with 401; returns the time it took.
    async fn refused_bearer(&self, token: &str) -> Duration {
        let start = Instant::now();
        eventually("the revoked bearer token refused", async || {
            let status = self.whoami_bearer(token).await;
            assert!(
                status == 200 || status == 401 || status == 503,
                "unexpected status {status} for a token being revoked"
            );
            status == 401
        })
        .await;
        start.elapsed()
    }

    /// Polls until `token` is refused with 401; returns the time it took, for the report.
    async fn refused(&self, token: &str) -> Duration {
        let start = Instant::now();
        eventually("the revoked token refused", async || {
            let status = self.whoami(token).await;
            assert!(
                status == 200 || status == 401 || status == 503,
                "unexpected status {status} for a token being revoked"
            );
            status == 401
        })
        .await;
        start.elapsed()
    }
}

fn sqlite_url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("tokens.db").display())
}

/// The token service, the example `name` on the remote store, and both revocation paths: the
/// event, and the reset after a cut stream.
async fn remote_store_revocations(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(&sqlite_url(&dir));
    let (resource_server, _) = service
        .create_token("m2m", &[m2m_server::INTROSPECT_SCOPE])
        .await;
    let example = Example::start(
        name,
        &service.base,
        Some(&resource_server),
        ONLY_EVENTS_EVICT,
    )
    .await;
    let short_lived = Example::start(name, &service.base, Some(&resource_server), CACHE_TTL).await;
    service.wait_for_streams(2).await;

    // Event path: revoke through REST while the event stream is up; with its TTL, only the
    // event can make the example refuse the cached token.
    let (token, id) = service.create_token("acme", &["reports:read"]).await;
    assert_eq!(example.whoami(&token).await, 200);
    assert_eq!(example.whoami(&token).await, 200);
    service.revoke("acme", &id).await;
    let event_delay = example.refused(&token).await;
    eprintln!("{name} on the remote store: revocation delay, event path: {event_delay:?}");

    // Gap path: both examples cache a token; the stream is cut (service killed), the revocation
    // made where nobody hears of it, the service back on the same port. The stream cannot replay
    // what was missed (the service is another instance now), so it opens with a reset and both
    // examples drop their caches: even the one whose TTL would keep the token for an hour
    // refuses it, without waiting for any TTL.
    let (token, id) = service.create_token("acme", &["reports:read"]).await;
    assert_eq!(example.whoami(&token).await, 200);
    assert_eq!(short_lived.whoami(&token).await, 200);
    service.kill();
    service.revoke_with_cli(&id);
    service.restart();
    let gap_delay = example.refused(&token).await;
    let short_delay = short_lived.refused(&token).await;
    eprintln!(
        "{name} on the remote store: revocation delay across a cut stream (reset on \
         reconnect): {gap_delay:?} with a TTL of {ONLY_EVENTS_EVICT:?}, {short_delay:?} more \
         for the example with a TTL of {CACHE_TTL:?}"
    );
    drop(short_lived);
    drop(example);
}

/// The token service in `jwt` mode and the example `name` on the remote store: the example
/// accepts the service's JWTs offline, and refuses them once their credential is revoked, by the
/// event and across a cut stream (the reset is followed by the recent credential revocations).
async fn remote_store_jwts(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start_with(
        &sqlite_url(&dir),
        &[
            "--bearer-format",
            "jwt",
            "--public-url",
            "http://127.0.0.1:{port}",
        ],
    );
    let (resource_server, _) = service
        .create_token("m2m", &[m2m_server::INTROSPECT_SCOPE])
        .await;
    let example = Example::start(
        name,
        &service.base,
        Some(&resource_server),
        ONLY_EVENTS_EVICT,
    )
    .await;
    service.wait_for_streams(1).await;

    let (id, client_id, secret) = service.create_credential("acme").await;
    let jwt = service.exchange(&client_id, &secret).await;
    assert_eq!(jwt.split('.').count(), 3, "a JWT");
    let introspections = service.stats().await["introspections"].clone();
    for _ in 0..3 {
        assert_eq!(example.whoami_bearer(&jwt).await, 200);
    }
    assert_eq!(
        service.stats().await["introspections"],
        introspections,
        "verified offline, never introspected"
    );
    // In X-API-KEY it is misplaced.
    assert_eq!(example.whoami(&jwt).await, 400);

    service.revoke("acme", &id).await;
    let event_delay = example.refused_bearer(&jwt).await;
    eprintln!(
        "{name}: a JWT refused after its credential's revocation, event path: {event_delay:?}"
    );

    // Across a cut stream: revoked where nobody hears of it, the service back as another
    // instance; the reset is followed by the credential revocations of the last hour.
    let (id, client_id, secret) = service.create_credential("acme").await;
    let jwt = service.exchange(&client_id, &secret).await;
    assert_eq!(example.whoami_bearer(&jwt).await, 200);
    service.kill();
    service.revoke_with_cli(&id);
    service.restart();
    let gap_delay = example.refused_bearer(&jwt).await;
    eprintln!("{name}: a JWT refused across a cut stream: {gap_delay:?}");
    drop(example);
}

#[tokio::test]
async fn axum_example_accepts_jwts_and_refuses_them_after_revocation() {
    remote_store_jwts("axum").await;
}

#[tokio::test]
async fn actix_example_accepts_jwts_and_refuses_them_after_revocation() {
    remote_store_jwts("actix").await;
}

#[tokio::test]
async fn rocket_example_accepts_jwts_and_refuses_them_after_revocation() {
    remote_store_jwts("rocket").await;
}

#[tokio::test]
async fn axum_example_on_the_remote_store_follows_revocations() {
    remote_store_revocations("axum").await;
}

#[tokio::test]
async fn actix_example_on_the_remote_store_follows_revocations() {
    remote_store_revocations("actix").await;
}

#[tokio::test]
async fn rocket_example_on_the_remote_store_follows_revocations() {
    remote_store_revocations("rocket").await;
}

#[tokio::test]
async fn a_thousand_concurrent_misses_make_one_introspection_call() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&sqlite_url(&dir));
    let (resource_server, _) = service
        .create_token("m2m", &[m2m_server::INTROSPECT_SCOPE])
        .await;
    let example = Example::start(
        "axum",
        &service.base,
        Some(&resource_server),
        ONLY_EVENTS_EVICT,
    )
    .await;
    service.wait_for_streams(1).await;
    let (token, _) = service.create_token("acme", &[]).await;
    let before = service.stats().await["introspections"].as_u64().unwrap();

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1000)
        .build()
        .unwrap();
    let url = format!("{}/v1/whoami", example.base);
    let requests: Vec<_> = (0..1000)
        .map(|_| {
            let request = client.get(&url).header("x-api-key", &token);
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let mut ok = 0;
    for request in requests {
        if matches!(request.await, Ok(Ok(200))) {
            ok += 1;
        }
    }
    assert_eq!(ok, 1000, "every request passes");

    let after = service.stats().await["introspections"].as_u64().unwrap();
    eprintln!(
        "1,000 concurrent requests with one uncached token: {} introspection call(s)",
        after - before
    );
    assert_eq!(after - before, 1);
}

/// The axum example on the service's SQLite file, with no service code: one request, and the
/// service's listing shows when the token was used.
#[tokio::test]
async fn a_token_used_at_the_axum_example_on_sqlite_shows_last_used_at_in_the_listing() {
    let dir = tempfile::tempdir().unwrap();
    let database = sqlite_url(&dir);
    let service = Service::start(&database);
    let (token, id) = service.create_token("acme", &["reports:read"]).await;
    assert_eq!(
        service.listed("acme", &id).await["last_used_at"],
        Value::Null
    );

    let example = Example::start("axum", &database, None, Duration::from_secs(10)).await;
    let before = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    assert_eq!(example.whoami(&token).await, 200);
    let last_used_at = rfc3339(&service.last_used_at("acme", &id).await);
    assert!(last_used_at >= before, "{last_used_at} < {before}");
}

/// The axum example on the remote store: the uses it sees are reported to the service, whose
/// listing shows them. Once the token is cached at the example, later uses reach the listing
/// with no further introspection: only the usage reports can carry them.
#[tokio::test]
async fn a_token_used_at_the_axum_example_on_the_remote_store_shows_last_used_at_in_the_listing() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&sqlite_url(&dir));
    let (resource_server, _) = service
        .create_token("m2m", &[m2m_server::INTROSPECT_SCOPE])
        .await;
    let (token, id) = service.create_token("acme", &["reports:read"]).await;
    let example = Example::start(
        "axum",
        &service.base,
        Some(&resource_server),
        ONLY_EVENTS_EVICT,
    )
    .await;
    assert_eq!(
        service.listed("acme", &id).await["last_used_at"],
        Value::Null
    );
    let before = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    assert_eq!(example.whoami(&token).await, 200);
    let first = rfc3339(&service.last_used_at("acme", &id).await);
    assert!(first >= before, "{first} < {before}");

    let introspections = service.stats().await["introspections"].as_u64();
    eventually(
        "a later use reported from the example's cache",
        async || {
            assert_eq!(example.whoami(&token).await, 200);
            rfc3339(&service.last_used_at("acme", &id).await) > first
        },
    )
    .await;
    assert_eq!(
        service.stats().await["introspections"].as_u64(),
        introspections,
        "the token stayed cached: the later use came in a usage report"
    );
}

fn rfc3339(text: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

/// The PostgreSQL admin URL: `M2M_TEST_POSTGRES_URL`, else the local default outside CI.
fn postgres_admin_url() -> String {
    const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
    match std::env::var("M2M_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var_os("CI").is_some() => panic!(
            "M2M_TEST_POSTGRES_URL is not set while CI is: the PostgreSQL fan-out test must run \
             in CI, set it to an admin URL such as {LOCAL_POSTGRES}"
        ),
        _ => LOCAL_POSTGRES.to_owned(),
    }
}

/// A fresh database, dropped with the value.
struct PostgresDatabase {
    url: String,
    name: String,
}

impl PostgresDatabase {
    async fn create() -> Self {
        let admin = postgres_admin_url();
        let mut connection = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "\n\n*** PostgreSQL is unreachable ({error}).\n*** This test never skips: \
                     start PostgreSQL or set M2M_TEST_POSTGRES_URL to an admin URL.\n\n"
                )
            });
        let name = format!(
            "m2m_fanout_{}_{}",
            std::process::id(),
            time::OffsetDateTime::now_utc().unix_timestamp_nanos()
        );
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut connection)
            .await
            .unwrap();
        connection.close().await.ok();
        let (scheme, rest) = admin.split_once("://").expect("a postgres:// URL");
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, format!("?{query}")),
            None => (rest, String::new()),
        };
        let authority = rest
            .split_once('/')
            .map_or(rest, |(authority, _)| authority);
        PostgresDatabase {
            url: format!("{scheme}://{authority}/{name}{query}"),
            name,
        }
    }
}

impl Drop for PostgresDatabase {
    /// Drops the database on a thread of its own, so that a failing test drops it too.
    fn drop(&mut self) {
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut connection) = sqlx::PgConnection::connect(&postgres_admin_url()).await
                {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut connection)
                            .await;
                    connection.close().await.ok();
                }
            });
        });
        let _ = dropped.join();
    }
}

#[tokio::test]
async fn two_processes_on_one_postgres_database_share_revocations() {
    let database = PostgresDatabase::create().await;
    let service = Service::start(&database.url);
    let example = Example::start("axum", &database.url, None, ONLY_EVENTS_EVICT).await;

    // The example's LISTEN connection opens in the background (a notification sent before is
    // lost): revoke warm-up tokens until one reaches it, then measure with another token.
    eventually("a revocation reaching the example", async || {
        let (warm_up, id) = service.create_token("acme", &[]).await;
        assert_eq!(example.whoami(&warm_up).await, 200);
        service.revoke("acme", &id).await;
        for _ in 0..25 {
            if example.whoami(&warm_up).await == 401 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    })
    .await;

    let (token, id) = service.create_token("acme", &["reports:read"]).await;
    assert_eq!(example.whoami(&token).await, 200);
    service.revoke("acme", &id).await;
    let delay = example.refused(&token).await;
    eprintln!("axum on PostgreSQL, revoked by the service process: revocation delay {delay:?}");
    // The processes end before their database is dropped.
    drop(example);
    drop(service);
    drop(database);
}
