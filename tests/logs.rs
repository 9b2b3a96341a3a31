//! What an operator sees: each example (axum, actix-web, Rocket) run as a process with
//! `RUST_LOG=m2m=debug` logs exactly one line per refused request, with its reason (and the
//! token id when the store knows the token), and no token ever appears in its log output; its
//! `GET /metrics` counts the same decisions by outcome and reason.
//!
//! The examples are run from `target/<profile>/examples/`; the test builds them with cargo
//! first (a no-op when they are up to date).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use m2m_core::{TokenFormat, TokenKind};

/// How long the test waits for what must happen before it calls the run hung. A guard against
/// hanging, not a speed requirement.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `target/<profile>`, from this test binary's path (`target/<profile>/deps/logs-…`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps")
        .to_owned()
}

/// The example binary `name`, built (once per test run) with cargo.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let dir = profile_dir();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut command = Command::new(cargo);
        command.args(["build", "-p", "m2m"]);
        for example in ["axum", "actix", "rocket"] {
            command.args(["--example", example]);
        }
        if dir.file_name().is_some_and(|profile| profile == "release") {
            command.arg("--release");
        }
        let status = command.status().expect("cargo runs");
        assert!(status.success(), "building the examples failed");
    });
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "the example {name} is missing at {}",
        path.display()
    );
    path
}

/// A running example; killed when dropped.
struct Example {
    child: Child,
    port: u16,
    /// Everything the example wrote to stderr (its log) so far.
    log: Arc<Mutex<String>>,
    log_reader: Option<thread::JoinHandle<()>>,
    access: String,
    bearer: String,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Example {
    /// Starts the example `name` on a memory store with `RUST_LOG=m2m=debug`, and reads the two
    /// tokens it seeds from its start-up text.
    fn start(name: &str) -> Example {
        let port = free_port();
        let mut child = Command::new(example(name))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("M2M_STORE", "memory")
            .env("RUST_LOG", "m2m=debug")
            .env("ROCKET_CLI_COLORS", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the example starts");

        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let log_reader = thread::spawn({
            let log = Arc::clone(&log);
            move || {
                let mut buffer = [0u8; 4096];
                while let Ok(read @ 1..) = stderr.read(&mut buffer) {
                    log.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buffer[..read]));
                }
            }
        });

        // The start-up text names each token on the line before it.
        let (lines, received) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut access, mut bearer, mut previous) = (None, None, String::new());
        while access.is_none() || bearer.is_none() {
            let line = received
                .recv_timeout(HANG_GUARD)
                .unwrap_or_else(|_| panic!("example {name} never printed its tokens"));
            if previous.starts_with("access token") {
                access = Some(line.trim().to_owned());
            } else if previous.starts_with("client-credentials bearer token") {
                bearer = Some(line.trim().to_owned());
            }
            previous = line;
        }
        // Keep draining stdout so that the example never blocks on it.
        thread::spawn(move || while received.recv().is_ok() {});

        let example = Example {
            child,
            port,
            log,
            log_reader: Some(log_reader),
            access: access.unwrap(),
            bearer: bearer.unwrap(),
        };
        let started = Instant::now();
        while example.try_get("/health", None).is_none() {
            assert!(
                started.elapsed() < HANG_GUARD,
                "example {name} never answered"
            );
            thread::sleep(Duration::from_millis(20));
        }
        example
    }

    fn try_get(&self, path: &str, header: Option<(&str, &str)>) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(HANG_GUARD)).ok()?;
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        if let Some((name, value)) = header {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        Some((status, body))
    }

    /// The status and body of `GET path` with one header.
    fn get(&self, path: &str, header: Option<(&str, &str)>) -> (u16, String) {
        self.try_get(path, header)
            .unwrap_or_else(|| panic!("GET {path} got no answer"))
    }

    /// The log lines of refusals.
    fn refusals(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .lines()
            .filter(|line| line.contains("outcome=\"refused\""))
            .map(str::to_owned)
            .collect()
    }

    /// Stops the example and returns its whole log.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.log_reader.take() {
            reader.join().unwrap();
        }
        self.log.lock().unwrap().clone()
    }
}

fn check(name: &str) {
    let example = Example::start(name);
    let (access, bearer) = (example.access.clone(), example.bearer.clone());
    let format = TokenFormat::default();
    let unknown = format
        .generate(TokenKind::AccessToken)
        .expose_secret()
        .to_owned();
    let mut forged = access.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let bearer_header = format!("Bearer {bearer}");

    // The bearer token's id, from the caller the example answers.
    let (status, body) = example.get("/v1/whoami", Some(("Authorization", &bearer_header)));
    assert_eq!(status, 200, "{name}: {body}");
    let caller: serde_json::Value = serde_json::from_str(&body).unwrap();
    let bearer_id = caller["token_id"].as_str().unwrap().to_owned();
    assert_eq!(
        example.get("/v1/whoami", Some(("X-API-KEY", &access))).0,
        200,
        "{name}"
    );

    // Path, header, status and the reason logged.
    type Refused<'a> = (&'a str, Option<(&'a str, &'a str)>, u16, &'a str);
    let refused: [Refused<'_>; 5] = [
        ("/v1/whoami", None, 401, "missing_credentials"),
        (
            "/v1/whoami",
            Some(("X-API-KEY", &bearer)),
            400,
            "invalid_request",
        ),
        (
            "/v1/whoami",
            Some(("X-API-KEY", &forged)),
            401,
            "invalid_token",
        ),
        (
            "/v1/whoami",
            Some(("X-API-KEY", &unknown)),
            401,
            "invalid_token",
        ),
        (
            "/v1/reports",
            Some(("Authorization", &bearer_header)),
            403,
            "insufficient_scope",
        ),
    ];
    for (path, header, status, _) in &refused {
        assert_eq!(example.get(path, *header).0, *status, "{name} {path}");
    }
    check_metrics(name, &example, &[&access, &bearer, &forged, &unknown]);
    let started = Instant::now();
    while example.refusals().len() < refused.len() {
        assert!(
            started.elapsed() < HANG_GUARD,
            "{name}: {} refusals logged, {} expected:\n{:?}",
            example.refusals().len(),
            refused.len(),
            example.refusals()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let log = example.stop();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("outcome=\"refused\""))
        .collect();
    assert_eq!(
        refusals.len(),
        refused.len(),
        "{name}: one line per refusal:\n{log}"
    );
    for (line, (path, _, status, reason)) in refusals.iter().zip(&refused) {
        assert!(
            line.contains(&format!("reason=\"{reason}\""))
                && line.contains(&format!("status={status}")),
            "{name} {path}: {line}"
        );
    }
    assert!(
        refusals[4].contains(&format!("token_id=\"{bearer_id}\""))
            && refusals[4].contains("token_kind=\"bearer_token\"")
            && refusals[4].contains("tenant=\"acme\""),
        "{name}: the under-scoped token's id: {}",
        refusals[4]
    );
    for secret in [&access, &bearer, &forged, &unknown] {
        // Even a part of a token is too much: its secret characters after the type code.
        let secret_part = &secret[7..27];
        assert!(
            !log.contains(secret_part),
            "{name}: a token appears in the log:\n{log}"
        );
    }
}

/// The decisions `check` made, as the example's `GET /metrics` counts them.
fn check_metrics(name: &str, example: &Example, tokens: &[&String]) {
    let (status, text) = example.get("/metrics", None);
    assert_eq!(status, 200, "{name}: {text}");
    let value = |series: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name}: no {series} in\n{text}"))
    };
    // actix-web: `/v1/reports` meets the `/v1` scope's middleware, which admits the bearer
    // token, then its own, which refuses it. Rocket: the fairing lets requests without
    // credentials through (anonymous) and admits the bearer token before the route's `Scoped`
    // guard refuses it.
    let (bearer_admitted, missing_credentials) = match name {
        "axum" => (1, 1),
        "actix" => (2, 1),
        _ => (2, 0),
    };
    let decisions = [
        (r#"{outcome="admitted",kind="access_token"}"#, 1),
        (
            r#"{outcome="admitted",kind="bearer_token"}"#,
            bearer_admitted,
        ),
        (
            r#"{outcome="refused",reason="missing_credentials"}"#,
            missing_credentials,
        ),
        (r#"{outcome="refused",reason="invalid_request"}"#, 1),
        (r#"{outcome="refused",reason="invalid_token"}"#, 2),
        (r#"{outcome="refused",reason="insufficient_scope"}"#, 1),
        (r#"{outcome="refused",reason="rate_limited"}"#, 0),
    ];
    for (labels, expected) in decisions {
        let series = format!("m2m_decisions_total{labels}");
        assert_eq!(value(&series), expected, "{name}: {series}\n{text}");
    }
    assert!(value("m2m_cache_hits_total") >= 1, "{name}: {text}");
    for token in tokens {
        assert!(
            !text.contains(&token[7..27]),
            "{name}: a token in the metrics"
        );
    }
}

#[test]
fn axum_example_logs_each_refusal_and_never_a_token() {
    check("axum");
}

#[test]
fn actix_example_logs_each_refusal_and_never_a_token() {
    check("actix");
}

#[test]
fn rocket_example_logs_each_refusal_and_never_a_token() {
    check("rocket");
}
