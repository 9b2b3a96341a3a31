//! The real `m2m` binary in JWT mode on 127.0.0.1 with a SQLite file, and an OAuth client of
//! another stack: `tests/python/jwt_client.py` obtains a JWT by the client-credentials grant
//! (Authlib) and verifies it on its own against the service's JWKS (PyJWT).
//!
//! The Python interpreter comes from `M2M_TEST_PYTHON`; `.ci/test` creates the venv with the
//! pinned packages and sets it.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_m2m");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/jwt_client.py");
const AUDIENCE: &str = "https://api.example";
/// How long one run of the Python client may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The Python interpreter with Authlib and PyJWT; the test fails without it.
fn python() -> String {
    std::env::var("M2M_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "M2M_TEST_PYTHON is not set: it names the Python interpreter of a venv with \
             authlib, pyjwt, requests and cryptography. Run `.ci/test`, which creates that venv \
             in target/python-venv and sets the variable."
        )
    })
}

/// A running `m2m serve --bearer-format jwt`; killed when dropped, so no test leaves a server
/// behind.
struct Server {
    child: Child,
    base: String,
    stdout: Vec<String>,
}

impl Server {
    /// Starts the service in JWT mode. Its public URL (the JWTs' issuer) must be known before
    /// the start, so a free port is picked first; when another process takes that port in the
    /// meantime, the start is tried again on another one.
    fn start(workdir: &Path, database_url: &str) -> Server {
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            match Server::try_start(workdir, database_url, port) {
                Ok(server) => return server,
                Err(output) => failures.push(output),
            }
        }
        panic!("m2m did not start in JWT mode: {failures:#?}");
    }

    fn try_start(workdir: &Path, database_url: &str, port: u16) -> Result<Server, Vec<String>> {
        let public_url = format!("http://127.0.0.1:{port}");
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--database-url",
                database_url,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--bearer-format",
                "jwt",
                "--public-url",
                &public_url,
                "--jwt-audience",
                AUDIENCE,
            ])
            .current_dir(workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the m2m binary starts");
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
            stdout: Vec::new(),
        };
        loop {
            match lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let listening = line.strip_prefix("m2m listening on ").map(str::to_owned);
                    server.stdout.push(line);
                    if let Some(base) = listening {
                        assert_eq!(base, public_url, "the service listens at its public URL");
                        server.base = base;
                        return Ok(server);
                    }
                }
                // Stdout closed: the process ended before listening (the port was taken).
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = server.child.wait();
                    return Err(std::mem::take(&mut server.stdout));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no listen address in {:?}", server.stdout)
                }
            }
        }
    }

    /// The bootstrap admin token this start printed.
    fn bootstrap_token(&self) -> String {
        self.stdout
            .iter()
            .map(|line| line.trim())
            .find(|line| line.starts_with("m2m_at_"))
            .unwrap_or_else(|| panic!("no bootstrap admin token in {:?}", self.stdout))
            .to_owned()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the service with SIGTERM and checks that it shuts down cleanly.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "m2m exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("m2m did not stop on SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// What one run of the Python client ended with.
struct ClientRun {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs the Python client against `base` with the given credential and expected audience.
async fn run_client(
    python: &str,
    base: &str,
    client_id: &str,
    client_secret: &str,
    audience: &str,
) -> ClientRun {
    let child = tokio::process::Command::new(python)
        .arg(SCRIPT)
        .args([base, client_id, client_secret, audience])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {python} (M2M_TEST_PYTHON): {error}"));
    let output = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the Python client did not finish in {CLIENT_TIMEOUT:?}"))
        .unwrap();
    ClientRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn a_python_oauth_client_obtains_and_verifies_a_jwt_on_its_own() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("m2m.db").display());
    let server = Server::start(dir.path(), &database_url);
    let admin = server.bootstrap_token();
    let http = reqwest::Client::new();

    let response = http
        .post(server.url("/v1/tenants/acme/tokens"))
        .header("x-api-key", &admin)
        .json(&json!({
            "type": "client_credentials",
            "expires": "30d",
            "scopes": ["reports:read"],
        }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let created: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let client_id = created["client_id"]
        .as_str()
        .expect("a client_id")
        .to_owned();
    let client_secret = created["client_secret"]
        .as_str()
        .expect("a client_secret")
        .to_owned();

    let run = run_client(&python, &server.base, &client_id, &client_secret, AUDIENCE).await;
    assert!(
        run.success,
        "the Python client failed:\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line on stdout: {:?}", run.stdout);
    let claims: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(claims["tenant_id"], "acme", "{claims}");
    assert_eq!(claims["scope"], "reports:read", "{claims}");
    assert_eq!(claims["client_id"], client_id.as_str(), "{claims}");
    assert_eq!(claims["iss"], server.base.as_str(), "{claims}");
    assert_eq!(claims["aud"], AUDIENCE, "{claims}");

    // The same client refuses a token meant for another audience: its checks can fail.
    let run = run_client(
        &python,
        &server.base,
        &client_id,
        &client_secret,
        "https://other.example",
    )
    .await;
    assert!(
        !run.success,
        "a token for another audience was accepted: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains("InvalidAudienceError"),
        "the refusal names the audience: {}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "no claims printed: {}", run.stdout);

    server.stop();
}
