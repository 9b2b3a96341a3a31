//! The real `m2m` binary in JWT mode on 127.0.0.1 with a SQLite file, and an OAuth client of
//! another stack: `tests/python/jwt_client.py` obtains a JWT by the client-credentials grant
//! (Authlib) and verifies it on its own against the service's JWKS (PyJWT).
//!
//! The Python interpreter comes from `M2M_TEST_PYTHON`; `.ci/test` creates the venv with the
//! pinned packages and sets it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

mod support;

use support::{BIN, Server};
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

/// Starts the service in JWT mode. Its public URL (the JWTs' issuer) must be known before the
/// start, so a free port is picked first; when another process takes that port in the
/// meantime, the start is tried again on another one.
fn start(workdir: &Path, database_url: &str) -> Server {
    let mut failures = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let public_url = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(BIN);
        command
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
            .current_dir(workdir);
        match Server::try_start(command) {
            Ok(server) => {
                assert_eq!(
                    server.base, public_url,
                    "the service listens at its public URL"
                );
                return server;
            }
            Err(output) => failures.push(output),
        }
    }
    panic!("m2m did not start in JWT mode: {failures:#?}");
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
    let server = start(dir.path(), &database_url);
    let admin = server
        .bootstrap_token()
        .expect("a fresh database prints the bootstrap token");
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
